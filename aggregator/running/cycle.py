"""One cycle: fetch the due sources, store, match, translate, publish.

Each stage is a function over the store; the decisions inside them live in the pure
modules (parsing, citations, matching, publishing). Nothing here raises for a single
bad source, entry or translation: those are reported and the cycle goes on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any

import httpx

from aggregator import language
from aggregator.config import Config, SourceConfig
from aggregator.entryview import entry_texts
from aggregator.exceptions import (
    AggregatorError,
    FetchError,
    ParseError,
)
from aggregator.models import Entry, ParsedFeed, from_iso, iso
from aggregator.publishing.publish import publish, selection
from aggregator.redaction import Redactor
from aggregator.running.clock import Clock, utcnow
from aggregator.running.matching import match_stage
from aggregator.running.pages import PageReport, page_stage
from aggregator.running.providers import META_KEY as PROVIDERS_KEY
from aggregator.running.providers import ProviderState, Transition, dump_states, load_states, next_states
from aggregator.running.translation import translate_stage
from aggregator.sources.decide import Configured
from aggregator.sources.fetch import (
    FetchClient,
    HostLimiter,
    fetch,
    host_key,
    make_client,
    next_fetch_after_failure,
    next_fetch_after_success,
    origin,
)
from aggregator.sources.parsepool import (
    parse_feed,  # in worker processes when parses overlap (GIL)
)
from aggregator.store import SourceState, Store
from aggregator.store.records import guid_churn_warning, unstable_guids
from aggregator.translating.chain import Translator, build_translator
from aggregator.translating.memory import memory_for

log = logging.getLogger("aggregator")

@dataclass
class SourceReport:
    id: str
    # "new entries" | "unchanged" | "not modified" | "error" | "skipped" (its server did not
    # answer another source this cycle) | "abandoned" (stopping)
    outcome: str
    new: int = 0
    updated: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    pages: PageReport | None = None  # the entries' own pages fetched after the feed


@dataclass
class CycleReport:
    sources: list[SourceReport] = field(default_factory=list)
    matched_posts: int = 0
    new_matches: int = 0
    translated: int = 0
    translation_pending: int = 0
    translation_requests: int = 0  # sent to translation providers this cycle
    translation_characters: int = 0
    published: int = 0
    seconds: float = 0.0
    pruned: int = 0
    cache_pruned: int = 0
    compacted: bool = False
    # Translation providers that failed this cycle (name -> last error), the state
    # changes since the last cycle, and the texts of the entries still waiting.
    provider_failures: dict[str, str] = field(default_factory=dict)
    provider_transitions: list[Transition] = field(default_factory=list)
    provider_states: dict[str, ProviderState] = field(default_factory=dict)
    waiting_texts: int = 0

    def provider_warnings(self) -> list[str]:
        """One line per provider that failed this cycle, or is still known down (a cycle
        with nothing due for retry does not call it): what, and how much waits."""
        wait = f"{self.waiting_texts} texts of {self.translation_pending} entries wait for a translation"
        # A provider already down before this cycle that failed again (matching asks for
        # translations too) is said with since when, like one this cycle did not call.
        went_down = {t.name for t in self.provider_transitions if t.state == "down"}
        lines = []
        for name, error in self.provider_failures.items():
            st = self.provider_states.get(name)
            if st is not None and st.state == "down" and name not in went_down:
                lines.append(f"translation: {name} down since {_utc_minute(st.since)} ({error}); {wait}")
            else:
                lines.append(f"translation: {name} failed this cycle ({error}); {wait}")
        lines += [f"translation: {st.name} down since {_utc_minute(st.since)} ({st.error}); {wait}"
                  for st in self.provider_states.values()
                  if st.state == "down" and st.name not in self.provider_failures and self.translation_pending]
        return lines

    def transition_lines(self) -> list[str]:
        """One line per provider that went down or came back since the last cycle."""
        return [f"translation: {t.name} is down ({t.error}); {self.waiting_texts} texts of "
                f"{self.translation_pending} entries wait for a translation" if t.state == "down"
                else f"translation: {t.name} is back" for t in self.provider_transitions]

    @property
    def changed(self) -> bool:
        return any(s.new or s.updated or (s.pages and s.pages.texts) for s in self.sources) or bool(
            self.new_matches or self.translated or self.pruned)

    @property
    def failed_sources(self) -> list[SourceReport]:
        return [s for s in self.sources if s.outcome == "error"]

    @property
    def skipped_sources(self) -> list[SourceReport]:
        return [s for s in self.sources if s.outcome == "skipped"]

    @property
    def fetched_sources(self) -> list[SourceReport]:
        return [s for s in self.sources if s.outcome not in ("abandoned", "skipped")]

    def summary(self) -> str:
        """The cycle in one line (the log's, and ``run --once``'s on stdout)."""
        fetched = self.fetched_sources
        new = sum(s.new for s in fetched)
        upd = sum(s.updated for s in fetched)
        distinct = len({s.id for s in fetched})
        # The daemon's cycle may fetch a source more than once.
        what = (f"{distinct} sources fetched" if distinct == len(fetched)
                else f"{len(fetched)} fetches of {distinct} sources")
        line = (f"cycle: {what} ({len(self.failed_sources)} failed), {new} new and "
                f"{upd} updated entries, {self.matched_posts} posts matched ({self.new_matches} changed), "
                f"{self.translated} translated ({self.translation_pending} pending; "
                f"{self.translation_requests} requests, {self.translation_characters} characters sent to translators), "
                f"{self.published} entries published")
        pages = [s.pages for s in fetched if s.pages is not None]
        if pages:
            line += (f", {sum(p.requests for p in pages)} pages fetched ({sum(p.texts for p in pages)} texts, "
                     f"{sum(p.failed for p in pages)} failed, {sum(p.waiting for p in pages)} waiting)")
        if self.pruned:
            line += f", {self.pruned} old articles pruned"
        if self.skipped_sources:
            n = len(self.skipped_sources)
            line += f", {n} source{'s' if n != 1 else ''} skipped (their server did not answer)"
        if len(fetched) < len(self.sources):
            n = len(self.sources) - len(fetched)
            line += f", {n} fetch{'es' if n != 1 else ''} abandoned"
        return line + f" in {self.seconds:.1f}s"


@dataclass
class _Fetched:
    source: SourceConfig
    state: SourceState
    result: Any = None
    parsed: ParsedFeed | None = None
    error: AggregatorError | None = None
    seconds: float = 0.0
    stopped: bool = False  # never started: the run is stopping
    skipped: str | None = None  # never started: its server did not answer another source


def due_sources(config: Config, states: dict[str, SourceState], now: datetime, fetch_all: bool,
                slack: timedelta = timedelta(0)) -> list[SourceConfig]:
    """Sources to fetch now: never fetched, or due (within ``slack``: the daemon's timer
    fires one interval after the last fire, a little before the stored next fetch, which
    counts from the end of the fetch); disabled (410 Gone) ones only with --all."""
    out = []
    for s in config.sources:
        st = states.get(s.id)
        if st is None or fetch_all:
            out.append(s)
        elif st.disabled:
            continue
        elif st.next_fetch is None or st.next_fetch <= now + slack:
            out.append(s)
    return out


def fetch_stage(store: Store, config: Config, *, now: Clock = utcnow, fetch_all: bool = False,
                only: Sequence[str] | None = None, rng: random.Random | None = None,
                progress: Callable[[SourceReport], None] | None = None,
                stop: threading.Event | None = None, on_due: Callable[[int], None] | None = None,
                slack: timedelta = timedelta(0), limiter: HostLimiter | None = None,
                client: FetchClient | None = None,
                warm_up: Callable[[], object] | None = None) -> list[SourceReport]:
    """Fetch and store the due sources concurrently; one failure never stops the others.

    ``on_due`` hears how many sources are due before any is fetched (a progress bar's
    total). When ``stop`` is set, fetches in flight are abandoned (nothing of them is
    stored; they are due again next time) and their threads left to the process's end.
    ``limiter`` bounds the requests in flight per host and ``client`` holds the open
    connections: calls that run side by side (the daemon's per-source jobs) share both,
    so that they never have more than ``fetch.per_host`` connections open to one host
    (the owner of a client passed in closes it). ``warm_up`` runs once, on a thread of its
    own, when the fetches are over and some source brought new entries (what the later
    stages will need loaded)."""
    rng = rng or random.Random()
    if only is None:
        store.sync_sources(configured_sources(config), now=now())
        states = store.source_states(counts=False)
    else:
        # A daemon's or worker's job for some sources: the daemon made the table follow
        # the config when it started (or reloaded); only a source not there yet needs it.
        states = store.source_states(only, counts=False)
        if any(i not in states for i in only):
            store.sync_sources(configured_sources(config), now=now())
            states = store.source_states(only, counts=False)
    due = due_sources(config, states, now(), fetch_all, slack)
    if only is not None:
        due = [s for s in due if s.id in only and s.id in states]
    if on_due:
        on_due(len(due))
    if not due:
        return []
    fc = config.fetch
    limiter = limiter or HostLimiter(fc.per_host)
    redactor = Redactor(config.secrets)
    reports: list[SourceReport] = []
    own_client = client is None
    if client is None:
        client = make_fetch_client(config)
    pool = ThreadPoolExecutor(max_workers=min(fc.concurrency, len(due)), thread_name_prefix="fetch")
    abandoned = False
    try:

        def work(src: SourceConfig) -> _Fetched:
            st = states[src.id]
            job = _Fetched(src, st)
            if stop is not None and stop.is_set():
                job.stopped = True
                return job
            t0 = time.monotonic()
            try:
                job.skipped = _skip_reason(limiter, st.url)
                if job.skipped is None:
                    sem = limiter(st.url)
                    # Only the daemon's jobs, which share the limiter, ever wait here.
                    if not sem.acquire(timeout=fc.timeout.total_seconds()):
                        job.skipped = (f"waited {fc.timeout.total_seconds():g} s for a free connection to "
                                       f"{host_key(st.url)}")
                    else:
                        try:
                            job.skipped = _skip_reason(limiter, st.url)
                            if job.skipped is None:
                                job.result = fetch(
                                    client, st.url, etag=st.etag, last_modified=st.last_modified,
                                    max_bytes=fc.max_bytes, total_timeout=fc.timeout.total_seconds(),
                                    allow_private=fc.allow_private_networks,
                                    private_origin=origin(src.url) if src.allow_private_network else None)
                        finally:
                            sem.release()
                if job.result is not None and job.result.content is not None:
                    job.parsed = parse_feed(job.result.content, url=job.result.url,
                                            headers=job.result.headers, now=now())
            except AggregatorError as e:
                job.error = e
                if isinstance(e, FetchError) and e.unreachable:
                    limiter.mark_down(e.unreachable, str(e))
            except Exception as e:  # a bug or an unforeseen input: report, never crash the cycle
                if stop is None or not stop.is_set():
                    log.exception("unexpected error on source %s", src.id)
                job.error = AggregatorError(f"internal error: {type(e).__name__}: {e}")
            job.seconds = time.monotonic() - t0
            return job

        # Sources wait in one queue per host and a host's next source is handed to a
        # worker only when one of its fetches ends: workers never sit blocked behind a
        # slow host while other hosts wait (head-of-line blocking), and once a server has
        # not answered, its remaining sources are skipped instead of each timing out.
        queues: dict[str, deque[SourceConfig]] = {}
        for s in due:
            queues.setdefault(host_key(states[s.id].url), deque()).append(s)
        running: dict[Future[_Fetched], str] = {}
        in_flight: dict[str, int] = {}  # host -> its sources in ``running``
        # Each fetch puts its future here when it ends: the loop wakes once per fetch and
        # looks at no other (``wait`` on every future in flight, 64 of them with 32 hosts,
        # took and gave back each one's lock at every wake: a fifth of a warm cycle's main
        # thread, taken from the fetch threads under the GIL).
        finished: SimpleQueue[Future[_Fetched]] = SimpleQueue()

        def submit(host: str, src: SourceConfig) -> None:
            fut = pool.submit(work, src)
            running[fut] = host
            in_flight[host] = in_flight.get(host, 0) + 1
            fut.add_done_callback(finished.put)
        # The plain 304s are stored together once the fetches end (see Store.record_not_modified):
        # a source whose answer is lost with the process (killed mid-cycle) is merely fetched
        # again. Not in batches while fetches run: each row's statement gives up the GIL, and
        # taking it back from eight busy fetch threads made 1,000 rows cost 0.1 s, not 3 ms.
        not_modified: list[tuple[str, datetime, str | None, str | None]] = []

        def feed(host: str) -> None:
            queue = queues.get(host)
            while queue and in_flight.get(host, 0) < fc.per_host:
                submit(host, queue.popleft())

        # Round robin over hosts: the first request of every host goes out first.
        for _ in range(fc.per_host):
            for host, queue in queues.items():
                if queue:
                    submit(host, queue.popleft())
        # What is stored while other fetches are done already commits together (Store.grouped).
        with store.grouped():
            while running:
                if stop is not None and stop.is_set():
                    abandoned = True
                    log.info("stopping: %d fetch%s in flight abandoned (%s fetched again next time)", len(running),
                             "es" if len(running) != 1 else "", "they are" if len(running) != 1 else "it is")
                    left = {s.id for s in due} - {r.id for r in reports}
                    reports.extend(SourceReport(sid, "abandoned") for sid in sorted(left))
                    break
                try:
                    ended = [finished.get(timeout=GROUP_IDLE)]
                except Empty:
                    store.commit_group()  # nothing ended for a while: nothing waits uncommitted
                    continue
                while not finished.empty():
                    ended.append(finished.get_nowait())
                for fut in ended:
                    host = running.pop(fut)
                    in_flight[host] -= 1
                    job = fut.result()
                    feed(host)
                    if job.stopped:
                        reports.append(SourceReport(job.source.id, "abandoned"))
                        continue
                    report = _store_fetched(store, config, job, now(), rng, redactor, not_modified)
                    _log_source(report)
                    reports.append(report)
                    if progress:
                        progress(report)
                # Every so many feeds or seconds (Store.grouped), not whenever the queue is empty:
                # in a cold cycle it nearly always is (storing keeps up with the fetches), and a
                # commit per feed rewrote the same index pages 1,000 times.
                store.commit_group_if_due()
        if not_modified:
            store.record_not_modified(not_modified, now=now())
        if warm_up is not None and any(r.new for r in reports):
            # Not while the feeds are parsed: that keeps both cores busy, and the warm-up
            # (decompressing a model, the GIL released) would only take its time from them.
            # Beside the page stage and the match stage's start, one core is idle.
            threading.Thread(target=_quietly, args=(warm_up,), name="warm-up", daemon=True).start()
        if not abandoned and (stop is None or not stop.is_set()):
            # Then the entries' own pages, where a feed gave excerpts (sources[].full_text).
            ok = {r.id for r in reports if r.outcome not in ("error", "abandoned")}
            fetched = [s for s in due if s.id in ok]
            page_reports = page_stage(store, config, fetched, client=client, limiter=limiter, now=now, rng=rng,
                                      stop=stop)
            for r in reports:
                r.pages = page_reports.get(r.id)
    finally:
        if abandoned:
            # A request blocked on a slow server cannot be interrupted from here; its
            # thread ends with its read timeout, or with the process.
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            pool.shutdown(wait=True)
            if own_client:
                client.close()
    order = {s.id: i for i, s in enumerate(config.sources)}
    reports.sort(key=lambda r: order.get(r.id, 0))
    return reports


def _quietly(work: Callable[[], object]) -> None:
    """``work()``, its failure only logged: what it prepares is made again where it is needed,
    and fails there with the error to show."""
    try:
        work()
    except Exception as e:
        log.debug("warm-up failed (done again when needed): %s", e)


def _skip_reason(limiter: HostLimiter, url: str) -> str | None:
    try:
        where = origin(url)
    except (httpx.InvalidURL, ValueError):
        return None
    reason = limiter.down(where)
    return f"{where} did not answer another source this cycle ({reason})" if reason else None


def configured_sources(config: Config) -> list[Configured]:
    """The config's sources as :func:`aggregator.sources.decide.plan_sources` reads them."""
    return [Configured(s.id, s.url, s.role, s.title) for s in config.sources]


def make_fetch_client(config: Config) -> FetchClient:
    fc = config.fetch
    return make_client(connect_timeout=fc.connect_timeout.total_seconds(),
                       read_timeout=min(fc.read_timeout, fc.timeout).total_seconds(),
                       max_connections=fc.concurrency)


# How long the fetch stage waits for a fetch to end before it commits what it holds (s).
GROUP_IDLE = 0.5


def _store_fetched(store: Store, config: Config, job: _Fetched, now: datetime, rng: random.Random,
                   redactor: Redactor, not_modified: list[tuple[str, datetime, str | None, str | None]] | None = None,
                   ) -> SourceReport:
    """Store what a fetch brought (or its failure); a plain 304 is appended to
    ``not_modified`` instead, when given, for the caller to store with others."""
    src, st = job.source, job.state
    interval = config.interval(src)
    if job.skipped is not None:
        # Not tried: due again next cycle, like a failure (the server is in trouble).
        message = redactor(f"skipped: {job.skipped}")
        nxt = next_fetch_after_failure(now, interval, st.consecutive_failures + 1, retry_after=None,
                                       max_backoff=config.fetch.max_backoff, rng=rng)
        store.record_failure(src.id, f"fetch: {message}", now=now, next_fetch=nxt)
        return SourceReport(src.id, "skipped", error=message, seconds=job.seconds)
    if job.error is not None:
        e = job.error
        failures = st.consecutive_failures + 1
        retry_after = e.retry_after if isinstance(e, FetchError) else None
        nxt = next_fetch_after_failure(now, interval, failures, retry_after=retry_after,
                                       max_backoff=config.fetch.max_backoff, rng=rng)
        status = e.status if isinstance(e, FetchError) else None
        disable = None
        if isinstance(e, FetchError) and e.permanent:
            disable = (f"HTTP 410 Gone on {iso(now)}: the publisher removed this feed, so it is no longer "
                       "fetched; to re-enable it, change its url in the config, or try it again with "
                       "`aggregator run --once --all`")
        kind = "parse" if isinstance(e, ParseError) else "fetch"
        message = redactor(str(e))  # errors may quote the URL, with its password or token
        store.record_failure(src.id, f"{kind}: {message}", now=now, next_fetch=nxt, status=status,
                             disable=disable, url=job.result.permanent_redirect if job.result is not None else None)
        return SourceReport(src.id, "error", error=message, seconds=job.seconds)
    res = job.result
    nxt = next_fetch_after_success(now, interval, res.headers)
    if res.permanent_redirect:
        log.warning("%s: moved permanently to %s; the stored URL now points there", src.id,
                    redactor(res.permanent_redirect))
    if st.disabled:
        log.warning("%s: answers again; re-enabled", src.id)
    parsed = job.parsed
    if (not_modified is not None and res.status == 304 and parsed is None and not res.permanent_redirect
            and not st.disabled):
        not_modified.append((src.id, nxt, res.etag, res.last_modified))
        return SourceReport(src.id, "not modified", 0, 0, warnings=[], seconds=job.seconds)
    warnings = [redactor(w) for w in parsed.warnings] if parsed else []
    warning = "; ".join(warnings)[:1000] if warnings else None
    stored = store.record_success(
        src.id, src.role, parsed.entries if parsed else None, now=now, next_fetch=nxt, status=res.status,
        etag=res.etag, last_modified=res.last_modified, url=res.permanent_redirect,
        title=parsed.title if parsed else None, warning=warning)
    outcome = "not modified" if parsed is None else "new entries" if stored.new or stored.updated else "unchanged"
    if unstable_guids(stored.guid_churn):
        log.warning("%s: %s", src.id, guid_churn_warning(stored.guid_churn))
    return SourceReport(src.id, outcome, stored.new, stored.updated, warnings=warnings, seconds=job.seconds)


def _log_source(r: SourceReport) -> None:
    if r.outcome == "error":
        log.warning("%s: failed after %.1fs: %s", r.id, r.seconds, r.error)
    elif r.outcome == "skipped":
        log.warning("%s: %s", r.id, r.error)
    else:
        extra = f" (warning: {r.warnings[0]})" if r.warnings else ""
        log.info("%s: %s, %d new, %d updated, %.1fs%s", r.id, r.outcome, r.new, r.updated, r.seconds, extra)


# -- the cycle ---------------------------------------------------------------------------


def _utc_minute(when: str) -> str:
    t = from_iso(when)
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else when


def _provider_health(store: Store, config: Config, report: CycleReport, translator: Translator,
                     entries: Sequence[Entry], t: datetime) -> None:
    """Which providers failed this cycle, what changed since the last one (kept in the
    store for ``status`` and the next cycle), and how many texts wait."""
    st = translator.stats
    report.provider_failures = {name: st.last_error.get(name, "failed") for name in st.failures
                                if not st.texts.get(name)}
    previous = load_states(store.get_meta(PROVIDERS_KEY))
    states, transitions = next_states(
        previous, [p.name for p in translator.providers], report.provider_failures,
        [name for name, n in st.texts.items() if n], t)
    report.provider_states, report.provider_transitions = states, transitions
    if states != previous:
        store.set_meta(PROVIDERS_KEY, dump_states(states))
    if report.translation_pending:
        rows = store.entry_translations([e.id for e in entries], config.translation.target)
        report.waiting_texts = sum(len(entry_texts(e).all()) for e in entries
                                   if (r := rows.get(e.id)) is not None and r.status == "pending")



def run_cycle(store: Store, config: Config, *, now: Clock = utcnow, fetch_all: bool = False,
              rng: random.Random | None = None, progress: Callable[[SourceReport], None] | None = None,
              stop: threading.Event | None = None, translator: Translator | None = None,
              on_due: Callable[[int], None] | None = None, allow_shrink: bool = False) -> CycleReport:
    t0 = time.monotonic()
    report = CycleReport()
    # New entries will be translated: the answers' language check needs its model (0.6 s
    # to load), loaded on a thread of its own once the fetches are over (see fetch_stage).
    warm_up = language.load if config.translation.providers else None
    report.sources = fetch_stage(store, config, now=now, fetch_all=fetch_all, rng=rng, progress=progress, stop=stop,
                                 on_due=on_due, warm_up=warm_up)
    process_stage(store, config, report, now=now, stop=stop, translator=translator, allow_shrink=allow_shrink)
    report.seconds = time.monotonic() - t0
    log.info("%s", report.summary())
    return report


def process_stage(store: Store, config: Config, report: CycleReport, *, now: Clock = utcnow,
                  stop: threading.Event | None = None, translator: Translator | None = None,
                  allow_shrink: bool = False) -> CycleReport:
    """Everything after fetching: match, prune (retention), translate, publish, compact.
    Fills ``report``. When ``stop`` is set, matching and translation wait for the next
    cycle but what is stored is still published."""
    from aggregator.running.retention import compact_if_due, prune_articles, sweep_translation_cache_if_due

    cycle_start = now()

    own_translator = translator is None
    translator = translator or build_translator(config.translation, store, now=now,
                                                memory=memory_for(config.memory_path))
    used_before = translator.stats.usage()
    try:
        # One line per stage at -v: where a cycle spends its time, and where it stopped.
        if stop is None or not stop.is_set():
            log.info("matching posts to the articles they cite")
            incomplete: list[int] = []
            report.matched_posts, report.new_matches = match_stage(store, config, now=now, translator=translator,
                                                                   incomplete=incomplete)
            waiting = store.incomplete_matches()
            if incomplete or waiting:
                # A post matched without all its translations may cite an article retention
                # would forget: prune only once every post was matched with every provider.
                log.info("retention waits: %d post%s matched without all translations (matched again once "
                         "the translators answer)", waiting, "s" if waiting != 1 else "")
            else:
                report.pruned = prune_articles(store, config, now())
        entries = selection(store, config)
        if stop is None or not stop.is_set():
            log.info("translating what the feed will show (%d entries)", len(entries))
            report.translated, report.translation_pending = translate_stage(
                store, config, entries, translator, now=now, stop=stop)
        store.check_identity()  # the file deleted or replaced under us: never publish from what is left
        log.info("publishing %d entries to %s", len(entries), config.output_dir)
        _, report.published = publish(store, config, now=now(), entries=entries, allow_shrink=allow_shrink)
        st = translator.stats
        report.translation_requests, report.translation_characters = st.total_requests, st.total_characters
        used: dict[str, tuple[int, int, int, int]] = {}  # this cycle's, per provider
        for p, (req, chars, prompt, completion) in st.usage().items():
            req0, chars0, prompt0, completion0 = used_before.get(p, (0, 0, 0, 0))
            used[p] = (req - req0, chars - chars0, prompt - prompt0, completion - completion0)
        if stop is None or not stop.is_set() or any(n[0] for n in used.values()):
            store.record_translation_usage(used, now())
        _provider_health(store, config, report, translator, entries, now())
        if st.total_requests or report.translation_pending:
            log.info("translation: %d done, %d pending; sent %s; %d texts from the cache",
                     report.translated, report.translation_pending,
                     ", ".join(f"{p}: {n} requests, {st.characters[p]} characters"
                               + (f", {st.prompt_tokens.get(p, 0)}+{st.completion_tokens.get(p, 0)} tokens"
                                  if p in st.prompt_tokens else "")
                               for p, n in st.requests.items()) or "nothing", st.cache_hits)
        if stop is None or not stop.is_set():
            report.cache_pruned = sweep_translation_cache_if_due(store, config, now(), cycle_start)
            report.compacted = compact_if_due(store, config, now())
    finally:
        if own_translator:
            translator.close()
    return report
