"""The library work-arounds in aggregator/_compat.py: each still needed, each still working.

A failure here means upstream changed: re-read the work-around's comment and drop or
adapt it."""

from __future__ import annotations

import http.server
import inspect
import threading
import time

import feedparser.api
import pytest
import requests

from aggregator import _compat


def test_nothing_is_patched_at_import() -> None:
    import subprocess
    import sys

    code = ("import requests, feedparser.api; import aggregator.cli, aggregator.running.cycle, "
            "aggregator.translating.chain, aggregator.sources.parse;"
            "print(getattr(requests.Session.send, '_aggregator', False), feedparser.api.PREFERRED_XML_PARSERS,"
            " requests.api.request.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False ") and "aggregator" not in out and out.split()[-1] == "requests.api"


def test_deep_translator_still_sets_no_timeout() -> None:
    # deep-translator 1.11.4 calls requests without a timeout: the reason for the bound.
    import deep_translator.google

    src = inspect.getsource(deep_translator.google)
    assert "requests.get(" in src and "timeout" not in src


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(2)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_requests_bound_caps_every_call() -> None:
    _compat.install_requests_bound()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        with _compat.bounded(0.3), pytest.raises(requests.ReadTimeout):
            requests.get(f"http://127.0.0.1:{srv.server_address[1]}/")  # no timeout given
        assert time.monotonic() - t0 < 1.5
        assert isinstance(_compat.last_outcome(), requests.ReadTimeout)
    finally:
        srv.shutdown()
        srv.server_close()


def test_feedparser_takes_our_sax_driver() -> None:
    _compat.install_feedparser_safe_xml()
    assert feedparser.api.PREFERRED_XML_PARSERS == [_compat.SAFE_SAX_DRIVER]
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]>'
            b'<rss version="2.0"><channel><title>&a;</title></channel></rss>')
    d = feedparser.parse(bomb)
    assert d.bozo and d.feed.get("title", "") != "aaaaaaaaaa"


def test_feedparser_still_drops_an_rfc822_date_with_a_weekday_and_no_zone() -> None:
    import feedparser.datetimes

    date = "Wed, 01 Jan 2025 10:00:00"
    handlers = [h for h in feedparser.datetimes._date_handlers if h is not _compat.rfc822_without_zone]
    assert all(h(date) is None for h in handlers)  # upstream reads it now: drop the work-around
    _compat.install_feedparser_zoneless_dates()
    _compat.install_feedparser_zoneless_dates()  # idempotent
    assert feedparser.datetimes._date_handlers.count(_compat.rfc822_without_zone) == 1
    assert feedparser.datetimes._parse_date(date)[:6] == (2025, 1, 1, 10, 0, 0)
    assert feedparser.datetimes._parse_date("Wed, 01 Jan 2025 10:00:00 +0900")[:4] == (2025, 1, 1, 1)
    assert _compat.rfc822_without_zone("Mon, 31 Feb 2025 10:00:00") is None


def test_feedparser_dicts_answer_as_before_once_plain_keys_are_fast() -> None:
    import warnings

    import feedparser.util

    _compat.install_feedparser_fast_paths()
    _compat.install_feedparser_fast_paths()  # idempotent
    d = feedparser.util.FeedParserDict()
    d["title"] = "T"
    d["channel"] = "C"  # a legacy name, stored under its new one
    d["published"] = "P"
    d["tags"] = [feedparser.util.FeedParserDict(term="news")]
    assert d.get("title") == "T" and d["title"] == "T" and "title" in d and d.has_key("title")
    assert d.get("missing") is None and d.get("missing", 5) == 5 and "missing" not in d
    assert dict.__getitem__(d, "feed") == "C" and d["channel"] == "C" and d.get("channel") == "C"
    assert d["category"] == "news" and "category" in d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert d.get("updated") == "P"  # feedparser's fallback to 'published' is kept
    assert "updated" not in d
    try:
        d["missing"]
    except KeyError:
        pass
    else:
        raise AssertionError("a missing key must raise KeyError")
    assert d.title == "T"  # attribute reads go through the same path


def test_feedparser_copies_of_content_parameters_are_equal_and_independent() -> None:
    import copy

    import feedparser.mixin
    import feedparser.util

    _compat.install_feedparser_fast_paths()
    params = feedparser.util.FeedParserDict(type="text/html", language="en", base="https://x.example/")
    copied = feedparser.mixin.copy.deepcopy(params)
    assert copied == copy.deepcopy(params) and type(copied) is feedparser.util.FeedParserDict
    copied["value"] = "v"
    assert "value" not in params
    nested = feedparser.util.FeedParserDict(links=[feedparser.util.FeedParserDict(href="h")])
    deep = feedparser.mixin.copy.deepcopy(nested)  # not plain values: copy's own deep copy
    assert deep == nested and deep["links"][0] is not nested["links"][0]


def test_feedparser_maps_windows_1252_controls_as_before() -> None:
    import feedparser.mixin

    _compat.install_feedparser_fast_paths()
    text = "\x80 \x93quoted\x94 \x81 日本語 😀 plain"
    assert text.translate(feedparser.mixin._cp1252) == "€ \u201cquoted\u201d \x81 日本語 😀 plain"


