"""What the ledger hands back: committed appends, the head, and stored entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from retentiond.audit.canonical import canonical_loads, parse_time
from retentiond.audit.events import EVENT_TYPES, Event
from retentiond.audit.export import row_to_json
from retentiond.audit.refs import REF_SIZE, RecordRef, split_refs
from retentiond.audit.verify import Row
from retentiond.errors import RetentiondError


class DuplicateBatch(RetentiondError, ValueError):
    """A batch entry with this ``batch_id`` is already in the ledger (nothing was written)."""


@dataclass(frozen=True)
class AppendedEntry:
    """What an append committed: the entry's seq, hash and UTC time text."""

    seq: int
    hash: bytes
    time: str


@dataclass(frozen=True)
class Head:
    """The head of the chain: last seq (0 when empty), its hash (genesis when empty), its time."""

    seq: int
    hash: bytes
    time: str | None


@dataclass(frozen=True)
class Entry:
    """One stored entry, as read back (``refs`` is the concatenation of 32-byte refs)."""

    seq: int
    time: str
    event: str
    run_id: str | None
    category: str | None
    batch_id: str | None
    fields_json: str
    refs_blob: bytes
    prev_hash: bytes
    hash: bytes

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Entry:
        """Build from a row in ``_ROW_COLUMNS`` order."""
        return cls(*row)

    def as_row(self) -> Row:
        """Return the tuple verify and export work on."""
        return (
            self.seq,
            self.time,
            self.event,
            self.run_id,
            self.category,
            self.batch_id,
            self.fields_json,
            self.refs_blob,
            self.prev_hash,
            self.hash,
        )

    @cached_property
    def fields(self) -> dict[str, Any]:
        """Return the event's own fields (parsed canonical JSON)."""
        return dict(canonical_loads(self.fields_json))

    @property
    def _paired(self) -> bool:
        """Return True for an S3 batch that carries an object ref after each version ref."""
        count = self.fields.get("count") if self.event == "batch" else None
        return isinstance(count, int) and count > 0 and len(self.refs_blob) == 2 * count * REF_SIZE

    @property
    def refs(self) -> tuple[RecordRef, ...]:
        """Return the entry's record refs (an S3 batch's version refs, without its object refs)."""
        refs = split_refs(self.refs_blob)
        return refs[: len(refs) // 2] if self._paired else refs

    @property
    def object_refs(self) -> tuple[RecordRef, ...]:
        """Return an S3 batch's object-level refs, one per version ref (empty for other entries)."""
        refs = split_refs(self.refs_blob)
        return refs[len(refs) // 2 :] if self._paired else ()

    @property
    def ref_count(self) -> int:
        """Return how many record refs the entry carries (object refs not counted)."""
        total = len(self.refs_blob) // REF_SIZE
        return total // 2 if self._paired else total

    @property
    def timestamp(self) -> datetime:
        """Return the entry's time as an aware UTC datetime."""
        return parse_time(self.time)

    def contains(self, ref: RecordRef) -> bool:
        """Return True when ``ref`` is one of the entry's refs (aligned match)."""
        blob, start = self.refs_blob, 0
        while True:
            i = blob.find(ref, start)
            if i < 0:
                return False
            if i % REF_SIZE == 0:
                return True
            start = i + 1

    def typed(self) -> Event:
        """Return the typed event this entry stores.

        Raises:
            ValueError: unknown event name or fields that do not fit it.
        """
        cls = EVENT_TYPES.get(self.event)
        if cls is None:
            raise ValueError(f"unknown event {self.event!r}")
        refs = split_refs(self.refs_blob)
        return cls.from_stored(category=self.category, batch_id=self.batch_id, fields=self.fields, refs=refs)

    def to_json(self) -> dict[str, Any]:
        """Return the export / ``audit show --format json`` object (see docs/auditing.md)."""
        return row_to_json(self.as_row())

    def versions_of(self, object_ref: RecordRef) -> tuple[RecordRef, ...]:
        """Return the version refs an S3 batch pairs with ``object_ref`` (its object-level ref).

        A batch with object refs stores ``count`` version refs, then ``count`` object refs in
        the same order; any other entry pairs nothing.
        """
        objects = self.object_refs
        if not objects:
            return ()
        return tuple(v for v, o in zip(self.refs, objects, strict=True) if o == object_ref)
