"""Progress bars on the terminal (rich), or nothing when quiet."""

from __future__ import annotations

from contextlib import nullcontext


def progress_bars(quiet: bool):
    if quiet:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches"),
        TimeElapsedColumn(),
    )
