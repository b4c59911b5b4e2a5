"""One cycle: fetch the due sources, store, match, translate, publish.

Each stage is a function over the store; the decisions inside them live in the pure
modules (parsing, citations, matching, publishing). Nothing here raises for a single
bad source, entry or translation: those are reported and the cycle goes on.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aggregator.citations import Outlet, Outlets, extract
from aggregator.config import Config, SourceConfig
from aggregator.embedding import Embedder
from aggregator.exceptions import AggregatorError, FetchError, ParseError, TranslationError
from aggregator.fetching import (
    HostLimiter,
    fetch,
    make_client,
    next_fetch_after_failure,
    next_fetch_after_success,
)
from aggregator.matching import ARTICLE_CHARS, ArticleIndex, OutletNames, Params, article_from_entry, match_post
from aggregator.models import Entry, ParsedFeed, iso
from aggregator.parsepool import parse_feed  # in worker processes when parses overlap (GIL)
from aggregator.publishing import publish, selection
from aggregator.storage import EntryTranslation, SourceState, Store
from aggregator.translation import EntryTexts, Translator, build_translator, retry_delay
from aggregator.urls import host_of

log = logging.getLogger("aggregator")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SourceReport:
    id: str
    outcome: str  # "new entries" | "unchanged" | "not modified" | "error" | "skipped"
    new: int = 0
    updated: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class CycleReport:
    sources: list[SourceReport] = field(default_factory=list)
    matched_posts: int = 0
    new_matches: int = 0
    translated: int = 0
    translation_pending: int = 0
    published: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return any(s.new or s.updated for s in self.sources) or bool(self.new_matches or self.translated)

    @property
    def failed_sources(self) -> list[SourceReport]:
        return [s for s in self.sources if s.outcome == "error"]


@dataclass
class _Fetched:
    source: SourceConfig
    state: SourceState
    result: Any = None
    parsed: ParsedFeed | None = None
    error: AggregatorError | None = None
    seconds: float = 0.0


def due_sources(config: Config, states: dict[str, SourceState], now: datetime, fetch_all: bool) -> list[SourceConfig]:
    """Sources to fetch now: never fetched, or due; disabled (410 Gone) ones only with --all."""
    out = []
    for s in config.sources:
        st = states.get(s.id)
        if st is None or fetch_all:
            out.append(s)
        elif st.disabled:
            continue
        elif st.next_fetch is None or st.next_fetch <= now:
            out.append(s)
    return out


def fetch_stage(store: Store, config: Config, *, now: Clock = utcnow, fetch_all: bool = False,
                only: Sequence[str] | None = None, rng: random.Random | None = None,
                progress: Callable[[SourceReport], None] | None = None,
                stop: threading.Event | None = None) -> list[SourceReport]:
    """Fetch and store the due sources concurrently; one failure never stops the others."""
    rng = rng or random.Random()
    store.sync_sources((s.id, s.url, s.role) for s in config.sources)
    states = store.source_states()
    due = due_sources(config, states, now(), fetch_all)
    if only is not None:
        due = [s for s in due if s.id in only]
    if not due:
        return []
    fc = config.fetch
    limiter = HostLimiter(fc.per_host)
    reports: list[SourceReport] = []
    with make_client(connect_timeout=fc.connect_timeout.total_seconds(), read_timeout=fc.timeout.total_seconds(),
                     max_connections=fc.concurrency) as client, \
            ThreadPoolExecutor(max_workers=min(fc.concurrency, len(due)), thread_name_prefix="fetch") as pool:

        def work(src: SourceConfig) -> _Fetched:
            st = states[src.id]
            job = _Fetched(src, st)
            if stop is not None and stop.is_set():
                job.error = FetchError("stopped before fetching")
                return job
            t0 = time.monotonic()
            try:
                with limiter(st.url):
                    job.result = fetch(client, st.url, etag=st.etag, last_modified=st.last_modified,
                                       max_bytes=fc.max_bytes, total_timeout=fc.timeout.total_seconds())
                if job.result.content is not None:
                    job.parsed = parse_feed(job.result.content, url=job.result.url,
                                            headers=job.result.headers, now=now())
            except AggregatorError as e:
                job.error = e
            except Exception as e:  # a bug or an unforeseen input: report, never crash the cycle
                log.exception("unexpected error on source %s", src.id)
                job.error = AggregatorError(f"internal error: {type(e).__name__}: {e}")
            job.seconds = time.monotonic() - t0
            return job

        futures = [pool.submit(work, s) for s in due]
        for fut in as_completed(futures):
            job = fut.result()
            report = _store_fetched(store, config, job, now(), rng)
            _log_source(report)
            reports.append(report)
            if progress:
                progress(report)
    order = {s.id: i for i, s in enumerate(config.sources)}
    reports.sort(key=lambda r: order.get(r.id, 0))
    return reports


def _store_fetched(store: Store, config: Config, job: _Fetched, now: datetime, rng: random.Random) -> SourceReport:
    src, st = job.source, job.state
    interval = config.interval(src)
    if job.error is not None:
        e = job.error
        failures = st.consecutive_failures + 1
        retry_after = e.retry_after if isinstance(e, FetchError) else None
        nxt = next_fetch_after_failure(now, interval, failures, retry_after=retry_after,
                                       max_backoff=config.fetch.max_backoff, rng=rng)
        status = e.status if isinstance(e, FetchError) else None
        disable = None
        if isinstance(e, FetchError) and e.permanent:
            disable = f"HTTP 410 Gone at {iso(now)}: the publisher removed this feed; fix its url to re-enable"
        kind = "parse" if isinstance(e, ParseError) else "fetch"
        store.record_failure(src.id, f"{kind}: {e}", now=now, next_fetch=nxt, status=status, disable=disable,
                             url=job.result.permanent_redirect if job.result is not None else None)
        return SourceReport(src.id, "error", error=str(e), seconds=job.seconds)
    res = job.result
    nxt = next_fetch_after_success(now, interval, res.headers)
    if res.permanent_redirect:
        log.warning("%s: moved permanently to %s; the stored URL now points there", src.id, res.permanent_redirect)
    parsed = job.parsed
    warning = "; ".join(parsed.warnings)[:1000] if parsed and parsed.warnings else None
    stored = store.record_success(
        src.id, src.role, parsed.entries if parsed else None, now=now, next_fetch=nxt, status=res.status,
        etag=res.etag, last_modified=res.last_modified, url=res.permanent_redirect,
        title=parsed.title if parsed else None, warning=warning)
    if parsed is None:
        outcome = "not modified"
    else:
        outcome = "new entries" if (stored.new or stored.updated) else "unchanged"
    return SourceReport(src.id, outcome, stored.new, stored.updated,
                        warnings=list(parsed.warnings) if parsed else [], seconds=job.seconds)


def _log_source(r: SourceReport) -> None:
    if r.outcome == "error":
        log.warning("%s: failed after %.1fs: %s", r.id, r.seconds, r.error)
    else:
        extra = f" (warning: {r.warnings[0]})" if r.warnings else ""
        log.info("%s: %s, %d new, %d updated, %.1fs%s", r.id, r.outcome, r.new, r.updated, r.seconds, extra)


# -- matching ----------------------------------------------------------------------------


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


def match_stage(store: Store, config: Config, *, now: Clock = utcnow, translator: Translator | None = None,
                embedder: Embedder | None = None, posts: Sequence[Entry] | None = None) -> tuple[int, int]:
    """Match the posts that need it. Returns (posts matched, matches that changed)."""
    t = now()
    latest = store.latest_outlet_first_seen()
    seen_before = store.get_meta("match_outlets_seen")
    new_articles = latest is not None and (seen_before is None or iso(latest) > seen_before)
    if posts is None:
        posts = store.posts_to_match(new_articles=new_articles, late_after=t - config.matching.late_window)
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
    # Summaries are read when a mention needs an article's text, not for the whole window.
    def text_of(article_id: int) -> str:
        return store.article_text(article_id, ARTICLE_CHARS)

    index = ArticleIndex(article_from_entry(a, all_names, load=text_of)
                         for a in store.article_heads_between(start, end, 0))
    hosts = own_hosts(config)
    target_language = outlet_language(config)
    embedder = embedder or Embedder(store)
    changed = 0
    for post in posts:
        text = extract(post.content or post.summary, own_hosts=hosts | post_hosts(post), outlets=outlets)
        lookup = _mention_translations(text, post, target_language, translator)
        outcome = match_post(post, text, index, params=params, outlet_names=names,
                             translate=lookup, embed=embedder)
        if store.set_matches(post.id, outcome.matches, outcome.state, t):
            changed += 1
        log.debug("matched %s: %s", post.link, [m.evidence for m in outcome.matches])
    if latest is not None:
        store.set_meta("match_outlets_seen", iso(latest) or "")
    return len(posts), changed


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
    from aggregator.matching import looks_english

    return [c.text for c in text.citations if c.kind == "headline" and c.text and not looks_english(c.text)]


def outlet_language(config: Config) -> str:
    langs = {s.language for s in config.sources if s.role == "outlet" and s.language != "auto"}
    return "en" if "en" in langs or not langs else sorted(langs)[0]


def _mention_translations(text: Any, post: Entry, target: str,
                          translator: Translator | None) -> Callable[[str], str | None]:
    """Translate what the matcher compares (cached), so it can compare words; without a
    translator it compares meaning only."""
    source = post.language or "ja"
    wanted = [(t, source) for t in mention_texts(post, text)] + [(t, "auto") for t in foreign_headlines(text)]
    if not wanted or translator is None:
        return lambda s: None
    found: dict[str, str] = {}
    for t, lang in wanted:
        try:
            found[t] = translator.translate(t, lang, target)[0]
        except TranslationError as e:
            log.info("could not translate for matching %s: %s", post.link, e)
    return found.get


# -- translation -------------------------------------------------------------------------


def entry_texts(entry: Entry) -> EntryTexts:
    """What of an entry a reader sees, as plain paragraphs."""
    from aggregator.html_text import blocks, strip_tags

    if entry.role == "blog":
        body = extract(entry.content or entry.summary)
        lead = (body.lead,) if body.lead else (strip_tags(entry.summary)[:600],)
        return EntryTexts(entry.title, tuple(p for p in lead if p), tuple(body.body[1:]))
    paras = tuple(b.text for b in blocks(entry.summary or entry.content)) or ()
    return EntryTexts(entry.title, paras)


def translate_stage(store: Store, config: Config, entries: Sequence[Entry], translator: Translator, *,
                    now: Clock = utcnow) -> tuple[int, int]:
    """Translate what the publication will show. Returns (done, still pending)."""
    target = config.translation.target
    tc = config.translation
    langs = {s.id: s.language for s in config.sources}
    existing = store.entry_translations([e.id for e in entries], target)
    translator.deadline = translator.clock() + tc.budget.total_seconds()
    done = pending = 0
    for e in entries:
        source = e.language or langs.get(e.source_id) or "auto"
        if source == "auto":
            from aggregator.language import detect

            source = detect(e.title + " " + e.summary[:500]) or "auto"
        if source == target:
            continue
        texts = entry_texts(e)
        digest = texts.digest(target)
        prev = existing.get(e.id)
        if prev and prev.input_hash == digest and prev.status == "done":
            continue
        t = now()
        if prev and prev.input_hash == digest and prev.retry_at and prev.retry_at > t:
            pending += 1
            continue
        if translator.deadline is not None and translator.clock() >= translator.deadline:
            pending += 1
            continue
        attempts = (prev.attempts if prev and prev.input_hash == digest else 0) + 1
        try:
            out = {s: translator.translate(s, source, target) for s in texts.all()}
        except TranslationError as err:
            delay = retry_delay(attempts, tc.retry_backoff.total_seconds(), tc.max_retry_backoff.total_seconds())
            store.set_entry_translation(EntryTranslation(
                e.id, target, digest, "pending", None, str(err)[:500], attempts, t + timedelta(seconds=delay), t,
                None, None, None))
            pending += 1
            continue
        providers = sorted({p for _, p in out.values() if p != "none"}) or ["cache"]
        store.set_entry_translation(EntryTranslation(
            e.id, target, digest, "done", "+".join(providers), None, attempts, None, t,
            out.get(texts.title, (texts.title, ""))[0],
            json.dumps([out[s][0] if s in out else s for s in texts.summary], ensure_ascii=False),
            json.dumps([out[s][0] if s in out else s for s in texts.content], ensure_ascii=False)))
        done += 1
    return done, pending


# -- the cycle ---------------------------------------------------------------------------


def run_cycle(store: Store, config: Config, *, now: Clock = utcnow, fetch_all: bool = False,
              rng: random.Random | None = None, progress: Callable[[SourceReport], None] | None = None,
              stop: threading.Event | None = None, translator: Translator | None = None) -> CycleReport:
    t0 = time.monotonic()
    report = CycleReport()
    report.sources = fetch_stage(store, config, now=now, fetch_all=fetch_all, rng=rng, progress=progress, stop=stop)
    own_translator = translator is None
    translator = translator or build_translator(config.translation, store, now=now)
    try:
        if stop is None or not stop.is_set():
            report.matched_posts, report.new_matches = match_stage(store, config, now=now, translator=translator)
        entries = selection(store, config)
        if stop is None or not stop.is_set():
            report.translated, report.translation_pending = translate_stage(
                store, config, entries, translator, now=now)
        _, report.published = publish(store, config, now=now(), entries=entries)
    finally:
        if own_translator:
            translator.close()
    report.seconds = time.monotonic() - t0
    return report
