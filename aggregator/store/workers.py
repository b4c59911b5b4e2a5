"""The cooperating workers' own rows (schema 8): who works on the store, what each holds,
and which worker fetched each source last. Plain statements both back-ends run.

The queue itself (jobs, locks, heartbeats that decide a worker is dead) is procrastinate's;
these rows are what ``status`` shows an operator, kept by the workers beside it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregator.exceptions import StoreLockedError
from aggregator.models import from_iso, iso
from aggregator.redaction import mask_url
from aggregator.store.base import StoreBase


@dataclass(frozen=True)
class WorkerRow:
    id: str
    host: str
    pid: int
    since: datetime
    heartbeat: datetime
    holds: str


def register(store: StoreBase, worker_id: str, host: str, pid: int, now: datetime) -> None:
    store.db.execute(
        "INSERT INTO workers(id, host, pid, since, heartbeat, holds) VALUES (?, ?, ?, ?, ?, '')"
        " ON CONFLICT(id) DO UPDATE SET heartbeat=excluded.heartbeat, holds=''",
        (worker_id, host, pid, iso(now), iso(now)))


def heartbeat(store: StoreBase, worker_id: str, holds: str, now: datetime) -> bool:
    """Say the worker is alive and what it holds; False when its row is gone (the others
    took it for dead: it registers again)."""
    rows = store.db.execute("UPDATE workers SET heartbeat=?, holds=? WHERE id=?", (iso(now), holds, worker_id))
    return rows.rowcount > 0


def unregister(store: StoreBase, worker_id: str) -> None:
    store.db.execute("DELETE FROM workers WHERE id=?", (worker_id,))


def forget(store: StoreBase, worker_ids: Sequence[str]) -> None:
    store.db.executemany("DELETE FROM workers WHERE id=?", [(w,) for w in worker_ids])


def workers(store: StoreBase) -> list[WorkerRow]:
    out = []
    for r in store.db.execute("SELECT id, host, pid, since, heartbeat, holds FROM workers ORDER BY since, id"):
        since, beat = from_iso(r[3]), from_iso(r[4])
        assert since is not None and beat is not None
        out.append(WorkerRow(r[0], r[1], int(r[2]), since, beat, r[5] or ""))
    return out


def mark_fetched(store: StoreBase, source_ids: Sequence[str], worker_id: str) -> None:
    store.db.executemany("UPDATE sources SET fetched_by=? WHERE id=?", [(worker_id, s) for s in source_ids])


def fetched_by(store: StoreBase) -> dict[str, str]:
    """Per source, the worker that fetched it last (sources a worker fetched only)."""
    return {r[0]: r[1] for r in store.db.execute("SELECT id, fetched_by FROM sources WHERE fetched_by IS NOT NULL")}


# -- the queue's database and the run lock, on PostgreSQL ---------------------------------
_QUEUE_SCHEMA_LOCK = 0x61677771  # pg_advisory_lock key: one worker installs the queue's tables


def ensure_queue_schema(url: str) -> bool:
    """Install procrastinate's tables in the store's database unless they are there; True
    when installed. Workers starting together take turns (an advisory lock)."""
    from procrastinate.schema import SchemaManager

    from aggregator.store.backend import as_storage_error, db_errors, engine

    try:
        with engine(url).connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_QUEUE_SCHEMA_LOCK})")
            try:
                if conn.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar() is not None:
                    return False
                conn.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
                return True
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_QUEUE_SCHEMA_LOCK})")
    except db_errors() as e:
        raise as_storage_error(mask_url(url), e) from None


class SharedRunLock:
    """The run lock, shared: every worker holds it shared, so that workers run side by side
    while ``run --once`` (which takes it exclusively, :class:`aggregator.store.lock.PgLock`)
    waits for none of them and none of them for it: whichever comes second exits 4."""

    def __init__(self, url: str):
        self.url = url
        self._conn: Any = None

    def acquire(self, what: str, *, now: datetime) -> SharedRunLock:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from aggregator.store.backend import as_storage_error, db_errors, sqlalchemy_url
        from aggregator.store.lock import RUN_LOCK_KEY, PgLock

        label = f"pid {os.getpid()}: {what} since {now.strftime('%Y-%m-%d %H:%M:%S UTC')}"[:63]
        try:
            conn = create_engine(sqlalchemy_url(self.url), poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                 connect_args={"connect_timeout": 10, "application_name": label}).connect()
            got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock_shared({RUN_LOCK_KEY})").scalar()
        except db_errors() as e:
            raise as_storage_error(mask_url(self.url), e) from None
        if not got:
            conn.close()
            holder = PgLock(self.url).holder()
            raise StoreLockedError(f"another aggregator run is already working on {mask_url(self.url)}"
                                   f"{f' ({holder})' if holder else ''}; workers share a PostgreSQL store with "
                                   "each other, not with `run --once`")
        self._conn = conn
        return self

    def release(self) -> None:
        if self._conn is not None:
            from aggregator.store.backend import db_errors

            with suppress(*db_errors()):
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SharedRunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_SYNC_LOCK = 0x61677773  # pg_advisory_lock key: one worker at a time makes the sources follow the config


@contextmanager
def one_at_a_time(url: str) -> Iterator[None]:
    """Hold the workers' sync lock for the block: workers starting together would each
    insert the same new sources (a unique-key error for all but the first)."""
    from aggregator.store.backend import as_storage_error, db_errors, engine

    try:
        conn = engine(url).connect()
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_SYNC_LOCK})")
    except db_errors() as e:
        raise as_storage_error(mask_url(url), e) from None
    try:
        yield
    finally:
        with suppress(*db_errors()):
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_SYNC_LOCK})")
        with suppress(*db_errors()):
            conn.close()
