"""The hostile servers and broken feeds a cycle must survive, as data: used by the tests
(tests/test_hostile.py) and by the table in the closing note (bench/fault_table.py).

A :class:`Fault` makes one source's server misbehave; the source must get a clear
error, keep every entry it had, and cost the other sources nothing. A :class:`Quirk` is
a feed that is broken or odd but usable; it must be stored as :attr:`Quirk.expect`
says. The fetch limits the faults are written for are :data:`FETCH` (small, so the
timeouts take seconds, not minutes).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from conftest import DEV, REAL_FEEDS
from loopback import Blackhole, FeedServer

VICTIM = "/victim.xml"
VICTIM_FEED = DEV / "feeds" / "defensenews.xml"
FETCH = "timeout: 3s, connect_timeout: 1s, read_timeout: 1.5s, max_bytes: 1MB, allow_private_networks: true"
TOTAL_TIMEOUT = 3.0

_PAGE = b"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Defense News</title>
<link rel="alternate" type="application/rss+xml" title="All news" href="/arc/outboundfeeds/rss/">
<link rel="alternate" type="application/atom+xml" title="Air" href="https://feeds.example.com/air.atom">
</head><body><h1>Defense News</h1></body></html>"""


def _closed_port_url(path: str) -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: the connection is refused
    return f"http://127.0.0.1:{port}{path}"


def _redirect_chain(srv: FeedServer, path: str) -> None:
    for i in range(7):
        srv.fault(path if i == 0 else f"{path}.hop{i}", "redirect", to=f"{path}.hop{i + 1}", status=302)


@dataclass(frozen=True)
class Fault:
    name: str
    label: str  # what the fault is, for the table
    error: str  # a regex the source's error matches
    # makes the feed server's path misbehave
    serve: Callable[[FeedServer, str], None] = lambda srv, path: None
    # where the source points during the fault; None: that path on the feed server
    url: Callable[[FeedServer, Blackhole, str], str] | None = None

    def victim_url(self, srv: FeedServer, hole: Blackhole, path: str = VICTIM) -> str:
        return self.url(srv, hole, path) if self.url else srv.url(path)


FAULTS: list[Fault] = [
    Fault("connect-timeout", "host never accepts the connection", r"^could not connect within 1 s \(connect timeout\)$",
          url=lambda srv, hole, p: hole.url(p)),
    Fault("refused", "connection refused", r"^could not connect: .*[Cc]onnection refused",
          url=lambda srv, hole, p: _closed_port_url(p)),
    Fault("read-timeout", "accepts, never answers", r"^the server sent nothing for 1.5 s \(read timeout\)$",
          serve=lambda srv, p: srv.fault(p, "hang")),
    Fault("drip-body", "drips the body, one byte a second", r"^took longer than the 3 s total limit$",
          serve=lambda srv, p: srv.fault(p, "drip", interval=1.0)),
    Fault("drip-headers", "drips header lines, one a second", r"^took longer than the 3 s total limit$",
          serve=lambda srv, p: srv.fault(p, "slow_headers", interval=1.0, count=1000)),
    Fault("declared-too-big", "Content-Length of 2 MB (cap 1 MB)",
          r"^body of 2,\d{3},\d{3} bytes is over the 1,000,000-byte cap$",
          serve=lambda srv, p: srv.add(p, os.urandom(2_000_000))),
    Fault("endless", "endless body, no Content-Length", r"^body is over the 1,000,000-byte cap",
          serve=lambda srv, p: srv.fault(p, "huge")),
    Fault("gzip-bomb", "gzip bomb: 50 KB inflating to 50 MB",
          r"^body is over the 1,000,000-byte cap \(after decompression\)$",
          serve=lambda srv, p: srv.fault(p, "gzip_bomb")),
    Fault("redirect-loop", "redirects to itself", r"^redirect loop: http://127\.0\.0\.1:\d+/\S+ -> ",
          serve=lambda srv, p: srv.fault(p, "redirect_loop")),
    Fault("redirect-chain", "7 redirects in a row", r"^more than 5 redirects$", serve=_redirect_chain),
    Fault("redirect-file", "redirects to file:///etc/passwd",
          r"^refusing to follow a redirect to a non-HTTP URL: file:",
          serve=lambda srv, p: srv.fault(p, "redirect", to="file:///etc/passwd", status=301)),
    Fault("html", "an HTML page instead of the feed",
          r"^got an HTML page, not a feed\. It advertises these feeds: "
          r"http://127\.0\.0\.1:\d+/arc/outboundfeeds/rss/, https://feeds\.example\.com/air\.atom$",
          serve=lambda srv, p: srv.fault(p, "html", body=_PAGE)),
    Fault("truncated-xml", "truncated XML (real Reuters feed)", r"^malformed feed with no entries: ",
          serve=lambda srv, p: srv.add(p, (REAL_FEEDS / "reuters-invalid-feedrs.xml").read_bytes())),
    Fault("zero-bytes", "0-byte body (real file)", r"^empty document \(0 bytes of content\)$",
          serve=lambda srv, p: srv.add(p, (REAL_FEEDS / "empty-newspal-0bytes.xml").read_bytes())),
    Fault("cut", "connection closed mid-body", r"^the connection broke off: ",
          serve=lambda srv, p: srv.fault(p, "truncate")),
    Fault("reset", "TCP reset mid-body", r"^the connection broke off",
          serve=lambda srv, p: srv.fault(p, "reset")),
    Fault("http-500", "HTTP 500", r"^HTTP 500 Internal Server Error$",
          serve=lambda srv, p: srv.fault(p, "status", status=500)),
    Fault("http-429", "HTTP 429 with Retry-After: 3600", r"^HTTP 429 Too Many Requests$",
          serve=lambda srv, p: srv.fault(p, "status", status=429, headers={"Retry-After": "3600"})),
    Fault("http-410", "HTTP 410 Gone", r"^HTTP 410 Gone$",
          serve=lambda srv, p: srv.fault(p, "status", status=410)),
]


