"""Fetching over real HTTP on 127.0.0.1."""

from __future__ import annotations

import random
import ssl
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import DEV
from loopback import Blackhole, FeedServer

from aggregator import PROJECT_URL, USER_AGENT
from aggregator.exceptions import FetchError
from aggregator.sources.fetch import (
    ACCEPT,
    PAGE_ACCEPT,
    FetchClient,
    _header_dict,
    fetch,
    make_client,
    next_fetch_after_failure,
    next_fetch_after_success,
    parse_retry_after,
)

FEED = (DEV / "feeds" / "politico.xml").read_bytes()


@pytest.fixture
def client() -> FetchClient:
    with make_client(connect_timeout=2, read_timeout=1, max_connections=4) as c:
        yield c


def test_conditional_get_sends_validators_and_gets_304(client: FetchClient) -> None:
    with FeedServer() as srv:
        url = srv.add("/f.xml", FEED)
        first = fetch(client, url, max_bytes=10**7, total_timeout=5, allow_private=True)
        assert first.status == 200 and first.content == FEED and first.etag
        second = fetch(client, url, etag=first.etag, last_modified=first.last_modified, max_bytes=10**7,
                       total_timeout=5, allow_private=True)
        assert second.not_modified and second.status == 304
        req = srv.requests[-1]
        assert req.headers["If-None-Match"] == first.etag
        assert req.headers["User-Agent"] == USER_AGENT and PROJECT_URL in USER_AGENT


def test_gzip_is_asked_for_and_decoded(client: FetchClient) -> None:
    with FeedServer(gzip=True) as srv:
        url = srv.add("/f.xml", FEED)
        r = fetch(client, url, max_bytes=10**7, total_timeout=5, allow_private=True)
        assert r.content == FEED
        assert "gzip" in srv.requests[-1].headers["Accept-Encoding"]


def test_body_over_the_cap_is_refused(client: FetchClient) -> None:
    with FeedServer() as srv:
        url = srv.add("/f.xml", FEED)
        with pytest.raises(FetchError, match="cap"):
            fetch(client, url, max_bytes=1000, total_timeout=5, allow_private=True)


def test_gzip_bomb_is_refused_after_decompression(client: FetchClient) -> None:
    with FeedServer() as srv:
        srv.add("/bomb.xml", b"")
        srv.fault("/bomb.xml", "gzip_bomb", size=20_000_000)
        with pytest.raises(FetchError, match="after decompression"):
            fetch(client, srv.url("/bomb.xml"), max_bytes=1_000_000, total_timeout=5, allow_private=True)


def test_a_server_that_never_answers_times_out(client: FetchClient) -> None:
    with FeedServer() as srv:
        srv.add("/h.xml", FEED)
        srv.fault("/h.xml", "hang")
        t0 = time.monotonic()
        with pytest.raises(FetchError, match=r"sent nothing for 1 s \(read timeout\)"):
            fetch(client, srv.url("/h.xml"), max_bytes=10**7, total_timeout=5, allow_private=True)
        assert time.monotonic() - t0 < 3


def test_a_server_that_never_accepts_the_connection_hits_the_connect_timeout() -> None:
    with Blackhole() as hole, make_client(connect_timeout=0.5, read_timeout=5, max_connections=2) as c:
        t0 = time.monotonic()
        with pytest.raises(FetchError, match=r"could not connect within 0.5 s \(connect timeout\)"):
            fetch(c, hole.url("/f.xml"), max_bytes=10**7, total_timeout=10, allow_private=True)
        assert time.monotonic() - t0 < 3


def test_a_server_dripping_one_body_byte_a_second_hits_the_total_time_limit() -> None:
    # The read timeout (5 s) never fires: a byte comes every second.
    with FeedServer() as srv, make_client(connect_timeout=2, read_timeout=5, max_connections=2) as client:
        srv.add("/d.xml", FEED)
        srv.fault("/d.xml", "drip", interval=1.0)
        t0 = time.monotonic()
        with pytest.raises(FetchError, match="took longer than the 2.5 s total limit"):
            fetch(client, srv.url("/d.xml"), max_bytes=10**7, total_timeout=2.5, allow_private=True)
        assert time.monotonic() - t0 < 4.5


def test_a_server_dripping_header_lines_hits_the_total_time_limit() -> None:
    # No read ever waits as long as the read timeout, and the body never starts: only
    # a deadline over the whole request stops this one.
    with FeedServer() as srv, make_client(connect_timeout=2, read_timeout=5, max_connections=2) as client:
        srv.add("/h.xml", FEED)
        srv.fault("/h.xml", "slow_headers", interval=0.3, count=1000)
        t0 = time.monotonic()
        with pytest.raises(FetchError, match="took longer than the 2 s total limit"):
            fetch(client, srv.url("/h.xml"), max_bytes=10**7, total_timeout=2, allow_private=True)
        assert time.monotonic() - t0 < 4


