"""Politeness towards publishers: the real fetch stage (httpx over loopback, a real SQLite
store) with the clock and randomness injected, so that hours of schedule pass at once."""

from __future__ import annotations

import logging
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer

from aggregator import PROJECT_URL
from aggregator.app import Aggregator
from aggregator.config import Config, parse_config
from aggregator.running.cycle import fetch_stage
from aggregator.running.status import render_text
from aggregator.store import SourceState, Store

FEED = (DEV / "feeds" / "politico.xml").read_bytes()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime = T0):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def make_config(tmp: Path, sources: dict[str, str], fetch: str = "", every: str = "30m") -> Config:
    lines = ["storage: {url: 'sqlite:///store.sqlite3'}", "output: {dir: out}",
             f"schedule: {{every: {every}}}", "translation: {providers: []}"]
    # The publishers are loopback servers, which sources may not reach by default.
    lines.append(f"fetch: {{allow_private_networks: true{', ' + fetch if fetch else ''}}}")
    lines.append("sources:")
    lines += [f"  - {{id: {sid}, url: '{url}', role: outlet}}" for sid, url in sources.items()]
    path = tmp / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n")
    return parse_config(path.read_text(), filename=str(path), path=path)


@pytest.fixture
def srv() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def states(cfg: Config) -> dict[str, SourceState]:
    with Store(cfg.db_path) as st:
        return st.source_states()


def run(cfg: Config, clock: Clock, **kw: object) -> list[str]:
    """One fetch stage at the clock's time; the ids of the sources it fetched."""
    with Store(cfg.db_path) as store:
        return [r.id for r in fetch_stage(store, cfg, now=clock, rng=random.Random(7), **kw)]  # type: ignore[arg-type]


def test_server_freshness_is_honoured_but_never_beyond_a_day(tmp_path: Path, srv: FeedServer) -> None:
    year = {"Cache-Control": "public, max-age=31536000"}
    srv.add("/year.xml", FEED, headers=year)
    srv.add("/expires.xml", FEED, headers={"Expires": "Fri, 01 Jan 2100 00:00:00 GMT"})
    srv.add("/twohours.xml", FEED, headers={"Cache-Control": "max-age=7200"})
    srv.add("/short.xml", FEED, headers={"Cache-Control": "max-age=60"})
    cfg = make_config(tmp_path, {"year": srv.url("/year.xml"), "expires": srv.url("/expires.xml"),
                                 "twohours": srv.url("/twohours.xml"), "short": srv.url("/short.xml")})
    clock = Clock()
    assert sorted(run(cfg, clock)) == ["expires", "short", "twohours", "year"]
    nxt = {k: s.next_fetch for k, s in states(cfg).items()}
    assert nxt == {"year": T0 + timedelta(days=1), "expires": T0 + timedelta(days=1),
                   "twohours": T0 + timedelta(hours=2), "short": T0 + timedelta(minutes=30)}
    clock.t = T0 + timedelta(hours=3)
    assert sorted(run(cfg, clock)) == ["short", "twohours"]
    clock.t = T0 + timedelta(days=1, minutes=1)
    assert sorted(run(cfg, clock)) == ["expires", "short", "twohours", "year"]
    # and every one of those later fetches was conditional
    assert all("If-None-Match" in r.headers for r in srv.requests[4:])


def test_retry_after_is_honoured_but_never_beyond_a_day(tmp_path: Path, srv: FeedServer) -> None:
    srv.fault("/busy.xml", "status", status=503, headers={"Retry-After": "7200"})
    srv.fault("/forever.xml", "status", status=429, headers={"Retry-After": "315360000"})
    cfg = make_config(tmp_path, {"busy": srv.url("/busy.xml"), "forever": srv.url("/forever.xml")},
                      fetch="max_backoff: 1h")
    run(cfg, Clock())
    st = states(cfg)
    assert st["busy"].next_fetch == T0 + timedelta(hours=2)
    assert st["forever"].next_fetch == T0 + timedelta(days=1)
    assert st["busy"].last_error == "fetch: HTTP 503 Service Unavailable" and st["busy"].last_status == 503
    assert run(cfg, Clock(T0 + timedelta(hours=1, minutes=59))) == []


