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

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

from aggregator.citing.articles import (
    _ELLIPSIS,
    JST,
    Article,
    ArticleIndex,
    NameSet,
    OutletNames,
    _covered,
    _host,
    _stem,
    article_from_entry,
    article_from_head,
    content_words,
    headline_variants,
    is_url_text,
    looks_english,
    normalize_headline,
    site_host,
    slug_words,
    tokens,
)
from aggregator.citing.extract import PostText, outlets_named_in
from aggregator.entryview import embed_input
from aggregator.models import Citation, Entry, Match
from aggregator.urls import canonical_url

__all__ = ["JST", "Article", "ArticleIndex", "NameSet", "Outcome", "OutletNames", "Params",
           "article_from_entry", "article_from_head", "content_words", "headline_variants", "looks_english",
           "match_post", "normalize_headline", "site_host", "slug_words", "tokens"]

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
EDITED_TOP = 8                # an edited headline: candidates weighed (by headline score)
EDITED_MIN_HEADLINE = 0.60    # ... its headline score (most words survived the edit)
EDITED_ACCEPT = 0.75          # ... evidence (headline, kept words or slug, content) to accept
EDITED_ACCEPT_TITLE_ONLY = 0.85  # ... without a translation: headline and kept words only
EDITED_MARGIN = 0.10          # ... and its lead over every other candidate
CROSSLINGUAL_ACCEPT = 0.60    # a headline in another language: meaning, outlet named
CROSSLINGUAL_MARGIN = 0.10

if TYPE_CHECKING:  # numpy is imported where vectors are compared (a cycle may compare none)
    import numpy as np

Embedder = Callable[[Sequence[str]], "np.ndarray"]
Lookup = Callable[[str], "str | None"]
Hit = tuple["Article", float, str, str]  # article, score, method, evidence



@dataclass(frozen=True, slots=True)
class Params:
    window: timedelta = timedelta(days=7)      # how far before a post its sources may be
    after: timedelta = timedelta(days=1)       # ... and after (time zones, late feeds)


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A citation that linked nothing, and the closest candidates it had: what
    ``explain`` shows. ``candidates``: (outlet id, title, score), best first."""

    citation: Citation
    reason: str
    candidates: tuple[tuple[str, str, float], ...] = ()
    needed: str = ""               # the test the best candidate had to pass
    translated: bool | None = None  # None: no translation was needed for this decision

    def describe(self) -> str:
        lines = [self.reason]
        for i, (outlet, title, score) in enumerate(self.candidates):
            lines.append(f"    {'closest' if i == 0 else 'next'}: {score:.2f} {outlet}: {title[:100]}")
        if self.candidates and self.needed:
            lines.append(f"    needed: {self.needed}")
        if self.translated is False:
            lines.append("    no translation: content could not be compared")
        elif self.translated:
            lines.append("    content compared through the post's translation")
        return "\n".join(lines)


@dataclass(slots=True)
class Probe:
    """What a search for one citation saw, for :class:`NearMiss`."""

    ranked: list[tuple[Article, float]] = field(default_factory=list)
    needed: str = ""
    translated: bool | None = None

    def top(self, n: int = 3) -> tuple[tuple[str, str, float], ...]:
        return tuple((a.source_id, a.title, round(score, 2)) for a, score in self.ranked[:n])


@dataclass(slots=True)
class Outcome:
    matches: list[Match] = field(default_factory=list)
    unresolved: list[Citation] = field(default_factory=list)
    near: list[NearMiss] = field(default_factory=list)  # why citations did not match
    set_aside: list[Citation] = field(default_factory=list)  # in-text names of a 参考 line's outlet
    probes: list[tuple[Citation, Probe]] = field(default_factory=list)  # what each search saw (margins)

    @property
    def notes(self) -> list[str]:
        return [n.describe() for n in self.near]

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


class _Post:
    """What the matcher knows of one post, computed when first needed."""

    def __init__(self, post: Entry, text: PostText, outlet_names: Mapping[str, Sequence[str]], translate: Lookup):
        self.post, self.text, self.outlet_names, self._translate = post, text, outlet_names, translate
        self._named: set[str] | None = None
        self._words: dict[str, set[str] | None] = {}

    def named(self) -> set[str]:
        """The outlets the post's text names (any role)."""
        if self._named is None:
            self._named = outlets_named(self.text.body, self.outlet_names)
        return self._named

    def translate(self, s: str) -> str | None:
        return self._translate(s) if s else None

    def words_about(self, outlet: str) -> set[str] | None:
        """Content words of what the post says about an outlet's report: its lead and the
        paragraphs that cite that outlet, translated. None without a translation."""
        if outlet not in self._words:
            paras = [c.context for c in self.text.citations if c.kind == "mention" and c.outlet == outlet]
            texts = [t for t in dict.fromkeys([self.text.lead, *paras]) if t]
            found = [self.translate(t) for t in texts]
            got = [t for t in found if t]
            self._words[outlet] = content_words(" ".join(got)) if got else None
        return self._words[outlet]


