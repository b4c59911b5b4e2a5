"""``aggregator run``: the cycle on a schedule (APScheduler 3).

One job per source, on the source's interval with jitter; when fetches bring
something new, one processing job (match, translate, publish) runs after they settle,
on its own one-thread executor, so never two at once. A tick on ``schedule.every``
also processes (translation retries, late matches, retention) when no fetch brought
anything. Jobs coalesce and never overlap themselves. The store lock (held by the
caller) keeps a second scheduler off the same store: APScheduler 3 would run jobs twice.

SIGHUP reloads the config (a broken one is refused and the running one kept);
SIGINT/SIGTERM stop: fetches in flight are abandoned, processing in flight finishes.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.app import Aggregator
from aggregator.config import Config, SourceConfig, format_duration, load_config
from aggregator.exceptions import (
    AggregatorError,
    ConfigError,
    StorageError,
    StoreDamagedError,
    StoreGone,
)
from aggregator.redaction import Redactor
from aggregator.redaction import install as install_redaction
from aggregator.running.clock import utcnow
from aggregator.running.cycle import (
    CycleReport,
    SourceReport,
    configured_sources,
    fetch_stage,
    make_fetch_client,
    process_stage,
)
from aggregator.sources.fetch import FetchClient, HostLimiter
from aggregator.store import SourceState, Store
from aggregator.store.backend import as_storage_error, db_errors
from aggregator.store.base import forget_check

log = logging.getLogger("aggregator")

SETTLE = timedelta(seconds=5)  # wait this long after the last fetch before processing
MAX_SETTLE = timedelta(seconds=60)  # but never postpone processing longer than this


def first_run(source: SourceConfig, state: SourceState | None, interval: timedelta, now: datetime,
              old_interval: timedelta | None = None) -> datetime:
    """When a source's job first fires: when the store says it is due, but no later than
    one new interval after its last fetch when a reload shortened the interval (unless
    it is backing off after failures)."""
    if state is None or state.next_fetch is None:
        return now
    due = state.next_fetch
    if (old_interval is not None and interval < old_interval and state.last_fetch is not None
            and not state.consecutive_failures):
        due = min(due, state.last_fetch + interval)
    return max(now, due)


def fetch_jitter(config: Config, interval: timedelta) -> float:
    """Seconds of random delay for a source's job: schedule.jitter, at most a quarter interval."""
    return min(config.schedule.jitter.total_seconds(), interval.total_seconds() / 4)


