"""The red-team pass, round two, continued: poisoned translations (2), a damaged or full
store (3) and unstable guids (6). See tests/test_red_team.py for the other five."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer, LoopbackServer

from aggregator.config import Config, load_config
from aggregator.exceptions import StoreFullError
from aggregator.models import EntryData
from aggregator.running.cycle import fetch_stage, run_cycle
from aggregator.store import Store
from aggregator.store.migrations import MIGRATIONS

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
QUOTA = ("MYMEMORY WARNING: YOU USED ALL AVAILABLE FREE TRANSLATIONS FOR TODAY. NEXT AVAILABLE IN  10 HOURS 20 "
         "MINUTES 40 SECONDS VISIT HTTPS://MYMEMORY.TRANSLATED.NET/DOC/USAGELIMITS.PHP TO TRANSLATE MORE")
OUTPUTS = ("feed.atom", "feed.rss", "feed.json", "index.html")


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(aggregator_cmd(*args, "--config", str(cfg)), capture_output=True, text=True,
                          timeout=timeout, cwd=cfg.parent)


# -- 2. poisoned translations ------------------------------------------------------------------


class MyMemoryQuota(LoopbackServer):
    """MyMemory's API (``GET /get?q=...&langpair=ja|en``) once the day's quota is used:
    HTTP 200, the warning as the "translation", as the real service answers."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def _handle(self, h: Any) -> None:
        self.requests += 1
        h.reply_json(200, {"responseData": {"translatedText": QUOTA, "match": 1}, "quotaFinished": True,
                           "responseDetails": "", "responseStatus": 429, "matches": []})


class Echo(LibreTranslateServer):
    """A LibreTranslate-protocol server that hands every text back untranslated."""

    def _translate(self, h: Any, params: dict[str, str] | None) -> None:
        self.texts.append((params or {}).get("q", ""))
        h.reply_json(200, {"translatedText": (params or {}).get("q", "")})


@pytest.fixture
def blog_site(tmp_path: Path) -> Iterator[tuple[FeedServer, LibreTranslateServer]]:
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        feeds.add_file("/blog.xml", DEV / "feeds" / "blog.xml")
        yield feeds, libre


def _config(tmp: Path, feeds: FeedServer, providers: list[str]) -> Config:
    return load_config(write(
        tmp / "aggregator.yaml", "storage: {url: 'sqlite:///store.sqlite3'}",
        "output: {dir: out, max_entries: 6, include: blog}",
        "translation:", "  target: en", "  timeout: 3s", "  providers:", *(f"    - {p}" for p in providers),
        "fetch: {allow_private_networks: true}", "sources:",
        f"  - {{id: blog, name: Blog, url: '{feeds.url('/blog.xml')}', role: blog, language: ja}}"))


def _cache(cfg: Config) -> list[tuple[str, str]]:
    with Store(cfg.db_path) as store:
        return store.db.execute("SELECT provider, translation FROM translation_cache").fetchall()


