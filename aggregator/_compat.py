"""Work-arounds for the libraries we build on, in one place, each installed explicitly.

Nothing here runs at import time: :func:`install` applies them (idempotently); the
front door (:class:`aggregator.app.Aggregator`) and the stages that depend on one call it.
Each names the upstream limitation it works around; tests/test_compat.py fails when
upstream changes so that it is no longer needed or no longer works.
"""

from __future__ import annotations

import copy
import email.utils
import functools
import inspect
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import feedparser.api
import feedparser.datetimes
import feedparser.mixin
import feedparser.urls
import feedparser.util
import requests

# -- requests: a timeout for every request the translation clients make --------------------
# deep-translator 1.11.4 passes no timeout to requests (it can hang for ever), and DeepL's
# client retries for a minute with its own; neither takes ours. Every request of
# ``requests`` ends in ``Session.send`` (redirects and DeepL calling send() itself
# included), so a wrapper there bounds them and records each outcome per thread.
_local = threading.local()
_original_send = requests.Session.send


def _cap(given: Any, bound: float) -> Any:
    """``given`` (None, seconds, or a (connect, read) pair) capped at ``bound``."""
    if given is None:
        return bound
    if isinstance(given, tuple):
        return tuple(bound if g is None else min(g, bound) for g in given)
    return min(given, bound)


def _send_bounded(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
    # Session.send is where every request of requests ends up (requests.get/post, a
    # Session's request(), DeepL's client calling send() itself), redirects included.
    bound = getattr(_local, "timeout", None)
    if bound is not None:
        kwargs["timeout"] = _cap(kwargs.get("timeout"), bound)
    try:
        resp = _original_send(self, request, **kwargs)
    except requests.RequestException as e:
        _local.last = e
        raise
    _local.last = resp
    return resp


# deep-translator calls ``requests.get``/``requests.post``, each of which makes a Session of
# its own and closes it: a new connection (and a TLS handshake, with a real provider) for
# every text, and 1.5 of the 2.2 ms of CPU a loopback request cost. Inside ``bounded``
# (our translation calls) they go through a Session kept per thread instead, its cookies
# cleared before each call, as a new Session's would be.
_original_request = requests.api.request


def _request_kept(method: str, url: str, **kwargs: Any) -> requests.Response:
    if getattr(_local, "timeout", None) is None:
        return _original_request(method, url, **kwargs)
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    session.cookies.clear()
    return session.request(method=method, url=url, **kwargs)


def install_requests_bound() -> None:
    """Route every ``requests`` call through :func:`_send_bounded`, and module-level calls
    (``requests.post``) made inside :func:`bounded` through a kept session (idempotent)."""
    if not getattr(requests.Session.send, "_aggregator", False):
        _send_bounded._aggregator = True  # type: ignore[attr-defined]
        requests.Session.send = _send_bounded  # type: ignore[method-assign]
    requests.api.request = _request_kept  # type: ignore[assignment]


@contextmanager
def bounded(timeout: float) -> Iterator[None]:
    """Inside this block, every ``requests`` call of this thread waits at most ``timeout``
    to connect and for each read, whatever timeout the client asked for."""
    _local.timeout, _local.last = timeout, None
    try:
        yield
    finally:
        _local.timeout = None


def last_outcome() -> requests.Response | BaseException | None:
    """The outcome of this thread's last request: a response or a requests exception."""
    return getattr(_local, "last", None)




# -- feedparser: no entity declarations ------------------------------------------------------
# feedparser's strict parser is expat through xml.sax with entity expansion on; its
# PREFERRED_XML_PARSERS list is the only hook to choose the SAX driver, so ours
# (defusedxml-based, refusing entity declarations) is put first there.
SAFE_SAX_DRIVER = "aggregator.sources.safexml"


def install_feedparser_safe_xml() -> None:
    if feedparser.api.PREFERRED_XML_PARSERS != [SAFE_SAX_DRIVER]:
        feedparser.api.PREFERRED_XML_PARSERS = [SAFE_SAX_DRIVER]


# -- feedparser: an RFC 822 date without a zone --------------------------------------------
# feedparser 6 drops an RFC 822 date that names the weekday but no zone
# ("Wed, 01 Jan 2025 10:00:00"; without the weekday it reads it), where it reads an Atom
# date without a zone as UTC. RFC 822 reads a missing zone as UT: so does this handler,
# registered through feedparser's own hook (tried before its built-in parsers).
_RFC822_NO_ZONE = re.compile(r"\s*(?:[A-Za-z]{3},?\s+)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{1,2}:\d{2}(?::\d{2})?\s*\Z")


def rfc822_without_zone(text: str) -> time.struct_time | None:
    if not _RFC822_NO_ZONE.match(text):
        return None
    parsed = email.utils.parsedate_tz(text)
    if parsed is None:
        return None
    try:
        return datetime(*parsed[:6], tzinfo=UTC).timetuple()
    except ValueError:  # 31 February
        return None


def install_feedparser_zoneless_dates() -> None:
    if rfc822_without_zone not in feedparser.datetimes._date_handlers:
        feedparser.registerDateHandler(rfc822_without_zone)


# -- feedparser: the two date forms nearly every feed writes -------------------------------
# feedparser tries its date handlers in turn, each parsing in Python: an RSS date (RFC 822)
# is tried as W3C-DTF first, and every date costs 6 µs, 6 % of a feed's parse. The two forms
# nearly every feed writes, RFC 3339 ("2026-12-06T10:00:00Z", "...+09:00") and RFC 822 with
# a numeric zone or GMT ("Sun, 06 Dec 2026 10:00:00 +0900"), are read here first, with one
# regular expression each; anything else, or out of range, goes on to feedparser's own
# handlers. The answer is the one those give (tests/test_compat.py compares them).
# (ASCII digits only: any other goes on to feedparser's handlers, as anything unusual does.)
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d{1,9})?(?:Z|([+-])(\d\d):(\d\d))\Z", re.ASCII)
_RFC822_NUMERIC = re.compile(r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d\d?)"
                             r" (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                             r" (\d{4}) (\d\d):(\d\d):(\d\d) (?:GMT|([+-])(\d\d)(\d\d))\Z", re.ASCII)
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), start=1)}