def test_the_total_limit_covers_every_redirect_hop(client: FetchClient) -> None:
    with FeedServer() as srv:
        srv.add("/slow.xml", FEED)
        srv.fault("/slow.xml", "slow_headers", interval=0.3, count=1000)
        srv.fault("/start.xml", "redirect", to="/slow.xml", status=302)
        with pytest.raises(FetchError, match="total limit"):
            fetch(client, srv.url("/start.xml"), max_bytes=10**7, total_timeout=1.5, allow_private=True)


def test_a_redirect_to_a_local_file_is_refused(client: FetchClient) -> None:
    with FeedServer() as srv:
        srv.fault("/f.xml", "redirect", to="file:///etc/passwd", status=301)
        with pytest.raises(FetchError, match="refusing to follow a redirect to a non-HTTP URL: file:"):
            fetch(client, srv.url("/f.xml"), max_bytes=10**7, total_timeout=5, allow_private=True)


def test_a_connection_cut_mid_body_is_reported(client: FetchClient) -> None:
    with FeedServer(gzip=False) as srv:
        srv.add("/t.xml", FEED)
        srv.fault("/t.xml", "truncate")
        with pytest.raises(FetchError, match="connection broke off"):
            fetch(client, srv.url("/t.xml"), max_bytes=10**7, total_timeout=5, allow_private=True)


def test_redirect_loop_is_reported(client: FetchClient) -> None:
    with FeedServer() as srv:
        srv.add("/loop.xml", FEED)
        srv.fault("/loop.xml", "redirect_loop")
        with pytest.raises(FetchError, match="redirect"):
            fetch(client, srv.url("/loop.xml"), max_bytes=10**7, total_timeout=5, allow_private=True)


def test_permanent_redirect_is_reported_for_the_store(client: FetchClient) -> None:
    with FeedServer() as srv:
        new = srv.add("/new.xml", FEED)
        srv.add("/old.xml", b"")
        srv.fault("/old.xml", "redirect", to="/new.xml", status=301)
        r = fetch(client, srv.url("/old.xml"), max_bytes=10**7, total_timeout=5, allow_private=True)
        assert r.permanent_redirect == new and r.content == FEED


def test_http_errors_carry_status_and_retry_after(client: FetchClient) -> None:
    with FeedServer() as srv:
        srv.add("/busy.xml", FEED)
        srv.fault("/busy.xml", "status", status=429, headers={"Retry-After": "120"})
        with pytest.raises(FetchError) as e:
            fetch(client, srv.url("/busy.xml"), max_bytes=10**7, total_timeout=5, allow_private=True)
        assert e.value.status == 429 and e.value.retry_after == 120
        srv.fault("/busy.xml", "status", status=410)
        with pytest.raises(FetchError) as e:
            fetch(client, srv.url("/busy.xml"), max_bytes=10**7, total_timeout=5, allow_private=True)
        assert e.value.permanent


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    rng = random.Random(1)
    waits = [(next_fetch_after_failure(now, timedelta(minutes=30), n, retry_after=None,
                                       max_backoff=timedelta(hours=24), rng=rng) - now).total_seconds()
             for n in (1, 2, 3, 10)]
    assert 0.75 * 1800 <= waits[0] <= 1.25 * 1800
    assert waits[0] < waits[1] < waits[2]
    assert waits[3] <= 1.25 * 86400


def test_server_delays_are_honoured_but_capped() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert next_fetch_after_success(now, timedelta(minutes=30), {"Cache-Control": "max-age=7200"}) == now + timedelta(hours=2)
    assert next_fetch_after_success(now, timedelta(minutes=30), {"Cache-Control": "max-age=99999999"}) == now + timedelta(days=1)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0
    assert parse_retry_after("30", now) == 30


def test_the_client_keeps_connections_open_per_origin_but_bounds_the_requests_in_flight() -> None:
    """max_connections bounds the requests in flight over all origins, while each origin
    keeps its own connection open for the next request (a 304 included)."""
    from concurrent.futures import ThreadPoolExecutor

    with FeedServer() as a, FeedServer() as b, \
            make_client(connect_timeout=2, read_timeout=5, max_connections=1) as client:
        urls = [s.add("/f.xml", FEED) for s in (a, b)]
        first = [fetch(client, u, max_bytes=10**7, total_timeout=5, allow_private=True) for u in urls]
        for _ in range(3):  # a, b, a, b, ...: neither origin's connection is dropped for the other's
            for u, r in zip(urls, first, strict=True):
                assert fetch(client, u, etag=r.etag, max_bytes=10**7, total_timeout=5,
                             allow_private=True).status == 304
        assert a.connections_total == b.connections_total == 1
        for s in (a, b):
            s.fault("/f.xml", "slow_headers", interval=0.2, count=2)
        t = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            done = list(pool.map(lambda u: fetch(client, u, max_bytes=10**7, total_timeout=5, allow_private=True),
                                 urls))
        assert [r.status for r in done] == [200, 200]
        assert time.monotonic() - t >= 0.8  # one after the other: 2 x 0.4 s


