"""The front door: one object that owns the config, opens the store and holds the clock.

The CLI, the daemon, ``eval-matching`` and the tests reach the stages through it; no
other module opens a store of its own. It also installs the library work-arounds
(:mod:`aggregator._compat`) once, explicitly, instead of at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import _compat
from aggregator.config import Config, load_config
from aggregator.exceptions import NotFoundError
from aggregator.store import Store
from aggregator.store.backend import store_exists
from aggregator.store.lock import PgLock, StoreLock, run_lock

if TYPE_CHECKING:
    from aggregator.running.cycle import CycleReport, SourceReport

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Aggregator:
    """Config, store and clock, and the operations every entry point needs."""

    def __init__(self, config: Config, *, now: Clock = utcnow, config_path: str | Path | None = None):
        _compat.install()
        self.config = config
        self.now = now
        self.config_path = str(config_path) if config_path is not None else None

    @classmethod
    def from_file(cls, path: str | Path, *, now: Clock = utcnow) -> Aggregator:
        return cls(load_config(path), now=now, config_path=path)

    def with_config(self, config: Config) -> Aggregator:
        """The same front door over another config (a reload)."""
        return Aggregator(config, now=self.now, config_path=self.config_path)

    # -- the store ---------------------------------------------------------------------
    @property
    def has_store(self) -> bool:
        """Whether the store exists: the SQLite file, or (PostgreSQL) our tables in the
        database (a connection error is a :class:`StorageError`)."""
        if self.config.is_postgres:
            return store_exists(self.config.store_location)
        return self.config.db_path.exists()

    @contextmanager
    def store(self, *, expect: tuple[int, int] | None = None) -> Iterator[Store]:
        """The store, open for the duration of the block (one per thread that needs one).
        ``expect``: the file identity it must have (:class:`StoreGone` otherwise; SQLite only)."""
        with Store(self.config.store_location, expect=expect) as store:
            yield store

    def lock(self, what: str) -> StoreLock | PgLock:
        """The single-run lock, acquired (:class:`StoreLockedError` when another run holds it)."""
        return run_lock(self.config.store_location).acquire(what, now=self.now())

    def lock_holder(self) -> str | None:
        return run_lock(self.config.store_location).holder()

    # -- operations --------------------------------------------------------------------
    def run_once(self, *, fetch_all: bool = False, stop: threading.Event | None = None,
                 progress: Callable[[SourceReport], None] | None = None,
                 on_due: Callable[[int], None] | None = None, **kwargs: Any) -> CycleReport:
        """One whole cycle: fetch what is due, match, translate, publish."""
        from aggregator.running.cycle import run_cycle

        with self.store() as store:
            return run_cycle(store, self.config, now=self.now, fetch_all=fetch_all, stop=stop, progress=progress,
                             on_due=on_due, **kwargs)

    def status(self, now: datetime | None = None) -> dict[str, Any]:
        """Everything ``status`` shows, as JSON-ready data, secrets masked."""
        from aggregator.running import status

        holder = self.lock_holder()
        if not self.has_store:
            return status.collect(self.config, None, holder, now or self.now())
        with self.store() as store:
            return status.collect(self.config, store, holder, now or self.now())

    def explain(self, post_url: str) -> str:
        """Why a post links (or does not link) each source, as text."""
        from aggregator.running.explain import explain_post

        if not self.has_store:
            raise NotFoundError(f"no store at {self.config.store_name}: run `aggregator run --once` first")
        with self.store() as store:
            return explain_post(store, self.config, post_url)
