"""How a change of the holds file is judged (SPEC §4 rule 1, issue 10 item 7, issue 13 item 2).

Pure functions of the previous and the new definitions and a clock, property-tested:

* :func:`narrowing` says what protection an old definition had (from a moment on) that the new
  one lacks: fewer categories or subjects, an earlier end, a later start, a shorter
  ``keep_younger_than``, or none at all (removed or lifted). A narrowing is a release: the old
  definition keeps protecting for ``hold_release_grace``.
* :func:`approval_problem` applies dual control (``hold_release_requires_approval``): a narrowing
  or release of a ``legal`` hold needs a fresh approval by someone else than its author.
* :func:`advance` turns the remembered state and the file's holds into the new state and the
  changes to audit. The state keeps, per hold, the definition in force (the old one while a
  change is refused) and the former definitions still in their grace (:class:`Remnant`).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from retentiond.config.durations import RetentionPeriod
from retentiond.config.holds import Hold

#: Released holds stay visible (``holds list``: ``released``) this long after their grace ended.
PRUNE_AFTER = timedelta(days=30)
_DAYS_BOUNDS = {"d": (1, 1), "w": (7, 7), "mo": (28, 31), "y": (365, 366)}


@dataclass(frozen=True)
class Narrowing:
    """What an old definition protected (from a moment on) that the new one does not."""

    released: bool = False  # the hold left the file or was lifted: nothing of it stays
    categories_removed: tuple[str, ...] = ()
    subjects_removed: int = 0
    subjects_scoped: bool = False  # every subject before, a list of subjects now
    expires_earlier: bool = False
    starts_later: bool = False
    floor_shorter: bool = False  # keep_younger_than shorter, or newly set

    @property
    def narrows(self) -> bool:
        """Return True when some record the old definition protected is no longer protected."""
        return bool(self.aspects)

    @property
    def aspects(self) -> tuple[str, ...]:
        """Return the names of what narrowed (ledger ``narrowed`` field), in a fixed order."""
        flags = (
            ("released", self.released),
            ("categories", bool(self.categories_removed)),
            ("subjects", self.subjects_removed > 0 or self.subjects_scoped),
            ("expires_at", self.expires_earlier),
            ("placed_at", self.starts_later),
            ("keep_younger_than", self.floor_shorter),
        )
        return tuple(name for name, on in flags if on)


def _canonical_period(period: RetentionPeriod) -> tuple[int, str]:
    """Return the period in days (d, w) or months (mo, y): units that compare exactly."""
    if period.unit == "w":
        return period.amount * 7, "d"
    if period.unit == "y":
        return period.amount * 12, "mo"
    return period.amount, period.unit


def period_shorter(new: RetentionPeriod, old: RetentionPeriod) -> bool:
    """Return True unless ``new`` reaches at least as far back as ``old`` from every instant.

    Days and weeks compare exactly, so do months and years; a mix of the two compares on the
    shortest and longest length a month or a year can have (conservative: 30d vs 1mo is shorter).
    """
    new_amount, new_unit = _canonical_period(new)
    old_amount, old_unit = _canonical_period(old)
    if new_unit == old_unit:
        return new_amount < old_amount
    new_min = new.amount * _DAYS_BOUNDS[new.unit][0]
    old_max = old.amount * _DAYS_BOUNDS[old.unit][1]
    return new_min < old_max


def narrowing(old: Hold, new: Hold | None, at: datetime) -> Narrowing:
    """Return what ``old`` protects at ``at`` or later that ``new`` does not (``new`` None: removed).

    An old definition that is lifted or has expired by ``at`` protects nothing more: replacing
    it narrows nothing.
    """
    if old.lifted or (old.expires_at is not None and old.expires_at <= at):
        return Narrowing()
    if new is None or new.lifted:
        return Narrowing(released=True)
    if "*" in new.categories:
        categories_removed: tuple[str, ...] = ()
    elif "*" in old.categories:
        categories_removed = ("*",)
    else:
        categories_removed = tuple(c for c in old.categories if c not in new.categories)
    subjects_removed, scoped = 0, False
    if new.subjects is not None:
        if old.subjects is None:
            scoped = True
        else:
            subjects_removed = len(set(old.subjects) - set(new.subjects))
    expires_earlier = new.expires_at is not None and (old.expires_at is None or new.expires_at < old.expires_at)
    starts_later = new.placed_at > max(old.placed_at, at)
    floor_shorter = new.keep_younger_than is not None and (
        old.keep_younger_than is None or period_shorter(new.keep_younger_than, old.keep_younger_than)
    )
    return Narrowing(
        categories_removed=categories_removed,
        subjects_removed=subjects_removed,
        subjects_scoped=scoped,
        expires_earlier=expires_earlier,
        starts_later=starts_later,
        floor_shorter=floor_shorter,
    )


class ApprovalProblem(enum.StrEnum):
    """Why a change of a ``legal`` hold is refused under dual control."""

    REMOVED = "removed_without_lift"  # the block was deleted: lift it (with an approver) instead
    LIFT_NOT_APPROVED = "lift_not_approved"
    CHANGE_NOT_APPROVED = "change_not_approved"
    APPROVAL_REUSED = "approval_reused"  # the same approval stamp as the previous change


def _stamp(hold: Hold) -> tuple[object, ...]:
    return (hold.changed_by, hold.changed_at, hold.change_approved_by)


def approval_problem(old: Hold, new: Hold | None, change: Narrowing, *, required: bool) -> ApprovalProblem | None:
    """Return why the change from ``old`` to ``new`` lacks the approval dual control needs, or None.

    Only holds of kind ``legal`` (as in force: changing the kind is no way around it) need it,
    and only for a narrowing or release, or for a change of kind. A change needs a new
    ``change_approved_by`` stamp (``changed_by``/``changed_at``/``change_approved_by`` differing
    from the previous change's); a lift needs ``lift_approved_by``. The model already refuses an
    approver who is the author.
    """
    if not required or old.kind != "legal":
        return None
    kind_changed = new is not None and new.kind != old.kind
    if not change.narrows and not kind_changed:
        return None
    if new is None:
        return ApprovalProblem.REMOVED
    if new.lifted and not old.lifted:
        return None if new.lift_approved_by else ApprovalProblem.LIFT_NOT_APPROVED
    if new.change_approved_by is None:
        return ApprovalProblem.CHANGE_NOT_APPROVED
    if _stamp(new) == _stamp(old):
        return ApprovalProblem.APPROVAL_REUSED
    return None


class RemnantKind(enum.StrEnum):
    """How a former definition came to be in its release grace."""

    REMOVED = "removed"  # the block left the file
    LIFTED = "lifted"  # the block was marked lifted
    NARROWED = "narrowed"  # the block now protects less


@dataclass(frozen=True)
class Remnant:
    """A former definition that keeps protecting what it protected until its grace ends."""

    hold: Hold
    since: datetime  # when retentiond recorded that it stopped being in force
    kind: RemnantKind

    def until(self, grace: RetentionPeriod) -> datetime:
        """Return when the grace ends: ``since + grace``, never after the old definition's own end."""
        end: datetime = self.since + grace.delta
        if self.hold.expires_at is not None:
            end = min(end, self.hold.expires_at)
        return end


@dataclass(frozen=True)
class HoldsMemory:
    """What retentiond remembers of the holds between readings (``state_dir``)."""

    in_force: Mapping[str, Hold] = field(default_factory=dict)  # by id; a lifted definition protects nothing
    remnants: tuple[Remnant, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)  # id -> fingerprint of the refused file state
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class Placed:
    """A hold appeared (or came back) in the file."""

    hold: Hold


@dataclass(frozen=True)
class Changed:
    """A hold's definition changed; with a narrowing, the old one protects until ``protects_until``."""

    old: Hold
    new: Hold
    narrowing: Narrowing
    protects_until: datetime | None


@dataclass(frozen=True)
class Released:
    """A hold left the file or was lifted; it protects until ``protects_until``."""

    old: Hold
    released_at: datetime
    protects_until: datetime
    lifted: Hold | None  # the lifted block, when it was lifted rather than removed


@dataclass(frozen=True)
class Refused:
    """A narrowing or release without the approval dual control needs: the old definition stays."""

    old: Hold
    new: Hold | None
    narrowing: Narrowing
    problem: ApprovalProblem


Change = Placed | Changed | Released | Refused


def fingerprint(hold: Hold | None) -> str:
    """Return a SHA-256 over a definition's every field ("" for None): equal iff the definitions are."""
    if hold is None:
        return ""
    text = json.dumps(hold.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def advance(
    memory: HoldsMemory,
    file_holds: Sequence[Hold],
    now: datetime,
    grace: RetentionPeriod,
    *,
    approval_required: bool,
) -> tuple[HoldsMemory, list[Change]]:
    """Return the state after reading ``file_holds`` at ``now`` and the changes to audit.

    A narrowing or release recorded at ``now`` keeps the former definition protecting until
    ``now + grace`` (never past its own ``expires_at``); a refused one keeps the former
    definition in force until the file is fixed (refusals are reported once per file state).
    """
    in_force = dict(memory.in_force)
    remnants = list(memory.remnants)
    refused = dict(memory.refused)
    changes: list[Change] = []
    current = {h.id: h for h in file_holds}
    for hold_id in [*current, *(i for i in memory.in_force if i not in current)]:
        old, new = in_force.get(hold_id), current.get(hold_id)
        if old is None:
            assert new is not None  # ids come from the file or from in_force
            if new.lifted:
                # Lifted before retentiond ever saw it in force: it may have protected records
                # until now, so it gets its grace like any lift.
                old = new.model_copy(update={"lifted_by": None, "lifted_at": None, "lift_approved_by": None})
            else:
                changes.append(Placed(new))
                in_force[hold_id] = new
                refused.pop(hold_id, None)
                continue
        if new is not None and fingerprint(new) == fingerprint(old):
            refused.pop(hold_id, None)
            continue
        change = narrowing(old, new, now)
        problem = approval_problem(old, new, change, required=approval_required)
        if problem is not None:
            state = fingerprint(new)
            if refused.get(hold_id) != state:
                changes.append(Refused(old, new, change, problem))
                refused[hold_id] = state
            in_force[hold_id] = old
            continue
        refused.pop(hold_id, None)
        if new is None and old.lifted:
            del in_force[hold_id]  # a lifted block tidied away: its release was recorded at the lift
        elif new is None or (new.lifted and not old.lifted):
            kind = RemnantKind.REMOVED if new is None else RemnantKind.LIFTED
            remnant = Remnant(old, now, kind)
            remnants.append(remnant)
            changes.append(Released(old, now, max(remnant.until(grace), now), new))
            if new is None:
                del in_force[hold_id]
            else:
                in_force[hold_id] = new
        else:
            until = None
            if change.narrows:
                remnant = Remnant(old, now, RemnantKind.NARROWED)
                remnants.append(remnant)
                until = remnant.until(grace)
            changes.append(Changed(old, new, change, until))
            in_force[hold_id] = new
    kept = tuple(r for r in remnants if r.until(grace) + PRUNE_AFTER >= now)
    return HoldsMemory(in_force, kept, refused, recorded_at=now), changes
