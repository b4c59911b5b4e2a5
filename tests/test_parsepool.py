"""Feed parsing in worker processes (aggregator.sources.parsepool): the same results and the same
per-source errors as parsing in the fetch threads, and no source lost when a worker dies."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import DEV
from loopback import FeedServer

from aggregator.citing.extract import Outlet, Outlets, PostText, extract, extract_many
from aggregator.config import parse_config
from aggregator.exceptions import ParseError
from aggregator.running.cycle import fetch_stage
from aggregator.sources import parsepool
from aggregator.sources.parse import parse_feed
from aggregator.sources.parsepool import ParsePool
from aggregator.store import Store

NOW = datetime(2024, 5, 21, tzinfo=UTC)
OUTLETS = ["politico", "reuters", "defensenews", "twz", "breakingdefense", "kyivindependent"]


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    p = ParsePool(workers=2, min_concurrent=1)  # every parse goes to the processes
    yield p
    p.shutdown()


def test_a_feed_parsed_in_a_worker_process_gives_what_the_thread_gives(pool: ParsePool) -> None:
    for name in ("blog.xml", "twz.xml"):  # RSS with content:encoded, Atom
        data = (DEV / "feeds" / name).read_bytes()
        assert pool.parse(data, url="http://x/", now=NOW) == parse_feed(data, url="http://x/", now=NOW)
    assert pool.in_process == 2


def test_a_broken_feed_parsed_in_a_worker_process_is_the_same_parse_error(pool: ParsePool) -> None:
    truncated = (DEV / "feeds" / "reuters.xml").read_bytes()[:300]
    page = b"<!DOCTYPE html><html><head><title>x</title></head><body>not a feed</body></html>"
    for data in (truncated, page, b"   "):
        with pytest.raises(ParseError) as in_thread:
            parse_feed(data, now=NOW)
        with pytest.raises(ParseError) as in_pool:
            pool.parse(data, now=NOW)
        assert str(in_pool.value) == str(in_thread.value)


def test_a_parser_process_that_dies_costs_no_document(pool: ParsePool) -> None:
    data = (DEV / "feeds" / "politico.xml").read_bytes()
    want = parse_feed(data, now=NOW)
    assert pool.parse(data, now=NOW) == want
    children = multiprocessing.active_children()
    assert children, "the parse ran in a worker process"
    for child in children:  # as the OOM killer would
        with contextlib.suppress(ProcessLookupError):  # another pool's, stopping as idle meanwhile
            os.kill(child.pid, signal.SIGKILL)
        child.join(5)
    killed = {c.pid for c in children}
    # Depending on when the pool notices, the document goes to a new worker of the same
    # pool or, after a BrokenProcessPool, to a new pool: either way it is parsed.
    assert pool.parse(data, now=NOW) == want
    assert pool.parse(data, now=NOW) == want
    assert pool.restarts <= 1
    assert {c.pid for c in multiprocessing.active_children()}.isdisjoint(killed)


def _post_work() -> tuple[list[tuple[tuple[Outlet, ...], list[tuple[str, tuple[str, ...]]]]], list[PostText]]:
    """The dev blog's posts in chunks of three for extract_many, and what extract gives each."""
    posts = parse_feed((DEV / "feeds" / "blog.xml").read_bytes(), now=NOW).entries
    outlets = (Outlet("politico", ("POLITICO",)), Outlet("reuters", ("Reuters", "ロイター")))
    items = [(p.content or p.summary, ("grandfleet.info",)) for p in posts]
    want = [extract(html, own_hosts=hosts, outlets=Outlets(outlets)) for html, hosts in items]
    return [(outlets, items[i:i + 3]) for i in range(0, len(items), 3)], want


def test_work_on_the_side_goes_to_running_workers_in_order_and_stays_in_the_thread_otherwise(
        pool: ParsePool) -> None:
    chunks, want = _post_work()
    assert len(want) > 6 and any(t.citations for t in want)
    # No pool running: computed here, as asked for, and no process started for it.
    assert [t for got in pool.map_if_running(extract_many, chunks) for t in got] == want
    assert not multiprocessing.active_children()
    # Running (it parsed a feed): sent to the processes, the results come back in order.
    pool.parse((DEV / "feeds" / "politico.xml").read_bytes(), now=NOW)
    pids = {c.pid for c in multiprocessing.active_children()}
    assert pids
    results = pool.map_if_running(extract_many, chunks)
    assert [t for got in results for t in got] == want
    # Workers killed (before or after the work is sent): what they held is computed here.
    results = pool.map_if_running(extract_many, chunks)
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):  # one that ended meanwhile
            os.kill(child.pid, signal.SIGKILL)
        child.join(5)
    assert [t for got in results for t in got] == want
    assert [t for got in pool.map_if_running(extract_many, chunks) for t in got] == want


