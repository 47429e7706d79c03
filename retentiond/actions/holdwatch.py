"""Live holds: re-read Legal's file before every batch, record every change of protection.

SPEC §4 rules 1-2: a hold saved to the file protects from the next batch on, without a
reload; an unreadable or invalid file stops every destructive action (fail closed). A hold
that is removed, lifted or narrowed keeps protecting what it protected for
``hold_release_grace``; with ``hold_release_requires_approval`` a legal hold's release without
an approver is refused and the hold stays as it was (``policy.hold_changes``). Changes are
audited as ``hold_placed`` / ``hold_changed`` / ``hold_released`` / ``hold_release_refused``
with subject ids as refs, and remembered in ``state_dir/holds/`` (``actions.holds_state``).

Why ``holds list`` once showed a grace end that moved on every call: a release not yet recorded
by a run or the daemon was dated "now" by every reader. A recording still dates it when it is
seen (the safe side), but a reader that does not record now estimates the date from the holds
files' modification time, bounded by the last recording, which does not move between calls.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from retentiond.actions import holds_state
from retentiond.audit.events import Event, HoldChanged, HoldPlaced, HoldReleased, HoldReleaseRefused
from retentiond.audit.ledger import Ledger
from retentiond.audit.refs import RefMaker
from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig, holds_files, load_holds
from retentiond.errors import ConfigError, HoldsUnavailable
from retentiond.logs import get_logger
from retentiond.policy.hold_changes import (
    Change,
    Changed,
    HoldsMemory,
    Placed,
    Refused,
    Released,
    advance,
    fingerprint,
)
from retentiond.policy.holds import HoldView, protecting, view_memory

log = get_logger("retentiond.holds")
Pending = Literal["now", "estimate"]


class HoldWatcher:
    """Holds as they stand now, re-read when the files' content changes.

    With ``record_changes`` (runs, the daemon) changes are audited and remembered; without
    (plan, explain, ``holds list``) they are only evaluated: ``pending="now"`` dates an
    unrecorded release as a recording now would (what a run would protect), ``"estimate"``
    dates it from the files' modification time (a stable date to show).
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        ledger: Ledger | None = None,
        refs: RefMaker | None = None,
        run_id: str | None = None,
        record_changes: bool = True,
        pending: Pending = "now",
        tolerate_unreadable_state: bool = False,
    ) -> None:
        self.loaded = loaded
        self.path = loaded.holds_path
        self.categories = list(loaded.settings.categories)
        self.grace = loaded.settings.daemon.hold_release_grace
        self.approval_required = loaded.settings.daemon.hold_release_requires_approval
        self.state_dir = loaded.state_dir
        self.ledger = ledger
        self.refs = refs
        self.run_id = run_id
        self.record_changes = record_changes
        self.pending = pending
        self.tolerate_unreadable_state = tolerate_unreadable_state
        self.warnings: list[str] = []
        self._fingerprint: str | None = None
        self._holds: tuple[Hold, ...] = ()
        self._digest: str | None = None
        self._stored: tuple[tuple[int, int, int] | None, HoldsMemory] | None = None

    # -- reading the file -----------------------------------------------------------------------

    def _fingerprint_now(self) -> str:
        """Return a hash over every holds file's name and bytes (cheap: holds files are small)."""
        h = hashlib.sha256()
        try:
            for file in holds_files(self.path) if self.path.exists() else [self.path]:
                h.update(str(file).encode() + b"\0" + file.read_bytes() + b"\0")
        except OSError as exc:
            raise HoldsUnavailable(f"holds file {self.path} unreadable: {exc.strerror or exc}") from None
        return h.hexdigest()

    @property
    def digest(self) -> str | None:
        """Return the SHA-256 of the last valid reading (None before the first)."""
        return self._digest

    @property
    def holds(self) -> tuple[Hold, ...]:
        """Return the holds of the last valid reading, as written in the file."""
        return self._holds

    def refresh(self, now: datetime) -> bool:
        """Re-read the holds when the files changed (recording the changes); return True when they did.

        Raises:
            HoldsUnavailable: the file is missing, unreadable or invalid (fail closed), or the
                holds state cannot be read.
            TemporaryFailure: the ledger is unreachable (nothing recorded; retried next time).
        """
        fingerprint_now = self._fingerprint_now()
        if fingerprint_now == self._fingerprint:
            return False
        try:
            snapshot = load_holds(self.path, self.categories)
        except ConfigError as exc:
            self._fingerprint = None
            raise HoldsUnavailable(
                f"holds file {self.path} is invalid: {len(exc.issues)} error(s); no deletion until it is fixed",
                exc.issues,
            ) from None
        self._holds = snapshot.holds
        self._digest = snapshot.digest
        if self.record_changes:
            self._record(now)
        self._fingerprint = fingerprint_now  # only once recorded: a failed recording is tried again
        return True

    # -- what protects -------------------------------------------------------------------------

    def protecting(self, now: datetime) -> list[Hold]:
        """Return the definitions that protect records at ``now``, under their protector ids.

        Raises:
            HoldsUnavailable, TemporaryFailure: as :meth:`refresh`.
        """
        return protecting(self.views(now))

    def views(self, now: datetime) -> list[HoldView]:
        """Return every definition's state at ``now``: the file's holds and the former ones in grace.

        Raises:
            HoldsUnavailable, TemporaryFailure: as :meth:`refresh`.
        """
        self.refresh(now)
        stored = self._stored_memory()
        at = now if self.pending == "now" else self._estimated_change_time(stored, now)
        memory, _ = advance(stored, self._holds, at, self.grace, approval_required=self.approval_required)
        return view_memory(memory, self._holds, now, self.grace, recorded=stored)

    def _stored_memory(self) -> HoldsMemory:
        """Return the recorded memory, parsed again only when the state file changed (a stat per batch)."""
        stamp = holds_state.state_stamp(self.state_dir)
        if self._stored is not None and self._stored[0] == stamp and stamp is not None:
            return self._stored[1]
        try:
            memory = holds_state.read_memory(self.state_dir)
        except HoldsUnavailable as exc:
            if not (self.tolerate_unreadable_state and isinstance(exc.__cause__, PermissionError)):
                raise
            self.warnings.append(f"{exc}: holds released in the last grace period are not shown")
            memory = HoldsMemory()
        self._stored = (stamp, memory)
        return memory

    def _estimated_change_time(self, stored: HoldsMemory, now: datetime) -> datetime:
        """Return when the unrecorded changes were most likely made: the newest holds file's mtime,
        not before the last recording (which saw the old file), not after ``now``."""
        latest: datetime | None = None
        paths: list[Path] = [self.path]
        if self.path.is_dir():
            paths += holds_files(self.path)
        for path in paths:
            try:
                mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except OSError:
                continue
            latest = mtime if latest is None else max(latest, mtime)
        estimate = latest or now
        if stored.recorded_at is not None:
            estimate = max(estimate, stored.recorded_at)
        return min(estimate, now)

    # -- recording -----------------------------------------------------------------------------

    def _record(self, now: datetime) -> None:
        """Diff the holds against the memory; audit and remember the changes (one recorder at a time)."""
        with holds_state.locked(self.state_dir):
            stored = holds_state.read_memory(self.state_dir)
            memory, changes = advance(stored, self._holds, now, self.grace, approval_required=self.approval_required)
            if not changes and holds_state.state_stamp(self.state_dir) is not None and _same(memory, stored):
                return
            copies: list[dict[str, Any]] = []
            for change in changes:
                event = self._event(change)
                line = _copy_line(change, event)
                if self.ledger is not None:
                    appended = self.ledger.append(event, run_id=self.run_id)
                    line.update(seq=appended.seq, hash=appended.hash.hex(), time=appended.time)
                copies.append(line)
            holds_state.write_memory(self.state_dir, memory)
            holds_state.append_events(self.state_dir, copies)
        self._stored = None
        for change in changes:
            log.info("hold change", change=type(change).__name__.lower(), hold_id=_hold_of(change).id)

    def _subject_refs(self, hold: Hold) -> tuple[Any, ...]:
        if self.refs is None:
            return ()
        return tuple(self.refs.subject(s) for s in hold.subjects or ())

    def _event(self, change: Change) -> Event:
        """Return the ledger event of ``change`` (subject ids as refs, never in clear)."""
        if isinstance(change, Placed):
            return HoldPlaced(**self._definition(change.hold))
        if isinstance(change, Changed):
            old_subjects, new_subjects = set(change.old.subjects or ()), set(change.new.subjects or ())
            both_listed = change.old.subjects is not None and change.new.subjects is not None
            return HoldChanged(
                **self._definition(change.new),
                narrowed=change.narrowing.aspects,
                subjects_removed=change.narrowing.subjects_removed,
                subjects_added=len(new_subjects - old_subjects) if both_listed else 0,
                categories_removed=change.narrowing.categories_removed,
                protects_until=change.protects_until,
            )
        if isinstance(change, Released):
            return HoldReleased(
                hold_id=change.old.id, released_at=change.released_at, protects_until=change.protects_until
            )
        return HoldReleaseRefused(
            hold_id=change.old.id,
            problem=change.problem.value,
            narrowed=change.narrowing.aspects,
            hold_sha256=fingerprint(change.new) if change.new is not None else None,
        )

    def _definition(self, hold: Hold) -> dict[str, Any]:
        return {
            "hold_id": hold.id,
            "kind": hold.kind,
            "categories": tuple(hold.categories),
            "placed_at": hold.placed_at,
            "expires_at": hold.expires_at,
            "hold_sha256": fingerprint(hold),
            "subject_refs": self._subject_refs(hold),
            "placed_by": hold.placed_by,
            "reference": hold.reference,
            "reason_hmac": self.refs.hold_reason(hold.reason) if self.refs is not None else None,
        }