def test_failures_back_off_exponentially_with_jitter_up_to_the_cap(tmp_path: Path, srv: FeedServer) -> None:
    srv.fault("/a.xml", "status", status=500)
    srv.fault("/b.xml", "status", status=500)
    cfg = make_config(tmp_path, {"a": srv.url("/a.xml"), "b": srv.url("/b.xml")}, every="10m",
                      fetch="max_backoff: 2h")
    clock = Clock()
    waits: dict[str, list[float]] = {"a": [], "b": []}
    for n in range(1, 8):
        assert sorted(run(cfg, clock)) == ["a", "b"]
        st = states(cfg)
        for sid in waits:
            assert st[sid].consecutive_failures == n
            waits[sid].append((st[sid].next_fetch - clock.t).total_seconds())
        clock.t = max(s.next_fetch for s in st.values())
    for w in waits.values():
        for n, wait in enumerate(w, start=1):
            base = min(600 * 2 ** (n - 1), 7200)
            assert 0.75 * base <= wait <= 1.25 * base, (n, wait)
    assert waits["a"] != waits["b"]  # jitter: two sources failing together do not retry together
    # one success and the source is back on its interval
    srv.clear_fault("/a.xml")
    srv.add("/a.xml", FEED)
    clock.t += timedelta(hours=3)
    run(cfg, clock)
    a = states(cfg)["a"]
    assert a.consecutive_failures == 0 and a.next_fetch == clock.t + timedelta(minutes=10)
    assert a.last_success == clock.t and a.entry_count == 45


