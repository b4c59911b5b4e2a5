"""Outlet articles as the matcher sees them, and the index that finds candidates
without comparing every post with every article: headline normalisation and variants,
content words, slugs, and the rarity (idf) of words among the stored headlines. Pure."""

from __future__ import annotations

import bisect
import functools
import heapq
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import repeat

from aggregator.citing.extract import NameFinder, name_owners
from aggregator.entryview import article_text
from aggregator.models import Entry
from aggregator.urls import canonical_url

JST = timedelta(hours=9)      # the blog writes "13日" in its own day, or in the outlet's

_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"',
                         "«": '"', "»": '"', "‹": "'", "›": "'", "–": "-", "—": "-", "―": "-"})
_NONWORD = re.compile(r"[^\w]+")
_ELLIPSIS = re.compile(r"\s*(\.{3,}|…+)\s*$")
_SUFFIX = re.compile(r"\s+[-|:]\s+([^-|:]{2,40})$")
_PAREN_SUFFIX = re.compile(r"\s*[(\[（【]([^()\[\]（）【】]{2,40})[)\]）】]\s*$")
_PREFIX = re.compile(r"^([^:|\-]{2,40}?)\s*[:|\-]\s+")
_STOP = frozenset(["a", "an", "the", "of", "to", "in", "on", "at", "for", "from", "by", "with", "and", "or", "as", "is", "are", "was", "were", "be", "been", "its", "it", "this", "that", "after", "over", "into", "than", "says", "said", "say", "new", "amid", "about", "up", "out", "not", "no", "will", "would", "could", "has", "have", "had", "his", "her", "their", "they", "he", "she", "we", "us", "you", "but", "if"])  # noqa: E501


def normalize_headline(text: str) -> str:
    # ASCII text is its own NFKC form and has none of _QUOTES (most outlets' headlines:
    # tens of thousands are normalised a cycle).
    t = text if text.isascii() else unicodedata.normalize("NFKC", text).translate(_QUOTES)
    t = t.casefold().replace("'", "").replace('"', "")
    return _NONWORD.sub(" ", t).strip()


def headline_variants(text: str, outlet_names: Iterable[str] = ()) -> tuple[str, ...]:
    """The headline, and the headline without what names its outlet: a trailing
    " - Outlet" / " | Outlet", a trailing "(Outlet)", a leading "Outlet: "."""
    t = (text if text.isascii() else unicodedata.normalize("NFKC", text).translate(_QUOTES)).strip()
    first = normalize_headline(t)
    out = [first]
    if not isinstance(outlet_names, (frozenset, tuple, list)):
        outlet_names = tuple(outlet_names)  # looked at up to three times below
    # Each form is looked for only when the headline has the character it needs (most
    # have none), and the names only when a part could be one: with hundreds of outlets
    # even a cached lookup costs.
    dashed = "-" in t or "|" in t or ":" in t
    if dashed:
        m = _SUFFIX.search(t)
        if m:  # noqa: SIM102
            # A known outlet name, or one word ("- AP", "| Bloomberg"): longer trailing
            # segments are part of the headline ("Ukraine war latest - Russia advances").
            if len(normalize_headline(m.group(1)).split()) == 1 or _is_outlet(m.group(1), outlet_names):
                out.append(normalize_headline(t[: m.start()]))
    if t.endswith((")", "]", "）", "】")):
        m = _PAREN_SUFFIX.search(t)
        if m and _is_outlet(m.group(1), outlet_names):
            out.append(normalize_headline(t[: m.start()]))
    if dashed:
        m = _PREFIX.match(t)
        if m and _is_outlet(m.group(1), outlet_names):
            out.append(normalize_headline(t[m.end():]))
    if len(out) == 1:
        return (first,) if first else ()
    return tuple(dict.fromkeys(v for v in out if v))


def _is_outlet(part: str, outlet_names: Iterable[str]) -> bool:
    known = outlet_names if isinstance(outlet_names, NameSet) else _normalized_names(tuple(outlet_names))
    return normalize_headline(part) in known


class NameSet(frozenset[str]):
    """Outlet names already normalised (:func:`normalize_headline`), made once."""


class OutletNames(dict[str, tuple[str, ...]]):
    """outlet id -> (display name, aliases...), with what matching derives from all the
    names made once for all the posts of a cycle rather than once a post."""

    @functools.cached_property
    def normalized(self) -> NameSet:
        return NameSet(normalize_headline(n) for names in self.values() for n in names)

    @functools.cached_property
    def finder(self) -> tuple[NameFinder, dict[str, set[str]]]:
        return name_owners(tuple((oid, tuple(names)) for oid, names in self.items()))