def _same(a: HoldsMemory, b: HoldsMemory) -> bool:
    """Return True when two memories differ at most in ``recorded_at``."""
    return (
        {k: fingerprint(v) for k, v in a.in_force.items()} == {k: fingerprint(v) for k, v in b.in_force.items()}
        and a.remnants == b.remnants
        and dict(a.refused) == dict(b.refused)
    )


def _hold_of(change: Change) -> Hold:
    return change.hold if isinstance(change, Placed) else change.old


def _copy_line(change: Change, event: Event) -> dict[str, Any]:
    """Return the line of ``events.jsonl``: the ledger fields plus who did it according to the file."""
    line: dict[str, Any] = {"event": event.event_name, **event.json_fields()}
    hold = change.new if isinstance(change, (Changed, Refused)) else None
    if isinstance(change, Placed):
        hold = change.hold
        line.update(by=hold.placed_by, reference=hold.reference)
    elif isinstance(change, Released) and change.lifted is not None:
        hold = change.lifted
        line.update(by=hold.lifted_by, approved_by=hold.lift_approved_by, how="lifted")
    elif isinstance(change, Released):
        line.update(how="removed")
    elif hold is not None and hold.lifted:
        line.update(by=hold.lifted_by, approved_by=hold.lift_approved_by)
    elif hold is not None:
        line.update(by=hold.changed_by, approved_by=hold.change_approved_by)
    subject_holder = hold or _hold_of(change)
    line.update(
        matter=subject_holder.matter,
        subjects=len(subject_holder.subjects) if subject_holder.subjects is not None else None,
    )
    if isinstance(change, Changed) and change.old.changed_at == change.new.changed_at:
        line.pop("by", None)  # the file does not say who made this change
        line.pop("approved_by", None)
    return {k: v for k, v in line.items() if v is not None}
