"""When a hold protects (SPEC §4 rule 1): view_hold, view_remnant, view_all, view_memory."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retentiond.config.durations import RetentionPeriod
from retentiond.config.holds import Hold
from retentiond.policy.hold_changes import HoldsMemory, Remnant, RemnantKind
from retentiond.policy.holds import (
    EXPIRING_WITHIN,
    HoldState,
    protecting,
    view_all,
    view_hold,
    view_memory,
    view_remnant,
)


def ReleasedHold(hold: Hold, released_at: datetime) -> Remnant:  # noqa: N802 - reads like the old type
    """Return the remnant of a hold removed from the file at ``released_at``."""
    return Remnant(hold, released_at, RemnantKind.REMOVED)


view_released = view_remnant

UTC = UTC
GRACE = RetentionPeriod(7, "d")


def make_hold(placed_at: Any = date(2026, 1, 1), expires_at: Any = None, **over: Any) -> Hold:
    data: dict[str, Any] = {
        "id": "LIT-1",
        "kind": "legal",
        "reason": "Preservation notice",
        "placed_by": "j.doe@legal",
        "placed_at": placed_at,
        "categories": ["support"],
    }
    if expires_at is not None:
        data["expires_at"] = expires_at
    data.update(over)
    return Hold.model_validate(data)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class TestViewHold:
    """The state of a hold that is in the holds file."""

    @pytest.mark.parametrize(
        ("when", "state"),
        [
            (at(2025, 12, 31, 23, 59, 59), HoldState.NOT_YET_ACTIVE),
            (at(2026, 1, 1), HoldState.ACTIVE),
            (at(2026, 11, 30), HoldState.ACTIVE),
            (at(2026, 12, 2), HoldState.EXPIRING),
            (at(2026, 12, 31, 23, 59, 59), HoldState.EXPIRING),
            (at(2027, 1, 1), HoldState.EXPIRED),
            (at(2030, 1, 1), HoldState.EXPIRED),
        ],
    )
    def test_states(self, when: datetime, state: HoldState) -> None:
        """Placed 2026-01-01, expiring 2026-12-31: states along the way (the last day is protected)."""
        assert state == view_hold(make_hold(expires_at=date(2026, 12, 31)), when).state

    def test_expiring_window(self) -> None:
        """A hold is 'expiring' exactly within EXPIRING_WITHIN of its end."""
        hold = make_hold(expires_at=date(2026, 12, 31))
        end = at(2027, 1, 1)
        states = (
            view_hold(hold, end - EXPIRING_WITHIN - timedelta(seconds=1)).state,
            view_hold(hold, end - EXPIRING_WITHIN).state,
        )
        assert (HoldState.ACTIVE, HoldState.EXPIRING) == states

    def test_without_expiry(self) -> None:
        """A hold without expires_at is active until removed, even decades later."""
        view = view_hold(make_hold(), at(2090, 1, 1))
        assert (HoldState.ACTIVE, None, True) == (view.state, view.protects_until, view.protecting)

    def test_expiring_protects_until_end(self) -> None:
        """An expiring hold reports the instant it stops protecting."""
        view = view_hold(make_hold(expires_at=date(2026, 12, 31)), at(2026, 12, 20))
        assert (at(2027, 1, 1), True) == (view.protects_until, view.protecting)

    def test_active_with_expiry_reports_end(self) -> None:
        """An active hold that has an expires_at further away than 30 days still reports it."""
        view = view_hold(make_hold(expires_at=date(2027, 12, 31)), at(2026, 11, 29))
        assert at(2028, 1, 1) == view.protects_until

    @given(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
        st.one_of(st.none(), st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=20_000))),
        st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2160, 1, 1), timezones=st.just(UTC)),
    )
    def test_protecting_iff_within(self, placed: datetime, length: timedelta | None, when: datetime) -> None:
        """A hold in the file protects at t iff placed_at <= t < expires_at (no expires_at: forever)."""
        expires = None if length is None else placed + length
        hold = make_hold(placed_at=placed, expires_at=expires)
        inside = placed <= when and (expires is None or when < expires)
        assert inside == view_hold(hold, when).protecting


class TestViewReleased:
    """A hold that left the file keeps protecting for hold_release_grace, never past its own end."""

    def test_in_grace(self) -> None:
        """Within the grace period after removal the hold is in release_grace and protects."""
        view = view_released(ReleasedHold(make_hold(), at(2026, 5, 1)), at(2026, 5, 7, 23), GRACE)
        assert (HoldState.RELEASE_GRACE, True, at(2026, 5, 8)) == (view.state, view.protecting, view.protects_until)

    def test_after_grace(self) -> None:
        """From released_at + grace on, the hold is released and protects nothing."""
        view = view_released(ReleasedHold(make_hold(), at(2026, 5, 1)), at(2026, 5, 8), GRACE)
        assert (HoldState.RELEASED, False) == (view.state, view.protecting)

    def test_grace_is_calendar(self) -> None:
        """A grace of 1mo is a calendar month."""
        view = view_released(ReleasedHold(make_hold(), at(2026, 1, 31)), at(2026, 2, 27), RetentionPeriod(1, "mo"))
        assert at(2026, 2, 28) == view.protects_until

    def test_grace_never_outlives_expiry(self) -> None:
        """A hold removed shortly before it expires stops at its expires_at, not later."""
        hold = make_hold(expires_at=date(2026, 5, 3))
        view = view_released(ReleasedHold(hold, at(2026, 5, 1)), at(2026, 5, 4, 1), GRACE)
        assert (HoldState.RELEASED, at(2026, 5, 4)) == (view.state, view.protects_until)

    def test_never_started(self) -> None:
        """A hold removed before its placed_at never protects."""
        hold = make_hold(placed_at=date(2026, 6, 1))
        view = view_released(ReleasedHold(hold, at(2026, 5, 1)), at(2026, 5, 2), GRACE)
        assert (HoldState.RELEASED, False) == (view.state, view.protecting)


class TestViewAll:
    """All holds at once: those in the file, then released ones not back in the file."""

    def test_readded_hold_keeps_former_definition(self) -> None:
        """A removed hold put back keeps its former definition in grace, under a grace protector id."""
        in_file = make_hold(id="A", subjects=["s1"])
        released = [ReleasedHold(make_hold(id="A"), at(2026, 3, 1)), ReleasedHold(make_hold(id="B"), at(2026, 3, 1))]
        views = view_all((in_file,), released, at(2026, 3, 2), GRACE)
        assert [
            ("A", HoldState.ACTIVE),
            ("A/grace-20260301T000000Z", HoldState.RELEASE_GRACE),
            ("B", HoldState.RELEASE_GRACE),
        ] == [(v.protector_id, v.state) for v in views]
        assert ["A", "A/grace-20260301T000000Z", "B"] == [h.id for h in protecting(views)]

    def test_protecting(self) -> None:
        """protecting() keeps active, expiring and in-grace holds only."""
        holds = (
            make_hold(id="ACTIVE"),
            make_hold(id="FUTURE", placed_at=date(2027, 1, 1)),
            make_hold(id="OLD", expires_at=date(2026, 2, 1)),
            make_hold(id="SOON", expires_at=date(2026, 3, 10)),
        )
        released = [
            ReleasedHold(make_hold(id="GRACE"), at(2026, 2, 27)),
            ReleasedHold(make_hold(id="GONE"), at(2026, 1, 1)),
        ]
        views = view_all(holds, released, at(2026, 3, 1), GRACE)
        assert ["ACTIVE", "SOON", "GRACE"] == [h.id for h in protecting(views)]


class TestViewMemory:
    """Views of refused changes, lifted holds and pending (unrecorded) changes."""

    def test_refused_change_keeps_old_and_new(self) -> None:
        """A refused narrowing: the old definition protects as the hold, the unapproved one protects too."""
        old, new = make_hold(subjects=["s1", "s2"]), make_hold(subjects=["s1", "s3"])
        memory = HoldsMemory(in_force={"LIT-1": old}, refused={"LIT-1": "x"})
        views = view_memory(memory, [new], at(2026, 3, 1), GRACE)
        assert [
            ("LIT-1", HoldState.RELEASE_REFUSED, ["s1", "s2"]),
            ("LIT-1/unapproved", HoldState.ACTIVE, ["s1", "s3"]),
        ] == [(v.protector_id, v.state, v.hold.subjects) for v in views]

    def test_lifted_hold_shows_its_grace(self) -> None:
        """A lifted hold is shown through its former definition while in grace, then as released."""
        lifted = make_hold(lifted_by="a", lifted_at=date(2026, 3, 1))
        remnant = Remnant(make_hold(), at(2026, 3, 1, 12), RemnantKind.LIFTED)
        memory = HoldsMemory(in_force={"LIT-1": lifted}, remnants=(remnant,))
        during = view_memory(memory, [lifted], at(2026, 3, 5), GRACE)
        after = view_memory(memory, [lifted], at(2026, 3, 9), GRACE)
        assert [("LIT-1", HoldState.RELEASE_GRACE, "lifted")] == [(v.protector_id, v.state, v.change) for v in during]
        assert [HoldState.RELEASED] == [v.state for v in after]

    def test_pending_marks_unrecorded_remnants(self) -> None:
        """A remnant absent from the recorded memory is pending; a recorded one is not."""
        recorded_remnant = Remnant(make_hold(id="A"), at(2026, 3, 1), RemnantKind.REMOVED)
        new_remnant = Remnant(make_hold(id="B"), at(2026, 3, 2), RemnantKind.REMOVED)
        memory = HoldsMemory(remnants=(recorded_remnant, new_remnant))
        views = view_memory(memory, [], at(2026, 3, 3), GRACE, recorded=HoldsMemory(remnants=(recorded_remnant,)))
        assert [("A", False), ("B", True)] == [(v.hold.id, v.pending) for v in views]
