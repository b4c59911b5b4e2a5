"""Which entries need their own page fetched for their text, and what a fetch outcome
means for the entry's page state. Pure: plain data in, intents out.

``full_text: auto`` (the default) fetches a page on the feed's own site when the feed's
text is an excerpt: no full content (``content:encoded``, Atom ``content``), and a
summary that is missing, very short, or ends the way excerpts end (an ellipsis, ``[…]``,
続きを読む, "Continue reading", "Read more"). ``always`` fetches every entry's page, ``never`` none. Each
page is fetched once per version of its entry (the entry's hash): a page is asked for
again only when the feed changes the entry, and then conditionally.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from aggregator.html_text import strip_tags
from aggregator.models import Entry
from aggregator.sources.fetch import next_fetch_after_failure
from aggregator.urls import host_of, is_http_url, site_of, site_of_host

Mode = Literal["auto", "always", "never"]
PageStatus = Literal["not needed", "waiting", "done", "retry", "given up"]

# A summary shorter than this (plain text) says too little to be the post: a title
# repeated, "New post!", a date.
SHORT_SUMMARY = 40
# Tries of a failing page before it is given up (its entry keeps the feed's text);
# with backoff from the source's interval this spans about a day and a half at 30m.
MAX_ATTEMPTS = 8
# Pages that are redirects to an article in JavaScript, not the article: fetching them
# brings no text (Google News' per-site feeds link news.google.com/rss/articles/…).
REDIRECTOR_HOSTS = frozenset({"news.google.com"})

_EXCERPT_END = re.compile(
    r"(?:…|\.\.\.|\[\s*(?:…|\.\.\.|&#8230;|&hellip;)\s*]|続きを読む|続きを見る|もっと読む|"
    r"continue reading|read more|read the full (?:story|article|post))"
    r"[\s\]»›>).。:：→-]*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PageState:
    """What the store knows of an entry's page."""

    entry_id: int
    version: str  # the entry's hash when this state was decided
    status: PageStatus
    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    attempts: int = 0
    error: str | None = None
    retry_at: datetime | None = None
    checked: datetime | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Entry
    version: str
    state: PageState | None


@dataclass(frozen=True, slots=True)
class PageHead:
    """An entry whose page needs a decision, without its text: what :func:`may_want_page`
    reads, and what an entry whose page is not needed takes to say so."""

    source_id: str
    entry_id: int
    link: str | None
    version: str
    has_page_text: bool
    has_state: bool = True  # a page state is stored for the entry (of any version)


@dataclass(frozen=True, slots=True)
class PagePlan:
    fetch: tuple[Candidate, ...]  # fetch now (conditionally when the state has validators)
    waiting: tuple[Candidate, ...]  # needed, over this cycle's bound: a later cycle
    not_needed: tuple[Candidate, ...]  # the feed's own text serves (drop any page text kept)


def is_excerpt(entry: Entry) -> bool:
    """The feed gave only an excerpt of the entry (or nothing at all)."""
    if strip_tags(entry.content):
        return False
    text = strip_tags(entry.summary)
    return len(text) < SHORT_SUMMARY or bool(_EXCERPT_END.search(text[-60:]))


def wants_page(mode: Mode, entry: Entry, feed_url: str) -> bool:
    """``auto`` reads only pages on the feed's own site (its registrable domain: a feed
    on rss.politico.com links www.politico.com): a feed must not be able to send us
    to other people's servers, twenty pages a cycle. ``always`` reads any."""
    return _wants(mode, entry, site_of(feed_url))


def _wants(mode: Mode, entry: Entry, feed_site: str) -> bool:
    # The text test last: it strips the tags of the whole content (1.4 s of a cold cycle).
    return may_want_page(mode, entry.link, feed_site) and (mode == "always" or is_excerpt(entry))


# What urlsplit removes from anywhere in a URL before reading it.
_URL_DROPS = str.maketrans("", "", "\t\r\n")


