"""Full text end to end: an excerpt-only WordPress feed and its posts' pages on loopback,
through the real cycle, store, explain and status."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from loopback import FeedServer
from lxml import etree
from wordpress import Page, Related, Trap

from aggregator.app import Aggregator
from aggregator.config import Config, load_config
from aggregator.running.cycle import CycleReport, SourceReport, run_cycle
from aggregator.running.status import render_text
from aggregator.store import Store

T0 = datetime(2026, 5, 14, 3, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
REUTERS = "https://www.reuters.com/world/europe"
# (id, title, summary): long plain summaries, so no outlet page is ever wanted
ARTICLES = [
    ("regroup", "Ukraine regroups its northern defences around Kharkiv - Reuters",
     "Ukraine's army said on Monday it had moved brigades to hold a new line north of Kharkiv."),
    ("patriot", "Zelenskiy asks allies for two more Patriot systems for Kharkiv - Reuters",
     "President Zelenskiy said two Patriot batteries would be enough to protect the Kharkiv region."),
    ("shells", "Ukraine says artillery shell shortage is easing as US aid arrives - Reuters",
     "Ukrainian commanders said deliveries of 155mm shells had started to reach units at the front."),
    ("trap1", "Russian glide bombs hit Kharkiv suburbs overnight - Reuters",
     "Russian aircraft dropped guided bombs on the northern suburbs of Kharkiv overnight, officials said."),
    ("trap2", "Kremlin says new front in north is a buffer zone - Reuters",
     "The Kremlin said its troops in the Kharkiv region were creating a buffer zone along the border."),
]
POSTS = [
    ("northern-line", "ウクライナ軍、ハルキウ北部で防衛線を再編",
     '<p>ウクライナ軍は13日、ハルキウ州北部の防衛線を再編したと発表した。</p>'
     f'<p>参考:<a href="{REUTERS}/regroup-2026-05-13/">Ukraine regroups its northern defences around Kharkiv</a></p>'
     '<p>管理人は、この再編は時間稼ぎだと見ている。追加の支援が間に合うかが焦点だ。</p>'
     '<p>出典:Генеральний штаб ЗСУ</p>', "utf-8"),
    ("two-patriots", "ゼレンスキー大統領、ハルキウ防衛にパトリオット2基を要請",
     '<p>ゼレンスキー大統領は13日、ハルキウ州を守るにはパトリオットが2基必要だと述べた。</p>'
     '<p>ロイター通信は13日、大統領が同盟国に追加の防空システムを求めたと報じている。</p>'
     f'<p>参考:<a href="{REUTERS}/patriot-2026-05-13/">Zelenskiy asks allies for two more Patriot systems</a></p>'
     '<p>管理人は、欧州の在庫から2基を捻出するのは難しくないと考える。①</p>', "shift_jis"),
    ("shells-arrive", "砲弾不足が緩和、米国の支援が前線に到着",
     '<p>ウクライナ軍の指揮官らは、米国の支援で155mm砲弾の不足が和らぎ始めたと語った。</p>'
     '<p>参考:Ukraine says artillery shell shortage is easing as US aid arrives</p>'
     '<p>ただし管理人は、消費量に生産が追いつくにはまだ時間がかかると見ている。</p>', "utf-8"),
]


def item_xml(link: str, title: str, summary: str, when: datetime, guid: str) -> str:
    return (f"<item><title>{title}</title><link>{link}</link><guid isPermaLink=\"false\">{guid}</guid>"
            f"<pubDate>{format_datetime(when)}</pubDate><description><![CDATA[{summary}]]></description></item>")


def rss(items: list[str], title: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>http://127.0.0.1/</link><description>d</description><language>ja</language>"
            + "".join(items) + "</channel></rss>").encode("utf-8")


@dataclass
class Site:
    dir: Path
    feeds: FeedServer
    config: Config
    titles: dict[str, str]

    def blog_feed(self, titles: dict[str, str] | None = None) -> None:
        titles = titles or self.titles
        items = []
        for i, (slug, _, body, _) in enumerate(POSTS):
            plain = etree.HTML(body).xpath("string()")
            items.append(item_xml(self.link(slug), titles[slug], plain[:60] + " [&#8230;]",
                                  T0 - timedelta(hours=i + 1), f"https://blog.example.jp/?p={100 + i}"))
        self.feeds.add("/feed/", rss(items, "軍事ニュース解説ブログ"))

    def link(self, slug: str) -> str:
        return self.feeds.url(f"/posts/{slug}/")

    def page_requests(self, since: int = 0) -> list:
        return [r for r in self.feeds.requests[since:] if r.path.startswith("/posts/")]

    def cycle(self, store: Store, at: datetime = T0) -> CycleReport:
        return run_cycle(store, self.config, now=lambda: at, fetch_all=True, rng=random.Random(7))


def make_site(tmp: Path, feeds: FeedServer, **fetch: object) -> Site:
    outlet = [item_xml(f"{REUTERS}/{aid}-2026-05-13/", title, summary, T0 - timedelta(days=1, hours=i),
                       f"reuters-{aid}") for i, (aid, title, summary) in enumerate(ARTICLES)]
    feeds.add("/reuters.xml", rss(outlet, "Reuters"))
    site = Site(tmp, feeds, None, {slug: title for slug, title, _, _ in POSTS})  # type: ignore[arg-type]
    traps = [Trap("ロイター通信", ARTICLES[3][1], f"{REUTERS}/trap1-2026-05-13/", 13),
             Trap("ロイター通信", ARTICLES[4][1], f"{REUTERS}/trap2-2026-05-13/", 13)]
    for slug, title, body, charset in POSTS:
        page = Page(url=site.link(slug), title=title, content=body, traps=traps, charset=charset,
                    related=[Related("北部戦線の続報", site.link("other"), "ロイター通信は13日、前線の状況を報じた。")])
        feeds.add(f"/posts/{slug}/", page.html().encode("cp932" if charset == "shift_jis" else "utf-8"),
                  "text/html; charset=utf-8")  # a wrong charset for the Shift_JIS page
    site.blog_feed()
    fetch_yaml = ", ".join(f"{k}: {v}" for k, v in {"allow_private_networks": "true", **fetch}.items())
    cfg = tmp / "aggregator.yaml"
    cfg.write_text("\n".join([
        "storage: {url: 'sqlite:///store.sqlite3'}",
        "output: {dir: output, link: 'https://news.example.org/', base_url: 'https://news.example.org/feeds/'}",
        "translation: {providers: []}",
        f"fetch: {{{fetch_yaml}}}",
        "sources:",
        f"  - {{id: blog, name: 軍事ニュース解説ブログ, url: '{feeds.url('/feed/')}', role: blog, language: ja}}",
        f"  - {{id: reuters, name: Reuters, url: '{feeds.url('/reuters.xml')}', role: outlet, language: en,"
        " aliases: [ロイター, ロイター通信]}"]) + "\n", encoding="utf-8")
    site.config = load_config(cfg)
    return site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with FeedServer() as feeds:
        yield make_site(tmp_path, feeds)


def cited(store: Store, site: Site) -> dict[str, set[str]]:
    out = {}
    for slug, *_ in POSTS:
        (post,) = store.find_entries_by_link(site.link(slug))
        arts = store.entries_by_ids(m.article_id for m in store.matches_for([post.id]).get(post.id, []))
        out[slug] = {a.link.split("/")[-2] for a in arts.values() if a.link}
    return out


WANT = {"northern-line": {"regroup-2026-05-13"}, "two-patriots": {"patriot-2026-05-13"},
        "shells-arrive": {"shells-2026-05-13"}}


def test_excerpt_feed_is_read_from_the_pages_and_matched_as_a_full_feed(site: Site) -> None:
    with Store(site.config.db_path) as store:
        report = site.cycle(store)
        reqs = site.page_requests()
        assert sorted(r.path for r in reqs) == sorted(f"/posts/{slug}/" for slug, *_ in POSTS)
        for r in reqs:  # the feeds' client: our User-Agent, asking for HTML
            assert r.headers["User-Agent"].startswith("aggregator/")
            assert r.headers["Accept"].startswith("text/html")
        assert cited(store, site) == WANT  # nothing from the comments' or widgets' trap articles
        (post,) = store.find_entries_by_link(site.link("two-patriots"))
        assert "パトリオットが2基必要" in post.page_text and "①" in post.page_text  # Shift_JIS, mislabelled
        assert "名無し" not in post.page_text and post.page_from and post.page_from.startswith("trafilatura ")
        assert post.summary.endswith("[&#8230;]")  # what the feed said is kept beside it
        assert report.sources[0].pages is not None and report.sources[0].pages.texts == 3
        assert "3 pages fetched (3 texts" in report.summary()
        # readers get the whole post, not the excerpt
        atom = (site.config.output_dir / "feed.atom").read_text(encoding="utf-8")
        assert "追加の支援が間に合うかが焦点だ" in atom and "欧州の在庫から2基を捻出する" in atom

        # a second cycle downloads no page again
        n = len(site.feeds.requests)
        site.cycle(store, T0 + timedelta(hours=1))
        assert site.page_requests(n) == []

    out = Aggregator(site.config).explain(site.link("northern-line"))
    assert f"text: from the page ({post.page_from}), fetched 2026-05-14 03:00 UTC" in out
    status = Aggregator(site.config).status(now=T0)
    (blog,) = [s for s in status["sources"] if s["id"] == "blog"]
    assert blog["pages"]["from_page"] == 3 and blog["full_text"] == "auto"
    assert "full text: blog: 3 entries read from their pages" in render_text(status, now=T0)


def test_a_changed_entry_asks_for_its_page_again_conditionally(site: Site) -> None:
    with Store(site.config.db_path) as store:
        site.cycle(store)
        (before,) = store.find_entries_by_link(site.link("northern-line"))
        site.blog_feed({**site.titles, "northern-line": "ウクライナ軍、ハルキウ北部で防衛線を再編(追記)"})
        n = len(site.feeds.requests)
        site.cycle(store, T0 + timedelta(hours=1))
        (req,) = site.page_requests(n)
        assert req.path == "/posts/northern-line/" and req.headers.get("If-None-Match")
        (after,) = store.find_entries_by_link(site.link("northern-line"))
        assert after.id == before.id and after.page_text == before.page_text  # 304: the text kept
        assert cited(store, site) == WANT


def test_pages_a_stopped_cycle_left_are_fetched_when_the_feed_answers_304(site: Site) -> None:
    """The run stopped once the blog's feed was stored, before its pages: the next cycle
    gets a 304 for the feed and still fetches those pages (the source stays pending)."""
    stop = threading.Event()

    def stop_after_blog(report: SourceReport) -> None:
        if report.id == "blog":
            stop.set()

    with Store(site.config.db_path) as store:
        run_cycle(store, site.config, now=lambda: T0, fetch_all=True, rng=random.Random(7), stop=stop,
                  progress=stop_after_blog)
        assert site.page_requests() == [] and len(store.find_entries_by_link(site.link("northern-line"))) == 1
        n = len(site.feeds.requests)
        report = site.cycle(store, T0 + timedelta(hours=1))
        assert {r.id: r.outcome for r in report.sources}["blog"] == "not modified"
        assert sorted(r.path for r in site.page_requests(n)) == sorted(f"/posts/{slug}/" for slug, *_ in POSTS)
        n = len(site.feeds.requests)
        site.cycle(store, T0 + timedelta(hours=2))
        assert site.page_requests(n) == []  # decided: not asked for again
        assert cited(store, site) == WANT


def test_a_failing_page_keeps_the_excerpt_shows_why_and_is_retried_with_backoff(site: Site) -> None:
    site.feeds.fault("/posts/northern-line/", "status", status=503)
    with Store(site.config.db_path) as store:
        site.cycle(store)
        (post,) = store.find_entries_by_link(site.link("northern-line"))
        assert post.page_text == "" and post.summary
        assert cited(store, site)["northern-line"] == set()
        state = store.page_state(post.id)
        assert state is not None and state.status == "retry" and state.retry_at is not None
        status = Aggregator(site.config).status(now=T0)
        assert "1 failing (their excerpt is kept)" in render_text(status, now=T0)
        assert f"last error: {post.link}: HTTP 503 Service Unavailable" in render_text(status, now=T0)
        assert "fetching its page failed 1 time(s) (HTTP 503" in Aggregator(site.config).explain(site.link("northern-line"))
        atom = etree.parse(str(site.config.output_dir / "feed.atom")).getroot()
        entry_id, updated = _atom_entry(atom, post.link)

        # not before its retry time
        n = len(site.feeds.requests)
        site.cycle(store, T0 + timedelta(minutes=10))
        assert site.page_requests(n) == []

        site.feeds.clear_fault("/posts/northern-line/")
        later = state.retry_at + timedelta(minutes=1)
        site.cycle(store, later)
        (again,) = store.find_entries_by_link(site.link("northern-line"))
        assert again.id == post.id and "時間稼ぎ" in again.page_text
        assert cited(store, site)["northern-line"] == WANT["northern-line"]  # matched again
        atom = etree.parse(str(site.config.output_dir / "feed.atom")).getroot()
        new_id, new_updated = _atom_entry(atom, post.link)
        assert new_id == entry_id and new_updated > updated


def _atom_entry(atom: etree._Element, link: str) -> tuple[str, str]:
    for e in atom.findall(f"{ATOM}entry"):
        if e.find(f"{ATOM}link[@rel='alternate']").get("href") == link:
            return e.find(f"{ATOM}id").text, e.find(f"{ATOM}updated").text
    raise AssertionError(f"{link} not in the feed")


def test_pages_per_cycle_bounds_the_requests_and_the_rest_come_later(tmp_path: Path) -> None:
    with FeedServer() as feeds:
        site = make_site(tmp_path, feeds, pages_per_cycle=2)
        with Store(site.config.db_path) as store:
            counts = []
            for hour in range(3):
                n = len(feeds.requests)
                site.cycle(store, T0 + timedelta(hours=hour))
                counts.append(len(site.page_requests(n)))
                if hour == 0:
                    assert "1 waiting for a later cycle" in render_text(Aggregator(site.config).status(now=T0), now=T0)
            assert counts == [2, 1, 0]
            assert cited(store, site) == WANT


def test_full_text_never_fetches_no_page_and_a_page_over_the_size_cap_fails(tmp_path: Path) -> None:
    with FeedServer() as feeds:
        site = make_site(tmp_path, feeds, max_bytes="20KB")
        feeds.fault("/posts/two-patriots/", "huge", size=2_000_000)
        with Store(site.config.db_path) as store:
            site.cycle(store)
            state = store.page_state(store.find_entries_by_link(site.link("two-patriots"))[0].id)
            assert state is not None and "cap" in (state.error or "")
        text = site.config.path.read_text(encoding="utf-8").replace("role: blog, language: ja",  # type: ignore[union-attr]
                                                                    "role: blog, language: ja, full_text: never")
        (tmp_path / "never").mkdir()
        (tmp_path / "never" / "aggregator.yaml").write_text(text, encoding="utf-8")
        site.config = load_config(tmp_path / "never" / "aggregator.yaml")
        with Store(site.config.db_path) as store:
            n = len(feeds.requests)
            site.cycle(store)
            assert site.page_requests(n) == []
            assert "full_text: never" in Aggregator(site.config).explain(site.link("northern-line"))


def test_a_store_from_0_1_0_gets_page_state_and_keeps_its_posts(tmp_path: Path) -> None:
    """Migration 4 adds the page columns and table to a store written before them."""
    import sqlite3

    from aggregator.sources import fulltext

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript((Path(__file__).parent / "fixtures" / "store-v0.1.0.sql").read_text(encoding="utf-8"))
    db.close()
    with Store(path) as s:
        (post,) = s.newest_entries(["blog"], 10)
        assert post.page_text == "" and post.page_from is None and post.body == (post.content or post.summary)
        (cand,) = s.page_candidates("blog", T0)
        assert cand.entry.id == post.id and cand.state is None
        s.save_pages([fulltext.not_needed(cand, T0)])
        assert s.page_candidates("blog", T0) == []  # decided once per entry version
        state = s.page_state(post.id)
        assert state is not None and state.status == "not needed"


def test_an_entry_whose_link_rules_its_page_out_gets_no_page_row_unless_it_had_one(site: Site) -> None:
    """The outlet's articles link to another site than its feed's: no page is wanted, and
    none is written (a cold cycle wrote one per entry). An article that had a page state
    for an earlier version gets it brought up to its new version."""
    from aggregator.sources.fulltext import PageState

    with Store(site.config.db_path) as store:
        site.cycle(store)
        arts = sorted(store.newest_entries(["outlet"], 50), key=lambda e: e.id)
        assert len(arts) == len(ARTICLES) and all(store.page_state(a.id) is None for a in arts)
        first = arts[0]
        store.save_pages([PageState(first.id, "an earlier version", "done", first.link, checked=T0)])
        # New versions of the outlet's articles: the page stage looks at every entry again.
        changed = [item_xml(f"{REUTERS}/{aid}-2026-05-13/", title + " (updated)", summary,
                            T0 - timedelta(days=1, hours=i), f"reuters-{aid}")
                   for i, (aid, title, summary) in enumerate(ARTICLES)]
        site.feeds.add("/reuters.xml", rss(changed, "Reuters"))
        n = len(site.feeds.requests)
        report = site.cycle(store, T0 + timedelta(hours=1))
        assert {r.id: r.updated for r in report.sources}["reuters"] == len(ARTICLES)
        assert site.page_requests(n) == [] and all(store.page_state(a.id) is None for a in arts[1:])
        (now_first,) = [e for e in store.newest_entries(["outlet"], 50) if e.id == first.id]
        assert now_first.title.endswith("(updated)")
        state = store.page_state(first.id)
        assert state is not None and state.status == "not needed" and state.version != "an earlier version"
        assert store.page_heads(["reuters"], T0 + timedelta(hours=2)) == []  # decided, the flag cleared
