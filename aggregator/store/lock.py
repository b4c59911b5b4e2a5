"""The single-run lock: a file beside a SQLite store, an advisory lock in a PostgreSQL one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator.exceptions import StoreLockedError


class StoreLock:
    """An exclusive lock beside the store, held by the one ``run`` working on it.

    ``flock`` is released by the kernel when the process dies, so a crash never leaves
    a stale lock behind. The lock file says who holds it (pid, kind of run, since when),
    for the message a second run prints and for ``status``."""

    def __init__(self, db_path: Path):
        self.path = Path(str(db_path) + ".lock")
        self._fd: int | None = None

    def acquire(self, what: str = "aggregator run", *, now: datetime | None = None,
                attempts: int = 5) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # ``holder()`` (status) takes a shared lock for an instant: try again briefly.
                if attempt + 1 < attempts:
                    time.sleep(0.1)
                    continue
                try:
                    holder = os.read(fd, 300).decode(errors="replace").strip()
                finally:
                    os.close(fd)
                who = f" ({holder})" if holder else ""
                raise StoreLockedError(
                    f"another aggregator run is already working on {self.path.with_suffix('')}{who}; "
                    "only one run (daemon or --once) may use a store at a time") from None
        since = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what} since {since}".encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str | None:
        """Who holds the lock now, or None when no run does."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.read(fd, 300).decode(errors="replace").strip() or "a running aggregator"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # nobody holds it: say so
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# The advisory lock's key (any fixed number: advisory locks are per database).
RUN_LOCK_KEY = 0x61677275


class PgLock:
    """The single-run lock of a PostgreSQL store: a session-level advisory lock, held by a
    connection of its own for as long as the run lasts. PostgreSQL releases it when that
    connection ends, so a run that dies (kill -9, a lost host) leaves no stale lock.
    The holder names itself in its connection's ``application_name`` (pid, kind of run,
    since when), which a second run and ``status`` read back from ``pg_stat_activity``."""

    def __init__(self, url: str):
        from aggregator.redaction import mask_url

        self.url = url
        self.name = mask_url(url)
        self._conn: Any = None

    def _connect(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from aggregator.store.backend import sqlalchemy_url

        # NullPool: the connection is really closed on release, never handed back to a
        # pool with the lock still held.
        eng = create_engine(sqlalchemy_url(self.url), poolclass=NullPool, isolation_level="AUTOCOMMIT",
                            connect_args={"connect_timeout": 10, "application_name": "aggregator"})
        return eng.connect()

    def acquire(self, what: str = "aggregator run", *, now: datetime | None = None,
                attempts: int = 5) -> PgLock:
        from aggregator.store.backend import as_storage_error, db_errors

        since = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
        label = f"pid {os.getpid()}: {what} since {since}"[:63]  # application_name: 63 bytes
        try:
            conn = self._connect()
            try:
                got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({RUN_LOCK_KEY})").scalar()
                if got:
                    conn.exec_driver_sql("SELECT set_config('application_name', %s, false)", (label,))
            except BaseException:
                conn.close()
                raise
        except db_errors() as e:
            raise as_storage_error(self.name, e) from None
        if not got:
            conn.close()
            holder = self.holder()
            who = f" ({holder})" if holder else ""
            raise StoreLockedError(f"another aggregator run is already working on {self.name}{who}; "
                                   "only one run (daemon or --once) may use a store at a time")
        self._conn = conn
        return self

    def holder(self) -> str | None:
        """Who holds the lock now, or None when no run does."""
        from aggregator.store.backend import as_storage_error, db_errors, engine

        try:
            with engine(self.url).connect() as conn:
                row = conn.exec_driver_sql(
                    "SELECT a.application_name, l.pid FROM pg_locks l"
                    " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objsubid = 1"
                    f" AND l.objid = {RUN_LOCK_KEY}"
                    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())").first()
        except db_errors() as e:
            raise as_storage_error(self.name, e) from None
        if row is None:
            return None
        return row[0] if row[0] and row[0].startswith("pid ") else f"a running aggregator (server pid {row[1]})"

    def release(self) -> None:
        if self._conn is not None:
            from aggregator.store.backend import db_errors

            try:
                with contextlib.suppress(*db_errors()):
                    self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({RUN_LOCK_KEY})")
            finally:
                with contextlib.suppress(*db_errors()):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> PgLock:
        return self if self._conn is not None else self.acquire()  # ``with PgLock(url).acquire(what):``

    def __exit__(self, *exc: object) -> None:
        self.release()


def run_lock(location: str | os.PathLike[str]) -> StoreLock | PgLock:
    """The single-run lock of the store at ``location`` (a SQLite path or a PostgreSQL URL)."""
    from aggregator.store.backend import is_postgres

    return PgLock(str(location)) if is_postgres(location) else StoreLock(Path(location))
