"""Issue 11's cases, on posts written for these tests: in-text citations beside 参考
lines, outlets named in other roles, edited headlines, outlets carried by an aggregator,
and the near misses ``explain`` shows. The matcher alone: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.citing.extract import Outlet, extract
from aggregator.citing.match import ArticleIndex, Outcome, article_from_entry, match_post, slug_words
from aggregator.config import parse_config
from aggregator.exceptions import ConfigError
from aggregator.models import Entry
from aggregator.sources.parse import parse_feed

T0 = datetime(2025, 3, 20, 6, 0, tzinfo=UTC)
NAMES = {"reuters": ("Reuters", "ロイター", "ロイター通信"), "politico": ("POLITICO", "ポリティコ", "米POLITICO"),
         "signal": ("Baltic Signal", "バルティック・シグナル")}
_ids = iter(range(1, 100_000))


def art(source: str, title: str, link: str, when: datetime, summary: str = "", site: str = "") -> Entry:
    return Entry(id=next(_ids), source_id=source, role="outlet", key=link, link=link, title=title, summary=summary,
                 content="", author=None, categories=(), published=when, updated=None, first_seen=when,
                 source_site=site or None)


def post(html: str, when: datetime = T0, title: str = "題") -> Entry:
    return Entry(id=next(_ids), source_id="blog", role="blog", key=str(when), link="https://blog.example.jp/p/",
                 title=title, summary="", content=html, author=None, categories=(), published=when, updated=None,
                 first_seen=when, language="ja")


def run(p: Entry, arts: list[Entry], translations: dict[str, str] | None = None) -> Outcome:
    outlets = [Outlet(k, v) for k, v in NAMES.items()]
    idx = ArticleIndex(article_from_entry(a, [n for v in NAMES.values() for n in v]) for a in arts)
    text = extract(p.content, own_hosts=["blog.example.jp"], outlets=outlets)
    return match_post(p, text, idx, outlet_names=NAMES, translate=(translations or {}).get)


def linked(out: Outcome) -> list[int]:
    return [m.article_id for m in out.matches]


# -- in-text citations beside 参考 lines ----------------------------------------------------

REF = art("politico", "Finland weighs mine-laying ships for the Gulf after cable damage",
          "https://www.politico.com/news/2025/03/18/finland-mine-laying-ships-00300001", T0 - timedelta(days=2),
          "Helsinki is studying new minelayers to guard the Gulf of Finland, officials said.")
INTERVIEW = art("signal", "Interview: Estonian admiral says Gulf needs a joint minefield plan",
                "https://balticsignal.example/2025/03/interview-estonian-admiral-joint-minefield/",
                T0 - timedelta(days=5, hours=3),
                "Estonia's navy chief told Baltic Signal that Tallinn and Helsinki should plan a common minefield.")
SIGNAL_NEWER = art("signal", "Finland's navy orders two more minelayers",
                   "https://balticsignal.example/2025/03/finland-navy-orders-minelayers/", T0 - timedelta(days=1),
                   "The Finnish navy placed an order for two further minelaying ships on Wednesday.")
SIGNAL_OTHER = art("signal", "Baltic ferry strike ends after pay deal",
                   "https://balticsignal.example/2025/03/ferry-strike-ends/", T0 - timedelta(days=3),
                   "Ferry workers accepted a new pay offer.")
PARA = ("エストニア海軍の司令官はバルティック・シグナルのインタビューでも、タリンとヘルシンキが"
        "共同の機雷原を計画すべきだと訴えていた。")
PARA_EN = ("In an interview with Baltic Signal as well, the Estonian navy's admiral argued that Tallinn and "
           "Helsinki need a joint minefield plan for the Gulf.")
LEAD = "フィンランドがフィンランド湾の防衛のため新たな機雷敷設艦の導入を検討している。"
LEAD_EN = "Finland is considering new mine-laying ships to defend the Gulf of Finland."


def test_an_undated_interview_in_the_text_is_cited_beside_the_reference_line() -> None:
    p = post(f"<p>{LEAD}</p><p>参考:<a href=\"{REF.link}\">{REF.title}</a></p>"
             f"<p>米POLITICOによると、ケーブル損傷を受けて計画が前倒しされたという。</p><p>{PARA}</p>")
    out = run(p, [REF, INTERVIEW, SIGNAL_NEWER, SIGNAL_OTHER], {PARA: PARA_EN, LEAD: LEAD_EN})
    assert linked(out) == [REF.id, INTERVIEW.id]
    assert out.matches[1].evidence.startswith("mention Baltic Signal + content")
    # 「米POLITICOによると」 under a POLITICO 参考 line is that line's article, summarised.
    assert [c.outlet for c in out.set_aside] == ["politico"]


def test_an_undated_in_text_citation_looks_back_the_whole_window_only() -> None:
    p = post(f"<p>{LEAD}</p><p>参考:{REF.title}</p><p>{PARA}</p>")
    old = art("signal", INTERVIEW.title, INTERVIEW.link + "old", T0 - timedelta(days=9), INTERVIEW.summary)
    out = run(p, [REF, old, SIGNAL_OTHER], {PARA: PARA_EN, LEAD: LEAD_EN})
    assert linked(out) == [REF.id]


def test_an_outlet_named_as_an_employer_or_for_comparison_is_not_cited() -> None:
    p = post(f"<p>{LEAD}</p><p>参考:{REF.title}</p>"
             "<p>以前バルティック・シグナルに寄稿していた研究者はSNSで、機雷敷設艦の導入は遅すぎると指摘している。</p>"
             "<p>バルティック・シグナルのような地域メディアも今後、この計画を詳しく報じるだろう。</p>")
    out = run(p, [REF, INTERVIEW, SIGNAL_NEWER], {LEAD: LEAD_EN})
    assert linked(out) == [REF.id]
    assert out.unresolved == [] and out.set_aside == []


def test_without_a_translation_an_in_text_citation_links_nothing_rather_than_a_guess() -> None:
    p = post(f"<p>{LEAD}</p><p>参考:{REF.title}</p><p>{PARA}</p>")
    out = run(p, [REF, INTERVIEW, SIGNAL_NEWER])
    assert linked(out) == [REF.id]
    [near] = out.near
    assert near.translated is False and "no translation: content could not be compared" in near.describe()


# -- edited headlines ----------------------------------------------------------------------

EDITED = art("reuters", "Sweden rushes air-defence units to Gotland as drones are sighted",
             "https://www.reuters.com/world/europe/sweden-sends-air-defence-systems-gotland-after-drone-sightings-2025-03-19/",
             T0 - timedelta(hours=20),
             "Sweden moved air-defence units to Gotland after drones were sighted near the island, the military said.")
EDITED_SIBLING = art("reuters", "Sweden's parliament backs higher defence budget",
                     "https://www.reuters.com/world/europe/sweden-parliament-defence-budget-2025-03-19/",
                     T0 - timedelta(hours=22), "Lawmakers approved more spending.")
OTHER_OUTLET = art("politico", "Sweden sends air defense to Gotland",
                   "https://www.politico.com/news/2025/03/19/sweden-gotland-air-defense-00300002",
                   T0 - timedelta(hours=18), "Stockholm deploys air defense to the island.")
FIRST_TITLE = "Sweden sends air-defence systems to Gotland after drone sightings"
BODY = "ロイター通信によると、ゴットランド島の周辺でドローンが目撃されたことを受け、スウェーデン軍が防空部隊を島に移動させた。"
BODY_EN = ("According to Reuters, the Swedish military moved air-defence units to the island after drones were "
           "sighted around Gotland.")


def test_a_headline_the_outlet_edited_matches_on_evidence_together() -> None:
    p = post(f"<p>{BODY}</p><p>参考:{FIRST_TITLE}</p>")
    out = run(p, [EDITED, EDITED_SIBLING, OTHER_OUTLET], {BODY: BODY_EN})
    assert linked(out) == [EDITED.id]
    assert out.matches[0].evidence.startswith("headline (edited) ") and "+content" in out.matches[0].evidence


def test_an_edited_headline_needs_its_outlet_named() -> None:
    p = post(f"<p>スウェーデン軍が防空部隊を島に移動させた。</p><p>参考:{FIRST_TITLE}</p>")
    out = run(p, [EDITED, EDITED_SIBLING, OTHER_OUTLET], {})
    assert linked(out) == []
    assert out.near[0].candidates[0][1] == EDITED.title  # the closest is shown, and why it missed
    assert "outlet named" in out.near[0].needed


def test_an_edited_headline_with_two_close_candidates_matches_neither() -> None:
    twin = art("reuters", "Sweden rushes air-defence units to Gotland as drones are seen",
               "https://www.reuters.com/world/europe/sweden-sends-air-defence-systems-gotland-after-drone-sightings-2/",
               T0 - timedelta(hours=19), EDITED.summary)
    p = post(f"<p>{BODY}</p><p>参考:{FIRST_TITLE}</p>")
    assert linked(run(p, [EDITED, twin, EDITED_SIBLING], {BODY: BODY_EN})) == []


def test_slug_words_skip_ids_and_dates() -> None:
    assert slug_words("politico.com/news/2025/03/18/finland-mine-laying-ships-00300001", stem=False) == [
        "finland", "mine", "laying", "ships"]


# -- outlets carried by an aggregator --------------------------------------------------------

GN = "https://news.google.com/rss/articles/CBMiX2h0dHBzOi8vd3d3LnJldXRlcnMuY29tL3dvcmxkL"
CARRIED = art("reuters", "Norway to buy long-range rocket artillery, defence minister says - Reuters", GN + "1",
              T0 - timedelta(hours=10), site="https://www.reuters.com")
CARRIED_SIBLING = art("reuters", "Norway to buy new submarines from Germany - Reuters", GN + "2",
                      T0 - timedelta(hours=9), site="https://www.reuters.com")
REUTERS_URL = "https://www.reuters.com/world/europe/norway-buy-long-range-rocket-artillery-defence-minister-says-2025-03-19/"


def test_a_link_to_the_site_an_aggregator_carries_matches_its_item_by_anchor_text() -> None:
    p = post(f'<p>参考:<a href="{REUTERS_URL}">Norway to buy long-range rocket artillery, defence minister says</a></p>')
    out = run(p, [CARRIED, CARRIED_SIBLING])
    assert linked(out) == [CARRIED.id]
    assert out.matches[0].evidence == "headline 1.00, carried by reuters"


def test_a_bare_link_to_that_site_matches_by_the_words_of_its_slug() -> None:
    p = post(f'<p>参考:<a href="{REUTERS_URL}">{REUTERS_URL}</a></p>')
    assert linked(run(p, [CARRIED, CARRIED_SIBLING])) == [CARRIED.id]


def test_a_link_to_that_site_never_matches_a_different_story() -> None:
    url = "https://www.reuters.com/world/europe/norway-says-no-decision-yet-on-rocket-artillery-2025-03-19/"
    p = post(f'<p>参考:<a href="{url}">Norway says no decision yet on rocket artillery</a></p>')
    out = run(p, [CARRIED, CARRIED_SIBLING])
    assert linked(out) == []
    assert out.near[0].reason.startswith("link in no subscribed feed")


# -- where an aggregated item's site comes from ----------------------------------------------

def test_the_site_of_a_google_news_item_is_read_from_its_source_element() -> None:
    xml = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Google News</title>'
           b'<item><title>Norway to buy rocket artillery - Reuters</title>'
           b'<link>https://news.google.com/rss/articles/CBMi1?oc=5</link><guid>CBMi1</guid>'
           b'<pubDate>Wed, 19 Mar 2025 20:00:00 GMT</pubDate>'
           b'<source url="https://www.reuters.com">Reuters</source></item>'
           b'<item><title>Plain item</title><link>https://example.org/a</link></item></channel></rss>')
    entries = parse_feed(xml, url="https://news.google.com/rss/search?q=site:reuters.com").entries
    assert [e.source_site for e in entries] == ["https://www.reuters.com", None]


def test_a_source_may_say_which_site_it_carries() -> None:
    base = ("sources:\n  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}\n"
            "  - {id: reuters, url: 'https://news.google.com/rss/search?q=site:reuters.com', role: outlet")
    cfg = parse_config(base + ", site: 'https://www.reuters.com'}\n")
    assert cfg.sources[1].site == "https://www.reuters.com" and cfg.sources[0].site is None
    with pytest.raises(ConfigError, match="site"):
        parse_config(base + ", site: 'reuters.com'}\n")


# -- the post the issue was filed on (its shape; text written for this test) -------------------

def test_a_post_citing_one_article_on_its_reference_line_and_an_interview_in_its_text() -> None:
    names = {"politico": ("POLITICO", "米POLITICO"), "bsignal": ("Brussels Signal",)}
    posted = datetime(2023, 10, 14, 9, 0, tzinfo=UTC)
    cited = art("politico", "Blinken warned lawmakers Azerbaijan may invade Armenia in coming weeks",
                "https://www.politico.com/news/2023/10/13/blinken-azerbaijan-armenia-00121597",
                datetime(2023, 10, 13, 19, 0, tzinfo=UTC),
                "The secretary of state told lawmakers Azerbaijan could move into southern Armenia within weeks.")
    interview = art("bsignal", "Armenian envoy to EU: Azerbaijan could invade Armenia proper within weeks",
                    "https://brusselssignal.eu/2023/10/armenian-envoy-azerbaijan-could-invade-within-weeks/",
                    datetime(2023, 10, 9, 10, 0, tzinfo=UTC),
                    "Armenia's ambassador to the EU told Brussels Signal he feared an attack on Armenian territory.")
    other = art("bsignal", "EU leaders split over sanctions on Baku", "https://brusselssignal.eu/2023/10/eu-split-baku/",
                datetime(2023, 10, 12, 10, 0, tzinfo=UTC), "Member states disagree on sanctions against Azerbaijan.")
    para = ("アルメニアの駐EU大使は、アゼルバイジャンが数週間以内にアルメニア本土へ侵攻するおそれがあると"
            "Brussels Signalのインタビューにも訴えていたが、米POLITICOも13日、ブリンケン国務長官が議員らに同様の警告をしたと報じた。")
    para_en = ("Armenia's ambassador to the EU had also warned in an interview with Brussels Signal that Azerbaijan "
               "could invade Armenia proper within weeks, and POLITICO reported on the 13th that Secretary Blinken "
               "gave lawmakers a similar warning.")
    p = post(f'<p>参考:<a href="{cited.link}">{cited.title}</a></p><p>{para}</p><p>出典:President.az/CC BY 4.0</p>',
             when=posted)
    idx = ArticleIndex(article_from_entry(a, [n for v in names.values() for n in v]) for a in (cited, interview, other))
    text = extract(p.content, own_hosts=["blog.example.jp"], outlets=[Outlet(k, v) for k, v in names.items()])
    out = match_post(p, text, idx, outlet_names=names, translate={para: para_en}.get)
    assert linked(out) == [cited.id, interview.id]
    assert [c.outlet for c in out.set_aside] == ["politico"]  # 「米POLITICOも13日」 is the 参考 line's article