def match_post(post: Entry, text: PostText, index: ArticleIndex, *,
               params: Params = Params(),
               outlet_names: Mapping[str, Sequence[str]] = {},
               translate: Lookup = lambda s: None,
               embed: Embedder | None = None) -> Outcome:
    """Match one post. ``outlet_names`` maps each outlet's source id to its display name
    (first) and aliases; ``translate`` looks up a text's translation into the outlets'
    language (None when there is none); ``embed`` maps texts to unit vectors.

    ``参考:`` lines first; then the in-text citations, except those that name the outlet
    of a ``参考:`` line (the blog summarises the line's article: 「ロイター通信によると」
    under a Reuters 参考 line) and, when a 参考 line's outlet is unknown (a headline that
    matched nothing), plain attributions that may be that line's article."""
    out = Outcome()
    start, end = post.date - params.window, post.date + params.after
    all_names = outlet_names.normalized if isinstance(outlet_names, OutletNames) else \
        [n for names in outlet_names.values() for n in names]
    ctx = _Post(post, text, outlet_names, translate)
    taken: set[int] = set()
    ref_outlets: set[str] = set()
    ref_unknown = False

    def add(hit: Hit) -> None:
        article, score, method, evidence = hit
        if article.id not in taken:
            taken.add(article.id)
            out.matches.append(Match(post.id, article.id, round(score, 4), method, evidence))  # type: ignore[arg-type]

    def miss(cite: Citation, reason: str, probe: Probe) -> None:
        out.unresolved.append(cite)
        out.near.append(NearMiss(cite, reason, probe.top(), probe.needed, probe.translated))

    for cite in text.citations:
        hit: Hit | None = None
        probe = Probe()
        out.probes.append((cite, probe))
        if cite.kind == "link" and cite.href:
            canonical = canonical_url(cite.href)
            ids = index.by_canonical.get(canonical, [])
            if ids:
                add((index.by_id[ids[0]], 1.0, "link", "link"))
                ref_outlets.add(index.by_id[ids[0]].source_id)
                continue
            # The link is in no feed. Its anchor text may still be the headline of an article
            # of the same site (a changed slug, a redirect; or an aggregator that carries the
            # site under its own links): only that site's articles count.
            site = _host(canonical)
            ref_outlets |= index.site_outlets(site) | _outlets_by_host_name(site, outlet_names)
            if index.site_outlets(site):
                hit = _best_site_headline(cite, canonical, index, start, end, all_names, probe)
            if hit:
                add(hit)
                ref_outlets.add(hit[0].source_id)
            else:
                miss(cite, f"link in no subscribed feed: {cite.href}", probe)
        elif cite.kind == "headline":
            hit = _best_headline(cite, index, start, end, all_names, ctx, probe)
            if hit is None and embed is not None and not looks_english(cite.text):
                hit = _best_crosslingual(cite, index, start, end, embed, ctx.named, translate(cite.text))
            if hit:
                add(hit)
                ref_outlets.add(hit[0].source_id)
            else:
                in_line = outlets_named_in(cite.text, outlet_names.items())
                ref_outlets |= in_line
                ref_unknown = ref_unknown or not in_line
                miss(cite, f"no headline in the subscribed feeds close enough to: {cite.text[:120]}", probe)
    for cite in text.citations:
        if cite.kind != "mention" or not cite.outlet:
            continue
        if cite.outlet in ref_outlets or (ref_unknown and not (cite.also or cite.day or cite.form == "interview")):
            out.set_aside.append(cite)
            continue
        names = outlet_names.get(cite.outlet) or (cite.outlet,)
        probe = Probe()
        out.probes.append((cite, probe))
        hit = _best_mention(cite, post, text, index, start, end, translate, embed, names[0], probe)
        if hit:
            add(hit)
        else:
            day = f" of day {cite.day}" if cite.day else f" of the {params.window.days} days before"
            miss(cite, f"no {names[0]} article{day} clearly paraphrased by the post", probe)
    return out


