"""The daemon's ``STATUS=`` while a run works: current category, target and percentage."""

from __future__ import annotations

import time
from collections.abc import Callable

from retentiond.actions.observe import TargetProgress
from retentiond.daemon import sdnotify


class StatusProgress:
    """A :class:`~retentiond.actions.observe.RunObserver` sending ``STATUS=running …`` to systemd.

    At most one notification per ``min_interval`` seconds between a target's first and last
    batch; ``base`` returns the daemon's usual status text, appended after the progress.
    """

    def __init__(
        self,
        base: Callable[[], str],
        *,
        notify: Callable[[str], bool] | None = None,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        # Never blocks: a full notify queue drops a progress status rather than hold up a batch.
        self.notify = notify or (lambda status: sdnotify.notify(status, wait=False))
        self.min_interval = min_interval
        self.clock = clock
        self._sent: float | None = None

    @staticmethod
    def line(progress: TargetProgress) -> str:
        """Return the progress part of ``STATUS=`` (names from the configuration and counts only)."""
        pct = int(100 * progress.fraction)
        return f"running {progress.category} {progress.target} {pct}% ({progress.acted}/{progress.planned})"

    def target_started(self, progress: TargetProgress) -> None:
        """Announce the target."""
        self._send(progress)

    def batch_done(self, progress: TargetProgress) -> None:
        """Announce the new percentage unless one was sent less than ``min_interval`` ago."""
        if self._sent is None or self.clock() - self._sent >= self.min_interval:
            self._send(progress)

    def target_finished(self, progress: TargetProgress) -> None:
        """Announce the target's final figures."""
        self._send(progress)

    def _send(self, progress: TargetProgress) -> None:
        self._sent = self.clock()
        self.notify(f"STATUS={self.line(progress)}; {self.base()}")
