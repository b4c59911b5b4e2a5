"""``aggregator run`` on a PostgreSQL store: one of several cooperating workers.

The work is shared through procrastinate (a PostgreSQL task queue; docs/scaling.md says
why it and not APScheduler 4), in the same database as the store. What to do is decided
in :mod:`aggregator.running.workplan`; this module applies it with the cycle's own stages
(:func:`~aggregator.running.cycle.fetch_stage`, :func:`~aggregator.running.cycle.process_stage`):

* ``plan`` (periodic, deduplicated across workers): enqueue one ``fetch`` job per host
  with due sources, and ``process`` when it has not run for ``schedule.every``;
* ``fetch`` (lock ``fetch:HOST``): fetch and store that host's due sources, record which
  worker fetched them, ask for ``process`` when something new came;
* ``process`` (lock ``process``): match, translate, publish: one worker at a time;
* ``reap`` (periodic): jobs of workers silent for ``STALLED_AFTER`` are failed, which
  releases their locks; the next plan enqueues what they left due.

SIGINT/SIGTERM stop: fetches in flight are abandoned (fetched again later, by any worker),
processing in flight finishes; exit 0. The SQLite daemon (:mod:`aggregator.running.daemon`)
is untouched by all this.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

import procrastinate
from procrastinate import exceptions as queue_errors
from procrastinate.jobs import Status

from aggregator.app import Aggregator
from aggregator.config import Config
from aggregator.exceptions import AggregatorError, StorageError
from aggregator.redaction import mask_url
from aggregator.running import workplan
from aggregator.running.clock import utcnow
from aggregator.running.cycle import (
    CycleReport,
    SourceReport,
    configured_sources,
    fetch_stage,
    make_fetch_client,
    process_stage,
)
from aggregator.sources.fetch import HostLimiter
from aggregator.store import workers as rows
from aggregator.store.backend import as_storage_error, db_errors, libpq_url
from aggregator.store.workers import SharedRunLock, ensure_queue_schema, one_at_a_time

log = logging.getLogger("aggregator")

LAST_PROCESS = "workers.last_process"  # meta: when processing last started (ISO)


class Worker:
    """One worker process; :meth:`run` blocks until SIGINT/SIGTERM."""

    def __init__(self, config: Config, *, config_path: str | None = None, now: Any = utcnow):
        self.config = config
        self.now = now
        self.app = Aggregator(config, now=now, config_path=config_path)
        self.url = config.store_location
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}"
        self.stop = threading.Event()
        self.abandoned = False
        self._holds: set[str] = set()
        self._holds_lock = threading.Lock()
        self._fetched: list[SourceReport] = []  # this worker's fetches since it last processed (for the log)
        self.limiter = HostLimiter(config.fetch.per_host, down_for=config.schedule.every.total_seconds() / 2)
        self.client = make_fetch_client(config)
        self.queue = self._make_queue()

    # -- the queue -----------------------------------------------------------------
    def _make_queue(self) -> procrastinate.App:
        queue = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=libpq_url(self.url)))

        @queue.periodic(cron=workplan.every_seconds_cron(workplan.plan_period(self.config)), periodic_id="plan")
        @queue.task(name="plan", queueing_lock="plan", lock="plan", pass_context=False)
        async def plan(timestamp: int) -> None:
            await self._guarded("plan", self._plan_async)

        @queue.task(name="fetch", pass_context=False)
        async def fetch(host: str) -> None:
            await self._guarded(f"fetch {host}", self._fetch_async, host)

        @queue.task(name="process", pass_context=False)
        async def process() -> None:
            await self._guarded("process", self._process_async)

        @queue.periodic(cron=workplan.every_seconds_cron(workplan.REAP_EVERY), periodic_id="reap")
        @queue.task(name="reap", queueing_lock="reap", lock="reap", pass_context=False)
        async def reap(timestamp: int) -> None:
            await self._guarded("reap", self._reap_async)

        self._fetch_task, self._process_task = fetch, process
        return queue

    async def _guarded(self, what: str, job: Any, *args: Any) -> None:
        # A job that fails is logged and done: the next plan decides again. Raising would
        # only leave a failed job in the queue's table.
        if self.stop.is_set():
            return
        try:
            await job(*args)
        except AggregatorError as e:
            log.error("%s: %s", what, e)
        except db_errors() as e:
            log.error("%s: %s", what, as_storage_error(mask_url(self.url), e))
        except queue_errors.ProcrastinateException as e:
            log.error("%s: the job queue failed: %s", what, e)

    async def _defer(self, task: Any, *, lock: str, delay: float = 0, **kwargs: Any) -> bool:
        """Enqueue unless the same job already waits (its queueing lock); True when enqueued."""
        options: dict[str, Any] = {"lock": lock, "queueing_lock": lock}
        if delay:
            options["schedule_in"] = {"seconds": delay}
        try:
            await task.configure(**options).defer_async(**kwargs)
        except queue_errors.AlreadyEnqueued:
            return False
        return True

    # -- jobs ------------------------------------------------------------------------
    @contextmanager
    def _holding(self, what: str) -> Iterator[None]:
        with self._holds_lock:
            self._holds.add(what)
        try:
            yield
        finally:
            with self._holds_lock:
                self._holds.discard(what)

    async def _plan_async(self) -> None:
        batches, process = await asyncio.to_thread(self._plan)
        for b in batches:
            await self._defer(self._fetch_task, lock=b.lock, host=b.host)
        if process:  # after the fetches just enqueued, as the SQLite daemon lets its fetches settle
            await self._defer(self._process_task, lock=workplan.PROCESS_LOCK,
                              delay=workplan.PROCESS_SETTLE.total_seconds())

    def _plan(self) -> tuple[list[workplan.FetchBatch], bool]:
        with one_at_a_time(self.url), self.app.store() as store:
            now = self.now()
            store.sync_sources(configured_sources(self.config), now=now)
            batches = workplan.fetch_batches(self.config, store.source_states(), now)
            last = store.get_meta(LAST_PROCESS)
            process = workplan.processing_due(datetime.fromisoformat(last) if last else None, now,
                                              self.config.schedule.every)
        return batches, process

    async def _fetch_async(self, host: str) -> None:
        wanted = await asyncio.to_thread(self._fetch, host)
        if wanted:
            await self._defer(self._process_task, lock=workplan.PROCESS_LOCK,
                              delay=workplan.PROCESS_SETTLE.total_seconds())

    def _fetch(self, host: str) -> bool:
        with self.app.store() as store:
            ids = workplan.sources_of_host(self.config, store.source_states(), host)
            if not ids:
                return False
            with self._holding(f"fetch {host}"):
                reports = fetch_stage(store, self.config, now=self.now, only=ids, stop=self.stop,
                                      slack=-workplan.ROUNDING, limiter=self.limiter, client=self.client)
            if any(r.outcome == "abandoned" for r in reports):
                self.abandoned = True
            with self._holds_lock:
                self._fetched.extend(r for r in reports if r.outcome != "abandoned")
            rows.mark_fetched(store, workplan.fetched_ids([(r.id, r.outcome) for r in reports]), self.id)
        return any(workplan.wants_processing(r.new, r.updated, r.pages.texts if r.pages else 0)
                   for r in reports)

    async def _process_async(self) -> None:
        await asyncio.to_thread(self._process)

    def _process(self) -> None:
        with self._holds_lock:
            report = CycleReport(sources=self._fetched)
            self._fetched = []
        with self._holding("process (match, translate, publish)"), self.app.store() as store:
            store.set_meta(LAST_PROCESS, self.now().isoformat())
            process_stage(store, self.config, report, now=self.now, stop=self.stop)
        log.info("%s", report.summary())
        for line in report.transition_lines():
            log.warning("%s", line)

    async def _reap_async(self) -> None:
        manager = self.queue.job_manager
        stalled = list(await manager.get_stalled_jobs(
            seconds_since_heartbeat=workplan.STALLED_AFTER.total_seconds()))
        for job in stalled:
            # Not retry_job: the next run of the same job may already wait under its
            # queueing lock (retrying then fails and the lock stays held for ever).
            # Failing it releases its lock; what it left due is planned again.
            await manager.finish_job(job, status=Status.FAILED, delete_job=True)
            log.warning("took over %s (job %s) from a worker that stopped answering", job.task_name, job.id)
            if job.task_name == "process":  # a fetch job's work is planned again; processing is not
                await self._defer(self._process_task, lock=workplan.PROCESS_LOCK)
        lost = await asyncio.to_thread(self._forget_lost)
        for w in lost:
            log.warning("worker %s stopped answering for %ds: taken for dead; its work is taken over", w,
                        workplan.STALLED_AFTER.total_seconds())

    def _forget_lost(self) -> list[str]:
        with self.app.store() as store:
            lost = workplan.lost_workers({w.id: w.heartbeat for w in rows.workers(store)}, self.now())
            rows.forget(store, lost)
        return lost

    # -- heartbeat -------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self.stop.wait(workplan.HEARTBEAT.total_seconds()):
            with self._holds_lock:
                holds = workplan.holds_text(self._holds)
            try:
                with self.app.store() as store:
                    if not rows.heartbeat(store, self.id, holds, self.now()):
                        rows.register(store, self.id, self.host, self.pid, self.now())
            except AggregatorError as e:
                log.warning("heartbeat not recorded: %s", e)
            except db_errors() as e:
                log.warning("heartbeat not recorded: %s", as_storage_error(mask_url(self.url), e))

    # -- run -------------------------------------------------------------------------
    def run(self) -> None:
        with SharedRunLock(self.url).acquire("aggregator worker", now=self.now()):
            ensure_queue_schema(self.url)
            with one_at_a_time(self.url), self.app.store() as store:
                store.sync_sources(configured_sources(self.config), now=self.now())
                rows.register(store, self.id, self.host, self.pid, self.now())
            beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
            beat.start()
            try:
                asyncio.run(self._main())
            finally:
                self.stop.set()
                with suppress(AggregatorError, *db_errors()), self.app.store() as store:
                    rows.unregister(store, self.id)
                if not self.abandoned:
                    self.client.close()
        log.info("stopped")

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        async with self.queue.open_async():
            task = asyncio.create_task(self.queue.run_worker_async(
                name=self.id, concurrency=workplan.CONCURRENCY, install_signal_handlers=False,
                update_heartbeat_interval=workplan.HEARTBEAT.total_seconds(),
                stalled_worker_timeout=workplan.STALLED_AFTER.total_seconds(),
                fetch_job_polling_interval=workplan.POLL_EVERY.total_seconds(),
                delete_jobs="successful"))

            def on_stop(sig: signal.Signals) -> None:
                if self.stop.is_set():
                    return
                log.info("received %s: stopping (fetches in flight are abandoned, processing in flight finishes)",
                         sig.name)
                self.stop.set()
                task.cancel()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_stop, sig)
            if hasattr(signal, "SIGHUP"):
                # All workers must read the same config: one reloading alone would plan
                # other sources than the rest. Said, not obeyed (and the worker lives on).
                loop.add_signal_handler(signal.SIGHUP, lambda: log.warning(
                    "received SIGHUP: a worker does not reload its config (every worker must read the same "
                    "one): change it on every host, then restart the workers"))
            log.info("worker %s started on %s: %d sources; jobs are shared with the other workers on this store; "
                     "Ctrl-C or SIGTERM stops", self.id, mask_url(self.url), len(self.config.sources))
            try:
                await task
            except asyncio.CancelledError:
                pass
            except queue_errors.ProcrastinateException as e:  # the database went away under the queue
                raise StorageError(f"{mask_url(self.url)}: the job queue stopped: {e}") from None


def run_worker(config: Config, *, config_path: str | None = None) -> bool:
    """``aggregator run`` on PostgreSQL; True when fetches were abandoned on the way out."""
    logging.getLogger("procrastinate").setLevel(max(logging.WARNING, logging.getLogger().level))
    worker = Worker(config, config_path=config_path)
    worker.run()
    return worker.abandoned