def _outlets_by_host_name(host: str, outlet_names: Mapping[str, Sequence[str]]) -> set[str]:
    """Outlets whose name is the host's name (politico.eu for POLITICO): a 参考 link there
    cites that outlet's family even when its feed is another edition's."""
    labels = host.split(".")
    label = labels[-2] if len(labels) >= 2 else host
    return {oid for oid, names in outlet_names.items()
            if any(re.sub(r"[^0-9a-z]", "", n.casefold()) == label for n in names)}


def _best_site_headline(cite: Citation, canonical: str, index: ArticleIndex, start: datetime, end: datetime,
                        all_names: Collection[str], probe: Probe) -> Hit | None:
    """A link to a subscribed site that no feed item has: the site's article whose
    headline is (nearly) the link's anchor text, or, for a bare link, the headline the
    URL's slug spells."""
    site = _host(canonical)
    text = cite.text
    bare = not text or is_url_text(text)
    if bare:
        text = " ".join(slug_words(canonical, stem=False))
        if len(text.split()) < 3:
            return None
    c = Citation(kind="headline", text=text)
    variants = headline_variants(_ELLIPSIS.sub("", text), all_names)
    if not variants:
        return None
    cands = index.headline_candidates(variants, start, end, only=lambda a: site in (a.host, a.site))
    truncated = bool(_ELLIPSIS.search(c.text))
    scored = sorted(((headline_score(variants, truncated, a)[0] if not bare else _slug_score(canonical, a), a)
                     for a in cands), key=lambda x: (-x[0], x[1].id))
    probe.ranked = [(a, sc) for sc, a in scored]
    probe.needed = f"≥ {LINK_FALLBACK_ACCEPT:.2f} and ahead of the next by {HEADLINE_MARGIN:.2f}"
    if not scored:
        return None
    best, art = scored[0]
    runner = scored[1][0] if len(scored) > 1 else 0.0
    if best >= LINK_FALLBACK_ACCEPT and (best - runner >= HEADLINE_MARGIN or (best >= 1.0 and runner < 1.0)):
        what = "slug" if bare else "headline"
        how = "linked under another URL" if site == art.host else f"carried by {art.source_id}"
        return art, best, "headline", f"{what} {best:.2f}, {how}"
    return None


def _slug_score(canonical: str, art: Article) -> float:
    """How nearly a bare link's slug spells an article's headline."""
    slug = " ".join(tokens(" ".join(slug_words(canonical, stem=False))))
    return max((fuzz.ratio(slug, " ".join(tokens(v))) / 100 for v in art.variants), default=0.0)


def _best_headline(cite: Citation, index: ArticleIndex, start: datetime, end: datetime,
                   all_names: Collection[str], ctx: _Post, probe: Probe) -> Hit | None:
    truncated = bool(_ELLIPSIS.search(cite.text))
    variants = headline_variants(_ELLIPSIS.sub("", cite.text), all_names)
    if not variants:
        return None
    cands = index.headline_candidates(variants, start, end)
    scored = sorted(((headline_score(variants, truncated, a), a) for a in cands),
                    key=lambda x: (-x[0][0], x[1].id))
    probe.ranked = [(a, sc) for (sc, _), a in scored]
    probe.needed = (f"headline ≥ {HEADLINE_ACCEPT:.2f} (≥ {HEADLINE_WITH_OUTLET:.2f} with its outlet named), "
                    f"ahead of the next by {HEADLINE_MARGIN:.2f}")
    if not scored:
        return None
    (best, how), art = scored[0]
    runner = scored[1][0][0] if len(scored) > 1 else 0.0
    if best >= 1.0 and runner < 1.0:
        return art, best, "headline", how
    if best - runner >= HEADLINE_MARGIN:
        if best >= HEADLINE_ACCEPT:
            return art, best, "headline", f"{how} {best:.2f}"
        if best >= HEADLINE_WITH_OUTLET and art.source_id in ctx.named():
            return art, best, "headline", f"{how} {best:.2f} + outlet named"
    if best >= 1.0:
        return None  # two articles carry the very headline: linking either could mislead
    return _best_edited(cite, variants, [(sc, a) for (sc, _), a in scored], index, ctx, probe)


