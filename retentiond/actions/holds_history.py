"""What happened to the holds: ``holds history`` and ``holds report`` read it from the ledger.

The ledger is the record. People who cannot open it (Legal, with a PostgreSQL ledger or a
ledger file only the service reads) get the copy the recorder keeps in
``state_dir/holds/events.jsonl``, which also says who made each change according to the file.
Reading the ledger, each entry is completed from the copy (by ``seq``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retentiond.actions import holds_state
from retentiond.audit.canonical import parse_time
from retentiond.audit.ledger import Ledger
from retentiond.config.loader import LoadedConfig
from retentiond.errors import RetentiondError

HOLD_EVENTS = ("hold_placed", "hold_changed", "hold_released", "hold_release_refused")


@dataclass
class HoldEvents:
    """Hold events, oldest first, and where they were read from."""

    events: list[dict[str, Any]]
    source: str  # "ledger" or the copy's path
    ledger_error: str | None = None
    ledger: Ledger | None = field(default=None, repr=False)

    def close(self) -> None:
        """Close the ledger when one was opened."""
        if self.ledger is not None:
            self.ledger.close()


def base_id(protector_id: str) -> str:
    """Return the hold id of a protector id (``LIT-1/grace-…`` → ``LIT-1``)."""
    return protector_id.split("/", 1)[0]


def read_hold_events(loaded: LoadedConfig, *, source: str = "auto") -> HoldEvents:
    """Return the hold events of the ledger (``source`` ``auto``/``ledger``) or of the copy.

    Raises:
        RetentiondError: ``source="ledger"`` and the ledger cannot be opened.
        OSError: the copy cannot be read.
    """
    copies: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError, PermissionError):
        copies = holds_state.read_events(loaded.state_dir)
    if source in ("auto", "ledger"):
        from retentiond.actions.setup import ledger_url

        try:
            ledger = Ledger.open(ledger_url(loaded), loaded.settings.audit.ledger_id, create=False)
        except (RetentiondError, OSError) as exc:
            if source == "ledger":
                raise
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            by_seq = {c.get("seq"): c for c in copies if "seq" in c}
            events: list[dict[str, Any]] = []
            for name in HOLD_EVENTS:
                for entry in ledger.iter_entries(event=name):
                    row = {**by_seq.get(entry.seq, {}), **entry.fields}
                    row.update(seq=entry.seq, time=entry.time, event=entry.event, subject_refs=entry.ref_count)
                    events.append(row)
            events.sort(key=lambda e: int(e["seq"]))
            return HoldEvents(events, "ledger", ledger=ledger)
    else:
        error = None
    return HoldEvents(copies, str(holds_state.events_path(loaded.state_dir)), ledger_error=error)


def _time(event: dict[str, Any], key: str = "time") -> datetime | None:
    value = event.get(key)
    return parse_time(value) if isinstance(value, str) else None


def holds_at(events: Iterable[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """Return the holds that protected at ``at`` according to the events recorded by then.

    Each item: the hold's last recorded definition (``hold_id``, ``kind``, ``categories``,
    ``placed_at``, ``expires_at``), ``state`` (``in_force`` or ``release_grace``) and
    ``protects_until`` when it was released or narrowed.
    """
    holds: dict[str, dict[str, Any]] = {}
    for event in events:
        when = _time(event)
        if when is None or when > at:
            continue
        hold_id = str(event.get("hold_id"))
        if event["event"] in ("hold_placed", "hold_changed"):
            current = holds.setdefault(hold_id, {})
            current.update({k: event.get(k) for k in ("hold_id", "kind", "categories", "placed_at", "expires_at")})
            current.pop("released_until", None)
            if event.get("protects_until"):
                current["narrowed_until"] = event["protects_until"]
        elif event["event"] == "hold_released" and hold_id in holds:
            holds[hold_id]["released_until"] = event.get("protects_until")
    out: list[dict[str, Any]] = []
    for hold in holds.values():
        placed, expires = _time(hold, "placed_at"), _time(hold, "expires_at")
        released = _time(hold, "released_until")
        if placed is None or placed > at or (expires is not None and expires <= at):
            continue
        if released is not None:
            if released <= at:
                continue
            out.append({**hold, "state": "release_grace", "protects_until": hold["released_until"]})
            continue
        narrowed = _time(hold, "narrowed_until")
        grace = hold["narrowed_until"] if narrowed is not None and narrowed > at else None
        out.append({**hold, "state": "in_force", "protects_until": hold.get("expires_at"), "former_until": grace})
    return sorted(out, key=lambda h: str(h["hold_id"]))


def held_at_last_run(ledger: Ledger, at: datetime) -> tuple[str, str, dict[str, int]] | None:
    """Return (run id, finish time, protector id → records held) of the last run finished by ``at``.

    A protector id is a hold id, or ``ID/grace-…`` for a former definition in its grace; a
    record held by two of them counts for each.
    """
    finished = [e for e in ledger.iter_entries(event="run_finished", until=at) if e.run_id]
    if not finished:
        return None
    last = finished[-1]
    counts: dict[str, int] = {}
    started = [e.seq for e in ledger.iter_entries(event="run_started", until=at) if e.run_id == last.run_id]
    for entry in ledger.iter_entries(event="batch", from_seq=started[-1] if started else None, until=at):
        if entry.run_id != last.run_id or entry.fields.get("outcome") != "held":
            continue
        for protector in entry.fields.get("holds") or ():
            counts[str(protector)] = counts.get(str(protector), 0) + int(entry.fields.get("count", 0))
    return str(last.run_id), last.time, counts
