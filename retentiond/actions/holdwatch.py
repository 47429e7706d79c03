"""Live holds: re-read Legal's file before every batch, remember holds that left it.

SPEC §4 rules 1-2: a hold saved to the file protects from the next batch on, without a
reload; an unreadable or invalid file stops every destructive action (fail closed); a hold
that disappears keeps protecting for ``hold_release_grace``. The last seen holds live in
``state_dir/holds-state.json`` so the grace survives restarts. Changes are audited as
``hold_placed`` / ``hold_changed`` / ``hold_released`` with subject ids as refs.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from retentiond.audit.events import HoldChanged, HoldPlaced, HoldReleased
from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig, holds_files, load_holds
from retentiond.errors import ConfigError, HoldsUnavailable
from retentiond.logs import get_logger
from retentiond.policy.holds import HoldView, ReleasedHold, protecting, view_all

STATE_FILE = "holds-state.json"
_PRUNE_AFTER = timedelta(days=30)
log = get_logger("retentiond.holds")


def _state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def _read_state(state_dir: Path) -> dict[str, Any]:
    path = _state_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"seen": {}, "released": {}}
    except (OSError, ValueError) as exc:
        # A damaged state file must not silently drop released holds' grace: fail closed.
        raise HoldsUnavailable(f"cannot read {path}: {exc}") from None
    data.setdefault("seen", {})
    data.setdefault("released", {})
    return data


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = _state_path(state_dir)
    # One temp file per process and thread: daemons sharing state_dir must never write into
    # (and rename) each other's half-written file.
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, sort_keys=True, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_released(state_dir: Path) -> list[ReleasedHold]:
    """Return the holds remembered as released (empty before the first run)."""
    state = _read_state(state_dir)
    return [
        ReleasedHold(_load(entry["hold"]), datetime.fromisoformat(entry["released_at"]))
        for entry in state["released"].values()
    ]


def _dump(hold: Hold) -> dict[str, Any]:
    return hold.model_dump(mode="json")


def _load(dumped: dict[str, Any]) -> Hold:
    """Return a hold remembered in the state file; its instants are already resolved."""
    data = dict(dumped)
    for key in ("placed_at", "expires_at"):
        if isinstance(data.get(key), str):
            data[key] = datetime.fromisoformat(data[key])
    return Hold.model_validate(data)


class HoldWatcher:
    """Holds as they stand now, re-read when the file's content changes."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        ledger: Any = None,
        refs: Any = None,
        run_id: str | None = None,
        record_changes: bool = True,
    ) -> None:
        self.loaded = loaded
        self.path = loaded.holds_path
        self.categories = list(loaded.settings.categories)
        self.grace = loaded.settings.daemon.hold_release_grace
        self.state_dir = loaded.state_dir
        self.ledger = ledger
        self.refs = refs
        self.run_id = run_id
        self.record_changes = record_changes
        self._fingerprint: str | None = None
        self._holds: tuple[Hold, ...] = ()
        self._digest: str | None = None
        self._released_cache: tuple[tuple[int, int, int], list[ReleasedHold]] | None = None

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

    def refresh(self, now: datetime) -> bool:
        """Re-read the holds when the files changed; return True when they did.

        Raises:
            HoldsUnavailable: the file is missing, unreadable or invalid (fail closed).
        """
        fingerprint = self._fingerprint_now()
        if fingerprint == self._fingerprint:
            return False
        try:
            snapshot = load_holds(self.path, self.categories)
        except ConfigError as exc:
            self._fingerprint = None
            raise HoldsUnavailable(
                f"holds file {self.path} is invalid: {len(exc.issues)} error(s); no deletion until it is fixed",
                exc.issues,
            ) from None
        self._fingerprint = fingerprint
        self._holds = snapshot.holds
        self._digest = snapshot.digest
        if self.record_changes:
            self._record(now)
        return True

    def protecting(self, now: datetime) -> list[Hold]:
        """Return the holds that protect records at ``now`` (file holds and released ones in grace).

        Raises:
            HoldsUnavailable: as :meth:`refresh`.
        """
        return protecting(self.views(now))

    def views(self, now: datetime) -> list[HoldView]:
        """Return every hold's state at ``now``: in the file, and released ones remembered in state_dir.

        Raises:
            HoldsUnavailable: as :meth:`refresh`.
        """
        self.refresh(now)
        released = list(self._released())
        if not self.record_changes:
            released += self._unrecorded_releases(now)
        return view_all(self._holds, released, now, self.grace)

    def _released(self) -> list[ReleasedHold]:
        """Return the released holds of the state file, parsed again only when the file changed.

        Called before every batch: a stat is enough while nobody (this process or another
        daemon sharing ``state_dir``) rewrote the file.
        """
        try:
            st = _state_path(self.state_dir).stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._released_cache is None or self._released_cache[0] != stamp:
            self._released_cache = (stamp, read_released(self.state_dir))
        return self._released_cache[1]

    def _unrecorded_releases(self, now: datetime) -> list[ReleasedHold]:
        """Return holds last seen in the file, gone from it now, whose release no run has recorded yet.

        A plan (or explain) records nothing, but the next real run will record them as released
        at its start and protect them for the grace: so must the plan, or its figures (and
        explain's verdict) would promise deletions the run will not do.
        """
        if not _state_path(self.state_dir).exists():
            return []
        state = _read_state(self.state_dir)
        current = {h.id for h in self._holds}
        return [
            ReleasedHold(_load(dumped), now)
            for hold_id, dumped in state["seen"].items()
            if hold_id not in current and hold_id not in state["released"]
        ]

    def _record(self, now: datetime) -> None:
        """Diff the holds against the last seen set; audit and remember the changes."""
        state = _read_state(self.state_dir)
        seen: dict[str, Any] = state["seen"]
        released: dict[str, Any] = state["released"]
        current = {h.id: h for h in self._holds}
        events: list[Any] = []
        for hold_id, hold in current.items():
            dumped = _dump(hold)
            if hold_id not in seen:
                events.append(self._placed(HoldPlaced, hold))
                released.pop(hold_id, None)
            elif seen[hold_id] != dumped:
                events.append(self._placed(HoldChanged, hold))
        for hold_id, dumped in seen.items():
            if hold_id not in current:
                old = _load(dumped)
                until = now + self.grace.delta
                if old.expires_at is not None:
                    until = min(until, old.expires_at)
                released[hold_id] = {"hold": dumped, "released_at": now.isoformat()}
                events.append(HoldReleased(hold_id=hold_id, released_at=now, protects_until=max(until, now)))
        for hold_id in list(released):
            entry = released[hold_id]
            if datetime.fromisoformat(entry["released_at"]) + self.grace.delta + _PRUNE_AFTER < now:
                del released[hold_id]
        state["seen"] = {h.id: _dump(h) for h in self._holds}
        if self.ledger is not None:
            for event in events:
                self.ledger.append(event, run_id=self.run_id)
        _write_state(self.state_dir, state)
        for event in events:
            log.info("hold change", change=event.event_name, hold_id=str(event.hold_id))

    def _placed(self, kind: type, hold: Hold) -> Any:
        subject_refs = tuple(self.refs.subject(s) for s in hold.subjects or ()) if self.refs is not None else ()
        definition = json.dumps(_dump(hold), sort_keys=True, separators=(",", ":")).encode()
        return kind(
            hold_id=hold.id,
            kind=hold.kind,
            categories=tuple(hold.categories),
            placed_at=hold.placed_at,
            expires_at=hold.expires_at,
            hold_sha256=hashlib.sha256(definition).hexdigest(),
            subject_refs=subject_refs,
            placed_by=hold.placed_by,
            reference=hold.reference,
            reason_hmac=self.refs.hold_reason(hold.reason) if self.refs is not None else None,
        )
