"""The single-run lock beside a SQLite store."""

from __future__ import annotations

import fcntl
import os
import time
from datetime import UTC, datetime
from pathlib import Path

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