class Daemon:
    def __init__(self, config: Config, *, config_path: str | None = None,
                 now: Callable[[], datetime] = utcnow):
        self.config = config
        self.config_path = config_path
        self.now = now
        self.app = Aggregator(config, now=now, config_path=config_path)
        self.stop = threading.Event()
        self.abandoned = False  # a fetch was left in flight when stopping
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._processing = False
        self._requested = False
        self._first_request: datetime | None = None
        self._fetched: list[SourceReport] = []  # since the last processing
        # One for all the per-source jobs, which run side by side: the per-host limit
        # holds across them, not just within one job.
        self.limiter = self._make_limiter(config)
        self.client = make_fetch_client(config)
        self._old_clients: list[FetchClient] = []
        # The store file this daemon started on (device, inode): every job checks that its
        # name still leads to it, so a deleted or replaced file is noticed, never silently
        # replaced by a new, empty store that would then be published.
        self.store_identity: tuple[int, int] | None = None
        self.scheduler = BlockingScheduler(
            executors={"default": APThreadPool(max(2, config.fetch.concurrency)), "process": APThreadPool(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
            timezone=UTC,
        )

    @staticmethod
    def _make_limiter(config: Config) -> HostLimiter:
        # A server that did not answer is left alone for half a cycle: its other sources,
        # whose jobs fire at other times, are skipped meanwhile instead of each timing out.
        return HostLimiter(config.fetch.per_host, down_for=config.schedule.every.total_seconds() / 2)

    # -- jobs --------------------------------------------------------------------------
    def _fetch_job(self, source_id: str) -> None:
        if self.stop.is_set():
            return
        cfg = self.config
        try:
            slack = cfg.interval(cfg.source(source_id)) / 4
        except KeyError:  # removed by a reload a moment ago
            return
        try:
            with self._store() as store:
                reports = fetch_stage(store, cfg, now=self.now, only=[source_id], stop=self.stop, slack=slack,
                                      limiter=self.limiter, client=self.client)
        except StoreGone as e:
            log.debug("%s: not fetched: %s", source_id, e)  # processing says so, at ERROR
            return
        except StorageError as e:  # found damaged when opened: nothing written
            self._store_failed(e, source_id)
            return
        except AggregatorError as e:
            log.error("%s: %s", source_id, e)
            return
        except db_errors() as e:  # damaged store, full disk, server gone: said once per job, schedule kept
            self._store_failed(as_storage_error(cfg.store_name, e), source_id)
            return
        if any(r.outcome == "abandoned" for r in reports):
            self.abandoned = True
        with self._lock:
            self._fetched.extend(r for r in reports if r.outcome != "abandoned")
        if any(r.new or r.updated or (r.pages and r.pages.texts) for r in reports):
            self.schedule_processing()

    def _store_failed(self, e: StorageError, what: str) -> None:
        if isinstance(e, StoreDamagedError) and not self.config.is_postgres:
            forget_check(self.config.db_path)  # the next job checks the file again, and writes nothing
        log.error("%s: %s", what, e)

    def schedule_processing(self, delay: timedelta = SETTLE, *, postpone: bool = True) -> None:
        """Process ``delay`` from now: a later request postpones it (fetches settle
        first), up to MAX_SETTLE after the first; while processing runs, once more
        after it. ``postpone=False`` leaves a processing already planned alone."""
        if self.stop.is_set():
            return
        with self._lock:
            self._requested = True
            if self._processing:
                return
            now = self.now()
            if self._first_request is None:
                self._first_request = now
            if not postpone and self.scheduler.get_job("process") is not None:
                return
            when = min(now + delay, self._first_request + MAX_SETTLE)
        self.scheduler.add_job(self._process_job, "date", run_date=when, id="process",
                               replace_existing=True, executor="process", name="match, translate, publish")

    def _process_job(self) -> None:
        if self.stop.is_set():
            return
        with self._lock:
            self._processing, self._requested, self._first_request = True, False, None
            report = CycleReport(sources=self._fetched)
            self._fetched = []
        t0 = time.monotonic()
        try:
            with self._store() as store:
                process_stage(store, self.config, report, now=self.now, stop=self.stop)
            report.seconds = time.monotonic() - t0
            log.info("%s", report.summary())
            for line in report.transition_lines():  # one line when a provider goes down, one when back
                log.warning("%s", line)
        except StoreGone as e:
            log.error("%s", e)
        except AggregatorError as e:
            log.error("processing failed: %s", e)
        except Exception as e:
            if isinstance(e, db_errors()):
                self._store_failed(as_storage_error(self.config.store_name, e), "processing failed")
            else:
                log.exception("processing failed")
        finally:
            with self._lock:
                self._processing = False
                again = self._requested
            if again:
                self.schedule_processing()

    @contextmanager
    def _store(self) -> Iterator[Store]:
        """The store this daemon started on; :class:`StoreGone` when its file has vanished
        or another file now has its name (never a new, empty store in its place)."""
        with self.app.store(expect=self.store_identity) as store:
            if self.store_identity is None:
                self.store_identity = store.identity
            yield store

    # -- schedule ----------------------------------------------------------------------
    def _install_jobs(self, previous: Config | None = None) -> list[str]:
        """Make the jobs match the config; returns what changed, for the log."""
        cfg = self.config
        now = self.now()
        old = {s.id: s for s in previous.sources} if previous else {}
        changes: list[str] = []
        wanted = {f"fetch:{s.id}" for s in cfg.sources}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("fetch:") and job.id not in wanted:
                job.remove()
                changes.append(f"{job.id.removeprefix('fetch:')} removed")
        with self._store() as store:
            store.sync_sources(configured_sources(cfg), now=now)
            states = store.source_states()
            for s in cfg.sources:
                interval = cfg.interval(s)
                before = old.get(s.id)
                old_interval = previous.interval(before) if previous and before else None
                jitter = fetch_jitter(cfg, interval)
                if previous is not None and before is not None:
                    same = (before == s and old_interval == interval
                            and fetch_jitter(previous, interval) == jitter)
                    if same and self.scheduler.get_job(f"fetch:{s.id}") is not None:
                        continue  # unchanged: keep its place in the schedule
                    changes.append(f"{s.id} changed" if old_interval == interval else
                                   f"{s.id} every {format_duration(old_interval) if old_interval else '?'} -> "
                                   f"{format_duration(interval)}")
                elif previous is not None:
                    changes.append(f"{s.id} added")
                st = states.get(s.id)
                first = first_run(s, st, interval, now, old_interval)
                if st is not None and st.next_fetch is not None and first < st.next_fetch:
                    store.reschedule(s.id, first)  # or the job would find it not due yet
                self.scheduler.add_job(
                    self._fetch_job, IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter or None,
                                                     timezone=UTC),
                    args=[s.id], id=f"fetch:{s.id}", name=f"fetch {s.id}", next_run_time=first,
                    replace_existing=True)
        # Translation retries, late matches and retention need no new entries to be due.
        self.scheduler.add_job(self.schedule_processing, IntervalTrigger(
            seconds=cfg.schedule.every.total_seconds(), timezone=UTC), id="tick",
            kwargs={"postpone": False}, name="process periodically", replace_existing=True)
        return changes

    def reload(self) -> None:
        if not self.config_path:
            return
        with self._reload_lock:
            try:
                new = load_config(self.config_path)
            except ConfigError as e:
                log.error("config not reloaded, keeping the running one:\n%s", e)
                return
            if new.store_location != self.config.store_location:
                log.error("config not reloaded: storage.url changed (restart to move to another store); "
                          "keeping the running one")
                return
            if new.fetch.per_host != self.config.fetch.per_host:
                self.limiter = self._make_limiter(new)
            if new.fetch != self.config.fetch:
                # Jobs in flight keep the old client (closed with the daemon); new ones take this.
                self._old_clients.append(self.client)
                self.client = make_fetch_client(new)
            previous, self.config = self.config, new
            self.app = self.app.with_config(new)
            install_redaction(Redactor(new.secrets))
            try:
                changes = self._install_jobs(previous)
            except Exception as e:
                if not isinstance(e, (AggregatorError, *db_errors())):
                    raise
                if not isinstance(e, AggregatorError):
                    e = as_storage_error(new.store_name, e)
                self.config = previous
                self.app = self.app.with_config(previous)
                log.error("config not reloaded: %s; keeping the running one", e)
                return
            log.info("config reloaded from %s: %d sources%s", self.config_path, len(new.sources),
                     f" ({'; '.join(changes)})" if changes else ", no change to the schedule")
        self.schedule_processing()

    def run(self) -> None:
        def on_stop(signum: int, frame: Any) -> None:
            if self.stop.is_set():
                return
            log.info("received %s: stopping (fetches in flight are abandoned, processing in flight finishes)",
                     signal.Signals(signum).name)
            self.stop.set()
            threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

        def on_hup(signum: int, frame: Any) -> None:
            log.info("received SIGHUP: reloading %s", self.config_path)
            threading.Thread(target=self.reload, daemon=True).start()

        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGTERM, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)
        self._install_jobs()
        self.schedule_processing()  # publishes pending work even when no source is due
        log.info("scheduler started: %d sources; Ctrl-C or SIGTERM stops, SIGHUP reloads the config",
                 len(self.config.sources))
        try:
            self.scheduler.start()
        finally:
            # A fetch abandoned in flight may still hold its client: the process ends now anyway.
            if not self.abandoned:
                for client in (self.client, *self._old_clients):
                    client.close()
        log.info("stopped")

