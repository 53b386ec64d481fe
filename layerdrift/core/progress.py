"""Progress: bars on a terminal (rich), plain lines at a steady pace in a log (batch jobs, cluster logs, anything
that is not a terminal), or nothing when quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TextIO

PLAIN_EVERY = 10.0  # seconds between two lines of one task in a log


def progress_bars(quiet: bool) -> Any:
    """A context giving the progress object the stages report to (``add_task``, ``update``), or None when quiet."""
    if quiet:
        return nullcontext(None)
    if not sys.stdout.isatty():
        return PlainProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches"),
        TimeElapsedColumn(),
    )


@dataclass
class PlainTask:
    description: str
    total: int | None
    completed: int
    started: float
    printed: float


class PlainProgress:
    """rich's ``Progress`` interface (``add_task``, ``update``) as plain lines: ``DESCRIPTION: DONE/TOTAL (12 s)``
    when a task starts, at most every ``every`` seconds while it advances, and when it completes."""

    def __init__(
        self, out: TextIO | None = None, every: float = PLAIN_EVERY, clock: Callable[[], float] = time.monotonic
    ):
        self.out, self.every, self.clock = out, every, clock
        self.tasks: list[PlainTask] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        now = self.clock()
        self.tasks.append(PlainTask(description, None if total is None else int(total), int(completed), now, now))
        self._say(self.tasks[-1])
        return len(self.tasks) - 1

    def update(self, task: int, advance: float = 0, **fields: Any) -> None:
        t = self.tasks[task]
        t.completed += int(advance)
        done = t.total is not None and t.completed >= t.total
        if done or self.clock() - t.printed >= self.every:
            self._say(t)

    def _say(self, t: PlainTask) -> None:
        t.printed = self.clock()
        total = "" if t.total is None else f"/{t.total}"
        print(
            f"  {t.description}: {t.completed}{total} ({t.printed - t.started:.0f} s)",
            file=self.out or sys.stdout,
            flush=True,
        )
