"""Cooperating workers end to end: three real ``aggregator run`` daemons on one PostgreSQL
store (a throwaway cluster) over the loopback dev feeds, one killed with SIGKILL after a
minute (docs/scaling.md). Needs PostgreSQL: fails, never skips, when it cannot start."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from test_pipeline_e2e import atom_entries, write_config

from aggregator.running import workplan

PASSWORD = "w0rkers-Pg-pass"  # trust authentication ignores it; it must never be shown
ATOM = "{http://www.w3.org/2005/Atom}"
WAIT = 60


class TimedFeedServer(FeedServer):
    """The loopback feed server, noting when each feed was requested."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[str, float]] = []

    def _handle(self, h):  # type: ignore[no-untyped-def]
        self.times.append((h.path, time.time()))
        super()._handle(h)


def _wait_for(check: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def site(tmp_path: Path, pg_url: str) -> Iterator[tuple[Path, TimedFeedServer]]:
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@", 1).replace("postgresql+psycopg://", "postgresql://")
    with TimedFeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        for f in (DEV / "feeds").iterdir():
            feeds.add_file(f"/{f.name}", f)
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, libre.url)
        text = cfg.read_text(encoding="utf-8").replace("sqlite:///data/store.sqlite3", url)
        cfg.write_text(text + "schedule: {every: 1m, jitter: 0s}\n", encoding="utf-8")
        yield cfg, feeds


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(aggregator_cmd(*args, "--config", str(config)), capture_output=True, text=True, timeout=120)


def _status(cfg: Path) -> dict:
    r = _cli("status", "--json", config=cfg)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout
    return json.loads(r.stdout)


@pytest.mark.slow
def test_three_workers_share_the_feeds_and_take_over_from_a_killed_one(site: tuple[Path, TimedFeedServer],
                                                                        dev_gold: list[dict]) -> None:
    cfg, feeds = site
    logs = [cfg.parent / f"worker{i}.log" for i in range(3)]
    t0 = time.time()
    procs = [subprocess.Popen(aggregator_cmd("run", "--config", str(cfg)), stdout=subprocess.DEVNULL,
                              stderr=open(log, "w"), text=True) for log in logs]
    try:
        # All three register; the first fetches are published.
        _wait_for(lambda: len(_status(cfg)["workers"]) == 3, "three workers in status")
        _wait_for((cfg.parent / "output" / "feed.atom").exists, "the first publication")
        st = _status(cfg)
        assert {w["pid"] for w in st["workers"]} == {p.pid for p in procs}
        assert all(w["alive"] and w["host"] and w["since"] for w in st["workers"])
        text = _cli("status", config=cfg)
        assert text.returncode == 0 and "fetched by" in text.stdout
        assert sum(f"(host {w['host']}, pid {w['pid']})" in text.stdout for w in st["workers"]) == 3

        # After a minute, one is killed outright.
        time.sleep(max(0.0, t0 + 60 - time.time()))
        victim = procs[0]
        victim.kill()
        killed = time.time()
        victim.wait(10)

        # It is taken for dead within the bound, and the others carry on.
        bound = workplan.STALLED_AFTER + workplan.REAP_EVERY + workplan.HEARTBEAT
        _wait_for(lambda: victim.pid not in {w["pid"] for w in _status(cfg)["workers"]},
                  "the killed worker to be taken for dead", timeout=bound.total_seconds() + 15)
        gone_after = time.time() - killed
        print(f"killed worker taken for dead {gone_after:.1f} s after the kill")  # shown with -s
        assert gone_after <= bound.total_seconds() + 10, gone_after

        time.sleep(max(0.0, t0 + 150 - time.time()))
        survivors = procs[1:]
        for p in survivors:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(WAIT) for p in survivors]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    errors = "\n".join(log.read_text(encoding="utf-8") for log in logs)
    assert codes == [0, 0], errors
    assert PASSWORD not in errors
    assert "Traceback" not in errors, errors

    # No feed requested twice within its interval (a minute), every one again after the kill.
    paths = {f"/{f.name}" for f in (DEV / "feeds").iterdir()}
    by_path: dict[str, list[float]] = {}
    for path, at in feeds.times:
        by_path.setdefault(path, []).append(at)
    assert set(by_path) == paths
    for path, times in by_path.items():
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(g >= 60 for g in gaps), (path, gaps)
        assert any(t > killed for t in times), (path, "not fetched after the kill")
        assert len(times) >= 2, path

    # Per source, which worker fetched it last; the fetches were shared out.
    st = _status(cfg)
    assert st["workers"] == []  # all stopped (the killed one forgotten, the others unregistered)
    fetched_by = {s["id"]: s["fetched_by"] for s in st["sources"]}
    assert all(fetched_by.values()), fetched_by
    assert {int(w.rsplit(":", 1)[1]) for w in fetched_by.values()} <= {p.pid for p in survivors}

    # One consistent publication: every post with exactly the sources it cites.
    entries = atom_entries(cfg.parent / "output")
    assert len(entries) == 40 + 294
    gold = {g["link"]: set(g["cited"]) for g in dev_gold}
    wrong = [link for link, cited in gold.items()
             if {l.get("href") for l in entries[link].findall(f"{ATOM}link[@rel='related']")} != cited]
    assert len(wrong) <= 1, wrong

    ck = _cli("store", "check", config=cfg)
    assert ck.returncode == 0, ck.stdout + ck.stderr
    assert PASSWORD not in ck.stdout + ck.stderr