@functools.lru_cache(maxsize=64)
def _normalized_names(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize_headline(n) for n in names)


def tokens(norm: str) -> list[str]:
    return [w for w in norm.split() if w not in _STOP and len(w) > 1]


@functools.lru_cache(maxsize=65536)
def _stem(w: str) -> str:
    # "-ing", "-ed", "-es", "-s", the first that leaves four letters or more.
    n = len(w)
    if n >= 7 and w.endswith("ing"):
        return w[:-3]
    if n >= 6 and (w.endswith("ed") or w.endswith("es")):
        return w[:-2]
    if n >= 5 and w.endswith("s"):
        return w[:-1]
    return w


def content_words(text: str) -> set[str]:
    """Lower-cased, lightly stemmed content words of an English text."""
    return {_stem(w) for w in tokens(normalize_headline(text))}


class Article:
    """An outlet article as the matcher sees it. ``text`` (title and plain summary) is
    made on first use: most articles are only ever compared by link or headline.
    ``days``: its day of the month in the publisher's zone, in UTC and in Japan.
    ``load``, when given, fetches the summary (by article id) on that first use, so
    that an index of a hundred thousand articles does not hold their summaries."""

    __slots__ = ("_load", "_text", "_text_words", "_title_words", "canonical", "date", "days", "host", "id", "site",
                 "source_id", "summary", "title", "variants")

    def __init__(self, id: int, source_id: str, title: str, summary: str, canonical: str, host: str,
                 date: datetime, days: frozenset[int], variants: tuple[str, ...],
                 load: Callable[[int], str] | None = None, site: str = ""):
        self.id, self.source_id, self.title, self.summary = id, source_id, title, summary
        self.canonical, self.host, self.date, self.days, self.variants = canonical, host, date, days, variants
        # The site whose story this is when the feed is an aggregator's (Google News links
        # are news.google.com/rss/articles/…; the item's <source url> or the source's
        # configured ``site`` says it is Reuters'); else "".
        self.site = site
        self._text: str | None = None
        self._load = load
        self._title_words: set[str] | None = None
        self._text_words: set[str] | None = None

    def preload(self, summary: str) -> None:
        """Give the summary that ``load`` would fetch (several articles' in one query)."""
        if self._text is None:
            self._text = article_text(self.title, summary)

    @property
    def needs_load(self) -> bool:
        return self._text is None and self._load is not None

    @property
    def text(self) -> str:
        if self._text is None:
            summary = self._load(self.id) if self._load is not None else self.summary
            self._text = article_text(self.title, summary)
        return self._text

    @property
    def title_words(self) -> set[str]:
        """:func:`content_words` of the title, made once (an article is a candidate of many posts)."""
        if self._title_words is None:
            self._title_words = content_words(self.title)
        return self._title_words

    @property
    def text_words(self) -> set[str]:
        """:func:`content_words` of title and summary, made once."""
        if self._text_words is None:
            self._text_words = content_words(self.text)
        return self._text_words


def article_from_entry(e: Entry, outlet_names: Iterable[str] = (),
                       load: Callable[[int], str] | None = None, site: str = "") -> Article:
    """``site``: the site the article's source carries (the source's ``site``), when
    the entry does not say it itself (``<source url>``)."""
    return article_from_head(e.id, e.source_id, e.title, e.link, e.canonical_link, e.source_site, e.date,
                             e.published_offset, outlet_names, load=load, site=site,
                             summary=e.page_text or e.summary or e.content)


def article_from_head(id: int, source_id: str, title: str, link: str | None, canonical_link: str | None,
                      source_site: str | None, date: datetime, published_offset: int | None,
                      outlet_names: Iterable[str] = (), *, load: Callable[[int], str] | None = None,
                      site: str = "", summary: str = "") -> Article:
    """:func:`article_from_entry` from the few stored fields the index needs (what
    ``Store.article_heads`` reads: a cold cycle indexes tens of thousands of articles)."""
    d = date
    offset = timedelta(minutes=published_offset or 0)
    canonical = canonical_link if canonical_link is not None else (canonical_url(link) if link else "")
    return Article(
        id=id, source_id=source_id, title=title, summary=summary,
        canonical=canonical,
        host=_host(canonical),
        date=d, days=frozenset({(d + offset).day, d.day, (d + JST).day}),
        variants=headline_variants(title, outlet_names), load=load,
        site=site_host(source_site or site),
    )


