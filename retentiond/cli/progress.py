"""The live view of ``retentiond run`` on a terminal: one line per target, log lines above it.

Each target shows its category and name, a bar, done/planned, the percentage, the rate, the
time left (ETA), and what holds kept and what failed so far — counts only. While the view is
up, the log handlers that write to the terminal write through rich's console, so a log line
is printed above the view, never into it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from retentiond.actions.observe import TargetProgress


class _Counts(ProgressColumn):
    """``done/planned pct%``: 100 % once the target is finished (also when nothing was planned)."""

    def render(self, task: Task) -> Text:
        """Return the column's text for ``task``."""
        planned = int(task.fields.get("planned", 0))
        done = int(task.completed)
        complete = task.finished or (planned and done >= planned)
        pct = 100 if complete else (int(100 * done / planned) if planned else 0)
        return Text(f"{done}/{planned} {pct:3d}%")


class _Rate(ProgressColumn):
    """Records per second (rich's moving estimate)."""

    def render(self, task: Task) -> Text:
        """Return the column's text for ``task``."""
        speed = task.finished_speed or task.speed
        return Text("-/s" if speed is None else f"{speed:,.0f}/s")


class TerminalProgress:
    """A :class:`~retentiond.actions.observe.RunObserver` drawing the live view with rich."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.view = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            _Counts(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("held {task.fields[held]} failed {task.fields[failed]}"),
            console=console,
            redirect_stdout=False,
            redirect_stderr=False,
            refresh_per_second=4,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def target_started(self, progress: TargetProgress) -> None:
        """Add the target's line with its planned total."""
        verb = ("would " if progress.dry_run else "") + progress.action
        self._tasks[(progress.category, progress.target)] = self.view.add_task(
            f"{progress.category} {progress.target} ({verb})",
            total=max(progress.planned, 1),
            planned=progress.planned,
            held=progress.held,
            failed=progress.failed,
        )

    def batch_done(self, progress: TargetProgress) -> None:
        """Move the target's line to the totals so far."""
        self._update(progress, finished=False)

    def target_finished(self, progress: TargetProgress) -> None:
        """Show the target's final figures."""
        self._update(progress, finished=True)

    def _update(self, progress: TargetProgress, *, finished: bool) -> None:
        task = self._tasks.get((progress.category, progress.target))
        if task is None:
            return
        # More than planned: records became eligible during the run (a hold's grace ended).
        total = max(progress.planned, progress.acted, 1)
        completed = total if finished and progress.acted >= progress.planned else progress.acted
        self.view.update(
            task,
            total=total,
            completed=completed,
            planned=max(progress.planned, progress.acted),
            held=progress.held,
            failed=progress.failed,
        )
        if finished:
            self.view.stop_task(task)

    @contextmanager
    def shown(self) -> Iterator[TerminalProgress]:
        """Show the view for the block; log lines to the terminal go above it meanwhile."""
        proxy = FileProxy(self.console, self.console.file)
        moved: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.console.file:
                moved.append((handler, handler.stream))
                handler.setStream(proxy)
        self.view.start()
        try:
            yield self
        finally:
            self.view.stop()
            proxy.flush()
            for handler, stream in moved:
                handler.setStream(stream)


def terminal_progress(stream: IO[str] | None = None) -> TerminalProgress | None:
    """Return the live view on ``stream`` (stderr) when it is a terminal, else None."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    return TerminalProgress(Console(file=stream, stderr=stream is sys.stderr))
