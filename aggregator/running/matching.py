"""The match stage: which posts to match, the index of the outlets' articles in their
window, and each post matched to the articles it cites (decisions in :mod:`aggregator.citing`)."""

from __future__ import annotations

import bisect
import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

from aggregator.citing.embeddings import Embedder
from aggregator.citing.extract import Outlet, Outlets, PostText, extract, extract_many
from aggregator.citing.match import (
    ArticleIndex,
    OutletNames,
    Params,
    article_from_head,
    match_post,
)
from aggregator.config import Config
from aggregator.entryview import ARTICLE_CHARS
from aggregator.exceptions import (
    TranslationError,
)
from aggregator.models import Entry, Match, from_iso, iso
from aggregator.running.clock import Clock, utcnow
from aggregator.running.providers import META_KEY as PROVIDERS_KEY
from aggregator.running.providers import load_states
from aggregator.sources import parsepool
from aggregator.store import Store
from aggregator.translating.chain import Translator
from aggregator.urls import host_of

log = logging.getLogger("aggregator")

def outlets_of(config: Config) -> Outlets:
    return Outlets(Outlet(s.id, tuple(dict.fromkeys([s.title, *s.aliases]))) for s in config.sources
                   if s.role == "outlet")


def own_hosts(config: Config) -> set[str]:
    """The blog's hosts as configured (its feed's host)."""
    hosts = {host_of(s.url) for s in config.sources if s.role == "blog"}
    return {h.removeprefix("www.") for h in hosts if h}


def post_hosts(post: Entry) -> set[str]:
    """The host of a post's own link: a feed may be served from elsewhere (a CDN, a
    proxy) than the blog's pages, and a link to the blog is never a citation."""
    h = host_of(post.link or "").removeprefix("www.")
    return {h} if h else set()


# Posts whose matches are written in one transaction: a commit each cost a cold cycle of
# thousands of posts about as much as their writes; what a crash loses is matched again.
MATCH_WRITE_BATCH = 500


def match_stage(store: Store, config: Config, *, now: Clock = utcnow, translator: Translator | None = None,
                embedder: Embedder | None = None, posts: Sequence[Entry] | None = None,
                incomplete: list[int] | None = None) -> tuple[int, int]:
    """Match the posts that need it. Returns (posts matched, matches that changed).

    A post whose texts could not all be translated for matching (a provider down) is
    matched with what there is and marked ``incomplete``: matched again in the first
    cycle with no provider known down; its id goes to ``incomplete`` (retention waits
    while there are any)."""
    t = now()
    latest = store.latest_outlet_first_seen()
    seen_before = store.get_meta("match_outlets_seen")
    new_articles = latest is not None and (seen_before is None or (iso(latest) or "") > seen_before)
    if posts is None:
        # Every post, published or not (a post pushed out of the feed keeps its links for
        # any later edition or export): the new ones, and, when new articles arrived, those
        # still looking (first seen within late_window) whose window the new articles fall in.
        # Posts matched without a translation they needed are matched again once no
        # provider is known down (a cycle with nothing due for retry calls none).
        down = any(st.state == "down" for st in load_states(store.get_meta(PROVIDERS_KEY)).values())
        posts = store.posts_to_match(new_articles=new_articles, late_after=t - config.matching.late_window,
                                     incomplete=not down)
        if posts and new_articles:
            posts = _worth_rematching(store, posts, seen_before, config)
    if not posts:
        if latest is not None:
            store.set_meta("match_outlets_seen", iso(latest) or "")
        return 0, 0
    params = Params(window=config.matching.window)
    outlets = outlets_of(config)
    names = OutletNames({o.id: o.names for o in outlets})
    all_names = names.normalized
    start = min(p.date for p in posts) - params.window
    end = max(p.date for p in posts) + params.after
    hosts = own_hosts(config)
    target_language = outlet_language(config)
    embedder = embedder or Embedder(store)
    changed = 0
    done: list[tuple[int, Sequence[Match], str | None]] = []
    with _collector_paused():
        texts = _post_texts(posts, hosts, outlets)
        index = article_index(store, config, start, end, all_names)
        for post, text in zip(posts, texts, strict=True):
            failed: list[str] = []
            lookup = _mention_translations(text, post, target_language, translator, failed)
            outcome = match_post(post, text, index, params=params, outlet_names=names,
                                 translate=lookup, embed=embedder)
            if failed and incomplete is not None:
                incomplete.append(post.id)
            done.append((post.id, outcome.matches, "incomplete" if failed else outcome.state))
            log.debug("matched %s: %s", post.link, [m.evidence for m in outcome.matches])
            if len(done) >= MATCH_WRITE_BATCH:
                changed += store.set_many_matches(done, t)
                done = []
        changed += store.set_many_matches(done, t)
    if latest is not None:
        store.set_meta("match_outlets_seen", iso(latest) or "")
    return len(posts), changed