def site_host(url: str) -> str:
    """A site's host as articles' canonical links spell it (no scheme, no www.)."""
    return _host(canonical_url(url)) if url else ""


def _host(canonical: str) -> str:
    """The host part of a canonical link (which starts with it, without www.)."""
    return canonical.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]


class ArticleIndex:
    """Candidate lookup whose cost does not grow as posts × articles: by canonical link,
    by rare headline word (each word's articles also in date order, so that a post's
    window is found by bisection, not by looking at every article with the word), by
    outlet."""

    def __init__(self, articles: Iterable[Article] = (),
                 load_many: Callable[[list[int]], dict[int, str]] | None = None):
        self.load_many = load_many  # summaries of many articles at once (a store query)
        self.by_id: dict[int, Article] = {}
        self.by_canonical: dict[str, list[int]] = defaultdict(list)
        self.by_token: dict[str, list[int]] = defaultdict(list)  # each id once (a list is a third of a set)
        self.by_outlet: dict[str, list[int]] = defaultdict(list)
        self.hosts: dict[str, set[str]] = defaultdict(set)  # host (or carried site) -> outlet ids
        self._dates: dict[int, datetime] = {}  # article id -> its date
        self._timelines: dict[str, tuple[list[datetime], list[int]]] = {}  # token -> (dates, ids), by date; memo
        self._idf: dict[str, float] = {}  # memo of idf(), emptied when an article is added
        self._totals: dict[int, tuple[set[str], float]] = {}  # memo of cover()'s totals, likewise
        self.add_many(articles)

    def add(self, a: Article) -> None:
        self.add_many((a,))

    def add_many(self, articles: Iterable[Article]) -> None:
        """Index articles (an article already indexed is left as it is). One loop with
        everything at hand: a cold cycle indexes tens of thousands."""
        if self._idf or self._timelines:
            self._idf.clear()
            self._totals.clear()
            self._timelines.clear()
        by_id, by_canonical, by_token = self.by_id, self.by_canonical, self.by_token
        by_outlet, hosts, dates = self.by_outlet, self.hosts, self._dates
        stem, stop = _stem, _STOP
        for a in articles:
            i = a.id
            if i in by_id:
                continue
            by_id[i] = a
            if a.canonical:
                by_canonical[a.canonical].append(i)
            variants = a.variants
            words = variants[0].split() if len(variants) == 1 else [w for v in variants for w in v.split()]
            for t in {stem(w) for w in words if len(w) > 1 and w not in stop}:
                by_token[t].append(i)
            by_outlet[a.source_id].append(i)
            dates[i] = a.date
            if a.host:
                hosts[a.host].add(a.source_id)
            if a.site:
                hosts[a.site].add(a.source_id)

    def site_outlets(self, host: str) -> set[str]:
        """The outlets whose articles are on ``host``, or that carry its stories."""
        return set(self.hosts.get(host, ()))


    def __len__(self) -> int:
        return len(self.by_id)

    def preload(self, articles: Sequence[Article]) -> None:
        """Read the summaries of the articles that have not read theirs, in one go."""
        todo = [a.id for a in articles if a.needs_load]
        if todo and self.load_many is not None:
            got = self.load_many(todo)
            for i in todo:
                self.by_id[i].preload(got.get(i, ""))

    def in_window(self, ids: Iterable[int], start: datetime, end: datetime) -> list[Article]:
        return [a for i in ids if start <= (a := self.by_id[i]).date <= end]

    def headline_candidates(self, norm_variants: Sequence[str], start: datetime, end: datetime,
                            rare: int = 4, keep: int = 40,
                            only: Callable[[Article], bool] | None = None) -> list[Article]:
        """The articles sharing most of the headline's rare words (a headline that
        matches, even edited or truncated, keeps most of them): those with one of its
        ``rare`` rarest words, ranked by the rarity-weighted words they share, best ``keep``
        (in no particular order when there are no more than ``keep``)."""
        by_token = self.by_token
        toks = {_stem(t) for v in norm_variants for t in tokens(v)}
        known = sorted((len(by_token[t]), t) for t in toks if t in by_token)
        ids: set[int] = set()
        for _, t in known[:rare]:
            ids.update(self._dated(t, start, end))
        cands = list(map(self.by_id.__getitem__, ids))
        if only is not None:
            cands = [a for a in cands if only(a)]
        if len(cands) <= keep:
            return cands
        weights = {t: self.idf(t) for _, t in known}
        shared: dict[int, float] = {}
        get = shared.get
        for t, w in weights.items():
            if len(by_token[t]) <= 4 * len(cands):
                # Only the word's articles in the window can be candidates; each one's
                # total grows by w (shared[i] += w, word after word, without a Python loop).
                dated = self._dated(t, start, end)
                shared.update(zip(dated, map(w.__add__, map(get, dated, repeat(0.0))), strict=True))
        return [self.by_id[i] for _, i in heapq.nsmallest(keep, [(-get(a.id, 0.0), a.id) for a in cands])]

    def _dated(self, token: str, start: datetime, end: datetime) -> list[int]:
        """The ids of the articles with ``token`` dated from ``start`` to ``end``."""
        got = self._timelines.get(token)
        if got is None:
            date = self._dates.__getitem__
            ordered = sorted(self.by_token[token], key=date)
            got = self._timelines[token] = (list(map(date, ordered)), ordered)
        dates, ids = got
        return ids[bisect.bisect_left(dates, start):bisect.bisect_right(dates, end)]

    def outlet_window(self, outlets: Iterable[str], start: datetime, end: datetime) -> list[Article]:
        return [a for o in outlets for a in self.in_window(self.by_outlet.get(o, ()), start, end)]

    def cover(self, article_words: set[str], text_words: set[str]) -> float:
        """:func:`_covered` for an article's (cached) word set: its rarity-weighted total
        is computed once, only the shared words are summed each time."""
        key = id(article_words)
        got = self._totals.get(key)
        if got is None or got[0] is not article_words:
            got = self._totals[key] = (article_words, sum(self.idf(w) for w in article_words))
        total = got[1]
        return sum(self.idf(w) for w in article_words & text_words) / total if total else 0.0

    def idf(self, word: str) -> float:
        """Inverse document frequency of a (stemmed) word among the indexed headlines:
        rare words (names, numbers) say more about which article a text is about.
        Headline words only, so that it costs nothing more to keep; a word in no
        headline counts as rare."""
        got = self._idf.get(word)
        if got is None:
            postings = self.by_token.get(word)
            got = self._idf[word] = math.log((len(self.by_id) + 1) / ((len(postings) if postings else 0) + 1)) + 1
        return got


