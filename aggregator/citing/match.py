"""Which outlet articles a blog post cites. Pure: posts and candidate articles in,
matches with a score and a human-readable evidence string out.

Three ways a post cites, tried in this order (docs/matching.md explains the numbers):

* **link** — a ``参考:`` line links the article: canonical-link equality
  (tracking parameters, scheme, ``www.``, AMP, fragments and trailing slashes ignored).
* **headline** — a ``参考:`` line gives the headline: fuzzy equality with the feed
  title after removing what outlets and bloggers change (outlet suffixes, quotes, case,
  truncation), among articles of the days before the post. A headline in another
  language than the feeds' is compared by meaning, among the outlets the post names.
* **mention** — a post without ``参考:`` lines names a subscribed outlet and a day
  (「米POLITICOは13日…と報じた」): among that outlet's articles of that day, the one the
  paragraph paraphrases, by the words its translation shares with the article and by
  cross-lingual embedding similarity, and only when it clearly beats the others.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from rapidfuzz import fuzz

from aggregator.citing.extract import (
    NameFinder,
    PostText,
    name_owners,
    outlets_named_in,
)
from aggregator.entryview import article_text, embed_input
from aggregator.models import Citation, Entry, Match
from aggregator.urls import canonical_url

# -- thresholds (docs/matching.md says how they were chosen and what margin they keep) --
HEADLINE_ACCEPT = 0.90        # fuzzy headline score that is a match on its own
HEADLINE_WITH_OUTLET = 0.80   # ... enough when the post also names that article's outlet
HEADLINE_MARGIN = 0.05        # the best must beat the runner-up by this much
LINK_FALLBACK_ACCEPT = 0.95   # a linked page in no feed: its anchor text must be (nearly) the headline
TRUNCATED_MIN_CHARS = 24      # a headline cut with "..." must keep at least this much
UNMARKED_PREFIX_CHARS = 30    # one cut without "..." must keep this much
UNMARKED_PREFIX_SHARE = 0.6   # ... and this share of the feed's headline
MENTION_ACCEPT = 0.45         # content score for a mention (words and meaning)
MENTION_MARGIN = 0.10         # ... and its lead over the outlet's other articles of that day
MENTION_SHORT_CONTEXT = 12    # fewer content words than this: the post's title and lead count too
MENTION_EMBED_TOP = 8         # candidates whose meaning is computed (by words, the best ones)
MENTION_MEANING_ONLY = 0.72   # without a translation: meaning alone, stricter
MENTION_MEANING_MARGIN = 0.15
CROSSLINGUAL_ACCEPT = 0.60    # a headline in another language: meaning, outlet named
CROSSLINGUAL_MARGIN = 0.10
JST = timedelta(hours=9)      # the blog writes "13日" in its own day, or in the outlet's

Embedder = Callable[[Sequence[str]], np.ndarray]
Lookup = Callable[[str], "str | None"]
Hit = tuple["Article", float, str, str]  # article, score, method, evidence

_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"',
                         "«": '"', "»": '"', "‹": "'", "›": "'", "–": "-", "—": "-", "―": "-"})
_NONWORD = re.compile(r"[^\w]+")
_ELLIPSIS = re.compile(r"\s*(\.{3,}|…+)\s*$")
_SUFFIX = re.compile(r"\s+[-|:]\s+([^-|:]{2,40})$")
_PAREN_SUFFIX = re.compile(r"\s*[(\[（【]([^()\[\]（）【】]{2,40})[)\]）】]\s*$")
_PREFIX = re.compile(r"^([^:|\-]{2,40}?)\s*[:|\-]\s+")
_STOP = frozenset(["a", "an", "the", "of", "to", "in", "on", "at", "for", "from", "by", "with", "and", "or", "as", "is", "are", "was", "were", "be", "been", "its", "it", "this", "that", "after", "over", "into", "than", "says", "said", "say", "new", "amid", "about", "up", "out", "not", "no", "will", "would", "could", "has", "have", "had", "his", "her", "their", "they", "he", "she", "we", "us", "you", "but", "if"])  # noqa: E501


def normalize_headline(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    t = t.replace("'", "").replace('"', "")
    return _NONWORD.sub(" ", t).strip()


def headline_variants(text: str, outlet_names: Iterable[str] = ()) -> tuple[str, ...]:
    """The headline, and the headline without what names its outlet: a trailing
    " - Outlet" / " | Outlet", a trailing "(Outlet)", a leading "Outlet: "."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES).strip()
    out = [normalize_headline(t)]
    known: frozenset[str] | None = None

    def is_outlet(part: str) -> bool:
        # The names are looked at only when the headline has a part that could be one
        # (most have none): with hundreds of outlets even a cached lookup costs.
        nonlocal known
        if known is None:
            known = outlet_names if isinstance(outlet_names, NameSet) else _normalized_names(tuple(outlet_names))
        return normalize_headline(part) in known

    m = _SUFFIX.search(t)
    if m:  # noqa: SIM102
        # A known outlet name, or one word ("- AP", "| Bloomberg"): longer trailing
        # segments are part of the headline ("Ukraine war latest - Russia advances").
        if len(normalize_headline(m.group(1)).split()) == 1 or is_outlet(m.group(1)):
            out.append(normalize_headline(t[: m.start()]))
    m = _PAREN_SUFFIX.search(t)
    if m and is_outlet(m.group(1)):
        out.append(normalize_headline(t[: m.start()]))
    m = _PREFIX.match(t)
    if m and is_outlet(m.group(1)):
        out.append(normalize_headline(t[m.end():]))
    return tuple(dict.fromkeys(v for v in out if v))


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


