"""Feed parsing in worker processes when several parses overlap.

feedparser is pure Python: the fetch threads can wait on the network side by side, but
under the GIL only one of them parses at a time, and parsing is most of what a cycle
with many changed feeds costs. :func:`parse_feed` therefore hands a document to a small
pool of worker processes (one per CPU) whenever another parse is already running, and
parses in the calling thread otherwise, so that a cycle that fetches one source (the
daemon's per-source jobs, a cycle where everything answered 304) never starts a process.

The pool starts on first need and stops when it has been idle for ``idle_after``
seconds (and at exit). Nothing about the result changes: a document that is not a feed
raises the same :class:`ParseError` as in the thread. A worker that dies (killed, out of
memory) costs no source: the documents it held are parsed again in a new pool, and one
that kills a fresh worker too is reported as that source's parse error. When processes
cannot be started, or die before parsing anything, parsing stays in the threads.

Workers are started with ``spawn``, which imports the parent's main module in each
worker: a script that runs a cycle from its top level must do so under
``if __name__ == "__main__":`` (the ``aggregator`` command does). The environment
variable ``AGGREGATOR_PARSE_WORKERS`` sets the number of processes (0 or 1: parse in
the threads, as on a one-CPU machine).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import TypeVar

from aggregator.exceptions import ParseError
from aggregator.models import ParsedFeed
from aggregator.sources import parse as parsing

log = logging.getLogger(__name__)

A = TypeVar("A")
R = TypeVar("R")


def _cpus() -> int:
    setting = os.environ.get("AGGREGATOR_PARSE_WORKERS", "").strip()
    if setting:
        try:
            return max(0, int(setting))
        except ValueError:
            log.warning("AGGREGATOR_PARSE_WORKERS=%r is not a number; using one process per CPU", setting)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _init_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the parent decides what stops, and a
    # worker interrupted mid-parse would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # A parent that leaves without shutting the pool down (os._exit after abandoning a
    # hung fetch, kill -9) would leave the workers waiting for work forever, holding its
    # stdout and stderr open (cron, a supervisor, a test waits on those): follow it.
    def follow_parent() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=follow_parent, name="follow-parent", daemon=True).start()


def _parse(data: bytes, url: str, headers: dict[str, str] | None, now: datetime | None) -> ParsedFeed:
    return parsing.parse_feed(data, url=url, headers=headers, now=now)


class ParsePool:
    """``parse`` = :func:`aggregator.sources.parse.parse_feed`, in worker processes when parses overlap.

    ``workers``: processes in the pool (default: the CPUs this process may use; with one,
    everything is parsed in the calling thread). ``min_concurrent``: how many parses must
    be running at once (this one included) before the pool is used.
    """

    def __init__(self, workers: int | None = None, *, min_concurrent: int = 2, idle_after: float = 30.0):
        self.workers = workers if workers is not None else _cpus()
        self.min_concurrent = min_concurrent
        self.idle_after = idle_after
        self.restarts = 0  # pools replaced after a worker died
        self.in_process = 0  # documents parsed in the pool (for tests and logs)
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._executor_worked = False  # the current pool has parsed a document
        self._unusable = False
        self._running = 0
        self._idle_timer: threading.Timer | None = None

    def parse(self, data: bytes, *, url: str = "", headers: dict[str, str] | None = None,
              now: datetime | None = None) -> ParsedFeed:
        with self._lock:
            self._running += 1
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            pooled = (self.workers > 1 and not self._unusable
                      and (self._executor is not None or self._running >= self.min_concurrent))
        try:
            if pooled:
                executor = self._get_executor()
                if executor is not None:
                    return self._in_pool(executor, data, url, headers, now)
            return parsing.parse_feed(data, url=url, headers=headers, now=now)
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0 and self._executor is not None:
                    self._idle_timer = threading.Timer(self.idle_after, self._stop_if_idle)
                    self._idle_timer.daemon = True
                    self._idle_timer.start()

    def map_if_running(self, fn: Callable[[A], R], chunks: Sequence[A]) -> Iterator[R]:
        """``fn(chunk)`` for each chunk, in order: sent to the worker processes at once when
        the pool is running (a cycle that parsed feeds in it), so that they work while the
        calling thread does something else; otherwise each is computed in the calling thread
        as it is asked for. ``fn`` must be a module-level function (it is pickled by name).
        A chunk whose worker died is computed in the calling thread; ``fn``'s own errors are
        raised where its result is asked for, as in the thread."""
        with self._lock:
            executor = self._executor if self.workers > 1 and not self._unusable else None
        if executor is None:
            return (fn(c) for c in chunks)
        try:
            futures = [executor.submit(fn, c) for c in chunks]
        except (RuntimeError, BrokenProcessPool):  # shut down or broken meanwhile
            return (fn(c) for c in chunks)
        return self._results(fn, chunks, futures)

    @staticmethod
    def _results(fn: Callable[[A], R], chunks: Sequence[A], futures: list[Future[R]]) -> Iterator[R]:
        # Should the pool stop as idle meanwhile, its shutdown waits for the work sent.
        try:
            for chunk, future in zip(chunks, futures, strict=True):
                try:
                    result = future.result()
                except (BrokenProcessPool, CancelledError):
                    result = fn(chunk)
                yield result
        finally:  # left early (an error): what has not started is not needed
            for future in futures:
                future.cancel()

    def _in_pool(self, executor: ProcessPoolExecutor, data: bytes, url: str, headers: dict[str, str] | None,
                 now: datetime | None) -> ParsedFeed:
        for attempt in (1, 2):
            try:
                future = executor.submit(_parse, data, url, headers, now)
            except RuntimeError:  # shut down meanwhile (shutdown() from another thread)
                return parsing.parse_feed(data, url=url, headers=headers, now=now)
            except BrokenProcessPool:
                future = None
            try:
                if future is None:
                    raise BrokenProcessPool
                result = future.result()
            except BrokenProcessPool:
                if attempt == 2:
                    raise ParseError("the parser process died on this document (twice); not parsed") from None
                log.warning("a feed-parsing process died; parsing its documents again in a new one")
                replacement = self._replace(executor)
                if replacement is None:
                    return parsing.parse_feed(data, url=url, headers=headers, now=now)
                executor = replacement
                continue
            with self._lock:
                self.in_process += 1
                if executor is self._executor:
                    self._executor_worked = True
            return result
        raise AssertionError("unreachable")

    def _get_executor(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._executor is None and not self._unusable:
                self._executor = self._start()
            return self._executor

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor | None:
        """A working pool in place of ``broken`` (another thread may have made it already)."""
        with self._lock:
            if self._executor is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self.restarts += 1
                # A pool that died before parsing anything will not do better next time
                # (a main module that is not import-safe, a sandbox without processes).
                usable = self._executor_worked and self.restarts <= 3
                if not usable:
                    log.warning("feed-parsing processes die before parsing anything; parsing in threads")
                self._executor = self._start() if usable else None
                self._executor_worked = False
                if self._executor is None:
                    self._unusable = True
            return self._executor

    def _start(self) -> ProcessPoolExecutor | None:
        try:
            # spawn, not fork: the fetch threads, the store's connection and the
            # logging locks must not be copied into a child mid-use.
            return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker, initargs=(os.getpid(),))
        except (OSError, ValueError, ImportError, NotImplementedError, RuntimeError) as e:
            log.warning("cannot start feed-parsing processes (%s); parsing in threads", e)
            self._unusable = True
            return None

    def _stop_if_idle(self) -> None:
        with self._lock:
            if self._running or self._executor is None:
                return
            executor, self._executor, self._idle_timer = self._executor, None, None
        executor.shutdown(wait=True)

    def shutdown(self) -> None:
        """Stop the worker processes now (a later parse starts new ones)."""
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


DEFAULT = ParsePool()


def parse_feed(data: bytes, *, url: str = "", headers: dict[str, str] | None = None,
               now: datetime | None = None) -> ParsedFeed:
    """:func:`aggregator.sources.parse.parse_feed`, through the process-wide :data:`DEFAULT` pool."""
    return DEFAULT.parse(data, url=url, headers=headers, now=now)
