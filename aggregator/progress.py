"""A progress bar for interactive ``run --once`` (none when stderr is not a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def cycle_progress(total: int, *, enabled: bool = True) -> Iterator[Callable[[Any], None] | None]:
    if not enabled or not sys.stderr.isatty() or total == 0:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("fetching"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("", total=total)

        def advance(report: Any) -> None:
            bar.update(task, advance=1, description=getattr(report, "id", ""))

        yield advance
