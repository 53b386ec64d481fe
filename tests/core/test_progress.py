"""Progress in a log: plain lines at a steady pace instead of nothing until the end."""

from __future__ import annotations

import io

from layerdrift.core.progress import PlainProgress, progress_bars


def test_plain_lines_when_a_task_starts_every_interval_and_when_it_completes():
    now = [0.0]
    out = io.StringIO()
    progress = PlainProgress(out, every=10, clock=lambda: now[0])
    task = progress.add_task("patch base → tuned", total=5)
    for _ in range(5):
        now[0] += 4  # one step every 4 s: a line at 12 s (10 s after the first), then at completion
        progress.update(task, advance=1)
    other = progress.add_task("persistence diagrams", total=None)
    progress.update(other, advance=3)
    assert out.getvalue().splitlines() == [
        "  patch base → tuned: 0/5 (0 s)",
        "  patch base → tuned: 3/5 (12 s)",
        "  patch base → tuned: 5/5 (20 s)",
        "  persistence diagrams: 0 (0 s)",
    ]


def test_a_log_gets_plain_lines_and_quiet_gets_nothing(capsys):
    with progress_bars(quiet=False) as progress:  # pytest's captured stdout is not a terminal
        assert isinstance(progress, PlainProgress)
        progress.update(progress.add_task("reference", total=1), advance=1)
    assert capsys.readouterr().out.splitlines() == ["  reference: 0/1 (0 s)", "  reference: 1/1 (0 s)"]
    with progress_bars(quiet=True) as progress:
        assert progress is None