def test_a_kept_connection_the_server_closed_is_not_reused_and_idle_ones_are_kept_for_the_latest_origins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle connection is checked as it is about to be reused: one the server closed
    meanwhile (its keep-alive time ran out) is replaced, not failed on. Idle connections
    are kept for the KEEPALIVE_ORIGINS origins asked last; an older origin's are closed."""
    from aggregator.sources import fetch as fetch_module

    with FeedServer() as a, FeedServer() as b, \
            make_client(connect_timeout=2, read_timeout=5, max_connections=2) as client:
        ua, ub = a.add("/f.xml", FEED), b.add("/f.xml", FEED)
        r = fetch(client, ua, max_bytes=10**7, total_timeout=5, allow_private=True)
        a._bound().close_connections()  # the server ends its idle keep-alive connection
        time.sleep(0.1)
        assert fetch(client, ua, etag=r.etag, max_bytes=10**7, total_timeout=5, allow_private=True).status == 304
        assert a.connections_total == 2
        monkeypatch.setattr(fetch_module, "KEEPALIVE_ORIGINS", 1)
        for _ in range(2):  # a (its kept connection), b, a, b: each origin's idle one closed for the other's
            for u in (ua, ub):
                assert fetch(client, u, etag=r.etag, max_bytes=10**7, total_timeout=5,
                             allow_private=True).status == 304
        assert (a.connections_total, b.connections_total) == (3, 2)


class _RawServer:
    """One-connection-at-a-time HTTP server on 127.0.0.1 that answers each request with
    ``reply`` (bytes as sent) and records each request's head as received."""

    def __init__(self, reply: bytes):
        import socket
        import threading

        self.reply = reply
        self.heads: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while True:
                    while b"\r\n\r\n" not in data:
                        more = conn.recv(65536)
                        if not more:
                            break
                        data += more
                    if b"\r\n\r\n" not in data:
                        break
                    head, data = data.split(b"\r\n\r\n", 1)
                    self.heads.append(head)
                    conn.sendall(self.reply)

    def close(self) -> None:
        self._sock.close()


def test_the_request_carries_exactly_our_headers_and_the_validators() -> None:
    srv = _RawServer(b"HTTP/1.1 304 Not Modified\r\nETag: \"e2\"\r\n\r\n")
    try:
        with make_client(connect_timeout=2, read_timeout=2, max_connections=2) as client:
            url = f"http://127.0.0.1:{srv.port}/a/f.xml?x=1 2"
            r = fetch(client, url, etag='"e1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
                      max_bytes=100, total_timeout=5, allow_private=True)
            assert (r.status, r.etag, r.last_modified) == (304, '"e2"', "Mon, 01 Jan 2024 00:00:00 GMT")
            fetch(client, url, max_bytes=100, total_timeout=5, allow_private=True, accept=PAGE_ACCEPT)
    finally:
        srv.close()
    first, second = (h.decode().split("\r\n") for h in srv.heads)
    assert first == ["GET /a/f.xml?x=1%202 HTTP/1.1", f"Host: 127.0.0.1:{srv.port}", "Connection: keep-alive",
                     f"User-Agent: {USER_AGENT}", f"Accept: {ACCEPT}", "Accept-Encoding: gzip, deflate",
                     'If-None-Match: "e1"', "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT"]
    assert second[4] == f"Accept: {PAGE_ACCEPT}" and len(second) == 6  # no validators: none sent


def test_a_non_ascii_etag_is_sent_back_as_it_came() -> None:
    # An ETag in UTF-8 bytes is read as text and goes back as the same bytes (it used to
    # fail every later fetch of the source: httpx encodes header values as ASCII).
    srv = _RawServer(b"HTTP/1.1 304 Not Modified\r\nETag: \"\xc3\xa9\"\r\n\r\n")
    try:
        with make_client(connect_timeout=2, read_timeout=2, max_connections=2) as client:
            url = f"http://127.0.0.1:{srv.port}/f.xml"
            first = fetch(client, url, etag='"x"', max_bytes=100, total_timeout=5, allow_private=True)
            assert first.etag == '"é"'
            fetch(client, url, etag=first.etag, max_bytes=100, total_timeout=5, allow_private=True)
    finally:
        srv.close()
    assert b'If-None-Match: "\xc3\xa9"' in srv.heads[1].split(b"\r\n")