def test_run_once_and_workers_exclude_each_other_on_postgresql(site: tuple[Path, TimedFeedServer]) -> None:
    cfg, _ = site
    assert _cli("run", "--once", config=cfg).returncode == 0
    worker = subprocess.Popen(aggregator_cmd("run", "--config", str(cfg)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _status(cfg)["workers"], "the worker to register")
        once = _cli("run", "--once", config=cfg)
        assert once.returncode == 4, once.stderr
        assert "another aggregator run is already working on postgresql://postgres:***@" in once.stderr
        assert re.search(r"\(pid \d+: aggregator worker since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", once.stderr), once.stderr
        assert PASSWORD not in once.stderr
        worker.send_signal(signal.SIGHUP)  # said, not obeyed: the worker lives on
        time.sleep(1)
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=WAIT)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "received SIGHUP: a worker does not reload its config" in err
    assert PASSWORD not in err
    assert os.path.exists(cfg.parent / "output" / "feed.atom")


@pytest.mark.slow
def test_a_fetch_held_by_a_killed_worker_is_taken_over_within_the_bound(tmp_path: Path, pg_url: str) -> None:
    """The worker holding a fetch (its server never answers) is killed: another worker
    fetches that host again within workplan.takeover_bound()."""
    with TimedFeedServer() as feeds:
        feeds.add_file("/blog.xml", DEV / "feeds" / "blog.xml")
        feeds.fault("/blog.xml", "hang")
        cfg = tmp_path / "aggregator.yaml"
        cfg.write_text(f"storage: {{url: '{pg_url}'}}\noutput: {{dir: output}}\n"
                       "translation: {target: en, providers: []}\n"
                       "fetch: {allow_private_networks: true, timeout: 120s, read_timeout: 120s}\n"
                       "schedule: {every: 1h, jitter: 0s}\n"
                       f"sources:\n  - {{id: blog, url: '{feeds.url('/blog.xml')}', role: blog, language: ja}}\n",
                       encoding="utf-8")
        procs = [subprocess.Popen(aggregator_cmd("run", "--config", str(cfg)), stdout=subprocess.DEVNULL,
                                  stderr=open(tmp_path / f"worker{i}.log", "w"), text=True) for i in range(2)]
        try:
            holder = _wait_for(lambda: [w for w in _status(cfg)["workers"]
                                        if any(h.startswith("fetch 127.0.0.1") for h in w["holds"])],
                               "a worker to hold the fetch")
            victim = next(p for p in procs if p.pid == holder[0]["pid"])  # type: ignore[index]
            assert len(feeds.times) == 1
            victim.kill()
            killed = time.time()
            victim.wait(10)
            bound = workplan.takeover_bound().total_seconds()
            _wait_for(lambda: len(feeds.times) >= 2, "another worker to fetch again", timeout=bound + 20)
            took = feeds.times[1][1] - killed
            survivor = next(p for p in procs if p is not victim)
            # What a worker holds reaches the store with its next heartbeat (every 4 s).
            _wait_for(lambda: [(w["pid"], w["holds"]) for w in _status(cfg)["workers"]]
                      == [(survivor.pid, ["fetch 127.0.0.1"])],
                      "the survivor alone, holding the fetch", timeout=3 * workplan.HEARTBEAT.total_seconds())
            survivor.send_signal(signal.SIGTERM)  # its fetch in flight is abandoned
            assert survivor.wait(WAIT) == 0
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    log = (tmp_path / "worker0.log").read_text() + (tmp_path / "worker1.log").read_text()
    assert "took over fetch" in log, log
    print(f"fetch taken over {took:.1f} s after the kill (bound {bound:.0f} s)")  # shown with -s
    # The bound docs/scaling.md promises: takeover_bound() and the job's own start (opening the store).
    assert took <= 30, (took, bound)