def test_a_permanent_redirect_moves_the_stored_url_and_says_so(tmp_path: Path, srv: FeedServer,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    new = srv.add("/new.xml", FEED)
    srv.fault("/old.xml", "redirect", to="/new.xml", status=301)
    srv.add("/target.xml", FEED)
    srv.fault("/temp.xml", "redirect", to="/target.xml", status=302)
    cfg = make_config(tmp_path, {"moved": srv.url("/old.xml"), "temp": srv.url("/temp.xml")})
    with caplog.at_level(logging.WARNING, logger="aggregator"):
        run(cfg, Clock())
    assert f"moved: moved permanently to {new}; the stored URL now points there" in caplog.text
    st = states(cfg)
    assert st["moved"].url == new and st["moved"].entry_count == 45
    assert st["temp"].url == srv.url("/temp.xml")  # a temporary redirect moves nothing
    run(cfg, Clock(T0 + timedelta(hours=1)))
    assert srv.hits["/old.xml"] == 1 and srv.hits["/new.xml"] == 2 and srv.hits["/temp.xml"] == 2
    assert "If-None-Match" in srv.requests[-1].headers or "If-None-Match" in srv.requests[-2].headers


def test_410_gone_disables_the_source_and_status_says_how_to_re_enable_it(tmp_path: Path, srv: FeedServer) -> None:
    srv.add("/gone.xml", FEED)
    cfg = make_config(tmp_path, {"gone": srv.url("/gone.xml")})
    run(cfg, Clock())
    srv.fault("/gone.xml", "status", status=410)
    run(cfg, Clock(T0 + timedelta(hours=1)))
    st = states(cfg)["gone"]
    assert st.disabled and st.entry_count == 45  # nothing it gave before is lost
    text = render_text(Aggregator(cfg).status())
    assert "disabled: HTTP 410 Gone" in text and "change its url in the config" in text
    assert "aggregator run --once --all" in text
    # never fetched again on its own, however long we wait
    assert run(cfg, Clock(T0 + timedelta(days=30))) == []
    assert srv.hits["/gone.xml"] == 2
    # --all tries it; it is back, so it is enabled again
    srv.clear_fault("/gone.xml")
    assert run(cfg, Clock(T0 + timedelta(days=31)), fetch_all=True) == ["gone"]
    st = states(cfg)["gone"]
    assert st.disabled is None and st.consecutive_failures == 0
    assert run(cfg, Clock(T0 + timedelta(days=32))) == ["gone"]


@pytest.mark.parametrize("per_host", [1, 2])
def test_never_more_than_per_host_connections_to_one_host(tmp_path: Path, srv: FeedServer, per_host: int) -> None:
    # Eight slow feeds on one host, eight fetch threads: without the limit eight
    # connections would be open at once.
    for i in range(8):
        srv.add(f"/f{i}.xml", FEED)
        srv.fault(f"/f{i}.xml", "slow_headers", interval=0.1, count=3)
    cfg = make_config(tmp_path, {f"f{i}": srv.url(f"/f{i}.xml") for i in range(8)},
                      fetch=f"concurrency: 8, per_host: {per_host}")
    assert len(run(cfg, Clock())) == 8
    assert srv.connections_peak == per_host
    assert all(PROJECT_URL in r.headers["User-Agent"] for r in srv.requests)


def test_per_host_is_at_most_two(tmp_path: Path) -> None:
    from aggregator.exceptions import ConfigError

    with pytest.raises(ConfigError, match="fetch.per_host"):
        make_config(tmp_path, {"a": "https://a.example/feed"}, fetch="per_host: 4")


def test_the_daemon_keeps_the_per_host_limit_across_its_per_source_jobs(tmp_path: Path, srv: FeedServer) -> None:
    for i in range(6):
        srv.add(f"/f{i}.xml", FEED)
        srv.fault(f"/f{i}.xml", "slow_headers", interval=0.1, count=4)
    cfg = make_config(tmp_path, {f"f{i}": srv.url(f"/f{i}.xml") for i in range(6)},
                      fetch="concurrency: 8, per_host: 2", every="1h")
    proc = subprocess.Popen(aggregator_cmd("run", "--config", str(cfg.path)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while len(srv.hits) < 6:
            assert time.monotonic() < end, "the daemon did not fetch every source"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert srv.connections_peak <= 2


def test_status_shows_each_sources_health_in_text_and_json(tmp_path: Path, srv: FeedServer) -> None:
    srv.add("/ok.xml", FEED)
    srv.add("/flaky.xml", FEED)
    cfg = make_config(tmp_path, {"ok": srv.url("/ok.xml"), "flaky": srv.url("/flaky.xml"),
                                 "never": "https://never.example/feed"})
    with Store(cfg.db_path) as store:
        fetch_stage(store, cfg, now=Clock(), rng=random.Random(7), only=["ok", "flaky"])
    srv.fault("/flaky.xml", "status", status=503)
    t1 = T0 + timedelta(hours=1)
    with Store(cfg.db_path) as store:
        fetch_stage(store, cfg, now=Clock(t1), rng=random.Random(7), only=["ok", "flaky"], fetch_all=True)
    d = Aggregator(cfg).status(now=t1)
    by_id = {s["id"]: s for s in d["sources"]}
    flaky = by_id["flaky"]
    assert flaky["last_success"] == "2025-03-01T12:00:00Z" and flaky["last_fetch"] == "2025-03-01T13:00:00Z"
    assert flaky["last_error"] == "fetch: HTTP 503 Service Unavailable" and flaky["consecutive_failures"] == 1
    assert flaky["next_fetch"] > "2025-03-01T13:00:00Z" and flaky["entries"] == 45
    assert by_id["ok"]["result"] == "not modified" and by_id["ok"]["consecutive_failures"] == 0
    assert by_id["never"] == {**by_id["never"], "last_success": None, "last_error": None, "next_fetch": None,
                              "result": "never fetched"}
    # the text says the same, whatever its layout: last success (12:00), last fetch (13:00),
    # the error, one failure, the next fetch
    text = render_text(d)
    assert "last success" in text and "next fetch" in text
    line = next(l for l in text.splitlines() if l.startswith("flaky "))
    assert "12:00" in line and "13:00" in line and re.search(r"\s1\s", line)
    assert "HTTP 503 Service Unavailable" in line
    nxt = datetime.fromisoformat(flaky["next_fetch"].replace("Z", "+00:00"))
    assert f"{nxt:%H:%M}" in line


def test_conditional_requests_reuse_each_hosts_connections_and_keep_the_bounds(tmp_path: Path) -> None:
    """Twelve hosts of three feeds each, visited in turn by two workers: every host's
    connection is kept open for its next source (304s included), never more than
    ``per_host`` to one host, never more than ``concurrency`` requests in flight."""
    servers = [FeedServer() for _ in range(12)]
    for s in servers:
        s.start()
    try:
        sources = {}
        for i, s in enumerate(servers):
            for j in range(3):
                s.add(f"/f{j}.xml", FEED)
                sources[f"h{i}f{j}"] = s.url(f"/f{j}.xml")
        cfg = make_config(tmp_path, sources, fetch="concurrency: 2, per_host: 2")
        assert len(run(cfg, Clock(), fetch_all=True)) == 36  # 200s
        assert len(run(cfg, Clock(T0 + timedelta(hours=1)), fetch_all=True)) == 36  # 304s
        assert sum(s.hits[f"/f{j}.xml"] for s in servers for j in range(3)) == 72
        # one connection per host and cycle would be 24; a pool dropping them, up to 72
        assert sum(s.connections_total for s in servers) <= 2 * 2 * 12
        assert max(s.connections_peak for s in servers) <= 2
    finally:
        for s in servers:
            s.stop()