def may_want_page(mode: Mode, link: str | None, feed_site: str) -> bool:
    """What :func:`wants_page` decides from the link alone, the feed's site being
    ``feed_site`` (:func:`site_of` its URL): False when no text of the entry could make
    its page wanted, so the entry's text need not be read at all."""
    if mode == "never" or not link or not is_http_url(link):
        return False
    if mode == "always":
        return True
    # Cheapest first: a site is part of its host, which is part of the link as written
    # (for an ASCII link, lower-cased, less what urlsplit drops), so a link without the
    # feed's site in it is not on that site; no URL parsing for most other sites' links.
    if feed_site and link.isascii():
        low = link.lower()
        if feed_site not in low and ("\t" not in low and "\r" not in low and "\n" not in low
                                     or feed_site not in low.translate(_URL_DROPS)):
            return False
    host = host_of(link)
    return host not in REDIRECTOR_HOSTS and site_of_host(host) == feed_site


def plan(mode: Mode, candidates: Sequence[Candidate], budget: int, now: datetime,
         feed_url: str) -> PagePlan:
    """Split the entries that need a decision: fetch (newest first, at most ``budget``),
    wait for a later cycle, or no page needed. A page failing with backoff is not due
    before its retry time; one given up is asked for again only in a new entry version."""
    fetch: list[Candidate] = []
    waiting: list[Candidate] = []
    skip: list[Candidate] = []
    feed_site = site_of(feed_url)
    for c in sorted(candidates, key=lambda c: (c.entry.date, c.entry.id), reverse=True):
        same_version = c.state is not None and c.state.version == c.version
        if same_version and c.state is not None and c.state.status in ("done", "given up", "not needed"):
            continue
        if not _wants(mode, c.entry, feed_site):
            skip.append(c)
        elif same_version and c.state is not None and c.state.status == "retry" and \
                c.state.retry_at is not None and c.state.retry_at > now:
            continue
        elif len(fetch) < budget:
            fetch.append(c)
        else:
            waiting.append(c)
    return PagePlan(tuple(fetch), tuple(waiting), tuple(skip))


def validators(c: Candidate) -> tuple[str | None, str | None]:
    """The page's ETag and Last-Modified to send, when they belong to the same URL."""
    st = c.state
    # Only with the text they vouch for still in hand: a 304 means "what you have is right".
    if st is None or st.url != c.entry.link or not c.entry.page_text:
        return None, None
    return st.etag, st.last_modified


def after_success(c: Candidate, now: datetime, url: str, etag: str | None,
                  last_modified: str | None) -> PageState:
    return PageState(c.entry.id, c.version, "done", url, etag, last_modified, 0, None, None, now)


def after_failure(c: Candidate, now: datetime, error: str, *, interval: timedelta, max_backoff: timedelta,
                  rng: random.Random, retry_after: float | None = None, permanent: bool = False) -> PageState:
    """Backoff as for feeds (the source's interval doubled per failure, jittered,
    capped); given up after MAX_ATTEMPTS tries or at once when the page is gone (410).
    Validators of an earlier success are kept for the next try."""
    prev = c.state if c.state is not None and c.state.version == c.version else None
    attempts = (prev.attempts if prev is not None and prev.status == "retry" else 0) + 1
    base = c.state or PageState(c.entry.id, c.version, "retry", c.entry.link)
    if base.url != c.entry.link:  # the entry moved: the old page's validators are no use
        base = replace(base, etag=None, last_modified=None)
    if permanent or attempts >= MAX_ATTEMPTS:
        return replace(base, version=c.version, status="given up", url=c.entry.link, attempts=attempts, error=error,
                       retry_at=None, checked=now)
    retry = next_fetch_after_failure(now, interval, attempts, retry_after=retry_after, max_backoff=max_backoff,
                                     rng=rng)
    return replace(base, version=c.version, status="retry", url=c.entry.link, attempts=attempts, error=error,
                   retry_at=retry, checked=now)


def not_needed(c: Candidate | PageHead, now: datetime) -> PageState:
    if isinstance(c, PageHead):
        return PageState(c.entry_id, c.version, "not needed", checked=now)
    return PageState(c.entry.id, c.version, "not needed", checked=now)


def waiting(c: Candidate, now: datetime) -> PageState:
    st = c.state
    return PageState(c.entry.id, c.version, "waiting", st.url if st else None, st.etag if st else None,
                     st.last_modified if st else None, checked=now)
