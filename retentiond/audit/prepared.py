"""An event checked and serialized for the ledger, before its place in the chain is known.

``Ledger.append_many`` prepares every event before it takes the head's lock, so a bad event
fails before anything is locked or written, and the lock is held only for the chaining.
"""

from __future__ import annotations

from typing import NamedTuple

from retentiond.audit.canonical import canonical_dumps
from retentiond.audit.events import EVENT_TYPES, Checkpoint, Event, Name
from retentiond.audit.refs import RefBlock


class PreparedEntry(NamedTuple):
    """An event's entry without seq, time and hashes: what ``Ledger._insert`` takes after the head."""

    event_name: str
    run_id: str | None
    category: str | None
    batch_id: str | None
    fields: str
    refs: bytes


def prepare_entry(event: Event, run_id: str | None, refs: RefBlock | None) -> PreparedEntry:
    """Return what ``event``'s entry is made of; ``refs``: its refs made in bulk, given apart.

    Raises:
        TypeError: ``event`` is not one of the ledger's event types, is a checkpoint (written
            with ``Ledger.checkpoint``), or refs are given apart to an event that holds refs
            itself or carries none.
        ValueError: ``run_id`` is not a plain name/UUID, or the event's count differs from the
            number of refs given apart.
    """
    if not isinstance(event, Event) or type(event) not in EVENT_TYPES.values():
        raise TypeError(f"the ledger appends retentiond.audit events only, not {type(event).__name__}")
    if isinstance(event, Checkpoint):
        raise TypeError("checkpoints are written with Ledger.checkpoint(signer)")
    run = None if run_id is None else str(Name(run_id))
    fields = canonical_dumps(event.json_fields())
    blob = event.refs_blob()
    if refs is not None:
        if event.refs_field is None or blob:
            raise TypeError("refs given apart go to an event that carries refs and holds none itself")
        if len(refs) != getattr(event, "count", len(refs)):
            raise ValueError("count must equal the number of refs when refs are given")
        blob = refs.blob
    category = getattr(event, "category", None)
    return PreparedEntry(event.event_name, run, category, getattr(event, "batch_id", None), fields, blob)
