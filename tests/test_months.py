"""Issue 19, running for months: the nine failures of the second red-team pass, each
through the real CLI (under Debian's ``faketime`` where months must pass) or the real
code path it broke.

1 a date before year 1000          4 a cited article after a translator failure
2 the store deleted under a daemon  5 a source renamed or removed
3 retention over a quiet (304) feed 6 ``sources import`` through a symlink
7 the translation cache's growth    8 a Japanese edition's labels
9 an RSS date without a zone, an item dated 1970
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

import feedparser
import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer

FAKETIME = shutil.which("faketime")
WAIT = 60


# -- a small world: one blog, two outlets, on loopback -----------------------------------


def rss(title: str, items: Sequence[dict[str, str]], link: str = "https://example.org/") -> bytes:
    parts = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
             f"<link>{link}</link><description>x</description>"]
    for it in items:
        date = f"<pubDate>{it['date']}</pubDate>" if it.get("date") else ""
        parts.append(f"<item><title>{escape(it['title'])}</title><link>{escape(it['link'])}</link>"
                     f"<guid isPermaLink=\"false\">{escape(it.get('guid', it['link']))}</guid>{date}"
                     f"<description>{escape(it.get('body', it['title']))}</description></item>")
    return ("".join(parts) + "</channel></rss>").encode()


def rfc822(when: str) -> str:
    return format_datetime(datetime.fromisoformat(when).replace(tzinfo=UTC), usegmt=True)


def article(n: int, when: str, outlet: str = "politico") -> dict[str, str]:
    return {"title": f"{outlet.title()} story number {n} about the defence budget",
            "link": f"https://www.{outlet}.example/news/{n}", "date": rfc822(when)}


def post(n: int, when: str, cites: Sequence[dict[str, str]] = (), extra: str = "") -> dict[str, str]:
    refs = "".join(f'<p>参考:<a href="{c["link"]}">{escape(c["title"])}</a></p>' for c in cites)
    return {"title": f"防衛予算の記事その{n}", "link": f"https://blog.example.jp/p/{n}", "date": rfc822(when),
            "body": f"<p>米国の防衛予算について{n}回目の解説です。{extra}</p>{refs}"}


class World:
    def __init__(self, d: Path, feeds: FeedServer, libre: LibreTranslateServer | None = None) -> None:
        self.d, self.feeds, self.libre = d, feeds, libre
        self.cfg = d / "config" / "aggregator.yaml"
        self.cfg.parent.mkdir(parents=True, exist_ok=True)
        self.out = d / "output"
        self.db = d / "data" / "store.sqlite3"

    def write_config(self, sources: Sequence[str] | None = None, *, target: str = "en", include: str = "all",
                     extra: str = "", providers: str = "[]") -> None:
        if sources is None:
            sources = [self.source("blog", "ブログ", "/blog.xml", "blog", "ja"),
                       self.source("politico", "POLITICO", "/politico.xml"),
                       self.source("twz", "The War Zone", "/twz.xml")]
        self.cfg.write_text(
            "storage: {url: 'sqlite:///../data/store.sqlite3'}\n"
            f"output: {{dir: ../output, include: {include}, max_entries: 100, link: 'https://news.example.org/'}}\n"
            f"translation: {{target: {target}, timeout: 3s, providers: {providers}}}\n"
            "schedule: {every: 30m, jitter: 0s}\n"
            "fetch: {allow_private_networks: true}\n"  # the feeds are served on loopback
            f"{extra}sources:\n" + "".join(f"  - {s}\n" for s in sources), encoding="utf-8")

    def source(self, sid: str, name: str, path: str, role: str = "outlet", language: str = "en") -> str:
        return f"{{id: {sid}, name: '{name}', url: '{self.feeds.url(path)}', role: {role}, language: {language}}}"

    def cli(self, *args: str, at: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = aggregator_cmd(*args) if args[0] == "check-config" else aggregator_cmd(*args, "--config", str(self.cfg))
        if at is not None:
            assert FAKETIME is not None, "Debian's faketime is needed: apt-get install faketime (.ci/run does)"
            cmd = [FAKETIME, at, *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def run(self, *args: str, at: str | None = None) -> subprocess.CompletedProcess[str]:
        r = self.cli("run", "--once", *args, at=at)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    def atom(self) -> feedparser.FeedParserDict:
        return feedparser.parse((self.out / "feed.atom").read_bytes())

    def published(self) -> dict[str, str]:
        """Published link -> published id, from feed.atom."""
        return {e.link: e.id for e in self.atom().entries}

    def sql(self, q: str, *args: object) -> list[tuple[object, ...]]:
        db = sqlite3.connect(self.db)
        try:
            return db.execute(q, args).fetchall()
        finally:
            db.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FeedServer() as feeds:
        yield World(tmp_path, feeds)


# -- 1 and 9: dates ----------------------------------------------------------------------


def test_1_an_item_dated_year_999_round_trips_and_never_stops_publication(world: World) -> None:
    from aggregator.models import from_iso, iso

    for y in (1, 999, 1000, 1969, 9999):
        d = datetime(y, 3, 4, 5, 6, 7, tzinfo=UTC)
        assert re.fullmatch(r"\d{4}-03-04T05:06:07Z", iso(d) or ""), iso(d)
        assert from_iso(iso(d)) == d
    world.feeds.add("/blog.xml", rss("blog", [post(1, "2026-02-08T09:00:00")]))
    world.feeds.add("/politico.xml", rss("POLITICO", [
        {"title": "From the archive", "link": "https://www.politico.example/old",
         "date": "Tue, 01 Jan 0999 00:00:00 GMT"},
        article(2, "2026-02-08T10:00:00")]))
    world.feeds.add("/twz.xml", rss("TWZ", []))
    world.write_config()
    world.run(at="2026-02-09 12:00:00")
    assert world.sql("SELECT published FROM entries WHERE link LIKE '%/old'") == [("0999-01-01T00:00:00Z",)]
    # kept as the feed said, published by first-seen, the same in every format
    atom = {e.link: e for e in world.atom().entries}
    assert atom["https://www.politico.example/old"].published.startswith("2026-02-09T12:00")
    items = {i["url"]: i for i in json.loads((world.out / "feed.json").read_text())["items"]}
    assert items["https://www.politico.example/old"]["date_published"].startswith("2026-02-09T12:00")
    assert world.cli("status", at="2026-02-09 12:10:00").returncode == 0
    # A row written by an older aggregator (3-digit year) and one that cannot be read at
    # all: each reported for its entry, the rest published
    db = sqlite3.connect(world.db)
    db.execute("UPDATE entries SET published='999-01-01T00:00:00Z' WHERE link LIKE '%/old'")
    db.execute("UPDATE entries SET first_seen='yesterday-ish', hash='x' WHERE link LIKE '%/news/2'")
    db.execute("DELETE FROM meta WHERE key='publication_inputs'")
    db.commit()
    db.close()
    r = world.run("-v", at="2026-02-09 13:00:00")
    assert re.search(r"cannot read stored entry \d+ \(politico.*news/2\).*skipped", r.stderr), r.stderr
    assert "Traceback" not in r.stderr
    links = set(world.published())
    assert "https://blog.example.jp/p/1" in links and "https://www.politico.example/old" in links
    st = world.cli("status", "--json", at="2026-02-09 13:10:00")
    assert st.returncode == 0, st.stderr
    assert any("news/2" in u["link"] for u in json.loads(st.stdout)["unreadable_entries"])


def test_9_an_rss_date_without_zone_is_utc_and_a_1970_item_sorts_by_first_seen(world: World) -> None:
    from aggregator.sources.parse import parse_feed

    parsed = parse_feed(rss("x", [{"title": "t", "link": "https://a.example/1", "date": "Wed, 01 Jan 2025 10:00:00"}]))
    assert parsed.entries[0].published == datetime(2025, 1, 1, 10, tzinfo=UTC)
    world.feeds.add("/blog.xml", rss("blog", [post(1, "2026-02-08T09:00:00")]))
    world.feeds.add("/politico.xml", rss("POLITICO", [
        {"title": "Epoch", "link": "https://www.politico.example/epoch", "date": "Thu, 01 Jan 1970 00:00:00 GMT"},
        article(2, "2026-02-09T10:00:00"), article(3, "2026-02-07T10:00:00")]))
    world.feeds.add("/twz.xml", rss("TWZ", []))
    world.write_config()
    world.run(at="2026-02-09 12:00:00")
    # first seen 2026-02-09 12:00: the newest entry in every format
    expected = ["https://www.politico.example/epoch", "https://www.politico.example/news/2",
                "https://blog.example.jp/p/1", "https://www.politico.example/news/3"]
    assert [e.link for e in world.atom().entries] == expected
    assert [e.link for e in feedparser.parse((world.out / "feed.rss").read_bytes()).entries] == expected
    assert [i["url"] for i in json.loads((world.out / "feed.json").read_text())["items"]] == expected
    # the page: posts first (cards holding what they cite), then the other articles, in the feeds' order
    page = (world.out / "index.html").read_text()
    posts_part, _, others = page.partition('<section class="others">')
    assert 'href="https://blog.example.jp/p/1"' in posts_part
    shown = [u for u in expected if f'href="{u}"' in others]
    assert len(shown) >= 2
    assert [others.index(f'href="{u}"') for u in shown] == sorted(others.index(f'href="{u}"') for u in shown)


# -- 2: the last good output -------------------------------------------------------------


def _wait_for(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_2_a_store_deleted_under_the_daemon_is_an_error_and_the_feed_is_kept(world: World) -> None:
    world.feeds.add("/blog.xml", rss("blog", [post(i, f"2026-02-0{i}T09:00:00") for i in range(1, 6)]))
    world.feeds.add("/politico.xml", rss("POLITICO", [article(1, "2026-02-01T10:00:00")]))
    world.feeds.add("/twz.xml", rss("TWZ", []))
    world.write_config()
    world.cfg.write_text(world.cfg.read_text().replace("every: 30m", "every: 2s"))
    log = world.d / "daemon.log"
    proc = subprocess.Popen(aggregator_cmd("run", "--config", str(world.cfg), "--log-file", str(log)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        _wait_for(lambda: (world.out / "feed.atom").exists() and len(world.atom().entries) == 6, "a publication")
        for suffix in ("", "-wal", "-shm"):
            Path(str(world.db) + suffix).unlink(missing_ok=True)
        _wait_for(lambda: "has vanished" in log.read_text(), "the daemon to notice")
        time.sleep(4)  # several cycles
        assert not world.db.exists()  # no fresh empty store
        assert len(world.atom().entries) == 6
        assert re.search(r"ERROR +aggregator: store .*store\.sqlite3 has vanished", log.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)


def test_2_a_store_file_replaced_or_deleted_is_noticed_and_never_recreated(tmp_path: Path) -> None:
    from aggregator.exceptions import StoreGone
    from aggregator.store import Store

    path = tmp_path / "s.sqlite3"
    with Store(path) as first:
        identity = first.identity
        first.check_identity()
        # a restore copied over it: another file under the same name
        other = tmp_path / "restored.sqlite3"
        Store(other).close()
        os.replace(other, path)
        with pytest.raises(StoreGone, match="has been replaced by another file"):
            first.check_identity()
    with pytest.raises(StoreGone, match="has been replaced"):
        Store(path, expect=identity)
    path.unlink()
    with pytest.raises(StoreGone, match="has vanished"):
        Store(path, expect=identity)
    assert not path.exists()  # never a new, empty store in its place


def test_2_a_publication_that_would_drop_most_posts_needs_allow_shrink(world: World) -> None:
    world.feeds.add("/blog.xml", rss("blog", [post(i, f"2026-02-0{i}T09:00:00") for i in range(1, 6)]))
    world.feeds.add("/politico.xml", rss("POLITICO", []))
    world.feeds.add("/twz.xml", rss("TWZ", []))
    world.write_config()
    world.run()
    before = (world.out / "feed.atom").read_bytes()
    # the store lost (a restore gone wrong) and the blog's feed momentarily empty
    world.db.unlink()
    world.feeds.add("/blog.xml", rss("blog", []))
    r = world.cli("run", "--once")
    assert r.returncode == 5, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "would drop 5 of the 5 published posts" in lines[0] and "--allow-shrink" in lines[0]
    assert (world.out / "feed.atom").read_bytes() == before
    world.run("--allow-shrink")
    assert world.atom().entries == []


# -- 3 and 4: retention ------------------------------------------------------------------


def test_3_retention_counts_a_304_or_a_failure_as_still_there(world: World) -> None:
    world.feeds.add("/blog.xml", rss("blog", [post(1, "2026-01-01T09:00:00")]))
    world.feeds.add("/politico.xml", rss("POLITICO", [article(i, f"2026-01-0{i}T10:00:00") for i in range(1, 4)]))
    world.feeds.add("/twz.xml", rss("TWZ", [article(1, "2026-01-01T10:00:00", "twz")]))
    world.write_config()
    world.run(at="2026-01-05 12:00:00")
    ids = world.published()
    assert len(ids) == 5
    # 100 days of 304s from POLITICO, of failures from TWZ (retention: 90 days)
    world.feeds.fault("/twz.xml", "status", status=500)
    world.run("--all", at="2026-04-15 12:00:00")
    world.run("--all", at="2026-04-16 12:00:00")
    assert world.sql("SELECT COUNT(*) FROM entries WHERE role='outlet'") == [(4,)]
    # the feeds change again: the same entries with the same ids, one new
    world.feeds.clear_fault("/twz.xml")
    world.feeds.add("/politico.xml", rss("POLITICO", [article(i, f"2026-01-0{i}T10:00:00") for i in range(1, 4)]
                                      + [article(4, "2026-04-17T10:00:00")]))
    world.run("--all", at="2026-04-17 12:00:00")
    after = world.published()
    assert {k: after[k] for k in ids} == ids and len(after) == 6
    # and once a feed really drops them, they go after the retention period
    world.feeds.add("/politico.xml", rss("POLITICO", [article(4, "2026-04-17T10:00:00")]))
    world.run("--all", at="2026-04-18 12:00:00")
    world.run("--all", at="2026-07-20 12:00:00")
    assert world.sql("SELECT COUNT(*) FROM entries WHERE source_id='politico'") == [(1,)]


def test_4_a_cited_article_outlives_a_translator_failure_and_the_post_links_it_again(tmp_path: Path) -> None:
    gold = next(json.loads(line) for line in (DEV / "gold.jsonl").read_text(encoding="utf-8").splitlines()
                if '"mention"' in line and "politico.com" in line)
    blog = (DEV / "feeds" / "blog.xml").read_bytes()
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        w = World(tmp_path, feeds, libre)
        feeds.add("/blog.xml", blog)
        feeds.add_file("/politico.xml", DEV / "feeds" / "politico.xml")
        feeds.add("/twz.xml", rss("TWZ", []))
        w.write_config(providers=f"[{{provider: libre, url: '{libre.url}'}}]")
        w.run(at="2024-05-08 12:00:00")
        cited = gold["cited"][0]
        def related() -> set[str]:
            return {lk.href for e in w.atom().entries if e.link == gold["link"]
                    for lk in e.get("links", []) if lk.rel == "related"}

        assert cited in related()
        # months later POLITICO's feed has moved on; the post is edited while the translator fails
        feeds.add("/politico.xml", rss("POLITICO", []))
        edits = (("と冷静に対応", "と冷静に対応（更新）"),
                 ("NATO当局者の反応を報じており", "NATO当局者らの反応を報じており"))
        edited = blog
        for a, b in edits:
            assert a.encode() in edited
            edited = edited.replace(a.encode(), b.encode())  # new text, not in the translation cache
        feeds.add("/blog.xml", edited)
        libre.fault = "500"
        w.run("--all", at="2024-09-01 12:00:00")
        assert w.sql("SELECT COUNT(*) FROM entries WHERE link=?", cited) == [(1,)]
        # the translator comes back: the post links its article again
        libre.fault = None
        for (src, tgt, text), tr in list(libre.table.items()):  # it knows the edited texts too
            new = text
            for a, b in edits:
                new = new.replace(a, b)
            libre.table[src, tgt, new] = tr
        w.run("--all", at="2024-09-01 13:00:00")  # its retries find it back
        w.run("--all", at="2024-09-01 13:30:00")  # the post is matched again
        assert cited in related()


# -- 5: source identity ------------------------------------------------------------------


def test_5_renaming_a_source_keeps_its_entries_and_ids_and_removing_one_unpublishes_its_articles(
        world: World) -> None:
    cited = article(1, "2026-02-08T10:00:00")
    world.feeds.add("/blog.xml", rss("blog", [post(1, "2026-02-08T12:00:00", [cited])]))
    world.feeds.add("/politico.xml", rss("POLITICO", [cited, article(2, "2026-02-08T11:00:00")]))
    world.feeds.add("/twz.xml", rss("TWZ", [article(1, "2026-02-08T09:00:00", "twz")]))
    world.write_config()
    world.run()
    ids = world.published()
    assert len(ids) == 4
    # rename politico -> politico_eu (same url), and change twz's url (same id)
    world.feeds.add("/twz2.xml", rss("TWZ", [article(1, "2026-02-08T09:00:00", "twz")]))
    renamed = [world.source("blog", "ブログ", "/blog.xml", "blog", "ja"),
               world.source("politico_eu", "POLITICO Europe", "/politico.xml"),
               world.source("twz", "The War Zone", "/twz2.xml")]
    world.write_config(renamed)
    check = world.cli("check-config", str(world.cfg))
    assert check.returncode == 0, check.stderr
    assert re.search(r"politico -> politico_eu: renamed \(same url\): its 2 entries and their published ids are kept",
                     check.stdout), check.stdout
    world.run()
    assert world.published() == ids
    assert world.sql("SELECT COUNT(*) FROM entries") == [(4,)]
    post_entry = next(e for e in world.atom().entries if e.link.startswith("https://blog."))
    assert [lk.title for lk in post_entry.links if lk.rel == "related"] == [f"POLITICO Europe: {cited['title']}"]
    # remove politico_eu: not fetched, its articles leave; the post keeps its link
    world.write_config([renamed[0], renamed[2]])
    check = world.cli("check-config", str(world.cfg))
    assert "politico_eu: removed: no longer fetched; its 2 articles leave the publication" in check.stdout
    hits = world.feeds.hits["/politico.xml"]
    world.run("--all")
    assert world.feeds.hits["/politico.xml"] == hits
    links = set(world.published())
    assert cited["link"] not in links and "https://www.politico.example/news/2" not in links
    post_entry = next(e for e in world.atom().entries if e.link.startswith("https://blog."))
    assert [lk.title for lk in post_entry.links if lk.rel == "related"] == [f"POLITICO Europe: {cited['title']}"]
    st = json.loads(world.cli("status", "--json").stdout)
    removed = {s["id"]: s for s in st["removed_sources"]}
    assert removed["politico_eu"]["entries"] == 2
    assert "removed" in world.cli("status").stdout


def test_5_a_rename_reloaded_by_sighup_publishes_nothing_twice(world: World) -> None:
    cited = article(1, "2026-02-08T10:00:00")
    world.feeds.add("/blog.xml", rss("blog", [post(1, "2026-02-08T12:00:00", [cited])]))
    world.feeds.add("/politico.xml", rss("POLITICO", [cited, article(2, "2026-02-08T11:00:00")]))
    world.feeds.add("/twz.xml", rss("TWZ", []))
    world.write_config()
    world.cfg.write_text(world.cfg.read_text().replace("every: 30m", "every: 2s"))
    log = world.d / "daemon.log"
    proc = subprocess.Popen(aggregator_cmd("run", "--config", str(world.cfg), "--log-file", str(log)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        _wait_for(lambda: (world.out / "feed.atom").exists() and len(world.atom().entries) == 3, "a publication")
        ids = world.published()
        world.write_config([world.source("blog", "ブログ", "/blog.xml", "blog", "ja"),
                            world.source("politico_eu", "POLITICO Europe", "/politico.xml"),
                            world.source("twz", "The War Zone", "/twz.xml")])
        world.cfg.write_text(world.cfg.read_text().replace("every: 30m", "every: 2s"))
        proc.send_signal(signal.SIGHUP)

        def relabelled() -> bool:
            post_entry = next(e for e in world.atom().entries if e.link.startswith("https://blog."))
            return [lk.title for lk in post_entry.links if lk.rel == "related"] == [
                f"POLITICO Europe: {cited['title']}"]

        _wait_for(relabelled, "the posts to show the new name")
        time.sleep(3)  # politico_eu fetched again meanwhile: nothing new
        assert world.published() == ids
        assert "source politico renamed politico_eu: its 2 entries keep their ids" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)


# -- 6: config writes through a symlink --------------------------------------------------


def test_6_sources_import_through_a_symlinked_config_replaces_the_target_and_keeps_the_link(world: World) -> None:
    world.feeds.add("/blog.xml", rss("blog", []))
    world.write_config()
    real = world.d / "etc" / "aggregator.yaml"
    real.parent.mkdir()
    shutil.move(world.cfg, real)
    real.chmod(0o640)
    world.cfg.symlink_to(os.path.relpath(real, world.cfg.parent))
    opml = world.d / "more.opml"
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><head/><body>'
                    '<outline type="rss" text="Defense News" xmlUrl="https://www.defensenews.example/rss/"/>'
                    "</body></opml>")
    r = world.cli("sources", "import", str(opml))
    assert r.returncode == 0, r.stderr
    assert world.cfg.is_symlink() and world.cfg.resolve() == real.resolve()
    assert "defensenews.example" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in world.cfg.parent.iterdir()] == ["aggregator.yaml"]  # no stray temporary file


# -- 7: translation cache ----------------------------------------------------------------


def test_7_cache_rows_no_entry_uses_go_with_retention(tmp_path: Path) -> None:
    with FeedServer() as feeds, LibreTranslateServer(unknown="echo") as libre:
        w = World(tmp_path, feeds, libre)
        feeds.add("/blog.xml", rss("blog", []))
        feeds.add("/twz.xml", rss("TWZ", []))
        w.write_config(target="ja", providers=f"[{{provider: libre, url: '{libre.url}'}}]",
                       extra="retention: {compact_every: 2d}\n")
        for i in range(6):  # a feed whose text changes on every fetch, fetched daily
            feeds.add("/politico.xml", rss("POLITICO", [
                {**article(n, "2026-03-01T10:00:00"), "body": f"<p>Revision {i} of story {n}.</p>"}
                for n in range(3)]))
            w.run("--all", at=f"2026-03-{1 + i:02d} 12:00:00")
        texts = {r[0] for r in w.sql("SELECT text FROM translation_cache")}
        stale = {t for t in texts if t.startswith("Revision") and not t.startswith("Revision 5 ")}
        # swept every 2 days (the last sweep on day 5): at most what one period added is left
        assert len(stale) <= 3 * 2, sorted(stale)
        assert {f"Revision 5 of story {n}." for n in range(3)} <= texts
        assert len(libre.texts) >= 6 * 3  # every revision was translated (and cached) once


# -- 8: a Japanese edition ---------------------------------------------------------------


def test_8_a_japanese_edition_has_japanese_labels_and_marks_english_text(world: World) -> None:
    from aggregator.publishing.render import FeedItem, FeedMeta, SourceLink, render_atom, render_html, render_json

    now = datetime(2026, 2, 9, tzinfo=UTC)
    meta = FeedMeta("防衛ニュース", "https://news.example.org/", "https://news.example.org/feeds/", "", "ja", now,
                    "aggregator")
    src = SourceLink("https://www.politico.example/news/1", "POLITICO", "politico", "Pentagon budget grows",
                     None, "link", 1.0, language="en")
    post_item = FeedItem("tag:x,2026:1", "post", "https://blog.example.jp/p/1", "記事", "記事", "<p>本文</p>", None,
                         "ja", "ja", False, "not needed", "blog", "ブログ", None, (), now, now, None, (src,))
    art = FeedItem("tag:x,2026:2", "article", "https://www.politico.example/news/2", "Pentagon budget grows",
                   "Pentagon budget grows", "<p>Text</p>", None, "en", "en", False, "pending (not yet attempted)",
                   "politico", "POLITICO", None, (), now, now, None, ())
    translated = FeedItem("tag:x,2026:3", "article", "https://www.politico.example/news/3", "国防予算が増加",
                          "Defense budget grows", "<p>本文</p>", None, "ja", "en", True, "done by libre",
                          "politico", "POLITICO", None, (), now, now, None, ())
    items = [post_item, art, translated]
    atom = render_atom(meta, items).decode()
    for english in ("Sources:", "Original title", "Machine translation pending"):
        assert english not in atom
    assert "参考記事" in atom and "原題" in atom and "機械翻訳" in atom
    assert 'lang="en"&gt;Pentagon budget grows' in atom  # the English headline marked as English
    page = render_html(meta, items).decode()
    for english in (">Sources<", "translation not needed", "Updated ", ">post<", "Generated by"):
        assert english not in page, english
    assert '<span class="headline" lang="en">' in page or 'lang="en">Pentagon budget grows' in page
    assert "出典" not in page  # 出典 credits images on the blog: never our label for sources
    js = json.loads(render_json(meta, items))
    assert "参考記事" in js["items"][0]["content_html"]
    # an edition in a language without its own labels falls back to English
    fr = render_atom(FeedMeta("x", "https://n.example/", "https://n.example/f/", "", "fr", now, "g"), items).decode()
    assert "Sources:" in fr
