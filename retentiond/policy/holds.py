"""When a hold protects (SPEC §4 rule 1), as a pure function of the holds, the memory and a clock.

A hold in the file protects from ``placed_at`` until ``expires_at``. A former definition —
a hold removed from the file, lifted, or narrowed — keeps protecting what it protected until
its release grace ends (:class:`~retentiond.policy.hold_changes.Remnant`); a definition whose
narrowing dual control refused stays in force, and the unapproved new one protects too.

Each protecting definition is handed to the stores under a *protector id*: the hold's id, or
``ID/grace-<when>`` for a former definition while a definition of the same id is in force (so
per-hold counts never merge two definitions), or ``ID/unapproved`` for a refused new one.

Which protecting holds cover a given record is :func:`holding`, the one Python definition of hold
matching (``retentiond.stores.sql.predicates.held_through`` is its SQL form).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from retentiond.config.durations import RetentionPeriod
from retentiond.config.holds import Hold
from retentiond.policy.hold_changes import HoldsMemory, Remnant, RemnantKind

if TYPE_CHECKING:  # decide imports this module: the record types are needed for annotations only
    from retentiond.policy.decide import Coverage, Row

EXPIRING_WITHIN = timedelta(days=30)


class HoldState(enum.StrEnum):
    """Where a hold stands at a given instant."""

    NOT_YET_ACTIVE = "not_yet_active"
    ACTIVE = "active"
    EXPIRING = "expiring"  # active, and expires within EXPIRING_WITHIN
    RELEASE_GRACE = "release_grace"  # lifted, removed or narrowed: the former definition still protects
    RELEASE_REFUSED = "release_refused"  # a release without the approval dual control needs: still protects
    EXPIRED = "expired"
    RELEASED = "released"  # past its release grace


_PROTECTING = (HoldState.ACTIVE, HoldState.EXPIRING, HoldState.RELEASE_GRACE, HoldState.RELEASE_REFUSED)


@dataclass(frozen=True)
class HoldView:
    """A definition, its state at ``at`` and until when it protects (None: until removed).

    ``change`` says why a view is not simply the file's hold: ``lifted``, ``removed`` or
    ``narrowed`` (a former definition in its grace), ``refused`` (kept in force by dual
    control), ``unapproved`` (the refused new definition, protecting too). ``pending`` is True
    when no retentiond run or daemon has recorded the change yet: ``since`` and
    ``protects_until`` are then estimates that the recording fixes.
    """

    hold: Hold
    state: HoldState
    protects_until: datetime | None
    protector_id: str = ""
    change: str | None = None
    since: datetime | None = None
    pending: bool = False

    @property
    def protecting(self) -> bool:
        """Return True when records covered by this definition must not be touched."""
        return self.state in _PROTECTING

    @property
    def as_protector(self) -> Hold:
        """Return the definition under its protector id (what the stores and the ledger see)."""
        if not self.protector_id or self.protector_id == self.hold.id:
            return self.hold
        return self.hold.model_copy(update={"id": self.protector_id})


def view_hold(hold: Hold, at: datetime) -> HoldView:
    """Return the state at ``at`` of a hold that is in force (lifted holds: see :func:`view_remnant`)."""
    if at < hold.placed_at:
        return HoldView(hold, HoldState.NOT_YET_ACTIVE, hold.expires_at, hold.id)
    if hold.expires_at is not None and at >= hold.expires_at:
        return HoldView(hold, HoldState.EXPIRED, hold.expires_at, hold.id)
    if hold.expires_at is not None and hold.expires_at - at <= EXPIRING_WITHIN:
        return HoldView(hold, HoldState.EXPIRING, hold.expires_at, hold.id)
    return HoldView(hold, HoldState.ACTIVE, hold.expires_at, hold.id)


def view_remnant(remnant: Remnant, at: datetime, grace: RetentionPeriod) -> HoldView:
    """Return the state at ``at`` of a former definition in (or past) its release grace."""
    hold, until = remnant.hold, remnant.until(grace)
    state = HoldState.RELEASE_GRACE if hold.placed_at <= at < until else HoldState.RELEASED
    return HoldView(hold, state, until, hold.id, remnant.kind.value, remnant.since)


def _refused(view: HoldView) -> HoldView:
    state = HoldState.RELEASE_REFUSED if view.protecting else view.state
    return replace(view, state=state, change="refused")


def view_memory(
    memory: HoldsMemory,
    file_holds: Sequence[Hold],
    at: datetime,
    grace: RetentionPeriod,
    *,
    recorded: HoldsMemory | None = None,
) -> list[HoldView]:
    """Return every definition's view at ``at``: the file's holds in file order, then former ones.

    ``memory`` must already reflect ``file_holds`` (see ``hold_changes.advance``). With
    ``recorded`` (the memory as stored), changes absent from it are marked ``pending``.
    """
    views: list[HoldView] = []
    in_file = {h.id for h in file_holds}
    for hold in file_holds:
        in_force = memory.in_force.get(hold.id, hold)
        if hold.id in memory.refused:
            views.append(_refused(view_hold(in_force, at)))
            if not hold.lifted:
                views.append(replace(view_hold(hold, at), protector_id=f"{hold.id}/unapproved", change="unapproved"))
        elif not hold.lifted:
            views.append(view_hold(hold, at))
        elif not any(r.hold.id == hold.id and r.kind is RemnantKind.LIFTED for r in memory.remnants):
            views.append(HoldView(hold, HoldState.RELEASED, hold.lifted_at, hold.id, "lifted", hold.lifted_at))
    for hold_id, hold in memory.in_force.items():
        if hold_id not in in_file and hold_id in memory.refused:
            views.append(_refused(view_hold(hold, at)))
    for remnant in memory.remnants:
        view = view_remnant(remnant, at, grace)
        if recorded is not None and remnant not in recorded.remnants:
            view = replace(view, pending=True)
        views.append(view)
    if recorded is not None:
        views = [
            replace(v, pending=True) if v.change == "refused" and v.hold.id not in recorded.refused else v
            for v in views
        ]
    return _assign_protector_ids(views)


def _assign_protector_ids(views: list[HoldView]) -> list[HoldView]:
    """Give every view a unique protector id; former definitions yield the plain id to one in force."""
    taken = {v.protector_id for v in views if v.change not in ("removed", "lifted", "narrowed")}
    out: list[HoldView] = []
    for view in views:
        if view.change in ("removed", "lifted", "narrowed"):
            wanted = view.hold.id
            if view.change == "narrowed" or wanted in taken:
                stamp = view.since.strftime("%Y%m%dT%H%M%SZ") if view.since else "0"
                wanted = f"{view.hold.id}/grace-{stamp}"
            candidate, n = wanted, 1
            while candidate in taken:
                n += 1
                candidate = f"{wanted}.{n}"
            taken.add(candidate)
            view = replace(view, protector_id=candidate)
        out.append(view)
    return out


def protecting(views: Sequence[HoldView]) -> list[Hold]:
    """Return the definitions that protect records now, each under its protector id."""
    return [v.as_protector for v in views if v.protecting]


def view_all(
    holds: Sequence[Hold], remnants: Sequence[Remnant], at: datetime, grace: RetentionPeriod
) -> list[HoldView]:
    """Return the views of ``holds`` (all in force) and of former definitions ``remnants``."""
    memory = HoldsMemory(in_force={h.id: h for h in holds}, remnants=tuple(remnants))
    return view_memory(memory, holds, at, grace)


def holding(
    row: Row,
    covering: Sequence[Coverage],
    holds: Sequence[Hold],
    run_start: datetime,
    *,
    has_subject: bool,
) -> tuple[str, ...]:
    """Return the ids of the protecting ``holds`` that cover ``row`` through any covering category.

    A subject-scoped hold on a table without a subject column protects every row: retentiond
    cannot tell whose data it is, so it fails closed. A tax floor (``keep_younger_than``) holds
    only rows younger than the floor by the covering category's own clock.
    """
    found: list[str] = []
    for hold in holds:
        for coverage in covering:
            if not hold.covers_category(coverage.category):
                continue
            if hold.subjects is not None and has_subject and (row.subject is None or row.subject not in hold.subjects):
                continue
            if hold.keep_younger_than is not None:
                age = row.get(coverage.age_column)
                floor = hold.keep_younger_than.before(run_start)
                if isinstance(age, datetime) and not age > floor:
                    continue
            found.append(hold.id)
            break
    return tuple(found)
