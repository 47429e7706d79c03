"""When a hold is active (SPEC §4 rule 1), as a pure function of the holds and a clock."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from retentiond.config.durations import RetentionPeriod
from retentiond.config.holds import Hold

EXPIRING_WITHIN = timedelta(days=30)


class HoldState(str, enum.Enum):
    """Where a hold stands at a given instant."""

    NOT_YET_ACTIVE = "not_yet_active"
    ACTIVE = "active"
    EXPIRING = "expiring"  # active, and expires within EXPIRING_WITHIN
    RELEASE_GRACE = "release_grace"  # removed from the file, still protecting
    EXPIRED = "expired"
    RELEASED = "released"  # removed from the file and past its grace


@dataclass(frozen=True)
class ReleasedHold:
    """A hold that was in the holds file and has left it: it protects until ``released_at + grace``."""

    hold: Hold
    released_at: datetime


@dataclass(frozen=True)
class HoldView:
    """A hold, its state at ``at`` and until when it protects (None: until removed)."""

    hold: Hold
    state: HoldState
    protects_until: datetime | None

    @property
    def protecting(self) -> bool:
        """Return True when records covered by the hold must not be touched."""
        return self.state in (HoldState.ACTIVE, HoldState.EXPIRING, HoldState.RELEASE_GRACE)


def view_hold(hold: Hold, at: datetime) -> HoldView:
    """Return the state at ``at`` of a hold that is in the holds file."""
    if at < hold.placed_at:
        return HoldView(hold, HoldState.NOT_YET_ACTIVE, hold.expires_at)
    if hold.expires_at is not None and at >= hold.expires_at:
        return HoldView(hold, HoldState.EXPIRED, hold.expires_at)
    if hold.expires_at is not None and hold.expires_at - at <= EXPIRING_WITHIN:
        return HoldView(hold, HoldState.EXPIRING, hold.expires_at)
    return HoldView(hold, HoldState.ACTIVE, hold.expires_at)


def view_released(released: ReleasedHold, at: datetime, grace: RetentionPeriod) -> HoldView:
    """Return the state at ``at`` of a hold that has left the file at ``released.released_at``."""
    hold = released.hold
    until = released.released_at + grace.delta
    if hold.expires_at is not None:
        until = min(until, hold.expires_at)
    if at < hold.placed_at:
        return HoldView(hold, HoldState.RELEASED, until)
    if at < until:
        return HoldView(hold, HoldState.RELEASE_GRACE, until)
    return HoldView(hold, HoldState.RELEASED, until)


def view_all(
    holds: tuple[Hold, ...] | list[Hold],
    released: list[ReleasedHold],
    at: datetime,
    grace: RetentionPeriod,
) -> list[HoldView]:
    """Return every hold's view at ``at``: those in the file first, then the released ones."""
    in_file = {h.id for h in holds}
    views = [view_hold(h, at) for h in holds]
    views += [view_released(r, at, grace) for r in released if r.hold.id not in in_file]
    return views


def protecting(views: list[HoldView]) -> list[Hold]:
    """Return the holds that protect records now."""
    return [v.hold for v in views if v.protecting]