def common_dates(text: str) -> time.struct_time | None:
    """``text`` as UTC when it is an RFC 3339 or a plain RFC 822 date, else None."""
    m = _RFC3339.match(text)
    if m is not None:
        year, month, day, hour, minute, second = map(int, m.groups()[:6])
        sign, zh, zm = m.group(7, 8, 9)
    else:
        m = _RFC822_NUMERIC.match(text)
        if m is None:
            return None
        day, month, year = int(m.group(1)), _MONTHS[m.group(2)], int(m.group(3))
        hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6))
        sign, zh, zm = m.group(7, 8, 9)
    offset = 0
    if sign is not None:
        if int(zh) > 23 or int(zm) > 59:
            return None
        offset = (int(zh) * 60 + int(zm)) * (60 if sign == "+" else -60)
    if not 1900 <= year <= 2999 or hour > 23 or minute > 59 or second > 59:
        return None  # feedparser's handlers roll 24:00 or :60 over, each its own way
    try:
        when = datetime(year, month, day, hour, minute, second)  # no 30 February: feedparser rolls it over
    except ValueError:
        return None
    return (when - timedelta(seconds=offset) if offset else when).utctimetuple()


def install_feedparser_common_dates() -> None:
    """:func:`common_dates` tried before feedparser's own handlers (idempotent)."""
    if common_dates not in feedparser.datetimes._date_handlers:
        feedparser.registerDateHandler(common_dates)  # it and the zoneless handler read no date alike


# -- feedparser: fast paths through its parser's Python --------------------------------------
# feedparser's FeedParserDict answers every get/[]/in through a chain of special cases
# (legacy key names, 'category', 'updated' falling back to 'published') and turns a
# missing key into a KeyError caught again: its own parser asks ~90 times an entry, 10 %
# of a feed's parse. A key that is none of the special ones and no legacy name gets the
# plain dict's answer, which is what the chain ends in for such a key; the others keep it.
def install_feedparser_fast_paths() -> None:
    cls = feedparser.util.FeedParserDict
    if getattr(cls, "_aggregator_fast", False):
        return
    special = frozenset({"category", "enclosures", "license", "updated", "updated_parsed", *cls.keymap})
    get, getitem, contains = cls.get, cls.__getitem__, cls.__contains__

    def fast_get(self: Any, key: Any, default: Any = None) -> Any:
        return get(self, key, default) if key in special else dict.get(self, key, default)

    def fast_getitem(self: Any, key: Any) -> Any:
        return getitem(self, key) if key in special else dict.__getitem__(self, key)

    def fast_contains(self: Any, key: Any) -> bool:
        return bool(contains(self, key)) if key in special else dict.__contains__(self, key)

    # Writes too: a key that is no legacy name is stored under itself, as the original's
    # look-up in the keymap ends in for it (435,000 writes for 300 feeds).
    keymap, setitem = cls.keymap, cls.__setitem__

    def fast_setitem(self: Any, key: Any, value: Any) -> None:
        if key in keymap:
            setitem(self, key, value)
        else:
            dict.__setitem__(self, key, value)

    cls.get, cls.__getitem__, cls.__contains__ = fast_get, fast_getitem, fast_contains
    cls.__setitem__ = fast_setitem
    cls.has_key = fast_contains
    cls._aggregator_fast = True
    # Its parser deep-copies the current element's content parameters (type, language,
    # base: strings) for every summary and content, through copy's generic reduce and
    # rebuild: 9 % of a parse. A dictionary of such plain values is copied item by item
    # through the same __setitem__ deepcopy's rebuild uses; anything else still deep.
    if not isinstance(feedparser.mixin.copy, _FeedCopy):
        feedparser.mixin.copy = _FeedCopy()
    # And it maps the C1 controls of every text to what windows-1252 means by them
    # (str.translate with a dictionary: a failed look-up per character, 8 % of a parse on
    # Japanese text). The same mapping as a list of code points indexed by code point
    # (a third faster than a string, whose look-up makes a new one-character string for
    # every CJK character): characters past it (outside the BMP) are left as they are, as
    # a dictionary's misses are.
    table = feedparser.mixin._cp1252
    if isinstance(table, dict):
        points = list(range(0x10000))
        for code, to in table.items():
            points[code] = ord(to)
        feedparser.mixin._cp1252 = points
    # Every start tag joins the element's xml:base with the current base (an empty one
    # for most feeds) through urllib: the same few pairs all along a document, 6 % of a
    # parse. Both are pure functions of their strings: remembered.
    feedparser.mixin._urljoin = functools.lru_cache(4096)(feedparser.urls._urljoin)
    feedparser.mixin.make_safe_absolute_uri = functools.lru_cache(4096)(feedparser.urls.make_safe_absolute_uri)
    lean = lean_pop()
    if lean is not None:
        feedparser.mixin._FeedParserMixin.pop = lean


