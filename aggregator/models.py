"""Plain data passed between the stages. No I/O here.

Times are timezone-aware UTC ``datetime`` objects everywhere in the code and ISO 8601
strings ending in ``Z`` in the store.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Role = Literal["blog", "outlet"]
CitationKind = Literal["link", "headline", "mention"]


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime (naive values are taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """Serialise an aware datetime as ``YYYY-MM-DDTHH:MM:SSZ`` (sortable as text).

    The year always has four digits (years 1 to 9999): ``fromisoformat`` reads nothing
    else back, and a shorter year would sort after every four-digit one."""
    if dt is None:
        return None
    if dt.tzinfo is not UTC:
        dt = utc(dt)
    # The same text as strftime with a zero-padded year, at a third of its cost.
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"


# What stores written before the year was padded hold (``999-01-01T00:00:00Z``).
_SHORT_YEAR = re.compile(r"(\d{1,3})-")


@functools.lru_cache(maxsize=4096)  # a cycle's rows repeat their times (1,000 sources fetched at one `now`)
def from_iso(text: str | None) -> datetime | None:
    """Read back what :func:`iso` wrote (also a year of fewer than four digits, as older
    versions wrote it). Raises ValueError for text that is no such date."""
    if not text:
        return None
    m = _SHORT_YEAR.match(text)
    if m:
        text = f"{int(m.group(1)):04d}" + text[m.end() - 1:]
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


# A date a source may be trusted with: none before this, and none more than SKEW after we
# first saw the entry (a source's broken clock). Validators flag others; readers misorder them.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
SKEW = timedelta(days=1)


def plausible(when: datetime | None, first_seen: datetime) -> datetime:
    """``when`` when it is a date a feed may carry, else ``first_seen``: what an entry
    is published and sorted by, in every format."""
    if when is None or when < EARLIEST or when > first_seen + SKEW:
        return first_seen
    return when


@dataclass(frozen=True, slots=True)
class EntryData:
    """One feed entry as parsed, before it is stored.

    ``key`` is the entry's identity within its source: the guid, else the link, else
    a hash of title and date (see :func:`aggregator.sources.parse.entry_key`).
    ``published_offset`` is the UTC offset (minutes) the feed wrote the date with,
    which matters when a post says "on the 13th" in the outlet's local time.
    """

    key: str
    link: str | None
    title: str
    summary: str = ""  # HTML, as the feed gave it (sanitised on publication)
    content: str = ""  # HTML, as the feed gave it
    author: str | None = None
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    published_offset: int | None = None
    image: str | None = None
    language: str | None = None
    source_site: str | None = None  # an aggregator's item: the site whose story it is (<source url>)
    # (hash, canonical link), worked out once where the entry is parsed (a parsing process,
    # off the storing thread) by aggregator.sources.decide.derive. Not an argument, not
    # compared, and not carried over by dataclasses.replace: a changed copy works it out anew.
    derived: tuple[str, str | None] | None = field(default=None, init=False, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Every parsed entry crosses from a parsing process to the storing one. A frozen
        # dataclass's own pickling looks its fields up again for every object (2/3 of the
        # time to load a feed's entries): this is one call with the values in order.
        return _entry_data, (self.key, self.link, self.title, self.summary, self.content, self.author,
                             self.categories, self.published, self.updated, self.published_offset, self.image,
                             self.language, self.source_site, self.derived)


def _entry_data(key: str, link: str | None, title: str, summary: str, content: str, author: str | None,
                categories: tuple[str, ...], published: datetime | None, updated: datetime | None,
                published_offset: int | None, image: str | None, language: str | None, source_site: str | None,
                derived: tuple[str, str | None] | None) -> EntryData:
    e = EntryData(key, link, title, summary, content, author, categories, published, updated, published_offset,
                  image, language, source_site)
    if derived is not None:
        object.__setattr__(e, "derived", derived)
    return e


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    language: str | None
    entries: tuple[EntryData, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry as stored. ``id`` is the store's row id, stable for the entry's life."""

    id: int
    source_id: str
    role: Role
    key: str
    link: str | None
    title: str
    summary: str
    content: str
    author: str | None
    categories: tuple[str, ...]
    published: datetime | None
    updated: datetime | None
    first_seen: datetime
    language: str | None = None
    image: str | None = None
    published_offset: int | None = None
    canonical_link: str | None = None  # the link's comparison key (aggregator.urls.canonical_url)
    source_site: str | None = None  # an aggregator's item: the site whose story it is (<source url>)
    # The body extracted from the entry's own page (sources[].full_text), where it came
    # from ("trafilatura 2.3.1") and when it was fetched; "" when the feed's text serves.
    page_text: str = ""
    page_from: str | None = None
    page_fetched: datetime | None = None

    @property
    def body(self) -> str:
        """The entry's fullest text: its page's body, else the feed's content, else its summary."""
        return self.page_text or self.content or self.summary

    @property
    def date(self) -> datetime:
        """The date the entry is sorted, windowed and published by: its own when
        plausible (:func:`plausible`), else when we first saw it."""
        return plausible(self.published or self.updated, self.first_seen)


@dataclass(frozen=True, slots=True)
class Citation:
    """One thing a blog post cites or names.

    ``link`` and ``headline`` come from ``参考:`` lines; ``mention`` from running text
    that attributes reported content to a subscribed outlet (``outlet`` is its source
    id), with the day of the month when the text gives it. ``form`` says how the text
    attributes (``report``: 「…と報じた」, ``according``: 「…によると」, ``interview``:
    「…の取材に」「…のインタビュー」) and ``also`` whether it marks the outlet as an
    additional source (「…も」).
    """

    kind: CitationKind
    text: str = ""
    href: str | None = None
    outlet: str | None = None
    day: int | None = None
    context: str = ""
    form: str = ""
    also: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    post_id: int
    article_id: int
    score: float
    method: CitationKind
    evidence: str


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a fetch brought back. ``content`` is None when the server said 304."""

    url: str
    status: int
    content: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.content is None


def text_hash(text: str) -> str:
    """The key of a text in the translation cache and the embedding store."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
