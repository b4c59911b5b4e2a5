"""Hostile servers and broken feeds: each gives its source a clear error (or is stored as
it should be), loses none of the source's entries, and costs the other sources nothing.

The fetch stage runs for real (httpx over loopback, a real SQLite store); the cases are
in tests/faultcases.py, shared with bench/fault_table.py.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import lxml.html
import pytest
from conftest import DEV, aggregator_cmd
from faultcases import FAULTS, FETCH, QUIRKS, TOTAL_TIMEOUT, VICTIM, VICTIM_FEED, Fault, Quirk
from loopback import Blackhole, FeedServer, LibreTranslateServer
from lxml import etree

from aggregator.config import Config, parse_config
from aggregator.running.cycle import SourceReport, fetch_stage
from aggregator.store import Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
GOOD = {"politico": "/politico.xml", "reuters": "/reuters.xml"}


def make_config(tmp: Path, srv: FeedServer, victim_url: str) -> Config:
    lines = ["storage: {url: 'sqlite:///store.sqlite3'}", "output: {dir: out}", "translation: {providers: []}",
             f"fetch: {{{FETCH}}}", "sources:",
             f"  - {{id: victim, url: '{victim_url}', role: outlet}}"]
    path = tmp / "aggregator.yaml"
    return parse_config("\n".join(lines + [f"  - {{id: {k}, url: '{srv.url(v)}', role: outlet}}" for k, v in GOOD.items()]),
                        filename=str(path), path=path)


def cycle(cfg: Config, t: datetime) -> dict[str, SourceReport]:
    with Store(cfg.db_path) as store:
        return {r.id: r for r in fetch_stage(store, cfg, now=lambda: t, fetch_all=True, rng=random.Random(1))}


def entries_by_source(cfg: Config) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with Store(cfg.db_path) as store:
        for sid, key in store.db.execute("SELECT source_id, key FROM entries"):
            out.setdefault(sid, set()).add(key)
    return out


@pytest.fixture
def site() -> Iterator[tuple[FeedServer, Blackhole]]:
    with FeedServer() as srv, Blackhole() as hole:
        for path in GOOD.values():
            srv.add_file(path, DEV / "feeds" / path.lstrip("/"))
        srv.add_file(VICTIM, VICTIM_FEED)
        yield srv, hole


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_hostile_server_gets_a_clear_error_and_loses_nothing(fault: Fault, site: tuple[FeedServer, Blackhole],
                                                               tmp_path: Path) -> None:
    srv, hole = site
    cfg = make_config(tmp_path, srv, srv.url(VICTIM))
    first = cycle(cfg, T0)
    assert all(r.outcome == "new entries" for r in first.values())
    before = entries_by_source(cfg)
    assert len(before["victim"]) == 45

    fault.serve(srv, VICTIM)
    cfg = make_config(tmp_path, srv, fault.victim_url(srv, hole))
    t0 = time.monotonic()
    reports = cycle(cfg, T0 + timedelta(hours=1))
    took = time.monotonic() - t0

    victim = reports["victim"]
    assert victim.outcome == "error"
    assert re.search(fault.error, victim.error or ""), victim.error
    assert victim.seconds < TOTAL_TIMEOUT + 1.5  # no fault outlasts the total limit
    assert took < TOTAL_TIMEOUT + 5
    for sid in GOOD:  # the others were fetched as usual (conditionally: nothing changed)
        assert reports[sid].outcome == "not modified", reports[sid]
    assert entries_by_source(cfg) == before  # nothing lost, nothing half-stored
    with Store(cfg.db_path) as store:
        st = store.source_states()["victim"]
    assert st.consecutive_failures == 1 and st.last_error.endswith(victim.error)
    assert st.last_success == T0 and st.next_fetch > T0 + timedelta(hours=1)
    if fault.name == "http-410":
        assert st.disabled
    if fault.name == "http-429":
        assert st.next_fetch >= T0 + timedelta(hours=2)  # Retry-After: one hour after the fetch


@pytest.mark.parametrize("quirk", QUIRKS, ids=[q.name for q in QUIRKS])
def test_a_broken_but_usable_feed_is_stored_as_it_should_be(quirk: Quirk, site: tuple[FeedServer, Blackhole],
                                                            tmp_path: Path) -> None:
    srv, _ = site
    srv.add(VICTIM, quirk.body, content_type=quirk.content_type)
    cfg = make_config(tmp_path, srv, srv.url(VICTIM))
    reports = cycle(cfg, T0)
    assert reports["victim"].outcome == "new entries", reports["victim"]
    assert all(reports[sid].outcome == "new entries" for sid in GOOD)
    with Store(cfg.db_path) as store:
        st = store.source_states()["victim"]
        entries = store._entries("source_id='victim' ORDER BY id")
    assert len(entries) == quirk.entries
    if quirk.warning is None:
        assert st.last_error is None
    else:
        assert re.search(quirk.warning, st.last_error or ""), st.last_error
    if quirk.name == "wrong-charset":
        assert entries[0].title.startswith("В Бузулуке")
    if quirk.name == "no-declaration":
        assert "simulações" in entries[0].title or "ã" in " ".join(e.title for e in entries)
    if quirk.name == "future-date":
        assert entries[0].published is None  # unknown, not pinned to the top until 2101
    if quirk.name == "huge-title":
        assert len(entries[0].title) == 1000
    if quirk.name == "entity-bomb":
        assert all(len(e.title) < 100 for e in entries)
    if quirk.name == "duplicate-guids":
        assert [e.title for e in entries] == ["first", "other"]
    # a second fetch of the same document adds nothing: the keys are stable
    srv.add(VICTIM, quirk.body + b"\n", content_type=quirk.content_type)  # new ETag: fetched in full
    again = cycle(cfg, T0 + timedelta(hours=1))
    assert again["victim"].new == 0 and again["victim"].outcome in ("unchanged", "new entries")
    assert len(entries_by_source(cfg)["victim"]) == quirk.entries


# -- through the real CLI ------------------------------------------------------------------

def _site_config(path: Path, feeds: FeedServer, libre_url: str, extra: list[str]) -> None:
    lines = ["storage: {url: 'sqlite:///data/store.sqlite3'}",
             "output: {dir: output, max_entries: 1000, include: all}",
             "translation: {target: en, timeout: 3s, providers: [{provider: libre, url: '" + libre_url + "'}]}",
             f"fetch: {{{FETCH}}}", "sources:",
             f"  - {{id: blog, url: '{feeds.url('/blog.xml')}', role: blog, language: ja}}",
             f"  - {{id: politico, name: POLITICO, url: '{feeds.url('/politico.xml')}', role: outlet}}"]
    path.write_text("\n".join(lines + extra) + "\n", encoding="utf-8")


def _unsafe(html: str) -> list[str]:
    """Scripts, event handlers and javascript: URLs in an HTML fragment or page."""
    if not html or not html.strip():
        return []
    found = []
    for el in lxml.html.fromstring(f"<div>{html}</div>").iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag in ("script", "iframe", "object", "embed"):
            found.append(f"<{el.tag}>")
        for name, value in el.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"{el.tag} {name}=")
            if value.strip().lower().startswith(("javascript:", "vbscript:", "data:text/html")):
                found.append(f"{el.tag} {name}={value[:20]}")
    return found


EVIL = ('<p onclick="alert(1)">Click</p><img src="https://blog.example.jp/i.png" onerror="alert(2)">'
        '<script>alert(3)</script><a href="javascript:alert(4)" onmouseover="alert(5)">link</a>'
        '<p>&lt;script&gt;alert(6)&lt;/script&gt; is how it is written</p>'
        '<iframe src="https://evil.example/"></iframe><svg onload="alert(7)"></svg>')


def test_scripts_and_event_handlers_never_reach_the_published_feeds_or_page(tmp_path: Path) -> None:
    blog = (DEV / "feeds" / "blog.xml").read_bytes().decode("utf-8")
    # the first post gets scripts in its title, summary and content
    blog = blog.replace("<title>黒海で実証された", "<title>&lt;script&gt;alert(0)&lt;/script&gt;黒海で実証された", 1)
    blog = blog.replace("<description><![CDATA[", f"<description><![CDATA[{EVIL}", 1)
    blog = blog.replace("<content:encoded><![CDATA[", f"<content:encoded><![CDATA[{EVIL}", 1)
    script = next(q for q in QUIRKS if q.name == "script")
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl", unknown="echo") as libre:
        feeds.add("/blog.xml", blog.encode())
        feeds.add_file("/politico.xml", DEV / "feeds" / "politico.xml")
        feeds.add("/quirks.xml", script.body)
        cfg = tmp_path / "aggregator.yaml"
        _site_config(cfg, feeds, libre.url, [f"  - {{id: quirks, url: '{feeds.url('/quirks.xml')}', role: outlet}}"])
        r = subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg)), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
    with Store(tmp_path / "data" / "store.sqlite3") as store:  # stored as given: sanitised on publication
        assert store.db.execute("SELECT COUNT(*) FROM entries WHERE content LIKE '%<script>alert(3)%'").fetchone()[0]
    out = tmp_path / "output"
    found: dict[str, list[str]] = {}
    atom = etree.parse(str(out / "feed.atom")).getroot()
    ns = "{http://www.w3.org/2005/Atom}"
    entries = atom.findall(f"{ns}entry")
    assert len(entries) == 40 + 45 + 1
    for e in entries:
        for el in e.iter(f"{ns}content", f"{ns}summary", f"{ns}title"):
            text = el.text or ""
            found.setdefault("feed.atom", []).extend(
                _unsafe(text) if el.get("type") in ("html", "xhtml") else (["<script"] if "<script" in text else []))
    rss = feedparser.parse((out / "feed.rss").read_bytes(), sanitize_html=False)
    assert not rss.bozo and len(rss.entries) == len(entries)
    for e in rss.entries:
        for html in [e.get("summary", ""), *(c.value for c in e.get("content", []))]:
            found.setdefault("feed.rss", []).extend(_unsafe(html))
        assert "<script" not in e.title
    js = json.loads((out / "feed.json").read_text(encoding="utf-8"))
    for item in js["items"]:
        found.setdefault("feed.json", []).extend(_unsafe(item.get("content_html", "")) + _unsafe(item.get("summary", "")))
        assert "<script" not in item.get("title", "") and "<script" not in item.get("content_text", "")
    found["index.html"] = _unsafe((out / "index.html").read_text(encoding="utf-8"))
    assert found == {"feed.atom": [], "feed.rss": [], "feed.json": [], "index.html": []}
    # ...and the post itself is there, its harmless text kept
    post = next(i for i in js["items"] if i["url"].endswith("/sea-drone-lessons-for-taiwan-strait/"))
    shown = post["title"] + post["_aggregator"]["title_original"]
    assert "alert(0)" in shown or "黒海" in shown
    assert "is how it is written" in post.get("content_html", "") + post.get("summary", "")


def test_the_cli_reports_each_hostile_source_and_stores_the_rest(tmp_path: Path) -> None:
    picked = {f.name: f for f in FAULTS if f.name in ("connect-timeout", "drip-body", "gzip-bomb", "html", "zero-bytes")}
    with FeedServer() as feeds, Blackhole() as hole, \
            LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        feeds.add_file("/blog.xml", DEV / "feeds" / "blog.xml")
        feeds.add_file("/politico.xml", DEV / "feeds" / "politico.xml")
        extra = []
        for name, fault in picked.items():
            fault.serve(feeds, f"/{name}.xml")
            extra.append(f"  - {{id: {name}, url: '{fault.victim_url(feeds, hole, f'/{name}.xml')}', role: outlet}}")
        cfg = tmp_path / "aggregator.yaml"
        _site_config(cfg, feeds, libre.url, extra)
        t0 = time.monotonic()
        r = subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg)), capture_output=True, text=True,
                           timeout=300)
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        status = json.loads(subprocess.run(aggregator_cmd("status", "--json", "--config", str(cfg)),
                                           capture_output=True, text=True, timeout=60).stdout)
    by_id = {s["id"]: s for s in status["sources"]}
    for name, fault in picked.items():
        line = next(l for l in r.stderr.splitlines() if f" {name}: failed after " in l)
        assert re.search(fault.error.lstrip("^"), line.split("s: ", 1)[1]), line
        assert by_id[name]["consecutive_failures"] == 1 and by_id[name]["entries"] == 0
        assert by_id[name]["result"].startswith("error: ")
    assert by_id["blog"]["entries"] == 40 and by_id["politico"]["entries"] == 45
    # the slow ones ran side by side with the rest: the cycle is bounded by the total limit
    assert took < 60
