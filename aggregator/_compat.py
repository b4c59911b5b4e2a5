"""Work-arounds for the libraries we build on, in one place, each installed explicitly.

Nothing here runs at import time: :func:`install` applies them (idempotently); the
front door (:class:`aggregator.app.Aggregator`) and the stages that depend on one call it.
Each names the upstream limitation it works around; tests/test_compat.py fails when
upstream changes so that it is no longer needed or no longer works.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import feedparser
import feedparser.api
import feedparser.datetimes
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


def install_requests_bound() -> None:
    """Route every ``requests`` call through :func:`_send_bounded` (idempotent)."""
    if not getattr(requests.Session.send, "_aggregator", False):
        _send_bounded._aggregator = True  # type: ignore[attr-defined]
        requests.Session.send = _send_bounded  # type: ignore[method-assign]


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


def install() -> None:
    """Apply every work-around (idempotent)."""
    install_requests_bound()
    install_feedparser_safe_xml()
    install_feedparser_zoneless_dates()