def test_a_providers_quota_warning_is_not_a_translation(blog_site: tuple[FeedServer, LibreTranslateServer],
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deep_translator import mymemory

    feeds, libre = blog_site
    with MyMemoryQuota() as quota:
        monkeypatch.setitem(mymemory.BASE_URLS, "MYMEMORY", quota.base_url + "/get")
        # MyMemory first (the shipped config has it second): its warning must send the chain on.
        cfg = _config(tmp_path, feeds, ["{provider: mymemory, email: me@example.org}",
                                        f"{{provider: libre, url: '{libre.url}'}}"])
        with Store(cfg.db_path) as store:
            report = run_cycle(store, cfg, now=lambda: T0, fetch_all=True, rng=random.Random(1))
        assert quota.requests == 1  # asked once, then rested (its quota is gone for the day)
    assert report.translated == 6 and report.translation_pending == 0
    for name in OUTPUTS:
        text = (tmp_path / "out" / name).read_text(encoding="utf-8")
        assert "MYMEMORY" not in text.upper(), name
    items = json.loads((tmp_path / "out" / "feed.json").read_text(encoding="utf-8"))["items"]
    assert all(i["_aggregator"]["translation_status"].startswith("done by libre") for i in items), items[0]
    assert {p for p, _ in _cache(cfg)} == {"libre"}

    # With MyMemory alone: nothing translated, nothing cached, every entry pending.
    (tmp_path / "alone").mkdir()
    with MyMemoryQuota() as quota:
        monkeypatch.setitem(mymemory.BASE_URLS, "MYMEMORY", quota.base_url + "/get")
        cfg = _config(tmp_path / "alone", feeds, ["{provider: mymemory}"])
        with Store(cfg.db_path) as store:
            report = run_cycle(store, cfg, now=lambda: T0, fetch_all=True, rng=random.Random(1))
            backlog = store.translation_backlog("en")
    assert report.translated == 0 and report.translation_pending == 6
    assert backlog.get("done", 0) == 0 and backlog.get("pending") == 6
    assert _cache(cfg) == []
    for name in OUTPUTS:
        assert "MYMEMORY" not in (tmp_path / "alone" / "out" / name).read_text(encoding="utf-8").upper(), name
    items = json.loads((tmp_path / "alone" / "out" / "feed.json").read_text(encoding="utf-8"))["items"]
    assert items and all(i["_aggregator"]["translation_status"] == "not available yet" for i in items)
    with Store(cfg.db_path) as store:  # why, for the operator (status)
        reasons = [r[0] for r in store.db.execute("SELECT error FROM entry_translations WHERE status='pending'")]
    assert len(reasons) == 6 and all(re.search(r"a provider message, not a translation|quota", r) for r in reasons)


def test_an_answer_that_echoes_the_input_is_not_a_translation(
        blog_site: tuple[FeedServer, LibreTranslateServer], tmp_path: Path) -> None:
    feeds, libre = blog_site
    with Echo() as echo:
        cfg = _config(tmp_path, feeds, [f"{{provider: libre, url: '{echo.url}'}}",
                                        f"{{provider: libre, url: '{libre.url}'}}"])
        with Store(cfg.db_path) as store:
            report = run_cycle(store, cfg, now=lambda: T0, fetch_all=True, rng=random.Random(1))
        assert echo.texts  # it was asked, and answered in Japanese
    assert report.translated == 6
    items = json.loads((tmp_path / "out" / "feed.json").read_text(encoding="utf-8"))["items"]
    assert all(re.fullmatch(r"[\x20-\x7e\u2018-\u201d\u2013\u2014]+", i["title"]) for i in items), \
        [i["title"] for i in items]
    assert all(tr != "" for _, tr in _cache(cfg)) and {p for p, _ in _cache(cfg)} == {"libre"}


def test_bad_translations_cached_by_an_earlier_version_are_dropped_when_the_store_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)  # the schema aggregator 0.1.0 wrote
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    rows = [("h1", "ja", "en", "米下院共和党がウクライナ支援法案を公表", QUOTA, "mymemory"),
            ("h2", "ja", "en", "米下院共和党がウクライナ支援法案を公表、20日に採決へ",
             "米下院共和党がウクライナ支援法案を公表、20日に採決へ", "google"),
            ("h3", "ja", "en", "米下院共和党がウクライナ支援法案を公表、20日に採決へ",
             "House Republicans unveil Ukraine aid bill, vote set for the 20th", "libre")]
    db.executemany("INSERT INTO translation_cache VALUES (?,?,?,?,?,?,'2025-01-01T00:00:00Z')", rows)
    for i, title in ((1, QUOTA), (2, "House Republicans unveil Ukraine aid bill")):
        db.execute("INSERT INTO entries(id, source_id, role, key, title, first_seen, last_seen, hash, sort_date)"
                   " VALUES (?, 'blog', 'blog', ?, '米下院共和党がウクライナ支援法案を公表', 'x', 'x', 'x', 'x')",
                   (i, f"k{i}"))
        db.execute("INSERT INTO entry_translations(entry_id, target, input_hash, status, provider, attempts,"
                   " updated, title, summary, content) VALUES (?, 'en', 'x', 'done', 'mymemory', 1, 'x', ?, '[]', '[]')",
                   (i, title))
    db.close()
    with Store(path) as store:
        assert [r[0] for r in store.db.execute("SELECT translation FROM translation_cache")] == [rows[2][4]]
        assert [r[0] for r in store.db.execute("SELECT entry_id FROM entry_translations")] == [2]


