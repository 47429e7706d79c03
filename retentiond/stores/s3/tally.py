"""Plan figures of an S3 target: the plans of its key groups (:mod:`.decide`) summed, in object versions."""

from __future__ import annotations

from datetime import datetime

from retentiond.stores.base import Counts
from retentiond.stores.s3.decide import GroupPlan


class Tally:
    """Sums the plans of key groups into plan figures."""

    def __init__(self) -> None:
        self.eligible = self.history = self.blocked = self.held_records = 0
        self.held: dict[str, int] = {}
        self.oldest: datetime | None = None
        self.kept: dict[str, int] = {}

    def add(self, plan: GroupPlan, locked: set[int] | list[int]) -> None:
        """Count one group's plan; ``locked`` are the indexes of its versions under Object Lock."""
        for hold_id, n in plan.held.items():
            self.held[hold_id] = self.held.get(hold_id, 0) + n
        for category, n in plan.kept.items():
            self.kept[category] = self.kept.get(category, 0) + n
        self.held_records += plan.held_records
        main_locked = [i for i in plan.main if i in locked]
        hist_locked = [i for i in plan.history if i in locked]
        if plan.main and plan.age is not None and (self.oldest is None or plan.age < self.oldest):
            self.oldest = plan.age
        # Locked versions are blocked, not eligible (the guard counts only what could be deleted);
        # markers in front of a locked version stay: they are not counted as eligible either.
        self.eligible += len(plan.main) - len(main_locked) + (0 if main_locked else len(plan.main_markers))
        self.history += len(plan.history) - len(hist_locked) + (0 if hist_locked else len(plan.history_markers))
        self.blocked += len(main_locked) + len(hist_locked)

    def counts(self, total: int) -> Counts:
        """Return the figures, ``total`` being the versions listed."""
        return Counts(
            total=total,
            eligible=self.eligible,
            held=dict(self.held),
            history_expired=self.history,
            blocked=self.blocked,
            held_records=self.held_records,
            oldest=self.oldest,
            kept=dict(self.kept),
        )


__all__ = ["Tally"]
