"""Daemon threads for bounded provider calls, kept for the next call when one comes back in time.

A provider's call runs on a daemon thread so that a call stuck past its bound cannot hold
the process at exit (a pool's threads would be joined). Starting a thread for every call
cost 1.2 s of a cold cycle's main thread (``Thread.start`` waits for the new thread to
run, behind the parsing and storing threads); a thread whose call returned is kept for
the next call instead, and one whose call overran is told to end once that call does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

KEEP = 4  # idle threads kept per name


class Worker:
    """One daemon thread running the jobs handed to it, in order, until told to stop."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()  # never raises: the caller's job keeps its own outcome

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """End the thread after the job it runs (now, when it is idle)."""
        self._jobs.put(None)


class Threads:
    """Idle :class:`Worker` threads by name (one name per provider, as the threads are named)."""

    def __init__(self) -> None:
        self._idle: dict[str, list[Worker]] = {}
        self._lock = threading.Lock()

    def take(self, name: str) -> Worker:
        with self._lock:
            idle = self._idle.get(name)
            if idle:
                return idle.pop()
        return Worker(name)

    def give_back(self, name: str, worker: Worker) -> None:
        with self._lock:
            idle = self._idle.setdefault(name, [])
            if len(idle) < KEEP:
                idle.append(worker)
                return
        worker.stop()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for workers in idle.values():
            for w in workers:
                w.stop()