# -- 3. a damaged or full store --------------------------------------------------------------------


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[tuple[Path, FeedServer]]:
    """A store with a cycle's worth of entries (two outlet feeds), written by the real CLI."""
    with FeedServer() as feeds:
        for name in ("reuters", "politico"):
            feeds.add_file(f"/{name}.xml", DEV / "feeds" / f"{name}.xml")
        cfg = write(tmp_path / "aggregator.yaml", "storage: {url: 'sqlite:///data/store.sqlite3'}",
                    "output: {dir: out, include: all}", "translation: {providers: []}",
                    "schedule: {every: 2s, jitter: 0s}", "fetch: {allow_private_networks: true}", "sources:",
                    f"  - {{id: reuters, url: '{feeds.url('/reuters.xml')}', role: outlet}}",
                    f"  - {{id: politico, url: '{feeds.url('/politico.xml')}', role: outlet}}")
        r = cli(cfg, "run", "--once")
        assert r.returncode == 0, r.stderr
        yield cfg, feeds


def _damage(path: Path, *, from_page: int | None = None) -> None:
    """Overwrite pages in the middle of the file (never the header page) with noise."""
    size = path.stat().st_size
    pages = size // 4096
    first = from_page if from_page is not None else pages // 3
    last = pages if from_page is not None else first + 4
    rnd = random.Random(7)
    with open(path, "r+b") as f:
        for page in range(first, last):
            f.seek(page * 4096)
            f.write(bytes(rnd.randrange(256) for _ in range(4096)))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_damaged_store_is_left_untouched_and_every_command_says_what_to_do(
        small_store: tuple[Path, FeedServer], tmp_path: Path) -> None:
    cfg, feeds = small_store
    store = tmp_path / "data" / "store.sqlite3"
    assert cli(cfg, "store", "check").returncode == 0
    backup = tmp_path / "backup.sqlite3"
    r = cli(cfg, "store", "backup", str(backup))
    assert r.returncode == 0 and backup.is_file(), r.stderr
    assert not (tmp_path / "data" / "store.sqlite3-wal").exists() or \
        (tmp_path / "data" / "store.sqlite3-wal").stat().st_size == 0
    _damage(store)
    before = _digest(store)
    hits = sum(feeds.hits.values())
    for args in (("run", "--once"), ("status",), ("explain", "https://blog.example.jp/x"), ("store", "backup",
                                                                                          str(tmp_path / "b2"))):
        r = cli(cfg, *args)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (args, lines)
        assert str(store) in lines[0] and "damaged" in lines[0], lines
        assert "backup" in lines[0], lines
    assert sum(feeds.hits.values()) == hits  # run fetched nothing: it stopped before the fetch stage
    assert _digest(store) == before  # not one byte written
    assert not (tmp_path / "b2").exists()
    r = cli(cfg, "store", "check")
    assert r.returncode == 3 and "damaged" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # the backup restores it
    shutil.copy(backup, store)
    r = cli(cfg, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert cli(cfg, "store", "check").stdout.startswith(f"{store}: ok")


def test_the_daemon_logs_a_damaged_store_and_keeps_its_schedule(small_store: tuple[Path, FeedServer],
                                                                  tmp_path: Path) -> None:
    cfg, feeds = small_store
    store = tmp_path / "data" / "store.sqlite3"
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(aggregator_cmd("run", "--config", str(cfg), "--log-file", str(log)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while "scheduler started" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and proc.poll() is None, "the daemon did not start"
            time.sleep(0.2)
        time.sleep(1)
        _damage(store, from_page=2)  # everything but the header page
        deadline = time.monotonic() + 30
        while len(re.findall(r"ERROR .*damaged", log.read_text())) < 3:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert proc.poll() is None, "the daemon died"
            time.sleep(0.3)
        damaged_at = _digest(store)
        time.sleep(2.5)  # more jobs fire: they find the store damaged and write nothing
        assert _digest(store) == damaged_at
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    text = log.read_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in text + err, (text + err)[-3000:]
    errors = [l for l in text.splitlines() if " ERROR " in l]
    assert all(str(store) in l for l in errors), errors


def test_a_full_disk_rolls_back_and_says_the_disk_is_full(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL (max_page_count makes it say so at a chosen size)."""
    with Store(tmp_path / "s.sqlite3") as store:
        store.sync_sources([("out", "https://out.example/feed", "outlet")])
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count={pages + 2}")
        big = [EntryData(key=f"k{i}", link=f"https://out.example/{i}", title=f"t{i}", summary="x" * 3000,
                         content="", author=None, categories=(), published=T0, updated=None,
                         published_offset=None, image=None, language="en") for i in range(50)]
        with pytest.raises(StoreFullError, match="the disk is full"):
            try:
                store.record_success("out", "outlet", big, now=T0, next_fetch=T0, status=200, etag='"v2"',
                                     last_modified=None)
            except sqlite3.DatabaseError as e:
                from aggregator.exceptions import storage_error

                raise storage_error(store.path, e) from None
        assert not store.db.in_transaction
        assert store.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 0  # rolled back
        assert store.source_states()["out"].etag is None  # with its validators


UNSHARE = shutil.which("unshare")


def test_a_full_disk_under_the_store_is_exit_3_with_one_line(small_store: tuple[Path, FeedServer],
                                                              tmp_path: Path) -> None:
    """The real CLI on a real full file system: a 2 MB tmpfs in a private mount namespace."""
    assert UNSHARE, "util-linux's unshare is needed (apt: util-linux)"
    cfg, feeds = small_store
    for name in ("defensenews", "kyivindependent", "breakingdefense"):
        feeds.add_file(f"/{name}.xml", DEV / "feeds" / f"{name}.xml")
    text = cfg.read_text().replace("sources:\n", "sources:\n" + "".join(
        f"  - {{id: {n}, url: '{feeds.url(f'/{n}.xml')}', role: outlet}}\n"
        for n in ("defensenews", "kyivindependent", "breakingdefense")))
    cfg.write_text(text.replace("sqlite:///data/store.sqlite3", "sqlite:///full/store.sqlite3"))
    mnt = tmp_path / "full"
    mnt.mkdir()
    script = tmp_path / "full.sh"
    src = tmp_path / "data" / "store.sqlite3"
    script.write_text(textwrap.dedent(f"""\
        set -e
        mount -t tmpfs -o size=2m tmpfs {mnt}
        cp {src} {mnt}/store.sqlite3
        size=$(stat -c %s {mnt}/store.sqlite3)
        # leave 40 KB free: not enough for three feeds' entries
        dd if=/dev/zero of={mnt}/filler bs=1k count=$(( 2048 - 40 - size / 1024 - 8 )) 2>/dev/null || true
        set +e
        {" ".join(aggregator_cmd("run", "--once", "--config", str(cfg)))} > {tmp_path}/out.txt 2> {tmp_path}/err.txt
        echo $? > {tmp_path}/rc.txt
        rm {mnt}/filler
        {" ".join(aggregator_cmd("store", "check", "--config", str(cfg)))} > {tmp_path}/check.txt 2>&1
        {sys.executable} -c "import sqlite3; print(sqlite3.connect('{mnt}/store.sqlite3').execute(
            'SELECT COUNT(*) FROM entries').fetchone()[0])" > {tmp_path}/count.txt
        """))
    before = sqlite3.connect(src).execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    r = subprocess.run([UNSHARE, "-Urm", "sh", str(script)], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env={**os.environ})
    assert r.returncode == 0, f"could not make a small file system (unshare -Urm + tmpfs): {r.stderr}"
    rc = int((tmp_path / "rc.txt").read_text())
    err = (tmp_path / "err.txt").read_text()
    assert rc == 3, (rc, err)
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "disk is full" in lines[0] and "full/store.sqlite3" in lines[0], err
    assert ": ok" in (tmp_path / "check.txt").read_text()
    assert int((tmp_path / "count.txt").read_text()) == before  # the failed source's entries rolled back


# -- 6. unstable guids ---------------------------------------------------------------------------


NOW = datetime.now(UTC).replace(microsecond=0)  # the CLI runs at the real time (retention)


def _churning_feed(n: int, salt: str) -> bytes:
    items = "".join(
        f"<item><title>Article {i} about the budget</title><link>https://outlet.example/news/{i}?utm_source=rss"
        f"</link><guid isPermaLink=\"false\">{salt}-{i}</guid><pubDate>"
        f"{format_datetime(NOW - timedelta(days=1, hours=i))}</pubDate><description>Text {i}.</description></item>"
        for i in range(n))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Churn</title><link>https://outlet.example/'
            f"</link><description>d</description>{items}</channel></rss>").encode()


def test_a_feed_whose_guids_change_on_every_fetch_adds_nothing_after_its_first_fetch(tmp_path: Path) -> None:
    with FeedServer() as srv:
        srv.add("/churn.xml", _churning_feed(20, "a"))
        cfg = write(tmp_path / "aggregator.yaml", "storage: {url: 'sqlite:///store.sqlite3'}",
                    "output: {dir: out, include: all}", "translation: {providers: []}",
                    "fetch: {allow_private_networks: true}", "sources:",
                    f"  - {{id: churn, url: '{srv.url('/churn.xml')}', role: outlet}}")
        conf = load_config(cfg)
        counts = []
        for n, salt in enumerate("abcde"):
            srv.add("/churn.xml", _churning_feed(20, salt))
            with Store(conf.db_path) as store:
                fetch_stage(store, conf, now=lambda: NOW - timedelta(hours=10 - n), fetch_all=True)
                counts.append(store.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        assert counts == [20] * 5  # zero growth after the first fetch
        srv.add("/churn.xml", _churning_feed(20, "f"))
        r = cli(cfg, "run", "--once", "--all", "-v")
        assert r.returncode == 0, r.stderr
        assert "churn: its entries come back under new guids" in r.stderr
        status = cli(cfg, "status").stdout
        assert "come back under new guids" in status
        js = json.loads(cli(cfg, "status", "--json").stdout)
        assert js["sources"][0]["unstable_guids"] is True
    items = json.loads((tmp_path / "out" / "feed.json").read_text(encoding="utf-8"))["items"]
    assert len(items) == 20 and len({i["url"] for i in items}) == 20  # each article once


def test_stable_guids_are_not_warned_about_and_new_articles_still_count(tmp_path: Path, store_url: str) -> None:
    url = store_url if store_url.startswith("postgresql") else f"sqlite:///{store_url}"
    with FeedServer() as srv:
        cfg = write(tmp_path / "aggregator.yaml", f"storage: {{url: '{url}'}}",
                    "output: {dir: out}", "translation: {providers: []}",
                    "fetch: {allow_private_networks: true}", "sources:",
                    f"  - {{id: calm, url: '{srv.url('/calm.xml')}', role: outlet}}")
        conf = load_config(cfg)
        for n in range(4):
            srv.add("/calm.xml", _churning_feed(10 + n, "same"))
            with Store(conf.store_location) as store:
                fetch_stage(store, conf, now=lambda: NOW - timedelta(hours=10 - n), fetch_all=True)
        with Store(conf.store_location) as store:
            st = store.source_states()["calm"]
            assert st.entry_count == 13 and not st.unstable_guids and st.guid_churn == "0000"


def test_the_decision_an_entry_back_under_a_new_guid_is_the_stored_one() -> None:
    from aggregator.sources.decide import decide_entries, entry_hash

    def entry(key: str, link: str, title: str) -> EntryData:
        return EntryData(key=key, link=link, title=title, summary="", content="", author=None, categories=(),
                         published=T0, updated=None, published_offset=None, image=None, language="en")

    same = entry("guid-2", "https://outlet.example/a?utm_source=rss", "A")
    retitled = entry("guid-3", "https://outlet.example/b", "B, now longer")
    intents = decide_entries([same, retitled], {}, T0, {
        ("outlet.example/a", "A"): (7, entry_hash(entry("guid-1", "https://outlet.example/a", "A")), T0),
        ("outlet.example/b", "B"): (8, "h", T0)})
    assert intents.rekeyed == [(7, "guid-2")]
    assert [c.id for c in intents.changed] == [7]  # its link gained a tracking parameter: content changed
    assert [n.entry.key for n in intents.new] == ["guid-3"]  # another title: another entry