# -- feedparser: pop()'s two passes over every text ------------------------------------------
# At every end tag feedparser's pop() runs the element's text through str.translate with
# the windows-1252 table (per character, on Japanese text) and tries to re-read UTF-8 read
# as latin-1 (an exception on any text beyond latin-1): 10 % of a parse, for texts that
# almost never hold a C1 control, nor anything but ASCII or Japanese. Its own source is
# compiled again with a guard before each (no C1 character: translate changes nothing;
# ASCII only: the round trip gives the same string). If feedparser's source is not
# exactly as expected, pop() is left as it is (tests/test_compat.py then fails).
_POP_GUARDS = (
    ("        if not isinstance(output, bytes):\n            output = output.translate(_cp1252)\n",
     "        if not isinstance(output, bytes) and _aggregator_c1.search(output):\n"
     "            output = output.translate(_cp1252)\n"),
    ("        if self.encoding in ('utf-8', 'utf-8_INVALID_PYTHON_3') and not isinstance(output, bytes):\n",
     "        if self.encoding in ('utf-8', 'utf-8_INVALID_PYTHON_3') and not isinstance(output, bytes) \\\n"
     "                and not output.isascii():\n"),
)


def lean_pop() -> Any:
    """feedparser's ``_FeedParserMixin.pop`` with the guards of ``_POP_GUARDS``, or None
    when its source is not the one they were written for."""
    original = feedparser.mixin._FeedParserMixin.pop
    if getattr(original, "_aggregator", False):
        return original
    try:
        src = inspect.getsource(original)
    except (OSError, TypeError):  # no source shipped
        return None
    for old, new in _POP_GUARDS:
        if src.count(old) != 1:
            return None
        src = src.replace(old, new)
    module = vars(feedparser.mixin)
    module["_aggregator_c1"] = re.compile("[\x80-\x9f]")  # what _cp1252 maps
    made: dict[str, Any] = {}
    # Compiled in feedparser.mixin's own namespace: the same globals as the original.
    exec(compile("class _Lean:\n" + src, "<feedparser.mixin pop, aggregator._compat>", "exec"), module, made)
    lean = made["_Lean"].__dict__["pop"]
    lean._aggregator = True
    return lean


class _FeedCopy:
    """The ``copy`` module as feedparser's mixin sees it (see install_feedparser_fast_paths)."""

    _plain = (str, int, float, bool, type(None))

    @staticmethod
    def deepcopy(x: Any) -> Any:
        cls = feedparser.util.FeedParserDict
        if type(x) is cls and not x.__dict__ and all(type(v) in _FeedCopy._plain for v in dict.values(x)):
            new = cls()
            for k, v in dict.items(x):
                new[k] = v
            return new
        return copy.deepcopy(x)


def install() -> None:
    """Apply every work-around (idempotent). feedparser's fast paths are not among them:
    parsing installs them (:mod:`aggregator.sources.parse`), so that a process that parses
    nothing (a warm cycle, ``status``) does not build their 64 K-entry table."""
    install_requests_bound()
    install_feedparser_safe_xml()
    install_feedparser_zoneless_dates()