def _rss(items: str, encoding: str = "UTF-8") -> bytes:
    return (f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>Quirks</title>'
            f"<link>https://quirks.example/</link><description>d</description>{items}</channel></rss>").encode()


_BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
         + b"".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
                    for i in range(1, 10))
         + b']><rss version="2.0"><channel><title>t</title><link>https://quirks.example/</link>'
           b"<item><guid>bomb</guid><title>&lol9;</title></item>"
           b"<item><guid>ok</guid><title>an ordinary entry</title></item></channel></rss>")


@dataclass(frozen=True)
class Quirk:
    name: str
    label: str
    body: bytes
    entries: int  # how many entries the store must hold from it
    warning: str | None  # a regex the stored warning matches; None: no warning
    content_type: str = "application/rss+xml; charset=utf-8"


QUIRKS: list[Quirk] = [
    Quirk("wrong-charset", "windows-1251 feed served as charset=utf-8 (real)",
          (REAL_FEEDS / "oren-windows1251-nodefeedparser.xml").read_bytes(), 10,
          r"wrong declared charset: document declared as utf-8, but parsed as windows-1251"),
    Quirk("no-declaration", "Latin-1 bytes, no XML declaration (real)",
          (REAL_FEEDS / "uolnoticias-nodecl-rssparser.rss.xml").read_bytes(), 15, r"wrong declared charset",
          content_type="text/xml"),
    Quirk("duplicate-guids", "3 items, 2 with the same guid",
          _rss("<item><guid>a</guid><title>first</title></item><item><guid>a</guid><title>again</title></item>"
               "<item><guid>b</guid><title>other</title></item>"), 2,
          r"^1 entry repeats an id already in this feed; kept the first$"),
    Quirk("no-ids", "items with no guid, link or date",
          _rss("<item><title>only a title</title></item><item><description>only a text</description></item>"),
          2, None),
    Quirk("future-date", "pubDate in 2101",
          _rss("<item><guid>f</guid><title>from the future</title>"
               "<pubDate>Sat, 01 Jan 2101 00:00:00 GMT</pubDate></item>"), 1, None),
    Quirk("huge-title", "a 100 KB title",
          _rss(f"<item><guid>h</guid><title>{'x' * 100_000}</title></item>"), 1, None),
    Quirk("entity-bomb", "billion laughs (10^9 expansions)", _BOMB, 2,
          r"declares the XML entity .lol., refused \(entity-bomb defence\)"),
    Quirk("script", "<script> and on* attributes in title and content",
          _rss("<item><guid>s</guid><title>Safe &lt;script&gt;alert(1)&lt;/script&gt; title</title>"
               "<link>https://quirks.example/s</link>"
               "<description>&lt;p onclick=\"alert(2)\"&gt;text&lt;img src=\"https://quirks.example/i.png\" "
               "onerror=\"alert(3)\"&gt;&lt;script&gt;alert(4)&lt;/script&gt;&lt;/p&gt;"
               "&lt;a href=\"javascript:alert(5)\"&gt;link&lt;/a&gt;</description></item>"), 1, None),
]