def _best_edited(cite: Citation, variants: Sequence[str], scored: Sequence[tuple[float, Article]],
                 index: ArticleIndex, ctx: _Post, probe: Probe) -> Hit | None:
    """A headline the outlet edited after the post quoted it: the outlet's article whose
    title it most resembles, only when the evidence together is strong — the outlet
    named (in the text or the line), the words that survived the edit (in the title, or
    in the link's slug, which outlets keep), and the post's text agreeing with the
    article — and well ahead of every other candidate."""
    named = ctx.named() | outlets_named_in(cite.text, ctx.outlet_names.items())
    if not any(a.source_id in named and fz >= EDITED_MIN_HEADLINE for fz, a in scored[:EDITED_TOP]):
        probe.needed = (f"headline ≥ {HEADLINE_ACCEPT:.2f}; or, edited, ≥ {EDITED_MIN_HEADLINE:.2f} "
                        "with its outlet named in the post")
        return None  # nothing could pass: the evidence is not worth gathering
    index.preload([a for _, a in scored[:EDITED_TOP]])
    cite_words = {_stem(t) for v in variants for t in tokens(v)}
    rows: list[tuple[float, Article, bool]] = []
    for fz, art in scored[:EDITED_TOP]:
        title_words = {_stem(t) for v in art.variants for t in tokens(v)}
        kept = (_covered(cite_words, title_words, index) + _covered(title_words, cite_words, index)) / 2
        slug = slug_words(art.canonical)
        if len(slug) >= 3:
            kept = max(kept, _covered(set(slug), cite_words, index))
        about = ctx.words_about(art.source_id)
        if about is not None:
            agree = 0.6 * _covered(art.title_words, about, index) + 0.4 * _covered(art.text_words, about, index)
            score = (fz + kept + agree) / 3
        else:
            score = (fz + kept) / 2
        rows.append((score, art, about is not None))
    rows.sort(key=lambda r: (-r[0], r[1].id))
    if not rows:
        return None
    best, art, content = rows[0]
    runner = rows[1][0] if len(rows) > 1 else 0.0
    accept = EDITED_ACCEPT if content else EDITED_ACCEPT_TITLE_ONLY
    probe.ranked = [(a, sc) for sc, a, _ in rows]
    probe.needed = (f"an edited headline needs its outlet named, headline ≥ {EDITED_MIN_HEADLINE:.2f}, "
                    f"evidence ≥ {accept:.2f} and ahead of the next by {EDITED_MARGIN:.2f}")
    probe.translated = content
    fz = next(f for f, a in scored if a is art)
    if (art.source_id in named and fz >= EDITED_MIN_HEADLINE and best >= accept
            and best - runner >= EDITED_MARGIN):
        extra = ", +content" if content else ""
        return art, best, "headline", f"headline (edited) {best:.2f}{extra}, outlet named"
    return None