# Posts whose citations one piece of the parse pool's work extracts.
EXTRACT_CHUNK = 250


def _post_texts(posts: Sequence[Entry], hosts: set[str], outlets: Outlets) -> Iterator[PostText]:
    """Each post's text (:func:`extract`), in order. When there are many and the feed-parsing
    processes are running (a cold cycle: thousands of posts), they extract them while this
    thread builds the article index: the two took a second each, one after the other."""
    if len(posts) < 2 * EXTRACT_CHUNK:
        return (extract(p.body, own_hosts=hosts | post_hosts(p), outlets=outlets) for p in posts)
    plain = tuple(outlets)
    chunks = [(plain, [(p.body, tuple(hosts | post_hosts(p))) for p in posts[i:i + EXTRACT_CHUNK]])
              for i in range(0, len(posts), EXTRACT_CHUNK)]
    return chain.from_iterable(parsepool.DEFAULT.map_if_running(extract_many, chunks))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the match stage builds its index and matches:
    it allocates millions of objects that live until its end and makes no cycles worth
    collecting, and each full collection walked them all again (a tenth of the stage's
    time on a cold cycle). Reference counting frees as usual; the collector resumes after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _worth_rematching(store: Store, posts: Sequence[Entry], seen_before: str | None,
                      config: Config) -> list[Entry]:
    """Of the posts to match, those never matched, and the unresolved ones whose window
    holds an article that arrived since the last matching (the others would find what
    they found before): the cost follows what changed, not how many posts wait."""
    since = from_iso(seen_before)
    if since is None:
        return list(posts)
    dates = store.outlet_dates_first_seen_after(since)
    states = store.match_states(p.id for p in posts)
    if not dates:
        return [p for p in posts if states.get(p.id) is None]
    dates = sorted(dates)
    window, after = config.matching.window, Params().after
    out = []
    for p in posts:
        # The matcher looks a day further back for a mention's local day.
        i = bisect.bisect_left(dates, p.date - window - timedelta(days=1))
        if states.get(p.id) is None or (i < len(dates) and dates[i] <= p.date + after):
            out.append(p)
    return out


def article_index(store: Store, config: Config, start: datetime, end: datetime,
                  all_names: Any) -> ArticleIndex:
    """The outlet articles dated between ``start`` and ``end``, indexed for matching.
    Summaries are read when a mention needs an article's text, not for the whole window."""
    def text_of(article_id: int) -> str:
        return store.article_text(article_id, ARTICLE_CHARS)

    def texts_of(article_ids: list[int]) -> dict[int, str]:
        return store.article_texts(article_ids, ARTICLE_CHARS)

    sites = {s.id: s.site for s in config.sources if s.site}
    return ArticleIndex((article_from_head(*a, all_names, load=text_of, site=sites.get(a[1], ""))
                         for a in store.article_heads(start, end)), load_many=texts_of)


def mention_texts(post: Entry, text: Any) -> list[str]:
    """The texts of a post the matcher wants in the outlets' language: for a post that
    names outlets, its title, lead and the paragraphs that name them."""
    contexts = [c.context for c in text.citations if c.kind == "mention" and c.context]
    if not contexts:
        return []
    return list(dict.fromkeys(t for t in (post.title, text.lead, *contexts) if t))


def foreign_headlines(text: Any) -> list[str]:
    """Headline citations in another language than English, which the matcher compares
    by meaning (and through their translation, when there is one)."""
    from aggregator.citing.match import looks_english

    return [c.text for c in text.citations if c.kind == "headline" and c.text and not looks_english(c.text)]


def outlet_language(config: Config) -> str:
    langs = {s.language for s in config.sources if s.role == "outlet" and s.language != "auto"}
    return "en" if "en" in langs or not langs else sorted(langs)[0]


def _mention_translations(text: Any, post: Entry, target: str, translator: Translator | None,
                          failed: list[str] | None = None) -> Callable[[str], str | None]:
    """Translations of what the matcher compares (cached), asked for only when the
    matcher needs them (an in-text citation that names a 参考 line's own outlet never
    does); without a translator the matcher compares meaning only. Texts whose
    translation failed for now (not for good) go to ``failed``."""
    if translator is None:
        return lambda s: None
    source = post.language or "ja"
    foreign = set(foreign_headlines(text))
    found: dict[str, str | None] = {}

    def lookup(s: str) -> str | None:
        if s not in found:
            try:
                found[s] = translator.translate(s, "auto" if s in foreign else source, target)[0]
            except TranslationError as e:
                # said once per provider and cycle by the translate stage's health report
                log.debug("could not translate for matching %s: %s", post.link, e)
                found[s] = None
                if failed is not None and e.retryable:  # a refusal for good will not get better by waiting
                    failed.append(s)
        return found[s]

    return lookup


# -- translation -------------------------------------------------------------------------
