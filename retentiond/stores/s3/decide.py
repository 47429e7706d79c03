"""What to do with the versions of one key: SPEC §4 rules 1, 3, 4 and 6 for S3, pure.

Built on :func:`retentiond.policy.decide.decide` and :func:`~retentiond.policy.holds.holding`:

* **current version expired** (its age strictly before the cutoff; no age = clock not started,
  kept) and not held, and no other covering category keeps it → every version of the key goes
  (``main``); its delete markers go afterwards (``main_markers``), only once every version is
  confirmed gone, so a failed or blocked version is never "undeleted" by removing the marker
  in front of it;
* **held** → every version and marker of the key is kept and counted per hold;
* otherwise **noncurrent versions** (and noncurrent delete markers) whose "noncurrent since"
  (LastModified of the next newer entry) is before the prior-versions cutoff go (``history``),
  each re-checked against the holds with that instant as its age; a **current delete marker**
  goes when no version is left behind it (``history`` when the key has no version at all,
  ``history_markers`` — after confirmation — when this run removes the last ones).

Without ``prior_versions`` a category's noncurrent versions expire after its own ``retain``,
counted from when they became noncurrent: a superseded copy never outlives the rule that
applies to the record itself.

Subjects: with ``subject_pattern``, the subject is the named group of the key; a key that does
not match has an unknown subject, and a subject-scoped hold then protects it (fail closed), as
it protects every key of a target without ``subject_pattern``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from retentiond.config.holds import Hold
from retentiond.config.models import S3Target
from retentiond.policy.decide import Coverage, Row, Verdict, decide
from retentiond.policy.erasure import ErasureVerdict, decide_erasure
from retentiond.policy.holds import holding
from retentiond.stores.base import ErasureSelection, Selection
from retentiond.stores.s3.listing import KeyGroup


@dataclass(frozen=True)
class Claim:
    """One category's claim on keys of a bucket: its prefix, clock, cutoffs."""

    coverage: Coverage  # age_column is the age source: "last_modified", "tag:x", "metadata:x"
    prefix: str
    prior_cutoff: datetime  # noncurrent versions superseded before this instant expire
    erasure: ErasureSelection | None = None  # an erasure request: the subjects' keys, whatever their age

    def covers(self, key: str) -> bool:
        """Return True when ``key`` is under this claim's prefix."""
        return key.startswith(self.prefix)


def claim_for(selection: Selection, category: str, target: S3Target) -> Claim:
    """Return ``category``'s claim through ``target`` under ``selection``.

    Without ``prior_versions``, a category's noncurrent versions expire with its own cutoff (the
    S3 default: a superseded copy never outlives the rule that applies to the record itself).
    Under an erasure the cutoffs are the request's start (shown in reports; age does not decide).
    """
    if isinstance(selection, ErasureSelection):
        start = selection.run_start
        return Claim(Coverage(category, "delete", start, age_column=target.age), target.prefix, start, selection)
    cutoff = selection.cutoffs[category]
    prior = selection.prior_cutoffs.get(category) or cutoff
    return Claim(Coverage(category, "delete", cutoff, age_column=target.age), target.prefix, prior)


@dataclass
class GroupPlan:
    """Indexes (into the group's entries) of what a run may delete now, and what holds keep."""

    main: list[int] = field(default_factory=list)
    main_markers: list[int] = field(default_factory=list)
    history: list[int] = field(default_factory=list)
    history_markers: list[int] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)
    held_records: int = 0  # distinct versions held (``held`` counts one per hold: overlapping)
    age: datetime | None = None  # the current version's age when it expired (``main``)
    kept: dict[str, int] = field(default_factory=dict)  # an erasure: versions erasure = "never" keeps

    def empty(self) -> bool:
        """Return True when nothing would be deleted (held, kept or not)."""
        return not (self.main or self.main_markers or self.history or self.history_markers or self.held or self.kept)


def subject_of(pattern: re.Pattern[str] | None, key: str) -> tuple[str | None, bool]:
    """Return (subject, known): the pattern's ``subject`` group, and whether the key matched it."""
    if pattern is None:
        return None, False
    m = pattern.search(key)
    if m is None or m.group("subject") is None:
        return None, False
    return m.group("subject"), True


