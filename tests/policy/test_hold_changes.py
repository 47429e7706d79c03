"""Narrowing is a release; dual control of legal holds (policy.hold_changes), as properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentiond.config.durations import RetentionPeriod
from retentiond.config.holds import Hold
from retentiond.policy.decide import Coverage, Row
from retentiond.policy.hold_changes import (
    ApprovalProblem,
    Changed,
    HoldsMemory,
    Placed,
    Refused,
    Released,
    RemnantKind,
    advance,
    narrowing,
    period_shorter,
)
from retentiond.policy.holds import holding, protecting, view_hold, view_memory

GRACE = RetentionPeriod(7, "d")
T0 = datetime(2026, 3, 1, tzinfo=UTC)
CATEGORIES = ("a", "b", "c")
SUBJECTS = ("s1", "s2", "s3")


def make_hold(**over: Any) -> Hold:
    data: dict[str, Any] = {
        "id": "LIT-1",
        "kind": "legal",
        "reason": "Preservation notice",
        "placed_by": "j.doe@legal",
        "placed_at": date(2026, 1, 1),
        "categories": ["a"],
    }
    data.update(over)
    return Hold.model_validate({k: v for k, v in data.items() if v is not None})


instants = st.integers(min_value=-400, max_value=400).map(lambda d: T0 + timedelta(days=d))
periods = st.builds(RetentionPeriod, st.integers(min_value=1, max_value=40), st.sampled_from(["d", "w", "mo", "y"]))


@st.composite
def holds(draw: st.DrawFn, hold_id: str = "LIT-1") -> Hold:
    placed = draw(instants)
    expires = draw(
        st.one_of(st.none(), st.integers(min_value=1, max_value=500).map(lambda d: placed + timedelta(days=d)))
    )
    categories = draw(
        st.one_of(st.just(["*"]), st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True))
    )
    subjects = draw(st.one_of(st.none(), st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=3, unique=True)))
    floor = draw(st.one_of(st.none(), periods))
    kind = draw(st.sampled_from(["legal", "tax"]))
    lifted = draw(st.booleans()) and draw(st.booleans())
    approved = draw(st.booleans())
    stamp = draw(st.sampled_from([None, "x", "y"]))
    return make_hold(
        id=hold_id,
        kind=kind,
        placed_at=placed,
        expires_at=expires,
        categories=categories,
        subjects=subjects,
        keep_younger_than=str(floor) if floor else None,
        lifted_by="a.lifter" if lifted else None,
        lifted_at=placed if lifted else None,
        lift_approved_by="b.approver" if lifted and approved else None,
        changed_by=f"c.{stamp}" if stamp else None,
        changed_at=T0 if stamp else None,
        change_approved_by=f"d.{stamp}" if stamp and approved else None,
    )


@st.composite
def records(draw: st.DrawFn) -> tuple[str, str | None, bool, datetime]:
    category = draw(st.sampled_from(CATEGORIES))
    has_subject = draw(st.booleans())
    subject = draw(st.one_of(st.none(), st.sampled_from(SUBJECTS)))
    age = T0 - timedelta(days=draw(st.integers(min_value=0, max_value=30 * 365)))
    return category, subject, has_subject, age


def protects(holds_: list[Hold], record: tuple[str, str | None, bool, datetime], at: datetime) -> bool:
    """Return True when one of ``holds_`` (already filtered to those protecting at ``at``) covers the record."""
    category, subject, has_subject, age = record
    row = Row(values={"age": age}, subject=subject)
    coverage = Coverage(category=category, action="delete", cutoff=at, age_column="age")
    return bool(holding(row, [coverage], holds_, at, has_subject=has_subject))


def in_force_protects(hold: Hold, record: tuple[str, str | None, bool, datetime], at: datetime) -> bool:
    return not hold.lifted and view_hold(hold, at).protecting and protects([hold], record, at)


class TestNarrowing:
    """What a new definition no longer protects."""

    @pytest.mark.parametrize(
        ("over", "aspects"),
        [
            ({"subjects": ["s1"]}, ("subjects",)),
            ({"categories": ["a"], "subjects": ["s1", "s2"]}, ()),
            ({"categories": ["b"]}, ("categories",)),
            ({"expires_at": date(2026, 6, 30)}, ("expires_at",)),
            ({"expires_at": date(2027, 12, 31)}, ()),
            ({"keep_younger_than": "1y"}, ("keep_younger_than",)),
            ({"keep_younger_than": "3y"}, ()),
            ({"placed_at": date(2026, 5, 1)}, ("placed_at",)),
            ({"placed_at": date(2026, 2, 1)}, ()),
            ({"lifted_by": "x", "lifted_at": date(2026, 3, 1)}, ("released",)),
        ],
    )
    def test_aspects(self, over: dict[str, Any], aspects: tuple[str, ...]) -> None:
        """Each way of protecting less is named; widening or moving a past start is not a narrowing."""
        old = make_hold(subjects=["s1", "s2"], expires_at=date(2026, 12, 31), keep_younger_than="2y")
        new = make_hold(**{**old.model_dump(exclude_none=True), **over})
        assert aspects == narrowing(old, new, T0).aspects

    def test_removed_subjects_counted(self) -> None:
        """Two subjects removed, one added: two removed (ids never leave as such)."""
        change = narrowing(make_hold(subjects=["s1", "s2", "s3"]), make_hold(subjects=["s3", "s4"]), T0)
        assert (2, ("subjects",)) == (change.subjects_removed, change.aspects)

    def test_expired_old_definition_releases_nothing(self) -> None:
        """Removing a hold that already expired narrows nothing."""
        assert () == narrowing(make_hold(expires_at=date(2026, 2, 1)), None, T0).aspects

    @settings(max_examples=400, deadline=None)
    @given(holds(), holds(), records(), st.integers(min_value=0, max_value=2000))
    def test_no_narrowing_means_no_record_loses_protection(
        self, old: Hold, new: Hold, record: tuple[str, str | None, bool, datetime], later: int
    ) -> None:
        """When narrowing() finds nothing, every record the old definition protects at any t >= now
        is protected by the new one at t."""
        when = T0 + timedelta(days=later)
        if not narrowing(old, new, T0).narrows and in_force_protects(old, record, when):
            assert in_force_protects(new, record, when)

    @given(periods, periods, instants)
    def test_period_comparison_is_conservative(
        self, new: RetentionPeriod, old: RetentionPeriod, when: datetime
    ) -> None:
        """A period not reported shorter reaches at least as far back from every instant."""
        if not period_shorter(new, old):
            assert new.before(when) <= old.before(when)


class TestAdvance:
    """The state after reading the file, and the changes to audit."""

    def run(self, *files: list[Hold], approval: bool = False, step: timedelta = timedelta(hours=1)) -> list[Any]:
        memory, out = HoldsMemory(), []
        for i, file in enumerate(files):
            memory, changes = advance(memory, file, T0 + i * step, GRACE, approval_required=approval)
            out.append((memory, changes))
        return out

    def test_narrowed_definition_protects_through_grace(self) -> None:
        """Subject s2 removed at T0+1h: its records are held until T0+1h+7d by the former definition."""
        old, new = make_hold(subjects=["s1", "s2"]), make_hold(subjects=["s1"])
        (_, placed), (memory, changed) = self.run([old], [new])
        assert [Placed] == [type(c) for c in placed]
        change = changed[0]
        assert isinstance(change, Changed) and T0 + timedelta(hours=1, days=7) == change.protects_until
        record = ("a", "s2", True, T0)
        before = protecting(view_memory(memory, [new], T0 + timedelta(hours=1, days=7) - timedelta(seconds=1), GRACE))
        after = protecting(view_memory(memory, [new], T0 + timedelta(hours=1, days=7), GRACE))
        assert (True, False) == (protects(before, record, T0), protects(after, record, T0))
        assert ["LIT-1", "LIT-1/grace-20260301T010000Z"] == [h.id for h in before]

    def test_recording_twice_changes_nothing(self) -> None:
        """Reading the same file again records nothing (no duplicate ledger entries)."""
        file = [make_hold(subjects=["s1"]), make_hold(id="B")]
        (_, first), (_, second) = self.run(file, file)
        assert (2, []) == (len(first), second)

    def test_unapproved_legal_narrowing_is_refused_once(self) -> None:
        """Dual control: an unapproved narrowing of a legal hold is refused once and the old one stays."""
        old, new = make_hold(subjects=["s1", "s2"]), make_hold(subjects=["s1"])
        _, (memory, refused), (memory2, again) = self.run([old], [new], [new], approval=True)
        assert [ApprovalProblem.CHANGE_NOT_APPROVED] == [c.problem for c in refused if isinstance(c, Refused)]
        assert ([], ["s1", "s2"]) == (again, memory2.in_force["LIT-1"].subjects)

    def test_approved_narrowing_starts_the_grace(self) -> None:
        """With a fresh approval stamp the change is recorded and the former definition gets its grace."""
        old = make_hold(subjects=["s1", "s2"])
        new = make_hold(subjects=["s1"], changed_by="a", changed_at=T0, change_approved_by="b")
        _, (memory, changes) = self.run([old], [new], approval=True)
        assert [Changed] == [type(c) for c in changes]
        assert [RemnantKind.NARROWED] == [r.kind for r in memory.remnants]

    def test_reused_approval_is_refused(self) -> None:
        """An approval stamp of an earlier change does not approve a later narrowing."""
        first = make_hold(subjects=["s1", "s2"], changed_by="a", changed_at=T0, change_approved_by="b")
        second = make_hold(subjects=["s1"], changed_by="a", changed_at=T0, change_approved_by="b")
        _, (_, changes) = self.run([first], [second], approval=True)
        assert [ApprovalProblem.APPROVAL_REUSED] == [c.problem for c in changes if isinstance(c, Refused)]

    @pytest.mark.parametrize(
        ("new", "problem"),
        [
            (None, ApprovalProblem.REMOVED),
            ({"lifted_by": "a", "lifted_at": date(2026, 3, 1)}, ApprovalProblem.LIFT_NOT_APPROVED),
            ({"kind": "tax"}, ApprovalProblem.CHANGE_NOT_APPROVED),
        ],
    )
    def test_legal_release_needs_approval(self, new: dict[str, Any] | None, problem: ApprovalProblem) -> None:
        """Removing, lifting without approver, or changing the kind away from legal: refused."""
        old = make_hold()
        file = [] if new is None else [make_hold(**new)]
        _, (memory, changes) = self.run([old], file, approval=True)
        assert [problem] == [c.problem for c in changes if isinstance(c, Refused)]
        protectors = [h.id for h in protecting(view_memory(memory, file, T0 + timedelta(days=300), GRACE))]
        assert "LIT-1" == protectors[0]

    def test_other_kinds_need_no_approval(self) -> None:
        """A tax hold removed under dual control is released with its grace."""
        _, (_, changes) = self.run([make_hold(kind="tax")], [], approval=True)
        assert [Released] == [type(c) for c in changes]

    def test_approved_lift_then_tidy(self) -> None:
        """An approved lift is released once; deleting the lifted block later records nothing."""
        lifted = make_hold(lifted_by="a", lifted_at=date(2026, 3, 1), lift_approved_by="b")
        _, (_, lift), (memory, tidy) = self.run([make_hold()], [lifted], [], approval=True)
        assert ([Released], []) == ([type(c) for c in lift], tidy)
        assert [RemnantKind.LIFTED] == [r.kind for r in memory.remnants]

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.sampled_from(["H1", "H2"]), unique=True).flatmap(lambda ids: st.tuples(*(holds(i) for i in ids))),
        st.lists(st.sampled_from(["H1", "H2"]), unique=True).flatmap(lambda ids: st.tuples(*(holds(i) for i in ids))),
        records(),
        st.integers(min_value=0, max_value=7 * 24 - 1),
        st.booleans(),
    )
    def test_no_change_drops_protection_within_the_grace(
        self, first: tuple[Hold, ...], second: tuple[Hold, ...], record: Any, hours: int, approval: bool
    ) -> None:
        """Whatever the second file says, a record protected under the first is still protected at
        every moment of the grace that follows the change."""
        m1, _ = advance(HoldsMemory(), list(first), T0, GRACE, approval_required=approval)
        changed_at = T0 + timedelta(hours=1)
        m2, _ = advance(m1, list(second), changed_at, GRACE, approval_required=approval)
        when = changed_at + timedelta(hours=hours)
        if protects(protecting(view_memory(m1, list(first), when, GRACE)), record, when):
            assert protects(protecting(view_memory(m2, list(second), when, GRACE)), record, when)