def test_no_cookie_is_kept_or_sent(client: FetchClient) -> None:
    with FeedServer() as srv:
        url = srv.add("/f.xml", FEED, headers={"Set-Cookie": "track=1; Path=/"})
        first = fetch(client, url, max_bytes=10**7, total_timeout=5, allow_private=True)
        assert first.headers["set-cookie"].startswith("track=1")
        fetch(client, url, etag=first.etag, max_bytes=10**7, total_timeout=5, allow_private=True)
        assert all("cookie" not in r.headers for r in srv.requests)


def test_a_url_without_a_host_is_refused_before_any_request(client: FetchClient) -> None:
    with pytest.raises(FetchError, match=r"not a usable URL: http:///f.xml \(no host\)"):
        fetch(client, "http:///f.xml", max_bytes=10**7, total_timeout=5, allow_private=True)


@pytest.mark.parametrize("raw", [
    [],
    [(b"etag", b'"a"'), (b"cache-control", b"max-age=60")],
    [(b"Vary", b"Accept"), (b"vary", b"Accept-Encoding"), (b"X-One", b"1")],  # repeated: joined
    [(b"etag", b'"\xc3\xa9"'), (b"x", b"plain")],  # UTF-8 for all
    [(b"etag", b'"\xe9"'), (b"x", b"\xc3\xa9")],  # not UTF-8: Latin-1 for all
])
def test_304_headers_read_as_httpx_reads_them(raw: list[tuple[bytes, bytes]]) -> None:
    assert _header_dict(raw) == dict(httpx.Headers(raw))


def test_connection_errors_are_reported_with_the_origin_that_did_not_answer(client: FetchClient) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="could not connect") as e:
        fetch(client, f"http://127.0.0.1:{port}/f.xml", max_bytes=10**7, total_timeout=5, allow_private=True)
    assert e.value.unreachable == f"http://127.0.0.1:{port}"


def test_credentials_in_the_url_are_sent_as_basic_auth_and_not_in_the_host() -> None:
    import base64

    srv = _RawServer(b"HTTP/1.1 304 Not Modified\r\n\r\n")
    try:
        with make_client(connect_timeout=2, read_timeout=2, max_connections=2) as client:
            fetch(client, f"http://us%40er:p%C3%A4ss@127.0.0.1:{srv.port}/f.xml", etag='"e"', max_bytes=100,
                  total_timeout=5, allow_private=True)
    finally:
        srv.close()
    lines = srv.heads[0].split(b"\r\n")
    assert f"Host: 127.0.0.1:{srv.port}".encode() in lines
    assert b"Authorization: Basic " + base64.b64encode("us@er:päss".encode()) in lines


class _TLSFeedServer(FeedServer):
    """The loopback feed server over TLS, with a certificate made for 127.0.0.1."""

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)

    def _bound(self) -> Any:
        if self._httpd is None:
            httpd = super()._bound()
            httpd.socket = self._context.wrap_socket(httpd.socket, server_side=True)
        return self._httpd

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def test_feeds_are_fetched_over_tls_on_kept_alive_connections(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream reads and writes the TLS socket itself (see _DeadlineStream): a 200 and
    then a 304 over one kept-alive TLS connection, the certificate checked."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    # The far edge: the client trusts this certificate as it trusts the system's authorities.
    monkeypatch.setattr(httpx, "create_ssl_context", lambda **kw: ssl.create_default_context(cafile=str(cert)))
    with _TLSFeedServer(cert, key) as srv, make_client(connect_timeout=2, read_timeout=2, max_connections=4) as c:
        url = srv.add("/f.xml", FEED)
        assert url.startswith("https://")
        first = fetch(c, url, max_bytes=10**7, total_timeout=5, allow_private=True)
        assert first.status == 200 and first.content == FEED and first.etag
        second = fetch(c, url, etag=first.etag, last_modified=first.last_modified, max_bytes=10**7,
                       total_timeout=5, allow_private=True)
        assert second.not_modified
        assert srv.connections_total == 1
    # A certificate the client does not trust is refused.
    monkeypatch.undo()
    with _TLSFeedServer(cert, key) as srv, make_client(connect_timeout=2, read_timeout=2, max_connections=4) as c:
        url = srv.add("/f.xml", FEED)
        with pytest.raises(FetchError):
            fetch(c, url, max_bytes=10**7, total_timeout=5, allow_private=True)