def test_one_parse_at_a_time_stays_in_the_calling_thread() -> None:
    p = ParsePool(workers=2)  # the default: the pool only for overlapping parses
    data = (DEV / "feeds" / "politico.xml").read_bytes()
    p.parse(data, now=NOW)
    p.parse(data, now=NOW)
    assert p.in_process == 0 and p.restarts == 0
    p.shutdown()


def test_a_cycle_parsing_in_processes_reports_broken_feeds_per_source_and_stores_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsepool, "DEFAULT", ParsePool(workers=2, min_concurrent=1))
    with FeedServer() as srv:
        lines = ["fetch: {allow_private_networks: true}", "sources:"]
        for o in OUTLETS:
            url = srv.add(f"/{o}.xml", (DEV / "feeds" / f"{o}.xml").read_bytes())
            lines.append(f"  - {{id: {o}, url: '{url}', role: outlet}}")
        url = srv.add("/cut.xml", (DEV / "feeds" / "reuters.xml").read_bytes()[:400])
        lines.append(f"  - {{id: cut, url: '{url}', role: outlet}}")
        url = srv.add("/page.xml", b"<!DOCTYPE html><html><body>moved</body></html>", "text/html")
        lines.append(f"  - {{id: page, url: '{url}', role: outlet}}")
        config = parse_config(f"storage: {{url: 'sqlite:///{tmp_path}/s.sqlite3'}}\n" + "\n".join(lines) + "\n")
        with Store(config.db_path) as store:
            reports = {r.id: r for r in fetch_stage(store, config, now=lambda: NOW)}
            counts = dict(store.db.execute("SELECT source_id, COUNT(*) FROM entries GROUP BY source_id"))
    try:
        assert parsepool.DEFAULT.in_process >= len(OUTLETS)
    finally:
        parsepool.DEFAULT.shutdown()
    assert {sid for sid, r in reports.items() if r.outcome == "error"} == {"cut", "page"}
    assert "HTML page" in (reports["page"].error or "")
    for o in OUTLETS:
        assert reports[o].outcome == "new entries" and counts[o] == reports[o].new > 0


def test_processes_that_die_before_parsing_anything_leave_parsing_in_the_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A main module that runs code on import (no `if __name__ == "__main__":`) is re-run in
    # every spawned worker; here it exits at once, as a cycle refused by the store lock does.
    script = tmp_path / "unguarded.py"
    script.write_text("raise SystemExit(4)\n", encoding="utf-8")
    import sys

    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__file__", str(script), raising=False)
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    p = ParsePool(workers=2, min_concurrent=1)
    data = (DEV / "feeds" / "politico.xml").read_bytes()
    try:
        assert p.parse(data, now=NOW) == parse_feed(data, now=NOW)
        assert p.parse(data, now=NOW) == parse_feed(data, now=NOW)
        assert p.in_process == 0 and p.restarts == 1  # gave up after the first pool, not three
    finally:
        p.shutdown()


def test_the_number_of_parsing_processes_can_be_set_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_PARSE_WORKERS", "0")
    assert ParsePool().workers == 0
    data = (DEV / "feeds" / "politico.xml").read_bytes()
    p = ParsePool(min_concurrent=1)
    p.parse(data, now=NOW)
    assert p.in_process == 0
    monkeypatch.setenv("AGGREGATOR_PARSE_WORKERS", "3")
    assert ParsePool().workers == 3


def test_workers_leave_with_a_parent_that_exits_without_shutting_them_down(tmp_path: Path) -> None:
    # `run --once` stopped by SIGTERM during a hung fetch leaves with os._exit: the parsing
    # processes must not outlive it (they would hold its stdout open for whoever waits).
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, os, sys\n"
        "from aggregator.sources.parsepool import ParsePool\n"
        "if __name__ == '__main__':\n"
        "    p = ParsePool(workers=2, min_concurrent=1)\n"
        f"    p.parse(open({str(DEV / 'feeds' / 'twz.xml')!r}, 'rb').read())\n"
        "    print(' '.join(str(c.pid) for c in multiprocessing.active_children()), flush=True)\n"
        "    os._exit(0)\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    pids = [int(p) for p in out.stdout.split()]
    assert pids, out.stderr
    assert time.monotonic() - t0 < 30  # capture_output waited for every holder of the pipes

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"

    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)
