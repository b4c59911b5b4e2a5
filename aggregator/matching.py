"""Which outlet articles a blog post cites. Pure: posts and candidate articles in,
matches with a score and a human-readable evidence string out.

Three ways a post cites, tried in this order (docs/matching.md explains the numbers):

* **link** — a ``参考:`` line links the article: canonical-link equality
  (tracking parameters, scheme, ``www.``, AMP, fragments and trailing slashes ignored).
* **headline** — a ``参考:`` line gives the headline: fuzzy equality with the feed
  title after removing what outlets and bloggers change (outlet suffixes, quotes, case,
  truncation), among articles of the days before the post.
* **mention** — a post without ``参考:`` lines names a subscribed outlet and a day
  (「米POLITICOは13日…と報じた」): among that outlet's articles of that day, the one the
  paragraph paraphrases, by its translation's word overlap and by cross-lingual
  embedding similarity, and only when it clearly beats the others.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np
from rapidfuzz import fuzz

from aggregator.citations import PostText
from aggregator.html_text import strip_tags
from aggregator.models import Citation, Entry, Match
from aggregator.urls import canonical_url, host_of

# -- thresholds (see docs/matching.md for how they were chosen) -----------------------
HEADLINE_ACCEPT = 0.90        # fuzzy headline score that is a match on its own
HEADLINE_WITH_OUTLET = 0.78   # ... enough when the post also names that outlet
HEADLINE_MARGIN = 0.06        # the best must beat the runner-up by this much
TRUNCATED_MIN_CHARS = 24      # a truncated headline must keep at least this much
MENTION_ACCEPT = 0.45         # combined content score for a mention
MENTION_MARGIN = 0.08
CROSSLINGUAL_ACCEPT = 0.80    # embedding score for a headline in another language
CROSSLINGUAL_MARGIN = 0.10

Embedder = Callable[[Sequence[str]], np.ndarray]
Lookup = Callable[[str], "str | None"]

_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"',
                         "«": '"', "»": '"', "‹": "'", "›": "'", "–": "-", "—": "-", "―": "-"})
_NONWORD = re.compile(r"[^\w]+")
_ELLIPSIS = re.compile(r"\s*(\.{3,}|…+)\s*$")
_SUFFIX = re.compile(r"\s+[-|:]\s+([^-|:]{2,40})$")
_STOP = frozenset("""a an the of to in on at for from by with and or as is are was were be been
its it this that after over into than says said say new amid about up out not no will would could
has have had his her their they he she we us you but if""".split())


def normalize_headline(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    t = t.replace("'", "").replace('"', "")
    return _NONWORD.sub(" ", t).strip()


def headline_variants(text: str, outlet_names: Iterable[str] = ()) -> tuple[str, ...]:
    """The headline, and the headline without a trailing " - Outlet" / " | Outlet"."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES).strip()
    out = [normalize_headline(t)]
    m = _SUFFIX.search(t)
    if m:
        suffix = normalize_headline(m.group(1))
        names = {normalize_headline(n) for n in outlet_names}
        if suffix in names or len(suffix.split()) <= 3:
            out.append(normalize_headline(t[: m.start()]))
    return tuple(dict.fromkeys(v for v in out if v))


def tokens(norm: str) -> list[str]:
    return [w for w in norm.split() if w not in _STOP and len(w) > 1]


@dataclass(frozen=True, slots=True)
class Article:
    """An outlet article as the matcher sees it."""

    id: int
    source_id: str
    title: str
    text: str  # plain title + summary
    canonical: str
    host: str
    date: datetime
    local_day: date  # the day in the publisher's own time zone
    variants: tuple[str, ...]


def article_from_entry(e: Entry, outlet_names: Iterable[str] = ()) -> Article:
    d = e.date
    offset = timedelta(minutes=e.published_offset or 0)
    return Article(
        id=e.id, source_id=e.source_id, title=e.title,
        text=(e.title + ". " + strip_tags(e.summary or e.content)[:1500]).strip(),
        canonical=canonical_url(e.link) if e.link else "",
        host=host_of(e.link or "").removeprefix("www."),
        date=d, local_day=(d + offset).date(), variants=headline_variants(e.title, outlet_names),
    )


