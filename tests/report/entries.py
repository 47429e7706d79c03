"""Ledger entries built in memory for the pure report tests (no database, no hashes checked)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retentiond.audit.canonical import canonical_dumps, format_time
from retentiond.audit.ledger import Entry
from retentiond.report.model import Verification

VERIFIED = Verification(
    ok=True,
    ledger_id="retentiond",
    entries=0,
    head_seq=0,
    head_hash="0" * 64,
    checkpoints=0,
    last_checkpoint_seq=None,
    last_checkpoint_time=None,
    unsigned_tail=0,
    signatures_checked=True,
    key_fingerprints=("a" * 64,),
)
NOW = datetime(2027, 1, 1, tzinfo=UTC)


@dataclass
class Builder:
    """Appends entries in seq order; ``time`` is set by each call."""

    entries: list[Entry] = field(default_factory=list)

    def add(
        self,
        event: str,
        time: datetime,
        fields: dict[str, Any],
        *,
        run_id: str | None = None,
        category: str | None = None,
        refs: int = 0,
    ) -> Entry:
        """Append one entry and return it."""
        batch_id = str(uuid.uuid4()) if event == "batch" else None
        entry = Entry(
            len(self.entries) + 1,
            format_time(time),
            event,
            run_id,
            category,
            batch_id,
            canonical_dumps(fields),
            b"\x01" * 32 * refs,
            b"\x00" * 32,
            b"\x00" * 32,
        )
        self.entries.append(entry)
        return entry

    def batch(
        self,
        time: datetime,
        category: str,
        outcome: str,
        count: int,
        *,
        prior: int = 0,
        run_id: str | None = None,
        holds: tuple[str, ...] = (),
        action: str = "delete",
    ) -> Entry:
        """Append a ``batch`` entry."""
        fields = {
            "action": action,
            "count": count,
            "holds": list(holds),
            "outcome": outcome,
            "prefix": None,
            "prior_versions": prior,
            "store": "app",
            "target": "t",
        }
        return self.add("batch", time, fields, run_id=run_id, category=category)

    def run_started(self, time: datetime, cutoffs: dict[str, datetime], *, run_id: str, **extra: Any) -> Entry:
        """Append a ``run_started`` entry (``extra``: fields a later version may add, e.g. actor)."""
        fields = {
            "config_sha256": "c" * 64,
            "cutoffs": {k: format_time(v) for k, v in cutoffs.items()},
            "run_start": format_time(time),
            **extra,
        }
        return self.add("run_started", time, fields, run_id=run_id)

    def run_finished(
        self,
        time: datetime,
        *,
        run_id: str,
        duration_ms: int = 1000,
        failed: tuple[str, ...] = (),
        eligible: dict[str, int] | None = None,
    ) -> Entry:
        """Append a ``run_finished`` entry."""
        fields = {
            "counts": {},
            "duration_ms": duration_ms,
            "eligible": eligible or {},
            "failed_categories": list(failed),
        }
        return self.add("run_finished", time, fields, run_id=run_id)

    def hold(
        self,
        event: str,
        time: datetime,
        hold_id: str,
        *,
        placed_at: datetime | None = None,
        expires_at: datetime | None = None,
        categories: tuple[str, ...] = ("*",),
        subjects: int = 0,
        kind: str = "legal",
        protects_until: datetime | None = None,
    ) -> Entry:
        """Append ``hold_placed`` / ``hold_changed`` / ``hold_released``."""
        if event == "hold_released":
            fields: dict[str, Any] = {
                "hold_id": hold_id,
                "released_at": format_time(time),
                "protects_until": format_time(protects_until or time),
            }
            return self.add(event, time, fields)
        fields = {
            "hold_id": hold_id,
            "kind": kind,
            "categories": list(categories),
            "placed_at": format_time(placed_at or time),
            "expires_at": None if expires_at is None else format_time(expires_at),
            "hold_sha256": "d" * 64,
        }
        return self.add(event, time, fields, refs=subjects)