def _best_crosslingual(cite: Citation, index: ArticleIndex, start: datetime, end: datetime,
                       embed: Embedder, named: Callable[[], set[str]], translated: str | None) -> Hit | None:
    """A headline in another language than the outlets' feeds: only the outlets the post
    names are candidates, and the meaning must fit one of their articles clearly — the
    headline's own, or its translation's (same-language similarity is the sharper one)."""
    cands = index.outlet_window(sorted(named()), start, end)
    if not cands:
        return None
    import numpy as np

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
                  end: datetime, translate: Lookup, embed: Embedder | None, outlet: str, probe: Probe) -> Hit | None:
    """Among the named outlet's articles of the named day (without a day: of the window
    before the post), the one the post paraphrases.

    Words: the share (weighted by rarity) of the article's title and summary words that
    the translated paragraph uses (the paragraph that names the outlet says what the
    outlet reported; a one-line mention borrows the post's title and lead). Meaning:
    cross-lingual embedding similarity of paragraph and article. The best must clear a
    floor and lead the outlet's other articles of that day (or window)."""
    assert cite.outlet is not None
    cands = index.outlet_window([cite.outlet], start - timedelta(days=1), end)
    cands = [a for a in cands if cite.day in a.days] if cite.day is not None else [a for a in cands if a.date >= start]
    if not cands:
        probe.needed = "an article of that outlet in the window"
        return None
    context_en = translate(cite.context)
    probe.translated = context_en is not None
    day = f" {cite.day}日" if cite.day else ""
    if context_en:
        words = content_words(context_en)
        if len(words) < MENTION_SHORT_CONTEXT:
            words |= content_words(" ".join(t for t in (translate(post.title), translate(text.lead)) if t))
        probe.needed = f"content ≥ {MENTION_ACCEPT:.2f}, ahead of the next by {MENTION_MARGIN:.2f}"
        scores = _content_scores(words, cands, cite.context, index, embed)
        order = sorted(range(len(cands)), key=lambda i: (-scores[i], cands[i].id))
        probe.ranked = [(cands[i], scores[i]) for i in order]
        best, runner = scores[order[0]], (scores[order[1]] if len(order) > 1 else 0.0)
        if best >= MENTION_ACCEPT and best - runner >= MENTION_MARGIN:
            return cands[order[0]], best, "mention", f"mention {outlet}{day} + content {best:.2f}"
        # (Letting the post's title and lead confirm the paragraph's front-runner found one more
        # article on dev2 but linked a wrong one in three posts once the cited article was
        # removed: the paragraph alone decides.)
        return None
    if embed is None:
        probe.needed = "a translation or embeddings to compare content"
        return None
    vecs = embed([_embed_text(cite.context)] + [_embed_text(a.text) for a in cands])
    scores = [float(x) for x in vecs[1:] @ vecs[0]]
    probe.needed = f"meaning alone ≥ {MENTION_MEANING_ONLY:.2f}, ahead of the next by {MENTION_MEANING_MARGIN:.2f}"
    order = sorted(range(len(cands)), key=lambda i: (-scores[i], cands[i].id))
    probe.ranked = [(cands[i], scores[i]) for i in order]
    best, runner = scores[order[0]], (scores[order[1]] if len(order) > 1 else 0.0)
    if best >= MENTION_MEANING_ONLY and best - runner >= MENTION_MEANING_MARGIN:
        return cands[order[0]], best, "mention", f"mention {outlet}{day} + meaning {best:.2f}"
    return None


def _content_scores(words: set[str], cands: Sequence[Article], context: str, index: ArticleIndex,
                    embed: Embedder | None) -> list[float]:
    """Each candidate's content score against the translated words of the post:
    0.45 × its title words covered + 0.25 × its text's + 0.30 × meaning (embeddings)."""
    index.preload(cands)
    lexical = [0.45 * index.cover(a.title_words, words) + 0.25 * index.cover(a.text_words, words) for a in cands]
    ranked = sorted(range(len(cands)), key=lambda i: (-lexical[i], cands[i].id))
    lead = lexical[ranked[0]]
    second = lexical[ranked[1]] if len(ranked) > 1 else 0.0
    # Meaning (in [0, 1], weight 0.30) is the costly part: skip it when it cannot
    # change the decision, and otherwise compute it for the lexical front-runners only.
    if lead + 0.30 < MENTION_ACCEPT or embed is None or (
            lead >= MENTION_ACCEPT and lead - (second + 0.30) >= MENTION_MARGIN):
        return lexical
    front = ranked[:MENTION_EMBED_TOP]
    vecs = embed([_embed_text(context)] + [_embed_text(cands[i].text) for i in front])
    got = {i: min(1.0, max(0.0, float(x))) for i, x in zip(front, vecs[1:] @ vecs[0], strict=False)}
    # The others are scored as if they meant as much as the best front-runner, which
    # can only narrow the winner's lead: it never lets a doubtful match through.
    ceiling = max(got.values(), default=0.0)
    return [lexical[i] + 0.30 * got.get(i, ceiling) for i in range(len(cands))]


def _embed_text(text: str) -> str:
    return embed_input(text)  # the key retention deletes by (aggregator.entryview)


def outlets_named(body: Sequence[str], outlet_names: Mapping[str, Sequence[str]]) -> set[str]:
    """The outlets whose name or an alias appears in the post's text."""
    if isinstance(outlet_names, OutletNames):
        finder, owners = outlet_names.finder
        return {oid for n in finder.find("\n".join(body)) for oid in owners[n]}
    return outlets_named_in("\n".join(body), outlet_names.items())
