"""A progress bar for interactive ``run --once``: on stderr, only when stderr is a
terminal, over the sources actually due (known once the cycle has looked at the store)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any


class CycleProgress:
    """``start(total)`` when the due sources are known, then one call per source fetched."""

    def __init__(self, stack: ExitStack):
        self._stack = stack
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int) -> None:
        if total <= 0 or self._bar is not None:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = self._stack.enter_context(Progress(
            TextColumn("fetching"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=True))
        self._task = self._bar.add_task("", total=total)

    def __call__(self, report: Any) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=getattr(report, "id", ""))


@contextmanager
def cycle_progress(*, enabled: bool = True) -> Iterator[CycleProgress | None]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with ExitStack() as stack:
        yield CycleProgress(stack)
