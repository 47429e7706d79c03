"""``audit find``: what the ledger says happened to one record or one S3 object.

A record is named by its ref; an S3 object without a version id by its object-level ref
(recorded beside each version ref since format v2 of batches) and, for ledgers written before,
by the ref of its unversioned (``null``) version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retentiond.audit.entry import Entry
from retentiond.audit.reading import LedgerReader
from retentiond.audit.refs import RecordRef, RefMaker

VERBS = {
    "deleted": "deleted",
    "anonymized": "anonymized",
    "held": "kept (held)",
    "blocked": "blocked (object lock)",
    "failed": "failed",
    "skipped": "skipped",
}


@dataclass(frozen=True)
class Hit:
    """One entry that names the record: its outcome, and for an object the versions it names."""

    entry: Entry
    versions: tuple[RecordRef, ...] = ()

    @property
    def outcome(self) -> str:
        """Return the entry's outcome (or its event, for a hold naming a subject)."""
        return str(self.entry.fields.get("outcome", self.entry.event))

    def render(self) -> str:
        """Return one line: what happened, when, by which run, under which category."""
        e, f = self.entry, self.entry.fields
        verb = VERBS.get(self.outcome, self.outcome)
        what = ""
        if self.versions:
            what = f" {len(self.versions)} version{'s' if len(self.versions) > 1 else ''}"
        return (
            f"{verb}{what} on {e.time} by run {e.run_id or '-'} under category {e.category or '-'} "
            f"(seq {e.seq}, batch {e.batch_id or '-'}, action {f.get('action', '-')})"
        )

    def to_json(self) -> dict[str, Any]:
        """Return the entry without its refs (other records' refs are not this answer's business)."""
        out = self.entry.to_json() | {"refs": None}
        if self.versions:
            out["version_refs"] = [v.hex() for v in self.versions]
        return out


def find_record(ledger: LedgerReader, ref: RecordRef) -> list[Hit]:
    """Return the entries carrying ``ref``, oldest first.

    Raises:
        TemporaryFailure: the ledger is unreachable.
    """
    return [Hit(e) for e in ledger.find(ref)]


def find_object(ledger: LedgerReader, maker: RefMaker, store: str, bucket: str, object_key: str) -> list[Hit]:
    """Return every entry naming any version of ``object_key``, oldest first.

    Raises:
        ValueError: ``store``/``bucket`` are not plain names.
        TemporaryFailure: the ledger is unreachable.
    """
    object_ref = maker.s3_object(store, bucket, object_key)
    hits = {e.seq: Hit(e, e.versions_of(object_ref)) for e in ledger.find(object_ref)}
    for e in ledger.find(maker.s3(store, bucket, object_key, None)):
        hits.setdefault(e.seq, Hit(e, ()))
    return [hits[seq] for seq in sorted(hits)]