def is_url_text(text: str) -> bool:
    return bool(re.match(r"^\s*(https?://|www\.)\S+\s*$", text, re.I))


def slug_words(canonical: str, stem: bool = True) -> list[str]:
    """The words of a link's slug (its path segment with the most hyphenated words),
    without numbers and ids: many outlets spell the first headline there and keep it
    when they edit the title."""
    path = canonical.split("?", 1)[0].split("/", 1)[1] if "/" in canonical else ""
    segs = [re.sub(r"\.(html?|php|aspx?)$", "", seg) for seg in path.split("/") if seg]
    if not segs:
        return []
    seg = max(segs, key=lambda x: (x.count("-") + x.count("_"), len(x)))
    words = [w for w in re.split(r"[-_]+", seg.casefold()) if w.isalpha()]
    return [_stem(w) for w in tokens(" ".join(words))] if stem else words


def _covered(words: set[str], text_words: set[str], index: ArticleIndex) -> float:
    """Share of ``words`` found in ``text_words``, each word weighted by its rarity."""
    total = sum(index.idf(w) for w in words)
    return sum(index.idf(w) for w in words & text_words) / total if total else 0.0


_NON_ENGLISH_WORDS = frozenset(["der", "die", "das", "und", "ist", "nicht", "mit", "den", "von", "zu", "auf", "für", "ein", "eine", "im", "sich", "dem", "des", "auch", "wir", "le", "la", "les", "et", "des", "est", "une", "pour", "dans", "que", "qui", "sur", "el", "los", "las", "del", "por", "con", "para", "una", "il", "che", "di", "per", "non", "sono", "della", "het", "een", "van", "voor", "niet"])  # noqa: E501


def looks_english(text: str) -> bool:
    """Whether a headline is (probably) English: Latin letters only and none of the
    commonest words of the other languages blogs cite. Unsure cases count as English,
    which keeps them on the strict same-language path."""
    letters = [c for c in text if c.isalpha()]
    if any(not c.isascii() for c in letters):
        return False
    return not (set(re.findall(r"[a-z]+", text.lower())) & _NON_ENGLISH_WORDS)