def _stem(w: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            return w[: -len(suffix)]
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

    __slots__ = ("id", "source_id", "title", "summary", "canonical", "host", "date", "days", "variants", "_text",
                 "_load")

    def __init__(self, id: int, source_id: str, title: str, summary: str, canonical: str, host: str,
                 date: datetime, days: frozenset[int], variants: tuple[str, ...],
                 load: Callable[[int], str] | None = None):
        self.id, self.source_id, self.title, self.summary = id, source_id, title, summary
        self.canonical, self.host, self.date, self.days, self.variants = canonical, host, date, days, variants
        self._text: str | None = None
        self._load = load

    @property
    def text(self) -> str:
        if self._text is None:
            summary = self._load(self.id) if self._load is not None else self.summary
            self._text = article_text(self.title, summary)
        return self._text


def article_from_entry(e: Entry, outlet_names: Iterable[str] = (),
                       load: Callable[[int], str] | None = None) -> Article:
    d = e.date
    offset = timedelta(minutes=e.published_offset or 0)
    canonical = e.canonical_link if e.canonical_link is not None else (canonical_url(e.link) if e.link else "")
    return Article(
        id=e.id, source_id=e.source_id, title=e.title, summary=e.summary or e.content, canonical=canonical,
        host=_host(canonical),
        date=d, days=frozenset({(d + offset).day, d.day, (d + JST).day}),
        variants=headline_variants(e.title, outlet_names), load=load,
    )


def _host(canonical: str) -> str:
    """The host part of a canonical link (which starts with it, without www.)."""
    return canonical.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]


class ArticleIndex:
    """Candidate lookup whose cost does not grow as posts × articles: by canonical link,
    by rare headline word, by outlet, by day."""

    def __init__(self, articles: Iterable[Article] = ()):
        self.by_id: dict[int, Article] = {}
        self.by_canonical: dict[str, list[int]] = defaultdict(list)
        self.by_token: dict[str, set[int]] = defaultdict(set)
        self.by_outlet: dict[str, list[int]] = defaultdict(list)
        self.by_day: dict[date, list[int]] = defaultdict(list)
        self.hosts: dict[str, set[str]] = defaultdict(set)  # host -> outlet ids
        for a in articles:
            self.add(a)

    def add(self, a: Article) -> None:
        if a.id in self.by_id:
            return
        self.by_id[a.id] = a
        if a.canonical:
            self.by_canonical[a.canonical].append(a.id)
        for t in {_stem(t) for v in a.variants for t in tokens(v)}:
            self.by_token[t].add(a.id)
        self.by_outlet[a.source_id].append(a.id)
        self.by_day[a.date.date()].append(a.id)
        if a.host:
            self.hosts[a.host].add(a.source_id)

    def __len__(self) -> int:
        return len(self.by_id)

    def in_window(self, ids: Iterable[int], start: datetime, end: datetime) -> list[Article]:
        return [a for i in ids if start <= (a := self.by_id[i]).date <= end]

    def headline_candidates(self, norm_variants: Sequence[str], start: datetime, end: datetime,
                            rare: int = 4, keep: int = 40) -> list[Article]:
        """The articles sharing most of the headline's rare words (a headline that
        matches, even edited or truncated, keeps most of them): those with one of its
        ``rare`` rarest words, ranked by the rarity-weighted words they share, best ``keep``."""
        toks = {_stem(t) for v in norm_variants for t in tokens(v)}
        known = sorted((len(self.by_token[t]), t) for t in toks if t in self.by_token)
        ids: set[int] = set()
        for _, t in known[:rare]:
            ids |= self.by_token[t]
        cands = self.in_window(ids, start, end)
        if len(cands) <= keep:
            return cands
        weights = {t: self.idf(t) for _, t in known}
        shared: dict[int, float] = defaultdict(float)
        for t, w in weights.items():
            for i in self.by_token[t] if len(self.by_token[t]) <= 4 * len(cands) else ():
                shared[i] += w
        cands.sort(key=lambda a: (-shared.get(a.id, 0.0), a.id))
        return cands[:keep]

    def outlet_window(self, outlets: Iterable[str], start: datetime, end: datetime) -> list[Article]:
        return [a for o in outlets for a in self.in_window(self.by_outlet.get(o, ()), start, end)]

    def idf(self, word: str) -> float:
        """Inverse document frequency of a (stemmed) word among the indexed headlines:
        rare words (names, numbers) say more about which article a text is about.
        Headline words only, so that it costs nothing more to keep; a word in no
        headline counts as rare."""
        postings = self.by_token.get(word)
        return math.log((len(self.by_id) + 1) / ((len(postings) if postings else 0) + 1)) + 1