class ArticleIndex:
    """Candidate lookup that does not grow as posts × articles: by canonical link, by
    rare headline token, by outlet and day."""

    def __init__(self, articles: Iterable[Article] = ()):
        self.by_id: dict[int, Article] = {}
        self.by_canonical: dict[str, list[int]] = defaultdict(list)
        self.by_token: dict[str, set[int]] = defaultdict(set)
        self.by_outlet_day: dict[tuple[str, date], list[int]] = defaultdict(list)
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
        for v in a.variants:
            for t in tokens(v):
                self.by_token[t].add(a.id)
        self.by_outlet_day[(a.source_id, a.local_day)].append(a.id)
        self.by_day[a.date.date()].append(a.id)
        if a.host:
            self.hosts[a.host].add(a.source_id)

    def __len__(self) -> int:
        return len(self.by_id)

    def in_window(self, ids: Iterable[int], start: datetime, end: datetime) -> list[Article]:
        return [a for i in ids if start <= (a := self.by_id[i]).date <= end]

    def headline_candidates(self, norm_variants: Sequence[str], start: datetime, end: datetime,
                            rare: int = 4) -> list[Article]:
        toks = {t for v in norm_variants for t in tokens(v)}
        known = sorted((len(self.by_token[t]), t) for t in toks if t in self.by_token)
        ids: set[int] = set()
        for _, t in known[:rare]:
            ids |= self.by_token[t]
        return self.in_window(ids, start, end)

    def window(self, start: datetime, end: datetime) -> list[Article]:
        out: list[Article] = []
        d = start.date()
        while d <= end.date():
            out.extend(self.in_window(self.by_day.get(d, ()), start, end))
            d += timedelta(days=1)
        return out


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
                head = c.rsplit(" ", 1)[0] if " " in c else c
                if v.startswith(head):
                    s = 0.97
                    if s > best:
                        best, how = s, "headline prefix"
                    continue
            s = max(fuzz.ratio(c, v), fuzz.token_sort_ratio(c, v)) / 100
            if s > best:
                best, how = s, "headline"
    return best, how


def match_post(post: Entry, text: PostText, index: ArticleIndex, *,
               params: Params = Params(),
               outlet_names: Mapping[str, Sequence[str]] = {},
               translate: Lookup = lambda s: None,
               embed: Embedder | None = None) -> Outcome:
    """Match one post. ``translate`` looks up a paragraph's translation into the outlets'
    language (None when there is none); ``embed`` maps texts to unit vectors."""
    out = Outcome()
    start, end = post.date - params.window, post.date + params.after
    all_names = [n for names in outlet_names.values() for n in names]
    named = _outlets_named(text.body, outlet_names)
    taken: set[int] = set()

    def add(article: Article, score: float, method: str, evidence: str) -> None:
        if article.id not in taken:
            taken.add(article.id)
            out.matches.append(Match(post.id, article.id, round(score, 4), method, evidence))  # type: ignore[arg-type]

    for cite in text.citations:
        if cite.kind == "link" and cite.href:
            ids = index.by_canonical.get(canonical_url(cite.href), [])
            if ids:
                a = index.by_id[ids[0]]
                exact = (cite.href.strip() == "" or canonical_url(cite.href) == a.canonical)
                add(a, 1.0, "link", "link" if exact else "link")
                continue
            # The link is not in any feed. Its anchor text may still be the headline of an
            # article of the same site (a changed slug, a redirect): only that site counts.
            site = host_of(cite.href).removeprefix("www.")
            if site in index.hosts and cite.text:
                hit = _best_headline(cite, index, start, end, all_names, named, same_host=site)
                if hit:
                    add(*hit)
                    continue
            out.unresolved.append(cite)
            out.notes.append(f"link not in any feed: {cite.href}")
        elif cite.kind == "headline":
            hit = _best_headline(cite, index, start, end, all_names, named)
            if hit is None and embed is not None and not _mostly_latin(cite.text):
                hit = _best_crosslingual(cite, index, start, end, embed)
            if hit:
                add(*hit)
            else:
                out.unresolved.append(cite)
                out.notes.append(f"no feed headline close enough to: {cite.text[:120]}")
        elif cite.kind == "mention":
            hit = _best_mention(cite, post, index, start, end, translate, embed)
            if hit:
                add(*hit)
            else:
                out.unresolved.append(cite)
                out.notes.append(f"no {cite.outlet} article of day {cite.day} clearly paraphrased")
    return out


