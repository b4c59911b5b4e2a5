"""What cooperating workers do, decided over plain data (docs/scaling.md).

Several ``aggregator run`` daemons on one PostgreSQL store share the work through
procrastinate's queue (:mod:`aggregator.running.workers` applies these decisions):

* a planner, deferred every :data:`PLAN_EVERY` by whichever worker's periodic deferrer
  wins (procrastinate deduplicates it), finds the due sources and enqueues one fetch job
  per *host* (:func:`fetch_batches`): the job's queueing lock keeps one waiting job per host,
  its lock one running job per host across all workers, so the per-host politeness of
  :mod:`aggregator.sources.fetch` holds cluster-wide and no source is fetched twice;
* matching, translation and publishing are one ``process`` job with a lock of its own;
* a worker that dies (kill -9) stops heartbeating; after :data:`STALLED_AFTER` its jobs are
  failed by the reaper, which releases their locks, and the next plan re-enqueues what is
  still due: :func:`takeover_bound` says how long that takes at most.

Everything here is pure: plain data in, intents out; time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.config import Config, SourceConfig
from aggregator.running.cycle import due_sources
from aggregator.sources.fetch import host_key
from aggregator.store import SourceState

PLAN_EVERY = timedelta(seconds=5)  # how often the due sources are looked for
HEARTBEAT = timedelta(seconds=4)  # how often a worker says it is alive
STALLED_AFTER = timedelta(seconds=20)  # a worker silent this long is taken for dead
REAP_EVERY = timedelta(seconds=2)  # how often stalled jobs are looked for
POLL_EVERY = timedelta(seconds=2)  # a worker looks for jobs whose lock was released this often
PROCESS_SETTLE = timedelta(seconds=5)  # processing waits this long after a fetch asks for it
CONCURRENCY = 4  # jobs one worker runs at once (each fetch job has its own fetch pool)
# The store keeps times in whole seconds (rounded down): a source is due one second after
# its stored next fetch, so that the rounding never brings its next request within its interval.
ROUNDING = timedelta(seconds=1)

PROCESS_LOCK = "process"
FETCH_LOCK_PREFIX = "fetch:"


@dataclass(frozen=True)
class FetchBatch:
    """One fetch job: the due sources of one host, fetched by one worker."""

    host: str
    source_ids: tuple[str, ...]

    @property
    def lock(self) -> str:
        return FETCH_LOCK_PREFIX + self.host

    @property
    def label(self) -> str:
        n = len(self.source_ids)
        return f"fetch {self.host or '?'} ({n} source{'s' if n != 1 else ''})"


def source_host(source: SourceConfig, state: SourceState | None) -> str:
    """The host a source's requests go to: its stored URL (after a permanent redirect), else the configured one."""
    return host_key(state.url if state is not None else source.url)


def sources_of_host(config: Config, states: Mapping[str, SourceState], host: str) -> list[str]:
    """The configured sources whose requests go to ``host``."""
    return [s.id for s in config.sources if source_host(s, states.get(s.id)) == host]


def fetch_batches(config: Config, states: Mapping[str, SourceState], now: datetime) -> list[FetchBatch]:
    """The fetch jobs to enqueue now: the due sources grouped per host, the host whose
    source has waited longest first (a never-fetched source counts as waiting forever)."""
    due = due_sources(config, dict(states), now, False, slack=-ROUNDING)
    groups: dict[str, list[SourceConfig]] = {}
    for s in due:
        groups.setdefault(source_host(s, states.get(s.id)), []).append(s)

    def waited(sources: list[SourceConfig]) -> datetime:
        times = [st.next_fetch for s in sources if (st := states.get(s.id)) is not None and st.next_fetch]
        return datetime.min.replace(tzinfo=now.tzinfo) if len(times) < len(sources) else min(times)

    ordered = sorted(groups.items(), key=lambda kv: (waited(kv[1]), kv[0]))
    return [FetchBatch(host, tuple(s.id for s in sources)) for host, sources in ordered]


def plan_period(config: Config) -> timedelta:
    """How often to plan: :data:`PLAN_EVERY`, or more often when a source's interval is
    shorter (whole seconds dividing a minute, for the periodic job's cron)."""
    shortest = min((config.interval(s) for s in config.sources), default=PLAN_EVERY)
    limit = max(1, int(min(PLAN_EVERY, shortest).total_seconds()))
    return timedelta(seconds=max(d for d in range(1, limit + 1) if 60 % d == 0))


def wants_processing(new: int, updated: int, page_texts: int) -> bool:
    """A fetch job asks for processing when it stored something new."""
    return bool(new or updated or page_texts)


def processing_due(last: datetime | None, now: datetime, every: timedelta) -> bool:
    """Processing runs at least every ``schedule.every`` (translation retries, late matches,
    retention) even when no fetch brought anything."""
    return last is None or now - last >= every


def lost_workers(heartbeats: Mapping[str, datetime], now: datetime,
                 stalled_after: timedelta = STALLED_AFTER) -> list[str]:
    """Workers whose last heartbeat is older than ``stalled_after``: dead, or cut off."""
    return sorted(w for w, beat in heartbeats.items() if now - beat > stalled_after)


def takeover_bound(stalled_after: timedelta = STALLED_AFTER, reap_every: timedelta = REAP_EVERY,
                   poll_every: timedelta = POLL_EVERY, plan_every: timedelta = PLAN_EVERY) -> timedelta:
    """The longest a dead worker's job waits before another worker starts it again (the
    fetch itself not counted): its silence is noticed after ``stalled_after``, the reaper
    runs within ``reap_every``, and the job waiting for the released lock is taken at the
    next poll; a source it held that had no waiting job is enqueued by the next plan."""
    return stalled_after + reap_every + max(poll_every, plan_every)


def every_seconds_cron(period: timedelta) -> str:
    """A procrastinate cron (seconds as the sixth field) firing every ``period`` (whole
    seconds dividing a minute)."""
    seconds = int(period.total_seconds())
    if seconds < 1 or 60 % seconds:
        raise ValueError(f"{period} does not divide a minute into whole seconds")
    return f"* * * * * */{seconds}"


def holds_text(holds: Iterable[str]) -> str:
    """What a worker holds, as ``status`` shows it (sorted; empty when idle)."""
    return "; ".join(sorted(holds))


def fetched_ids(reports: Sequence[tuple[str, str]]) -> list[str]:
    """The sources a fetch job really requested (``(id, outcome)`` pairs): not those it
    abandoned or skipped without a request."""
    return [sid for sid, outcome in reports if outcome not in ("abandoned", "skipped")]