@dataclass(frozen=True, slots=True)
class Params:
    window: timedelta = timedelta(days=7)      # how far before a post its sources may be
    after: timedelta = timedelta(days=1)       # ... and after (time zones, late feeds)


@dataclass(slots=True)
class Outcome:
    matches: list[Match] = field(default_factory=list)
    unresolved: list[Citation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why citations did not match

    @property
    def state(self) -> str:
        return "unresolved" if self.unresolved else "resolved"


def headline_score(cite_variants: Sequence[str], truncated: bool, art: Article) -> tuple[float, str]:
    best, how = 0.0, ""
    for c in cite_variants:
        for v in art.variants:
            if c == v:
                return 1.0, "headline"
            if truncated and len(c) >= TRUNCATED_MIN_CHARS:
                head = c.rsplit(" ", 1)[0] if " " in c else c  # the last word may be cut
                if v.startswith(head):
                    if best < 0.97:
                        best, how = 0.97, "headline prefix"
                    continue
            # Cut without an ellipsis: only a long prefix, most of the headline, counts.
            if (len(c) >= UNMARKED_PREFIX_CHARS and len(c) >= UNMARKED_PREFIX_SHARE * len(v)
                    and v.startswith(c + " ")):
                if best < 0.95:
                    best, how = 0.95, "headline prefix"
                continue
            # Order-sensitive on purpose: two outlets' headlines on one statement often share
            # their words in another order ("Greek PM: Greece will not…" / "Greece will not…, PM says").
            s = fuzz.ratio(c, v) / 100
            if s > best:
                best, how = s, "headline"
    return best, how


def match_post(post: Entry, text: PostText, index: ArticleIndex, *,
               params: Params = Params(),
               outlet_names: Mapping[str, Sequence[str]] = {},
               translate: Lookup = lambda s: None,
               embed: Embedder | None = None) -> Outcome:
    """Match one post. ``outlet_names`` maps each outlet's source id to its display name
    (first) and aliases; ``translate`` looks up a text's translation into the outlets'
    language (None when there is none); ``embed`` maps texts to unit vectors."""
    out = Outcome()
    start, end = post.date - params.window, post.date + params.after
    all_names = outlet_names.normalized if isinstance(outlet_names, OutletNames) else \
        [n for names in outlet_names.values() for n in names]
    taken: set[int] = set()

    @functools.cache
    def named() -> set[str]:
        # Only a doubtful headline needs it: most posts never ask.
        return outlets_named(text.body, outlet_names)

    def add(hit: Hit) -> None:
        article, score, method, evidence = hit
        if article.id not in taken:
            taken.add(article.id)
            out.matches.append(Match(post.id, article.id, round(score, 4), method, evidence))  # type: ignore[arg-type]

    for cite in text.citations:
        hit: Hit | None = None
        if cite.kind == "link" and cite.href:
            ids = index.by_canonical.get(canonical_url(cite.href), [])
            if ids:
                add((index.by_id[ids[0]], 1.0, "link", "link"))
                continue
            # The link is in no feed. Its anchor text may still be the headline of an article
            # of the same site (a changed slug, a redirect): only that site's articles count.
            site = _host(canonical_url(cite.href))
            if site in index.hosts and cite.text:
                hit = _best_headline(cite, index, start, end, all_names, named, same_host=site)
            if hit:
                add(hit)
            else:
                out.unresolved.append(cite)
                out.notes.append(f"link in no subscribed feed: {cite.href}")
        elif cite.kind == "headline":
            hit = _best_headline(cite, index, start, end, all_names, named)
            if hit is None and embed is not None and not looks_english(cite.text):
                hit = _best_crosslingual(cite, index, start, end, embed, named, translate(cite.text))
            if hit:
                add(hit)
            else:
                out.unresolved.append(cite)
                out.notes.append(f"no headline in the subscribed feeds close enough to: {cite.text[:120]}")
        elif cite.kind == "mention" and cite.outlet:
            names = outlet_names.get(cite.outlet) or (cite.outlet,)
            hit = _best_mention(cite, post, text, index, start, end, translate, embed, names[0])
            if hit:
                add(hit)
            else:
                out.unresolved.append(cite)
                day = f" of day {cite.day}" if cite.day else " of the days before"
                out.notes.append(f"no {names[0]} article{day} clearly paraphrased by the post")
    return out


def _best_headline(cite: Citation, index: ArticleIndex, start: datetime, end: datetime,
                   all_names: Collection[str], named: Callable[[], set[str]],
                   same_host: str | None = None) -> Hit | None:
    truncated = bool(_ELLIPSIS.search(cite.text))
    variants = headline_variants(_ELLIPSIS.sub("", cite.text), all_names)
    if not variants:
        return None
    cands = index.headline_candidates(variants, start, end)
    if same_host:
        cands = [a for a in cands if a.host == same_host]
    scored = sorted(((headline_score(variants, truncated, a), a) for a in cands),
                    key=lambda x: (-x[0][0], x[1].id))
    if not scored:
        return None
    (best, how), art = scored[0]
    runner = scored[1][0][0] if len(scored) > 1 else 0.0
    if best >= 1.0 and runner < 1.0:
        return art, best, "headline", how
    if best - runner < HEADLINE_MARGIN:
        return None  # two articles fit about equally: linking either could mislead
    if same_host:
        # The post links a page of this site that is in no feed: only a (nearly) equal
        # headline says it is this article under another URL, not a sibling story of a
        # series ("Russian attacks over past day kill 1…" / "…kill 2…").
        return (art, best, "headline", f"{how} {best:.2f}, linked under another URL") \
            if best >= LINK_FALLBACK_ACCEPT else None
    if best >= HEADLINE_ACCEPT:
        return art, best, "headline", f"{how} {best:.2f}"
    if best >= HEADLINE_WITH_OUTLET and art.source_id in named():
        return art, best, "headline", f"{how} {best:.2f} + outlet named"
    return None


def _best_crosslingual(cite: Citation, index: ArticleIndex, start: datetime, end: datetime,
                       embed: Embedder, named: Callable[[], set[str]], translated: str | None) -> Hit | None:
    """A headline in another language than the outlets' feeds: only the outlets the post
    names are candidates, and the meaning must fit one of their articles clearly — the
    headline's own, or its translation's (same-language similarity is the sharper one)."""
    cands = index.outlet_window(sorted(named()), start, end)
    if not cands:
        return None
    probes = [cite.text] + ([translated] if translated else [])
    vecs = embed(probes + [_embed_text(a.title) for a in cands])
    sims = (vecs[len(probes):] @ vecs[: len(probes)].T).max(axis=1)
    order = np.argsort(-sims, kind="stable")
    best = float(sims[order[0]])
    runner = float(sims[order[1]]) if len(order) > 1 else 0.0
    if best >= CROSSLINGUAL_ACCEPT and best - runner >= CROSSLINGUAL_MARGIN:
        return cands[int(order[0])], best, "headline", f"headline in another language {best:.2f} + outlet named"
    return None


def _best_mention(cite: Citation, post: Entry, text: PostText, index: ArticleIndex, start: datetime,
                  end: datetime, translate: Lookup, embed: Embedder | None, outlet: str) -> Hit | None:
    """Among the named outlet's articles of the named day, the one the post paraphrases.

    Words: the share (weighted by rarity) of the article's title and summary words that
    the translated paragraph uses (the paragraph that names the outlet says what the
    outlet reported; a one-line mention borrows the post's title and lead). Meaning:
    cross-lingual embedding similarity of paragraph and article. The best must clear a
    floor and lead the outlet's other articles of that day."""
    assert cite.outlet is not None
    cands = index.outlet_window([cite.outlet], start - timedelta(days=1), end)
    if cite.day is not None:
        cands = [a for a in cands if cite.day in a.days]
    else:
        cands = [a for a in cands if a.date >= post.date - timedelta(days=3)]
    if not cands:
        return None
    context_en = translate(cite.context)
    if context_en:
        words = content_words(context_en)
        if len(words) < MENTION_SHORT_CONTEXT:
            words |= content_words(" ".join(t for t in (translate(post.title), translate(text.lead)) if t))
        lexical = [0.45 * _covered(content_words(a.title), words, index)
                   + 0.25 * _covered(content_words(a.text), words, index) for a in cands]
        ranked = sorted(range(len(cands)), key=lambda i: (-lexical[i], cands[i].id))
        lead = lexical[ranked[0]]
        second = lexical[ranked[1]] if len(ranked) > 1 else 0.0
        # Meaning (in [0, 1], weight 0.30) is the costly part: skip it when it cannot
        # change the decision, and otherwise compute it for the lexical front-runners only.
        if lead + 0.30 < MENTION_ACCEPT:
            return None
        meaning = dict.fromkeys(range(len(cands)), 0.0)
        decided = lead >= MENTION_ACCEPT and lead - (second + 0.30) >= MENTION_MARGIN
        if embed is not None and not decided:
            front = ranked[:MENTION_EMBED_TOP]
            vecs = embed([_embed_text(cite.context)] + [_embed_text(cands[i].text) for i in front])
            got = {i: min(1.0, max(0.0, float(x))) for i, x in zip(front, vecs[1:] @ vecs[0], strict=False)}
            # The others are scored as if they meant as much as the best front-runner, which
            # can only narrow the winner's lead: it never lets a doubtful match through.
            ceiling = max(got.values(), default=0.0)
            meaning = {i: got.get(i, ceiling) for i in range(len(cands))}
        scores = [lexical[i] + 0.30 * meaning[i] for i in range(len(cands))]
        accept, margin, how = MENTION_ACCEPT, MENTION_MARGIN, "content"
    elif embed is not None:
        vecs = embed([_embed_text(cite.context)] + [_embed_text(a.text) for a in cands])
        scores = [float(x) for x in vecs[1:] @ vecs[0]]
        accept, margin, how = MENTION_MEANING_ONLY, MENTION_MEANING_MARGIN, "meaning"
    else:
        return None
    order = sorted(range(len(cands)), key=lambda i: (-scores[i], cands[i].id))
    best = scores[order[0]]
    runner = scores[order[1]] if len(order) > 1 else 0.0
    if best >= accept and best - runner >= margin:
        day = f" {cite.day}日" if cite.day else ""
        return cands[order[0]], best, "mention", f"mention {outlet}{day} + {how} {best:.2f}"
    return None


def _embed_text(text: str) -> str:
    return embed_input(text)  # the key retention deletes by (aggregator.entryview)


def _covered(words: set[str], text_words: set[str], index: ArticleIndex) -> float:
    """Share of ``words`` found in ``text_words``, each word weighted by its rarity."""
    total = sum(index.idf(w) for w in words)
    return sum(index.idf(w) for w in words & text_words) / total if total else 0.0


def outlets_named(body: Sequence[str], outlet_names: Mapping[str, Sequence[str]]) -> set[str]:
    """The outlets whose name or an alias appears in the post's text."""
    if isinstance(outlet_names, OutletNames):
        finder, owners = outlet_names.finder
        return {oid for n in finder.find("\n".join(body)) for oid in owners[n]}
    return outlets_named_in("\n".join(body), outlet_names.items())


_NON_ENGLISH_WORDS = frozenset(["der", "die", "das", "und", "ist", "nicht", "mit", "den", "von", "zu", "auf", "für", "ein", "eine", "im", "sich", "dem", "des", "auch", "wir", "le", "la", "les", "et", "des", "est", "une", "pour", "dans", "que", "qui", "sur", "el", "los", "las", "del", "por", "con", "para", "una", "il", "che", "di", "per", "non", "sono", "della", "het", "een", "van", "voor", "niet"])  # noqa: E501


def looks_english(text: str) -> bool:
    """Whether a headline is (probably) English: Latin letters only and none of the
    commonest words of the other languages blogs cite. Unsure cases count as English,
    which keeps them on the strict same-language path."""
    letters = [c for c in text if c.isalpha()]
    if any(not c.isascii() for c in letters):
        return False
    return not (set(re.findall(r"[a-z]+", text.lower())) & _NON_ENGLISH_WORDS)