def plan_group(
    group: KeyGroup,
    ages: Mapping[str, datetime | None],
    acting: Claim,
    others: Sequence[Claim],
    holds: Sequence[Hold],
    run_start: datetime,
    pattern: re.Pattern[str] | None,
) -> GroupPlan:
    """Return what ``acting`` may delete of ``group`` now.

    ``ages`` holds the current version's age per age source (``last_modified`` is filled from
    the listing; tag and metadata values as read, None when absent or unreadable).
    """
    plan = GroupPlan()
    entries = group.entries
    subject, known = subject_of(pattern, group.key)
    covering = [o for o in others if o.covers(group.key)]
    if acting.erasure is not None:
        return _plan_erasure(group, ages, acting, covering, holds, run_start, subject, known)
    current = entries[0]
    if current.is_latest and not current.is_marker:
        values: dict[str, datetime | None] = {"last_modified": current.last_modified, **ages}
        row = Row(values, subject=subject)
        decision = decide(row, acting.coverage, [o.coverage for o in covering], holds, run_start, has_subject=known)
        if decision.verdict is Verdict.ACT:
            plan.main = [i for i, e in enumerate(entries) if not e.is_marker]
            plan.main_markers = [i for i, e in enumerate(entries) if e.is_marker]
            plan.age = values.get(acting.coverage.age_column)
            return plan
        if decision.verdict is Verdict.HELD:
            for hold_id in decision.holds:
                plan.held[hold_id] = plan.held.get(hold_id, 0) + len(entries)
            plan.held_records += len(entries)
            return plan
    # Prior versions: each by when it became noncurrent.
    cutoffs = [acting.prior_cutoff, *(o.prior_cutoff for o in covering)]
    claims = [acting.coverage, *(o.coverage for o in covering)]
    for i in range(1, len(entries)):
        since = entries[i - 1].last_modified
        if not all(since < c for c in cutoffs):
            continue
        row = Row({c.age_column: since for c in claims}, subject=subject)
        held = holding(row, claims, holds, run_start, has_subject=known)
        if held:
            for hold_id in held:
                plan.held[hold_id] = plan.held.get(hold_id, 0) + 1
            plan.held_records += 1
            continue
        plan.history.append(i)
    if current.is_marker:
        versions = [i for i, e in enumerate(entries) if not e.is_marker]
        row = Row({c.age_column: current.last_modified for c in claims}, subject=subject)
        if not versions:
            held = holding(row, claims, holds, run_start, has_subject=known)
            if held:
                for hold_id in held:
                    plan.held[hold_id] = plan.held.get(hold_id, 0) + 1
                plan.held_records += 1
            else:
                plan.history.insert(0, 0)  # an orphan delete marker: nothing behind it
        elif set(versions) <= set(plan.history):
            plan.history_markers.append(0)
    return plan


def _plan_erasure(
    group: KeyGroup,
    ages: Mapping[str, datetime | None],
    acting: Claim,
    covering: Sequence[Claim],
    holds: Sequence[Hold],
    run_start: datetime,
    subject: str | None,
    known: bool,
) -> GroupPlan:
    """Return what an erasure request deletes of ``group``: every version and marker, or nothing.

    The record's age (for a tax hold's floor) is its newest entry's; prior versions and delete
    markers go with the record (``main``, markers once the versions are gone), or stay with it.
    """
    erasure = acting.erasure
    assert erasure is not None
    plan = GroupPlan()
    entries = group.entries
    values: dict[str, datetime | None] = {"last_modified": entries[0].last_modified, **ages}
    decision = decide_erasure(
        Row(values, subject=subject),
        acting.coverage,
        [o.coverage for o in covering],
        holds,
        run_start,
        erasure.subjects,
        erasure.never,
        has_subject=known,
    )
    if decision.verdict is ErasureVerdict.ERASE:
        plan.main = [i for i, e in enumerate(entries) if not e.is_marker]
        plan.main_markers = [i for i, e in enumerate(entries) if e.is_marker]
        if not plan.main:  # markers with no version behind them: nothing to wait for
            plan.main, plan.main_markers = plan.main_markers, []
    elif decision.verdict is ErasureVerdict.HELD:
        for hold_id in decision.holds:
            plan.held[hold_id] = plan.held.get(hold_id, 0) + len(entries)
    elif decision.verdict is ErasureVerdict.KEPT_BY_RULE:
        plan.kept[acting.coverage.category] = len(entries)
    return plan
