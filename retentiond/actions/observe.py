"""What a run tells those watching it: one call when a target starts, one per batch, one at its end.

The run driver knows nothing of terminals, journald or systemd: it calls a :class:`RunObserver`
with a :class:`TargetProgress` (names from the configuration and counts, never a record). The
terminal view (``retentiond.cli.progress``), the per-batch log line (:class:`BatchLog`) and the
daemon's ``STATUS=`` (``retentiond.daemon.progress``) are observers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from retentiond.logs import get_logger

log = get_logger("retentiond.run")


@dataclass(frozen=True)
class TargetProgress:
    """Where one target of a run stands: configuration names and counts only."""

    category: str
    target: str  # ``store/table`` or ``store/bucket[/prefix]``
    action: str  # delete | anonymize
    dry_run: bool
    planned: int  # records eligible when the target's batches began
    batch: int = 0  # batches that selected something so far
    acted: int = 0  # records acted on (a dry run: would act on) so far
    held: int = 0  # records holds keep (the plan's figure)
    failed: int = 0  # records or object versions that could not be acted on

    @property
    def fraction(self) -> float:
        """Return the share of the planned total done, 0..1 (1 when nothing was planned)."""
        if self.planned <= 0:
            return 1.0
        return min(1.0, self.acted / self.planned)


class RunObserver(Protocol):
    """Receives a run's progress; must not raise and must return quickly (it runs between batches)."""

    def target_started(self, progress: TargetProgress) -> None:
        """Called once per target before its first batch."""

    def batch_done(self, progress: TargetProgress) -> None:
        """Called after each batch that selected records, with the target's totals so far."""

    def target_finished(self, progress: TargetProgress) -> None:
        """Called once per target after its last batch (also when the run was stopped)."""


class Observers:
    """Fan a run's progress out to several observers, in order."""

    def __init__(self, observers: Sequence[RunObserver]) -> None:
        self.observers = list(observers)

    def target_started(self, progress: TargetProgress) -> None:
        """Tell every observer that a target starts."""
        for o in self.observers:
            o.target_started(progress)

    def batch_done(self, progress: TargetProgress) -> None:
        """Tell every observer about a batch."""
        for o in self.observers:
            o.batch_done(progress)

    def target_finished(self, progress: TargetProgress) -> None:
        """Tell every observer that a target is done."""
        for o in self.observers:
            o.target_finished(progress)


class BatchLog:
    """One ``batch`` log line (info) per batch and target, at most one per ``min_interval`` seconds per target.

    A throttled line is not lost: the next one carries the totals so far (``batch`` is the
    batch count), and the target's last batch is always logged.
    """

    def __init__(self, min_interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self.clock = clock
        self._started: dict[tuple[str, str], float] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], TargetProgress] = {}

    def target_started(self, progress: TargetProgress) -> None:
        """Start the target's clock."""
        key = (progress.category, progress.target)
        self._started[key] = self.clock()
        self._logged.pop(key, None)
        self._pending.pop(key, None)

    def batch_done(self, progress: TargetProgress) -> None:
        """Log the batch unless a line for this target was logged less than ``min_interval`` ago."""
        key = (progress.category, progress.target)
        now = self.clock()
        last = self._logged.get(key)
        if last is not None and now - last < self.min_interval:
            self._pending[key] = progress
            return
        self._emit(progress, now)

    def target_finished(self, progress: TargetProgress) -> None:
        """Log the last batch when the throttle held it back."""
        key = (progress.category, progress.target)
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._emit(pending, self.clock())

    def _emit(self, progress: TargetProgress, now: float) -> None:
        key = (progress.category, progress.target)
        self._logged[key] = now
        self._pending.pop(key, None)
        elapsed = max(now - self._started.get(key, now), 1e-9)
        log.info(
            "batch",
            category=progress.category,
            target=progress.target,
            batch=progress.batch,
            acted=progress.acted,
            planned=progress.planned,
            held=progress.held,
            failed=progress.failed,
            dry_run=progress.dry_run,
            rate=round(progress.acted / elapsed, 1),
            elapsed_s=round(elapsed, 3),
        )
