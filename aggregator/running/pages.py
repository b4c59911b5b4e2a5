"""Fetch the pages of entries whose feed carries only an excerpt, and keep their text.

The shell around :mod:`aggregator.sources.fulltext` (which entries, what an outcome
means) and :mod:`aggregator.sources.pages` (bytes to body): pages go through the same
fetch function, client, per-host limiter, time limits and size cap as the feeds, run
right after their source's feed in a cycle, at most ``fetch.pages_per_cycle`` per source.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.config import Config, SourceConfig
from aggregator.exceptions import AggregatorError, ExtractionError, FetchError
from aggregator.models import FetchResult
from aggregator.redaction import Redactor
from aggregator.sources import fulltext
from aggregator.sources.fetch import PAGE_ACCEPT, FetchClient, HostLimiter, fetch, origin
from aggregator.sources.fulltext import Candidate, PageState
from aggregator.sources.pages import EXTRACTOR, decode_page, extract_article
from aggregator.store import PageText, StoreType
from aggregator.urls import site_of

log = logging.getLogger("aggregator")

_HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")


@dataclass
class PageReport:
    requests: int = 0  # pages asked for this cycle
    texts: int = 0  # bodies stored (new or changed)
    not_modified: int = 0  # 304: the body kept is still the page's
    failed: int = 0
    waiting: int = 0  # needed, left for later cycles (fetch.pages_per_cycle)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.requests} page{'s' if self.requests != 1 else ''} fetched ({self.texts} texts, "
                 f"{self.not_modified} not modified, {self.failed} failed)"]
        if self.waiting:
            parts.append(f"{self.waiting} waiting for a later cycle")
        return ", ".join(parts)


@dataclass
class _Got:
    candidate: Candidate
    result: FetchResult | None = None
    text: str | None = None
    error: AggregatorError | None = None
    skipped: bool = False  # the run is stopping


def page_stage(store: StoreType, config: Config, sources: Iterable[SourceConfig], *, client: FetchClient,
               limiter: HostLimiter, now: Callable[[], datetime], rng: random.Random,
               stop: threading.Event | None = None) -> dict[str, PageReport]:
    """Fetch the pages the given sources' entries need now; returns a report per source
    that had any to decide."""
    fc = config.fetch
    redactor = Redactor(config.secrets)
    reports: dict[str, PageReport] = {}
    jobs: list[tuple[SourceConfig, Candidate]] = []
    by_id = {src.id: src for src in sources}
    t = now()
    # One query for every source; the entries whose link rules a page out (another site's,
    # none, full_text: never: most of a cold cycle's) are settled without reading their text.
    settled: list[PageState] = []
    cleared: list[PageText] = []  # the feed's text serves these: a body kept from an earlier version goes
    undecided: list[int] = []
    sites: dict[str, str] = {}
    for h in store.page_heads(list(by_id), t):
        src = by_id[h.source_id]
        site = sites.get(src.id)
        if site is None:
            site = sites[src.id] = site_of(src.url)
        if fulltext.may_want_page(src.full_text, h.link, site):
            undecided.append(h.entry_id)
            continue
        if h.has_state or h.has_page_text:
            # A state of an earlier version (or its text) brought up to this one. An entry
            # never decided gets no row: its link alone says "not needed" again whenever
            # it is looked at (only when its source stores new entries, see page_heads),
            # and a cold cycle wrote 50,000 such rows on its last, single-core stretch.
            settled.append(fulltext.not_needed(h, t))
        if h.has_page_text:
            cleared.append(PageText(h.entry_id, "", None, None))
    candidates: dict[str, list[Candidate]] = {}
    for c in store.page_candidates_of(undecided, t) if undecided else ():
        candidates.setdefault(c.entry.source_id, []).append(c)
    for src in by_id.values():
        if not candidates.get(src.id):
            continue
        p = fulltext.plan(src.full_text, candidates[src.id], fc.pages_per_cycle, t, src.url)
        settled += [fulltext.not_needed(c, t) for c in p.not_needed] + [fulltext.waiting(c, t) for c in p.waiting]
        cleared += [PageText(c.entry.id, "", None, None) for c in p.not_needed if c.entry.page_text]
        if p.fetch or p.waiting:
            reports[src.id] = PageReport(waiting=len(p.waiting))
        jobs.extend((src, c) for c in p.fetch)
    if settled or cleared:
        store.save_pages(settled, cleared)
    if not jobs:
        store.pages_decided(by_id)
        return reports

    def work(job: tuple[SourceConfig, Candidate]) -> _Got:
        src, c = job
        got = _Got(c)
        if stop is not None and stop.is_set():
            got.skipped = True
            return got
        etag, last_modified = fulltext.validators(c)
        url = c.entry.link or ""
        try:
            with limiter(url):
                # The feeds' fetch: timeouts, size cap, redirects, User-Agent, and the
                # private-network guard, with the source's own keys (its configured
                # origin, not where a page link points).
                got.result = fetch(client, url, etag=etag, last_modified=last_modified, max_bytes=fc.max_bytes,
                                   total_timeout=fc.timeout.total_seconds(), accept=PAGE_ACCEPT,
                                   allow_private=fc.allow_private_networks,
                                   private_origin=origin(src.url) if src.allow_private_network else None)
            if got.result.content is not None:
                got.text = _body(got.result)
        except AggregatorError as e:
            got.error = e
        except Exception as e:  # a bug or an unforeseen page: reported, never the cycle's end
            log.exception("unexpected error on page %s", url)
            got.error = AggregatorError(f"internal error: {type(e).__name__}: {e}")
        return got

    by_source: dict[str, list[_Got]] = {}
    with ThreadPoolExecutor(max_workers=min(fc.concurrency, len(jobs)), thread_name_prefix="page") as pool:
        for (src, _), got in zip(jobs, pool.map(work, jobs), strict=True):
            by_source.setdefault(src.id, []).append(got)
    for src, _ in {s.id: (s, None) for s, _ in jobs}.values():
        report = reports.setdefault(src.id, PageReport())
        states, texts = _outcomes(config, src, by_source.get(src.id, []), now(), rng, redactor, report)
        store.save_pages(states, texts)
        log.info("%s: %s", src.id, report.summary())
        for err in report.errors[:3]:
            log.warning("%s: page failed: %s", src.id, err)
    # A page not asked for (the run is stopping) is still undecided: its source stays pending.
    store.pages_decided(set(by_id) - {sid for sid, gots in by_source.items() if any(g.skipped for g in gots)})
    return reports


def _body(res: FetchResult) -> str:
    ctype = next((v for k, v in res.headers.items() if k.lower() == "content-type"), "")
    if ctype and not ctype.split(";")[0].strip().lower().startswith(_HTML_TYPES):
        raise ExtractionError(f"not a web page ({ctype.split(';')[0].strip()})")
    text, _ = decode_page(res.content or b"", ctype)
    return extract_article(text, res.url)


def _outcomes(config: Config, src: SourceConfig, got: list[_Got], now: datetime, rng: random.Random,
              redactor: Redactor, report: PageReport) -> tuple[list[PageState], list[PageText]]:
    states: list[PageState] = []
    texts: list[PageText] = []
    for g in got:
        c = g.candidate
        if g.skipped:
            continue  # still a candidate next cycle
        report.requests += 1
        link = c.entry.link or ""
        if g.error is None and g.result is not None:
            res = g.result
            states.append(fulltext.after_success(c, now, link, res.etag, res.last_modified))
            if res.not_modified:
                report.not_modified += 1
            elif g.text is not None:
                texts.append(PageText(c.entry.id, g.text, EXTRACTOR, now))
                report.texts += g.text != c.entry.page_text
            continue
        e = g.error or AggregatorError("no answer")
        message = redactor(str(e))[:500]
        fe = e if isinstance(e, FetchError) else None
        states.append(fulltext.after_failure(
            c, now, message, interval=config.interval(src), max_backoff=config.fetch.max_backoff, rng=rng,
            retry_after=fe.retry_after if fe else None, permanent=bool(fe and fe.permanent)))
        report.failed += 1
        report.errors.append(f"{redactor(link)}: {message}")
    return states, texts

