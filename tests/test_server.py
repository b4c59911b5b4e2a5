"""``aggregator serve``: a real server on 127.0.0.1 in a thread, asked over HTTP.

Paths that httpx would normalise (``..``, backslashes, encoded bytes) go through a raw
socket so that the server sees exactly the bytes an attacker would send.
"""

from __future__ import annotations

import gzip
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from aggregator.exceptions import PublishError
from aggregator.publishing.serve import NOTHING_PUBLISHED, _accepts_gzip, _segments, make_server, serve_output

SECRET = b"TOP-SECRET-do-not-serve-0xC0FFEE"
FILES: dict[str, bytes] = {
    "feed.atom": b'<?xml version="1.0" encoding="utf-8"?>\n<?xml-stylesheet type="text/xsl" '
                 b'href="feed.atom.xsl"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
                 + b"<title>t</title>" * 50 + b"</feed>\n",
    "feed.rss": b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
                + b"<title>t</title>" * 50 + b"</channel></rss>\n",
    "feed.json": b'{"version": "https://jsonfeed.org/version/1.1", "items": []}\n',
    "index.html": b"<!DOCTYPE html>\n<html><head><title>Feeds</title></head><body>"
                  + b"<p>hello</p>" * 50 + b"</body></html>\n",
    "feed.atom.xsl": b'<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" '
                     b'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>\n',
    "feed.rss.xsl": b'<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" '
                    b'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>\n',
    "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(64),
    "style.css": b"body { color: black; }\n",
    "robots.txt": b"User-agent: *\n",
    "data.bin": b"\x00\x01\x02",
}
TYPES = {
    "feed.atom": "application/atom+xml; charset=utf-8",
    "feed.rss": "application/rss+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
    "feed.atom.xsl": "text/xsl; charset=utf-8",
    "feed.rss.xsl": "text/xsl; charset=utf-8",
    "logo.png": "image/png",
    "style.css": "text/css; charset=utf-8",
    "robots.txt": "text/plain; charset=utf-8",
    "data.bin": "application/octet-stream",
}
NO_GZIP = {"Accept-Encoding": "identity"}


@dataclass
class Site:
    url: str
    host: str
    port: int
    out: Path
    secret: Path


def _start(out: Path) -> tuple[ThreadingHTTPServer, threading.Thread, str, int]:
    server = make_server(out, "127.0.0.1", 0)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread, str(host), int(port)


def _stop(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=2)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadingHTTPServer, str, int]]:
    # One server for the module (a shutdown costs a poll interval); each test points it
    # at its own fresh output directory.
    server, thread, host, port = _start(tmp_path_factory.mktemp("unused"))
    yield server, host, port
    _stop(server, thread)


@pytest.fixture
def site(tmp_path: Path, running: tuple[ThreadingHTTPServer, str, int]) -> Site:
    server, host, port = running
    out = tmp_path / "out"
    out.mkdir()
    for name, data in FILES.items():
        (out / name).write_bytes(data)
    # The secret sits next to output/: every traversal below aims at it, directly or
    # through a symlink planted inside output/.
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    (out / "leak.txt").symlink_to(secret)
    (out / "leakdir").symlink_to(tmp_path)
    (out / ".hidden").write_bytes(SECRET)
    (out / ".feed.atom.x1y2.tmp").write_bytes(SECRET)  # the publisher's temp file
    (out / "sub").mkdir()
    (out / "sub" / "inner.txt").write_bytes(b"inner\n")
    server.output_dir = out  # type: ignore[attr-defined]
    return Site(f"http://{host}:{port}", host, port, out, secret)


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=5) as c:
        yield c


