"""``aggregator run``: the cycle on a schedule (APScheduler 3).

One job per source, on the source's interval with jitter; when fetches bring
something new, one processing job (match, translate, publish) runs after they settle.
Jobs coalesce and never overlap themselves. The store lock (held by the caller)
keeps a second scheduler off the same store: APScheduler 3 would run jobs twice.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.config import Config, load_config
from aggregator.exceptions import AggregatorError, ConfigError
from aggregator.fetching import HostLimiter
from aggregator.pipeline import fetch_stage, make_fetch_client, match_stage, translate_stage, utcnow
from aggregator.publishing import publish, selection
from aggregator.redaction import Redactor
from aggregator.redaction import install as install_redaction
from aggregator.storage import Store
from aggregator.translation import build_translator

log = logging.getLogger("aggregator")

SETTLE = timedelta(seconds=5)  # wait this long after the last fetch before processing


class Daemon:
    def __init__(self, config: Config, *, config_path: str | None = None,
                 now: Callable[[], datetime] = utcnow):
        self.config = config
        self.config_path = config_path
        self.now = now
        self.stop = threading.Event()
        self._lock = threading.Lock()
        # One for all the per-source jobs, which run side by side: the per-host limit
        # holds across them, not just within one job.
        self.limiter = HostLimiter(config.fetch.per_host)
        self.client = make_fetch_client(config)
        self._old_clients: list[httpx.Client] = []
        self.scheduler = BlockingScheduler(
            executors={"default": APThreadPool(max(2, config.fetch.concurrency)), "process": APThreadPool(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
            timezone=timezone.utc,
        )

    # -- jobs --------------------------------------------------------------------------
    def _fetch_job(self, source_id: str) -> None:
        if self.stop.is_set():
            return
        try:
            with Store(self.config.db_path) as store:
                reports = fetch_stage(store, self.config, now=self.now, only=[source_id], stop=self.stop,
                                      limiter=self.limiter, client=self.client)
        except AggregatorError as e:
            log.error("%s: %s", source_id, e)
            return
        if any(r.new or r.updated for r in reports):
            self.schedule_processing()

    def schedule_processing(self, delay: timedelta = SETTLE) -> None:
        if self.stop.is_set():
            return
        self.scheduler.add_job(self._process_job, "date", run_date=self.now() + delay, id="process",
                               replace_existing=True, executor="process", name="match, translate, publish")

    def _process_job(self) -> None:
        if self.stop.is_set():
            return
        try:
            with Store(self.config.db_path) as store:
                translator = build_translator(self.config.translation, store, now=self.now)
                try:
                    posts, changed = match_stage(store, self.config, now=self.now, translator=translator)
                    entries = selection(store, self.config)
                    done, pending = (0, 0) if self.stop.is_set() else translate_stage(
                        store, self.config, entries, translator, now=self.now)
                    _, n = publish(store, self.config, now=self.now(), entries=entries)
                finally:
                    translator.close()
            log.info("processed: %d posts matched (%d changed), %d translated, %d pending, %d published",
                     posts, changed, done, pending, n)
        except AggregatorError as e:
            log.error("processing failed: %s", e)
        except Exception:
            log.exception("processing failed")

    # -- schedule ----------------------------------------------------------------------
    def _install_jobs(self) -> None:
        cfg = self.config
        with Store(cfg.db_path) as store:
            store.sync_sources((s.id, s.url, s.role) for s in cfg.sources)
            states = store.source_states()
        now = self.now()
        wanted = {f"fetch:{s.id}" for s in cfg.sources}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("fetch:") and job.id not in wanted:
                job.remove()
        for s in cfg.sources:
            interval = cfg.interval(s)
            st = states.get(s.id)
            first = now if st is None or st.next_fetch is None else max(now, st.next_fetch)
            jitter = min(cfg.schedule.jitter.total_seconds(), interval.total_seconds() / 4)
            self.scheduler.add_job(
                self._fetch_job, IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter or None,
                                                 timezone=timezone.utc),
                args=[s.id], id=f"fetch:{s.id}", name=f"fetch {s.id}", next_run_time=first,
                replace_existing=True)
        self.schedule_processing(timedelta(seconds=1))

    def reload(self) -> None:
        if not self.config_path:
            return
        try:
            new = load_config(self.config_path)
        except ConfigError as e:
            log.error("config not reloaded, keeping the running one:\n%s", e)
            return
        if new.db_path != self.config.db_path:
            log.error("config not reloaded: storage.url changed (restart to move stores)")
            return
        if new.fetch.per_host != self.config.fetch.per_host:
            self.limiter = HostLimiter(new.fetch.per_host)
        if new.fetch != self.config.fetch:
            # Jobs in flight keep the old client (closed with the daemon); new ones take this.
            self._old_clients.append(self.client)
            self.client = make_fetch_client(new)
        self.config = new
        install_redaction(Redactor(new.secrets))
        self._install_jobs()
        log.info("config reloaded: %d sources", len(new.sources))

    def run(self) -> None:
        def on_stop(signum: int, frame: Any) -> None:
            log.info("received %s, stopping after the step in flight", signal.Signals(signum).name)
            self.stop.set()
            threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

        def on_hup(signum: int, frame: Any) -> None:
            threading.Thread(target=self.reload, daemon=True).start()

        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGTERM, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)
        self._install_jobs()
        log.info("scheduler started: %d sources; Ctrl-C or SIGTERM stops, SIGHUP reloads the config",
                 len(self.config.sources))
        try:
            self.scheduler.start()
        finally:
            for client in (self.client, *self._old_clients):
                client.close()
        log.info("stopped")