class _Cookies(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    seen: list[tuple[int, str | None]] = []

    def do_GET(self) -> None:
        _Cookies.seen.append((self.client_address[1], self.headers.get("Cookie")))
        self.send_response(200)
        self.send_header("Set-Cookie", "visit=1; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def test_requests_calls_inside_bounded_keep_their_connection_and_no_cookies() -> None:
    """deep-translator's ``requests.get``/``post`` made a Session per call: a connection (a
    TLS handshake) per text. Inside ``bounded`` they share one kept per thread; cookies
    are cleared before each call, as a new Session's would be. Outside, nothing changes."""
    _compat.install_requests_bound()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Cookies)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    _Cookies.seen = []
    try:
        for _ in range(3):
            with _compat.bounded(5):
                assert requests.get(url).text == "ok"
        assert len({port for port, _ in _Cookies.seen}) == 1, "one kept-alive connection"
        assert [cookie for _, cookie in _Cookies.seen] == [None, None, None]
        requests.get(url)  # outside: a session of its own
        assert _Cookies.seen[-1][0] != _Cookies.seen[0][0]
    finally:
        srv.shutdown()
        srv.server_close()


def test_feedparser_pop_takes_our_guards_and_gives_the_same_texts() -> None:
    """pop() is feedparser's own source with two guards (see _POP_GUARDS): if this fails,
    feedparser's pop changed, and the guards must be written again or dropped."""
    import feedparser.mixin

    _compat.install_feedparser_fast_paths()
    assert getattr(feedparser.mixin._FeedParserMixin.pop, "_aggregator", False)
    assert _compat.lean_pop() is feedparser.mixin._FeedParserMixin.pop  # idempotent
    # What the guarded steps do must still be done where they change the text: a C1
    # control mapped as windows-1252, UTF-8 that was read as latin-1 read again.
    doc = ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><item>"
           "<title>&#150; dash \u65e5\u672c</title><description>&acirc;&#128;&brvbar;</description>"
           "<author>plain ascii</author></item></channel></rss>")
    entry = feedparser.parse(doc.replace("&acirc;", "\u00e2").encode()).entries[0]
    assert entry.title == "\u2013 dash \u65e5\u672c"
    assert entry.description == "\u2026" and entry.author == "plain ascii"


def test_feedparser_url_joins_are_remembered_and_answer_as_before() -> None:
    import feedparser.mixin
    import feedparser.urls

    _compat.install_feedparser_fast_paths()
    for base, rel in (("", ""), ("http://a.example/x/", "../y"), ("http://a.example/", "javascript:alert(1)"),
                      ("http://a.example/", None)):
        assert feedparser.mixin.make_safe_absolute_uri(base, rel) == feedparser.urls.make_safe_absolute_uri(base, rel)
        assert feedparser.mixin._urljoin(base, rel or "") == feedparser.urls._urljoin(base, rel or "")
    assert feedparser.mixin._urljoin.cache_info().hits > 0 or feedparser.mixin._urljoin("", "") == ""


def test_common_dates_read_as_feedparser_reads_them() -> None:
    """The fast reading of RFC 3339 and RFC 822 dates gives what feedparser's own handlers
    give, and leaves to them (None) whatever it is not sure of."""
    import calendar
    import random

    import feedparser.datetimes

    theirs = [h for h in feedparser.datetimes._date_handlers if h is not _compat.common_dates]

    def feedparsers(text: str) -> object:
        for h in theirs:
            try:
                got = h(text)
            except (KeyError, OverflowError, ValueError, AttributeError):
                continue
            if got and len(got) == 9:
                return tuple(got)
        return None

    rng = random.Random(7)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    texts = ["2026-12-06T10:00:00Z", "2026-12-06T10:00:00.5+09:00", "2026-12-06T24:00:00Z", "2026-02-30T10:00:00Z",
             "2026-12-06T10:00:60Z", "2026-12-06T10:00:00+24:00", "Sun, 06 Dec 2026 10:00:00 GMT",
             "6 Dec 2026 10:00:00 -0330", "Mon, 06 Dec 2026 10:00:00 +0900", "Sun, 06 Dec 2026 10:00:00 EST",
             "Sun, 31 Feb 2026 10:00:00 +0000", "2026-12-06 10:00:00Z", "1899-12-31T23:59:59Z", "garbage"]
    for _ in range(4000):
        t = rng.randrange(-2_500_000_000, 32_000_000_000)
        y, mo, d, h, mi, s = time.gmtime(t)[:6]
        sign = rng.choice("+-")
        zh, zm = rng.choice([0, 0, 1, 5, 9, 12, 14, 23, 25]), rng.choice([0, 0, 30, 45, 59, 60])
        frac = rng.choice(["", ".1", ".123456"])
        zone = rng.choice(["Z", f"{sign}{zh:02}:{zm:02}"])
        texts.append(f"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}")
        wd = rng.choice([days[calendar.weekday(y, mo, d)] + ", ", "", "Fri, "]) if y >= 1 else ""
        texts.append(f"{wd}{d:0{rng.choice([1, 2])}} {months[mo - 1]} {y:04} {h:02}:{mi:02}:{s:02} "
                     f"{rng.choice(['GMT', f'{sign}{zh:02}{zm:02}'])}")
    fast = 0
    for text in texts:
        mine = _compat.common_dates(text)
        if mine is not None:
            fast += 1
            assert tuple(mine) == feedparsers(text), text
    assert fast > 6000  # nearly all of them: the fast path is taken
    _compat.install_feedparser_common_dates()
    _compat.install_feedparser_common_dates()  # idempotent
    assert feedparser.datetimes._date_handlers.count(_compat.common_dates) == 1
    assert feedparser.datetimes._parse_date("Sun, 06 Dec 2026 10:00:00 +0900")[:4] == (2026, 12, 6, 1)