def _best_headline(cite: Citation, index: ArticleIndex, start: datetime, end: datetime,
                   all_names: Sequence[str], named: set[str], same_host: str | None = None,
                   ) -> tuple[Article, float, str, str] | None:
    truncated = bool(_ELLIPSIS.search(cite.text))
    raw = _ELLIPSIS.sub("", cite.text)
    variants = headline_variants(raw, all_names)
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
    margin_ok = best - runner >= HEADLINE_MARGIN or _same_story(scored)
    if best >= HEADLINE_ACCEPT and margin_ok:
        return art, best, "headline", f"{how} {best:.2f}"
    if best >= HEADLINE_WITH_OUTLET and margin_ok and art.source_id in named:
        return art, best, "headline", f"{how} {best:.2f} + outlet named"
    return None


def _same_story(scored: Sequence[tuple[tuple[float, str], Article]]) -> bool:
    return False


def _best_crosslingual(cite: Citation, index: ArticleIndex, start: datetime, end: datetime,
                       embed: Embedder) -> tuple[Article, float, str, str] | None:
    cands = index.window(start, end)
    if not cands:
        return None
    vecs = embed([cite.text] + [a.title for a in cands])
    sims = vecs[1:] @ vecs[0]
    order = np.argsort(-sims)
    best = float(sims[order[0]])
    runner = float(sims[order[1]]) if len(order) > 1 else 0.0
    if best >= CROSSLINGUAL_ACCEPT and best - runner >= CROSSLINGUAL_MARGIN:
        a = cands[int(order[0])]
        return a, best, "headline", f"headline (other language) {best:.2f}"
    return None


def _best_mention(cite: Citation, post: Entry, index: ArticleIndex, start: datetime, end: datetime,
                  translate: Lookup, embed: Embedder | None) -> tuple[Article, float, str, str] | None:
    assert cite.outlet is not None
    cands: list[Article] = []
    if cite.day is not None:
        d = start.date() - timedelta(days=1)
        while d <= end.date():
            if d.day == cite.day:
                cands += [index.by_id[i] for i in index.by_outlet_day.get((cite.outlet, d), ())]
            d += timedelta(days=1)
    else:
        cands = [a for a in index.window(post.date - timedelta(days=3), end) if a.source_id == cite.outlet]
    if not cands:
        return None
    translated = translate(cite.context)
    lex = [_overlap(translated, a.text) if translated else 0.0 for a in cands]
    emb = [0.0] * len(cands)
    if embed is not None:
        vecs = embed([cite.context] + [a.text for a in cands])
        emb = [float(x) for x in vecs[1:] @ vecs[0]]
    scores = [_mention_score(l, e, translated is not None) for l, e in zip(lex, emb)]
    order = sorted(range(len(cands)), key=lambda i: (-scores[i], cands[i].id))
    best = scores[order[0]]
    runner = scores[order[1]] if len(order) > 1 else 0.0
    if best >= MENTION_ACCEPT and best - runner >= MENTION_MARGIN:
        a = cands[order[0]]
        day = f" {cite.day}日" if cite.day else ""
        return (a, best, "mention",
                f"mention {cite.text}{day} + content {best:.2f}"
                f" (words {lex[order[0]]:.2f}, meaning {emb[order[0]]:.2f})")
    return None


def _mention_score(lexical: float, semantic: float, have_translation: bool) -> float:
    if have_translation:
        return 0.6 * lexical + 0.4 * semantic
    return semantic * 0.75


def _overlap(translated: str, article_text: str) -> float:
    """Share of the article's content words that the translated paragraph uses."""
    a = set(tokens(normalize_headline(article_text)))
    p = set(tokens(normalize_headline(translated)))
    if not a:
        return 0.0
    return len(a & p) / math.sqrt(len(a) * max(len(p), 1)) if p else 0.0


def _outlets_named(body: Sequence[str], outlet_names: Mapping[str, Sequence[str]]) -> set[str]:
    text = "\n".join(body)
    low = text.casefold()
    out = set()
    for oid, names in outlet_names.items():
        if any(n and n.casefold() in low for n in names):
            out.add(oid)
    return out


def _mostly_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    latin = sum(1 for c in letters if c.isascii())
    return latin / len(letters) > 0.9