def raw_request(site: Site, target: str | bytes, method: str = "GET",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send ``target`` byte for byte; return (status, headers, body)."""
    target_b = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode() + b" " + target_b + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close"]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
    with socket.create_connection((site.host, site.port), timeout=5) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), parsed, body


# ------------------------------------------------------------------ content types and headers

@pytest.mark.parametrize("name", list(TYPES))
def test_content_types(client: httpx.Client, name: str) -> None:
    r = client.get(f"/{name}", headers=NO_GZIP)
    assert r.status_code == 200
    assert r.headers["content-type"] == TYPES[name]
    assert r.content == FILES[name]
    assert r.headers["content-length"] == str(len(FILES[name]))


def test_root_serves_index_and_query_is_ignored(client: httpx.Client) -> None:
    for path in ("/", "/?utm_source=x", "/index.html?a=b#frag"):
        r = client.get(path, headers=NO_GZIP)
        assert r.status_code == 200
        assert r.content == FILES["index.html"]
        assert r.headers["content-type"] == "text/html; charset=utf-8"


def test_security_and_cache_headers(client: httpx.Client) -> None:
    for r in (client.get("/feed.atom"), client.get("/missing")):
        assert r.headers["x-content-type-options"] == "nosniff"
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp
        assert "img-src https:" in csp and "'unsafe-eval'" not in csp
    ok = client.get("/feed.atom")
    assert ok.headers["cache-control"] == "public, max-age=300"
    assert ok.headers["last-modified"]
    assert ok.headers["etag"].startswith('"') and not ok.headers["etag"].startswith("W/")
    assert "Python" not in ok.headers["server"]


def test_feed_goes_to_browsers_as_xml(client: httpx.Client) -> None:
    # Chromium shows application/atom+xml as plain text, never applying the XSL.
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for name in ("feed.atom", "feed.rss"):
        r = client.get(f"/{name}", headers=browser)
        assert r.headers["content-type"] == "application/xml; charset=utf-8"
        assert "Accept" in [v.strip() for v in r.headers["vary"].split(",")]
        reader = client.get(f"/{name}", headers={"Accept": "application/atom+xml, */*;q=0.5"})
        assert reader.headers["content-type"] == TYPES[name]
        assert reader.headers["etag"] != r.headers["etag"]
        assert r.content == reader.content == FILES[name]


# ------------------------------------------------------------------ conditional requests

def test_if_none_match_gives_304(client: httpx.Client) -> None:
    first = client.get("/feed.atom", headers=NO_GZIP)
    etag = first.headers["etag"]
    r = client.get("/feed.atom", headers={**NO_GZIP, "If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"] == "public, max-age=300"
    # A list, a weak form and * match too; another tag does not.
    assert client.get("/feed.atom", headers={**NO_GZIP, "If-None-Match": f'"x", W/{etag}'}).status_code == 304
    assert client.get("/feed.atom", headers={**NO_GZIP, "If-None-Match": "*"}).status_code == 304
    assert client.get("/feed.atom", headers={**NO_GZIP, "If-None-Match": '"other"'}).status_code == 200


def test_if_modified_since_gives_304(client: httpx.Client, site: Site) -> None:
    mtime = (site.out / "feed.rss").stat().st_mtime
    r = client.get("/feed.rss", headers={"If-Modified-Since": formatdate(mtime + 60, usegmt=True)})
    assert r.status_code == 304 and r.content == b""
    last_modified = client.get("/feed.rss").headers["last-modified"]
    assert client.get("/feed.rss", headers={"If-Modified-Since": last_modified}).status_code == 304
    assert client.get("/feed.rss", headers={"If-Modified-Since": formatdate(mtime - 3600, usegmt=True)}
                      ).status_code == 200
    assert client.get("/feed.rss", headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
    assert client.get("/feed.rss", headers={"If-Modified-Since": last_modified,
                                            "If-None-Match": '"stale"'}).status_code == 200


def test_head_has_headers_and_no_body(site: Site) -> None:
    status, headers, body = raw_request(site, "/feed.json", "HEAD", NO_GZIP)
    assert status == 200
    assert body == b""
    assert headers["content-type"] == "application/feed+json; charset=utf-8"
    assert headers["content-length"] == str(len(FILES["feed.json"]))
    assert headers["etag"] and headers["last-modified"]


# ------------------------------------------------------------------ gzip

def test_gzip_when_accepted(client: httpx.Client, site: Site) -> None:
    r = client.get("/feed.atom", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["vary"]
    assert r.content == FILES["feed.atom"]  # httpx decoded it
    assert r.headers["etag"].endswith('-gzip"')
    plain = client.get("/feed.atom", headers=NO_GZIP)
    assert "content-encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["vary"]
    assert plain.headers["etag"] != r.headers["etag"]
    # The bytes on the wire really are gzip, and Content-Length counts them.
    status, headers, body = raw_request(site, "/feed.atom", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and gzip.decompress(body) == FILES["feed.atom"]
    assert int(headers["content-length"]) == len(body) < len(FILES["feed.atom"])
    # The gzip variant validates against its own ETag only.
    assert client.get("/feed.atom", headers={"Accept-Encoding": "gzip",
                                             "If-None-Match": r.headers["etag"]}).status_code == 304
    assert client.get("/feed.atom", headers={"Accept-Encoding": "gzip",
                                             "If-None-Match": plain.headers["etag"]}).status_code == 200


def test_no_gzip_for_binary_or_refused(client: httpx.Client) -> None:
    png = client.get("/logo.png", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in png.headers and "vary" not in png.headers
    refused = client.get("/feed.json", headers={"Accept-Encoding": "gzip;q=0, *"})
    assert "content-encoding" not in refused.headers


def test_accepts_gzip_parsing() -> None:
    assert _accepts_gzip("gzip, deflate, br")
    assert _accepts_gzip("br;q=1.0, gzip;q=0.5")
    assert _accepts_gzip("*")
    assert not _accepts_gzip("gzip;q=0")
    assert not _accepts_gzip("*, gzip;q=0")
    assert not _accepts_gzip("identity")
    assert not _accepts_gzip(None)


# ------------------------------------------------------------------ path safety

TRAVERSALS: list[str | bytes] = [
    "/../secret.txt",
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/secret.txt",
    "/%252e%252e/secret.txt",
    "/%252e%252e/",
    "/..%2fsecret.txt",
    "/..%2f..%2fetc/passwd",
    "/..%2Fsecret.txt",
    "/%2fetc%2fpasswd",
    "//etc/passwd",
    "/feed.atom/../../secret.txt",
    "/feed.atom/%2e%2e/%2e%2e/secret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "/feed.atom%00.html",
    b"/feed.atom\x00",
    "/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dot
    "/leak.txt",                  # symlink inside output/ to the secret
    "/leakdir/secret.txt",        # symlinked directory pointing out
    "/./leak.txt",
    "/sub/../../secret.txt",
    str(Path("/etc/passwd")),
    "http://127.0.0.1/../secret.txt",
    "etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=repr)
def test_traversal_never_reaches_the_secret(site: Site, target: str | bytes) -> None:
    status, _, body = raw_request(site, target)
    assert status in (400, 404)
    assert SECRET not in body
    assert b"root:" not in body


def test_traversal_through_httpx_too(client: httpx.Client) -> None:
    for path in ("/leak.txt", "/leakdir/secret.txt", "/.hidden"):
        r = client.get(path)
        assert r.status_code == 404 and SECRET not in r.content


def test_symlink_inside_output_is_served(site: Site, client: httpx.Client) -> None:
    (site.out / "latest.atom").symlink_to(site.out / "feed.atom")
    r = client.get("/latest.atom", headers=NO_GZIP)
    assert r.status_code == 200 and r.content == FILES["feed.atom"]


def test_dotfiles_and_directories_are_404(client: httpx.Client, site: Site) -> None:
    (site.out / "dot.atom").symlink_to(site.out / ".hidden")
    for path in ("/.hidden", "/.feed.atom.x1y2.tmp", "/%2ehidden", "/dot.atom",
                 "/sub", "/sub/", "/leakdir", "/leakdir/", "/missing.atom"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert SECRET not in r.content


def test_segments() -> None:
    assert _segments("/") == []
    assert _segments("/feed.atom?x=1") == ["feed.atom"]
    assert _segments("/a%20b.txt") == ["a b.txt"]
    for bad in ("/..", "/.", "/a//b", "/%2e%2e", "/a%2fb", "/%252e", "/a\\b", "/a%00", "x", "/a/", "/%ff"):
        assert _segments(bad) is None, bad


# ------------------------------------------------------------------ methods

@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_other_methods_get_405(site: Site, method: str) -> None:
    status, headers, body = raw_request(site, "/feed.atom", method)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert FILES["feed.atom"] not in body


def test_post_with_body_via_httpx(client: httpx.Client) -> None:
    r = client.post("/feed.atom", content=b"x" * 1000)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert client.get("/feed.atom").status_code == 200  # the client recovers


# ------------------------------------------------------------------ publishing and lifecycle

def test_replaced_file_is_served_fresh(client: httpx.Client, site: Site) -> None:
    first = client.get("/feed.json", headers=NO_GZIP)
    new = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1"}]}\n'
    tmp = site.out / ".feed.json.tmp"
    tmp.write_bytes(new)
    os.replace(tmp, site.out / "feed.json")  # as the publisher does
    second = client.get("/feed.json", headers={**NO_GZIP, "If-None-Match": first.headers["etag"]})
    assert second.status_code == 200
    assert second.content == new
    assert second.headers["etag"] != first.headers["etag"]


def test_missing_output_dir_then_published(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "not-yet"
    with caplog.at_level(logging.WARNING, logger="aggregator.server"):
        server, thread, host, port = _start(out)
    assert any(r.levelno == logging.WARNING and "not-yet" in r.getMessage() for r in caplog.records)
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=5) as c:
            for path in ("/", "/feed.atom"):
                r = c.get(path)
                assert r.status_code == 404
                assert "nothing published yet: run `aggregator run --once`" in r.text
                assert r.text == NOTHING_PUBLISHED
            out.mkdir()
            (out / "index.html").write_bytes(FILES["index.html"])
            assert c.get("/").status_code == 200  # no restart needed
    finally:
        _stop(server, thread)


def test_port_in_use_is_a_publish_error(site: Site) -> None:
    with pytest.raises(PublishError, match=rf"cannot listen on 127\.0\.0\.1:{site.port}: address already in use"):
        make_server(site.out, "127.0.0.1", site.port)


def test_one_log_line_per_request(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="aggregator.server"):
        client.get("/feed.rss")
        client.get("/nope")
        deadline = time.monotonic() + 2
        while len([r for r in caplog.records if "HTTP/1.1" in r.getMessage()]) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the handler thread logs after it has answered
    lines = [r for r in caplog.records if r.name == "aggregator.server" and "HTTP/1.1" in r.getMessage()]
    assert len(lines) == 2 and all(r.levelno == logging.INFO for r in lines)
    assert '"GET /feed.rss HTTP/1.1" 200' in lines[0].getMessage()
    assert '"GET /nope HTTP/1.1" 404' in lines[1].getMessage()


def test_serve_output_stops_on_signal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """serve_output in the main thread, as the CLI runs it, returns on SIGINT/SIGTERM."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_bytes(FILES["index.html"])
    fetched: list[int] = []

    def poke() -> None:
        deadline = time.monotonic() + 3
        url = None
        while url is None and time.monotonic() < deadline:
            url = next((r.getMessage().split(" at ")[1].split()[0] for r in list(caplog.records)
                        if r.getMessage().startswith("serving ")), None)
            time.sleep(0.01)
        if url:
            fetched.append(httpx.get(url, timeout=2).status_code)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with caplog.at_level(logging.INFO, logger="aggregator.server"):
        threading.Thread(target=poke, daemon=True).start()
        started = time.monotonic()
        serve_output(out, host="127.0.0.1", port=0)
    assert fetched == [200]
    assert time.monotonic() - started < 3
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_serve_output_stop_event(tmp_path: Path) -> None:
    stop = threading.Event()
    done = threading.Event()

    def run() -> None:
        serve_output(tmp_path / "absent", host="127.0.0.1", port=0, stop=stop)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    time.sleep(0.05)
    stop.set()
    assert done.wait(3)
