"""The red-team pass, round two: each failure it found, replayed on loopback.

1. a feed that redirects into the private network (SSRF);   5. serve under load;
2. poisoned translations (in test_red_team_store.py);       6. unstable guids (ditto);
3. a damaged or full store (ditto);                          7. a YAML alias bomb;
4. one host that never answers (head-of-line blocking);      8. bidi controls in titles.
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import DEV, ROOT, aggregator_cmd
from loopback import FeedServer

from aggregator.config import parse_config
from aggregator.exceptions import ConfigError, FetchError, PrivateAddressError
from aggregator.publishing.serve import make_server
from aggregator.running.cycle import SourceReport, fetch_stage
from aggregator.sources.fetch import HostLimiter, fetch, make_client
from aggregator.store import Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "root-password: hunter2-7f3a"
ADMIN_PAGE = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>admin</title>
<item><title>{SECRET}</title><link>http://127.0.0.1/admin/1</link><guid>a1</guid>
<description>{SECRET}</description></item></channel></rss>""".encode()


def cli(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(aggregator_cmd(*args, "--config", str(cfg)), capture_output=True, text=True,
                          timeout=timeout, cwd=cfg.parent)


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- 1. private networks (SSRF) -------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[tuple[FeedServer, FeedServer]]:
    """A public-looking feed server and an "internal" one (another origin on loopback)."""
    with FeedServer() as outlet, FeedServer() as internal:
        internal.add("/admin/feed.xml", ADMIN_PAGE)
        outlet.add_file("/politico.xml", DEV / "feeds" / "politico.xml")
        yield outlet, internal


def test_a_redirect_into_the_private_network_is_refused_and_nothing_of_it_is_published(
        servers: tuple[FeedServer, FeedServer], tmp_path: Path) -> None:
    outlet, internal = servers
    outlet.fault("/evil.xml", "redirect", to=internal.url("/admin/feed.xml"), status=302)
    outlet.fault("/moved.xml", "redirect", to=internal.url("/admin/feed.xml"), status=301)
    # The per-source key allows the sources' own origin (the outlet server), not where they redirect.
    cfg = write(tmp_path / "aggregator.yaml", "storage: {url: 'sqlite:///store.sqlite3'}",
                "output: {dir: out, include: all}", "translation: {providers: []}", "sources:",
                f"  - {{id: evil, url: '{outlet.url('/evil.xml')}', role: outlet, allow_private_network: true}}",
                f"  - {{id: moved, url: '{outlet.url('/moved.xml')}', role: outlet, allow_private_network: true}}",
                f"  - {{id: politico, url: '{outlet.url('/politico.xml')}', role: outlet, allow_private_network: true}}")
    r = cli(cfg, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert internal.hits["/admin/feed.xml"] == 0  # not one request reached the internal server
    for name in ("feed.atom", "feed.rss", "feed.json", "index.html"):
        text = (tmp_path / "out" / name).read_text(encoding="utf-8")
        assert "hunter2" not in text
        assert "politico" in text.lower()  # the good source is published
    status = json.loads(cli(cfg, "status", "--json").stdout)
    by_id = {s["id"]: s for s in status["sources"]}
    for sid in ("evil", "moved"):
        err = by_id[sid]["last_error"]
        assert "127.0.0.1 is a loopback address" in err and "fetch.allow_private_networks: true" in err, err
        assert "redirected from" in err
    # a 301 to a refused address never becomes the stored URL
    with Store(tmp_path / "store.sqlite3") as store:
        assert store.source_states()["moved"].url == outlet.url("/moved.xml")


def test_private_addresses_are_refused_by_default_after_dns_and_allowed_by_the_keys(
        servers: tuple[FeedServer, FeedServer]) -> None:
    outlet, _ = servers
    port = outlet.port
    with make_client(connect_timeout=2, read_timeout=2, max_connections=4) as client:
        # literal addresses, a name that resolves to loopback (what DNS rebinding does), 0.0.0.0
        for url in (f"http://127.0.0.1:{port}/politico.xml", f"http://localhost:{port}/politico.xml",
                    f"http://0.0.0.0:{port}/politico.xml", f"http://127.1.2.3:{port}/politico.xml"):
            t0 = time.monotonic()
            with pytest.raises(PrivateAddressError) as e:
                fetch(client, url, max_bytes=10**7, total_timeout=5)
            assert time.monotonic() - t0 < 1
            assert "loopback" in str(e.value) or "unspecified" in str(e.value)
            assert "allow_private_network: true" in str(e.value)
        # refused before any packet is sent: IPv6 loopback, cloud metadata, RFC 1918, IPv4-mapped IPv6
        for url, kind in (("http://[::1]:9/feed", "loopback"), ("http://169.254.169.254/latest/meta-data/",
                                                                 "link-local"),
                          ("http://10.1.2.3/feed", "private"), ("http://[::ffff:127.0.0.1]:9/feed", "loopback"),
                          ("http://[fd00::1]/feed", "private")):
            t0 = time.monotonic()
            with pytest.raises(PrivateAddressError, match=f"is a {kind} address"):
                fetch(client, url, max_bytes=10**7, total_timeout=5)
            assert time.monotonic() - t0 < 0.5
        assert outlet.hits["/politico.xml"] == 0
        # the global key, and the per-source key for exactly its own origin
        assert fetch(client, f"http://localhost:{port}/politico.xml", max_bytes=10**7, total_timeout=5,
                     allow_private=True).status == 200
        own = f"http://127.0.0.1:{port}"
        assert fetch(client, own + "/politico.xml", max_bytes=10**7, total_timeout=5,
                     private_origin=own).status == 200
        # ... not another origin, and not through a pooled keep-alive connection either
        with pytest.raises(PrivateAddressError):
            fetch(client, f"http://localhost:{port}/politico.xml", max_bytes=10**7, total_timeout=5,
                  private_origin=own)
        with pytest.raises(PrivateAddressError):
            fetch(client, own + "/politico.xml", max_bytes=10**7, total_timeout=5)
    assert outlet.hits["/politico.xml"] == 2


def test_check_config_warns_about_a_source_on_a_private_address() -> None:
    from aggregator.configcheck import config_warnings

    cfg = parse_config("sources:\n  - {id: a, url: 'http://127.0.0.1:1200/rss', role: blog}\n"
                       "  - {id: b, url: 'http://localhost:1200/rss', role: outlet, allow_private_network: true}\n"
                       "  - {id: c, url: 'http://192.168.1.20/feed', role: outlet}\n")
    found = {loc: msg for loc, msg in config_warnings(cfg) if "address" in msg}
    assert set(found) == {("sources", 0, "url"), ("sources", 2, "url")}
    assert "127.0.0.1 is a loopback address" in found[("sources", 0, "url")]
    assert "192.168.1.20 is a private address" in found[("sources", 2, "url")]


def test_dns_resolution_is_bounded_by_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def stuck_resolver(host: str, *args: object, **kwargs: object) -> object:
        if host == "slow-dns.example":
            time.sleep(5)  # a resolver that does not answer (the edge we cannot run on loopback)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", stuck_resolver)
    with make_client(connect_timeout=0.5, read_timeout=2, max_connections=2) as client:
        t0 = time.monotonic()
        with pytest.raises(FetchError, match="could not connect within 0.5 s"):
            fetch(client, "http://slow-dns.example/feed.xml", max_bytes=10**7, total_timeout=10)
        assert time.monotonic() - t0 < 1.5


# -- 4. a host that never answers ------------------------------------------------------------


def test_the_daemons_memory_of_a_silent_server_lasts_its_window() -> None:
    now = [0.0]
    limiter = HostLimiter(2, down_for=900, clock=lambda: now[0])
    limiter.mark_down("http://10.0.0.5:80", "read timeout")
    limiter.mark_down("http://10.0.0.5:80", "a later reason")  # the first one is kept
    now[0] = 899
    assert limiter.down("http://10.0.0.5:80") == "read timeout" and limiter.down("http://10.0.0.6:80") is None
    now[0] = 901
    assert limiter.down("http://10.0.0.5:80") is None  # tried again


class Silent:
    """A server on 127.0.0.2 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(200)
        self.held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def url(self, path: str) -> str:
        return f"http://127.0.0.2:{self.sock.getsockname()[1]}{path}"

    def close(self) -> None:
        for s in (*self.held, self.sock):
            s.close()


def _cycle(lines: list[str], tmp: Path) -> tuple[dict[str, SourceReport], dict[str, float], float]:
    cfg = parse_config("\n".join(lines), filename=str(tmp / "c.yaml"), path=tmp / "c.yaml")
    done_at: dict[str, float] = {}
    t0 = time.monotonic()

    def progress(r: SourceReport) -> None:
        done_at[r.id] = time.monotonic() - t0

    with Store(cfg.db_path) as store:
        reports = {r.id: r for r in fetch_stage(store, cfg, now=lambda: T0, fetch_all=True,
                                                rng=random.Random(1), progress=progress)}
    return reports, done_at, time.monotonic() - t0


def test_a_host_that_never_answers_costs_two_timeouts_and_blocks_no_other_host(tmp_path: Path) -> None:
    silent = Silent()
    head = ["storage: {url: 'sqlite:///store.sqlite3'}", "output: {dir: out}", "translation: {providers: []}",
            "fetch: {timeout: 2s, connect_timeout: 1s, read_timeout: 2s, allow_private_networks: true}",
            "sources:"]
    try:
        with FeedServer() as good:
            good_lines = []
            for i in range(10):
                good.add_file(f"/good{i}.xml", DEV / "feeds" / "reuters.xml")
                good_lines.append(f"  - {{id: good{i}, url: '{good.url(f'/good{i}.xml')}', role: outlet}}")
            dead_lines = [f"  - {{id: dead{i}, url: '{silent.url(f'/feed{i}.xml')}', role: outlet}}"
                          for i in range(60)]
            (tmp_path / "alone").mkdir()
            _, alone, _ = _cycle(head + good_lines, tmp_path / "alone")  # the good feeds by themselves
            reports, done_at, took = _cycle(head + dead_lines + good_lines, tmp_path)
        good_alone = max(alone.values())
        good_done = max(done_at[f"good{i}"] for i in range(10))
        print(f"\nhead-of-line: 10 good feeds done after {good_done:.2f} s beside 60 silent ones "
              f"({good_alone:.2f} s alone); cycle {took:.2f} s; the silent host got {silent.accepted} connections")
        assert all(reports[f"good{i}"].outcome == "new entries" for i in range(10))
        assert good_done < good_alone + 1.0, (good_done, good_alone)  # they waited for no timeout
        errors = [r for r in reports.values() if r.outcome == "error"]
        skipped = [r for r in reports.values() if r.outcome == "skipped"]
        assert len(errors) == 2 and len(skipped) == 58  # per_host 2: two timeouts, then the rest skipped
        assert silent.accepted == 2
        assert took < 4.5, took  # one round of timeouts (2 s), not 30 rounds
        assert all("did not answer another source this cycle" in (r.error or "") for r in skipped)
        with Store(tmp_path / "store.sqlite3") as store:
            st = store.source_states()["dead59"]
        assert st.last_error is not None and st.last_error.startswith("fetch: skipped: http://127.0.0.2:")
    finally:
        silent.close()


# -- 5. serve under load ---------------------------------------------------------------------


def test_serve_holds_50_concurrent_clients_and_answers_503_beyond_its_bound(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from serve_load import load

    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("<!doctype html><title>x</title>" + "x" * 5000, encoding="utf-8")
    cfg = write(tmp_path / "aggregator.yaml", "output: {dir: out}", "sources: []")
    # The real `aggregator serve`, on a free port it names in its log line.
    log = tmp_path / "serve.log"
    with open(log, "w") as err:  # a file, not a pipe: it logs a line per request
        proc = subprocess.Popen(aggregator_cmd("serve", "--port", "0", "--config", str(cfg)), cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"at (http://127\.0\.0\.1:\d+/)", log.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        figures = load(found.group(1), clients=50, requests=2000)
        print(f"\nserve load: {figures}")
        assert figures["requests"] == 2000 and figures["failures"] == 0, figures
        assert figures["max_ms"] < 2000, figures
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    # Beyond the bound: a client waits a moment, then gets 503, never hangs.
    server = make_server(out, "127.0.0.1", 0, max_connections=2, queue_wait=0.3)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    idle = [socket.create_connection(server.server_address[:2]) for _ in range(2)]  # hold both slots
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        time.sleep(0.2)
        t0 = time.monotonic()
        r = httpx.get(url, timeout=5)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert time.monotonic() - t0 < 1.5
        for s in idle:
            s.close()
        time.sleep(0.2)
        assert httpx.get(url, timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


# -- 7. a YAML alias bomb ----------------------------------------------------------------------

BOMB = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")),
    "sources: [{id: x, url: 'https://x.example/feed', role: outlet}]"]) + "\n"


def test_a_yaml_alias_bomb_is_a_config_error_within_a_second(tmp_path: Path) -> None:
    assert len(BOMB.encode()) < 1024 and BOMB.count("*") == 72  # 9 levels, 9^9 strings expanded
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="YAML aliases"):
        parse_config(BOMB, filename="bomb.yaml")
    assert time.monotonic() - t0 < 1
    path = write(tmp_path / "bomb.yaml", BOMB)
    r = subprocess.run(aggregator_cmd("check-config", str(path)), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "alias bomb" in r.stderr and "Traceback" not in r.stderr
    # aliases in moderation still work
    cfg = parse_config("x: &p {provider: libre, url: 'http://127.0.0.1:5000/'}\n".replace("x:", "translation:\n  providers: [*p]\n  y:")
                       if False else
                       "translation:\n  providers:\n    - &p {provider: libre, url: 'http://127.0.0.1:5000/'}\n"
                       "    - *p\nsources: [{id: x, url: 'https://x.example/feed', role: outlet}]\n")
    assert len(cfg.translation.providers) == 2


# -- 8. bidi controls ----------------------------------------------------------------------------

BIDI = "\u202e\u202c\u200e\u200f\u202a\u202b\u202d\u2066\u2067\u2068\u2069\u061c"


def _feed(title: str, link: str, author: str, summary: str, lang: str = "en") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Feed {BIDI[0]}x</title>
<link>{link}</link><description>d</description><language>{lang}</language>
<item><title>{title}</title><link>{link}1</link><guid>{link}1</guid><dc:creator>{author}</dc:creator>
<pubDate>Sat, 01 Mar 2025 10:00:00 +0000</pubDate><description>{summary}</description></item>
</channel></rss>""".encode()


def test_bidi_controls_reach_no_output_and_no_terminal(tmp_path: Path) -> None:
    with FeedServer() as srv:
        srv.add("/outlet.xml", _feed(f"Ministry \u202eelif.exe\u202c says {BIDI}", "https://outlet.example/a/",
                                     "Ann\u202e Author", "Text &amp;lt;b&amp;gt; &#x202E;gnp.exe&#x202C; end"))
        srv.add("/blog.xml", _feed(f"防衛\u202e記事\u202c {BIDI}", "https://blog.example.jp/p/", "筆者\u2067",
                                   "本文\u202eです", "ja"))
        cfg = write(tmp_path / "aggregator.yaml", "storage: {url: 'sqlite:///store.sqlite3'}",
                    "output: {dir: out, include: all}", "translation: {providers: []}",
                    "fetch: {allow_private_networks: true}", "sources:",
                    f"  - {{id: blog, url: '{srv.url('/blog.xml')}', role: blog, language: ja}}",
                    f"  - {{id: outlet, url: '{srv.url('/outlet.xml')}', role: outlet}}")
        r = cli(cfg, "run", "--once")
        assert r.returncode == 0, r.stderr
    outputs = {name: (tmp_path / "out" / name).read_text(encoding="utf-8")
               for name in ("feed.atom", "feed.rss", "feed.json", "index.html")}
    outputs["status"] = cli(cfg, "status").stdout
    outputs["status --json"] = cli(cfg, "status", "--json").stdout
    outputs["explain"] = cli(cfg, "explain", "https://blog.example.jp/p/1").stdout
    assert "elif.exe" in outputs["feed.atom"] and "Ann Author" in outputs["feed.json"]
    assert "防衛記事" in outputs["explain"]
    for name, text in outputs.items():
        found = [f"U+{ord(c):04X}" for c in BIDI if c in text]
        assert not found, (name, found)
        assert "&#x202" not in text.lower() and "&#820" not in text, name
