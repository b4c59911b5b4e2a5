"""The matcher alone: posts and candidate articles in, matches out. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from aggregator.citing.extract import Outlet, extract
from aggregator.citing.match import ArticleIndex, article_from_entry, headline_variants, match_post
from aggregator.models import Entry

T0 = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
NAMES = {"reuters": ("Reuters", "ロイター"), "politico": ("POLITICO", "ポリティコ"), "twz": ("The War Zone",)}
_ids = iter(range(1, 10_000))


def art(source: str, title: str, link: str, when: datetime = T0 - timedelta(days=1), summary: str = "",
        offset: int = 0) -> Entry:
    return Entry(id=next(_ids), source_id=source, role="outlet", key=link, link=link, title=title, summary=summary,
                 content="", author=None, categories=(), published=when, updated=None, first_seen=when,
                 published_offset=offset)


def post(html: str, when: datetime = T0) -> Entry:
    return Entry(id=next(_ids), source_id="blog", role="blog", key=str(when), link="https://blog.example.jp/p/",
                 title="題", summary="", content=html, author=None, categories=(), published=when, updated=None,
                 first_seen=when, language="ja")


def run(p: Entry, arts: list[Entry], **kw: object) -> list[tuple[int, str]]:
    outlets = [Outlet(k, v) for k, v in NAMES.items()]
    idx = ArticleIndex(article_from_entry(a, [n for v in NAMES.values() for n in v]) for a in arts)
    text = extract(p.content, own_hosts=["blog.example.jp"], outlets=outlets)
    out = match_post(p, text, idx, outlet_names=NAMES, **kw)  # type: ignore[arg-type]
    return [(m.article_id, m.method) for m in out.matches]


CITED = art("reuters", "Russian forces attack Ukraine's Kharkiv region, opening new front - Reuters",
            "https://www.reuters.com/world/europe/russian-forces-attack-kharkiv-2024-05-10/")
SAME_DAY = art("reuters", "Ukraine sends reinforcements to Kharkiv region as Russia attacks - Reuters",
               "https://www.reuters.com/world/europe/ukraine-reinforcements-kharkiv-2024-05-10/")
OTHER_OUTLET = art("politico", "Russia opens new front in Kharkiv region",
                   "https://www.politico.com/news/2024/05/10/russia-kharkiv-front-00157000")
POOL = [CITED, SAME_DAY, OTHER_OUTLET]


def test_exact_link_matches() -> None:
    p = post(f'<p>参考:<a href="{CITED.link}">x</a></p>')
    assert run(p, POOL) == [(CITED.id, "link")]


def test_link_with_tracking_and_amp_matches() -> None:
    p = post(f'<p>参考:<a href="{CITED.link.replace("https://www.", "http://")}amp/?utm_source=x#top">x</a></p>')
    assert run(p, POOL) == [(CITED.id, "link")]


def test_headline_without_the_outlet_suffix_matches() -> None:
    p = post("<p>参考:Russian forces attack Ukraine's Kharkiv region, opening new front</p>")
    assert run(p, POOL) == [(CITED.id, "headline")]


def test_headline_with_another_suffix_style_and_curly_quotes_matches() -> None:
    p = post("<p>参考:Russian Forces Attack Ukraine’s Kharkiv Region, Opening New Front | Reuters</p>")
    assert run(p, POOL) == [(CITED.id, "headline")]


def test_truncated_headline_matches() -> None:
    p = post("<p>参考:Russian forces attack Ukraine's Kharkiv region, open...</p>")
    assert run(p, POOL) == [(CITED.id, "headline")]


def test_unrelated_headline_of_the_same_topic_does_not_match() -> None:
    p = post("<p>参考:Kharkiv residents flee as Russian shelling intensifies</p>")
    assert run(p, POOL) == []


def test_link_to_an_unsubscribed_site_matches_nothing_even_with_a_similar_title() -> None:
    p = post("<p>参考:<a href=\"https://www.nytimes.com/2024/05/10/world/kharkiv.html\">"
             "Russian forces attack Ukraine's Kharkiv region, opening new front</a></p>")
    assert run(p, POOL) == []


def test_article_outside_the_date_window_is_not_a_candidate() -> None:
    old = art("reuters", "Russian forces attack Ukraine's Kharkiv region, opening new front - Reuters",
              "https://www.reuters.com/old", when=T0 - timedelta(days=40))
    p = post("<p>参考:Russian forces attack Ukraine's Kharkiv region, opening new front</p>")
    assert run(p, [old]) == []


def test_several_reference_lines_match_each_only_once() -> None:
    p = post(f'<p>参考:<a href="https://www.gov.uk/government/news/x">UK announces</a></p>'
             f'<p>参考:Russia opens new front in Kharkiv region</p><p>参考:<a href="{CITED.link}">x</a></p>')
    assert sorted(run(p, POOL)) == sorted([(OTHER_OUTLET.id, "headline"), (CITED.id, "link")])


def _fake_embed(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for the sentence encoder: bag of letters (the matcher must
    not depend on it alone)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for ch in t.lower():
            out[i, ord(ch) % 64] += 1
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return out


def test_mention_finds_the_paraphrased_article_of_that_outlet_and_day() -> None:
    cited = art("politico", "NATO officials shrug off Russia's nuclear drill announcement",
                "https://www.politico.com/a", when=datetime(2024, 5, 6, 15, tzinfo=UTC),
                summary="Officials said the drills aim to intimidate Europe but saw no change in Russia's posture.",
                offset=-240)
    other = art("politico", "Putin sworn in for a fifth term", "https://www.politico.com/b",
                when=datetime(2024, 5, 7, 15, tzinfo=UTC), summary="The inauguration in Moscow.", offset=-240)
    same_day = art("politico", "Senate Democrats plan vote on border bill", "https://www.politico.com/c",
                   when=datetime(2024, 5, 6, 18, tzinfo=UTC), summary="Schumer said on Monday.", offset=-240)
    para = "米POLITICOは6日、この発表に対するNATO当局者の反応を報じた。"
    p = post(f"<p>{para}</p>", when=datetime(2024, 5, 7, 5, tzinfo=UTC))
    translation = {para: "POLITICO reported on the 6th the reaction of NATO officials to the announcement; "
                         "officials said the drills aim to intimidate Europe and saw no change in Russia's nuclear posture."}
    assert run(p, [cited, other, same_day], translate=translation.get, embed=_fake_embed) == [(cited.id, "mention")]


def test_mention_of_an_outlet_with_no_article_that_day_matches_nothing() -> None:
    a = art("politico", "NATO officials shrug off Russia's nuclear drill announcement", "https://www.politico.com/a",
            when=datetime(2024, 5, 2, 15, tzinfo=UTC))
    para = "米POLITICOは6日、NATO当局者の反応を報じた。"
    p = post(f"<p>{para}</p>", when=datetime(2024, 5, 7, 5, tzinfo=UTC))
    assert run(p, [a], translate=lambda s: "POLITICO reported NATO officials' reaction", embed=_fake_embed) == []


def test_headline_variants_strip_only_a_trailing_outlet_name() -> None:
    assert headline_variants("Ukraine says X - Reuters", ["Reuters"]) == ("ukraine says x reuters", "ukraine says x")
    assert headline_variants("Army's 155mm ramp: Scranton plant hits target") == ("armys 155mm ramp scranton plant hits target",)


def test_headline_with_the_outlet_in_brackets_or_in_front_matches() -> None:
    for line in ("Russian forces attack Ukraine's Kharkiv region, opening new front (Reuters)",
                 "Reuters: Russian forces attack Ukraine's Kharkiv region, opening new front"):
        assert run(post(f"<p>参考:{line}</p>"), POOL) == [(CITED.id, "headline")], line


def test_sources_listed_under_a_bare_reference_heading_are_citations() -> None:
    p = post(f'<p>参考:</p><ul><li><a href="{CITED.link}">x</a></li>'
             f"<li>Russia opens new front in Kharkiv region</li></ul><p>本文。</p>")
    assert sorted(run(p, POOL)) == sorted([(CITED.id, "link"), (OTHER_OUTLET.id, "headline")])


def test_a_long_trailing_segment_is_part_of_the_headline() -> None:
    assert headline_variants("Ukraine war latest - Russia advances near Pokrovsk") == (
        "ukraine war latest russia advances near pokrovsk",)


def test_headline_cut_without_an_ellipsis_matches_only_when_most_of_it_is_kept() -> None:
    assert run(post("<p>参考:Russian forces attack Ukraine's Kharkiv region, opening</p>"), POOL) == [(CITED.id, "headline")]
    assert run(post("<p>参考:Russian forces attack</p>"), POOL) == []


def test_a_linked_page_in_no_feed_matches_its_site_only_under_a_nearly_equal_headline() -> None:
    moved = CITED.link.replace("-2024-05-10/", "-update-2024-05-10/")  # another URL, same story
    assert run(post(f'<p>参考:<a href="{moved}">{CITED.title.removesuffix(" - Reuters")}</a></p>'), POOL) == [
        (CITED.id, "headline")]
    sibling = "Russian forces attack Ukraine's Sumy region, opening new front"  # a sibling story, not in the feeds
    assert run(post(f'<p>参考:<a href="https://www.reuters.com/world/europe/sumy/">{sibling}</a></p>'), POOL) == []
