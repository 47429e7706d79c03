"""Reading the ledger: entries, find, the signing key in force, and verification in one snapshot.

:class:`LedgerReader` is the read half of :class:`~retentiond.audit.ledger.Ledger`; every
method runs in a read transaction (one REPEATABLE READ snapshot in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.exc import OperationalError

from retentiond.audit import ref_filter
from retentiond.audit.canonical import format_time
from retentiond.audit.db import Tx, multiset_digest, temporary
from retentiond.audit.entry import Entry, Head
from retentiond.audit.events import BatchId, Checkpoint
from retentiond.audit.refs import REF_SIZE, RecordRef
from retentiond.audit.schema import entries_table, head_table, ref_filters_table, refs_table
from retentiond.audit.signing import KeyRing
from retentiond.audit.verify import ChainVerifier, Damage, DamageKind, TrustedCheckpoint, VerifyPolicy, VerifyResult

ROW_COLUMNS = (
    entries_table.c.seq,
    entries_table.c.time,
    entries_table.c.event,
    entries_table.c.run_id,
    entries_table.c.category,
    entries_table.c.batch_id,
    entries_table.c.fields,
    entries_table.c.refs,
    entries_table.c.prev_hash,
    entries_table.c.hash,
)


def _many(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class LedgerReader:
    """Read methods shared by :class:`~retentiond.audit.ledger.Ledger`."""

    _engine: Engine
    ledger_id: str

    def _read(self) -> Any:
        """Return a context manager: one consistent snapshot for reads."""
        return Tx(self._engine, write=False)

    def head(self) -> Head:
        """Return the head of the chain (seq 0 and the genesis hash when empty).

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        try:
            with self._read() as conn:
                row = conn.execute(
                    select(head_table.c.seq, head_table.c.hash, head_table.c.time).where(head_table.c.id == 1)
                ).one()
        except OperationalError as exc:
            raise temporary(exc) from None
        return Head(row.seq, bytes(row.hash), row.time)

    def entries(self, **filters: Any) -> list[Entry]:
        """Return entries in seq order, filtered as :meth:`iter_entries`.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        return list(self.iter_entries(**filters))

    def iter_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        category: str | Iterable[str] | None = None,
        event: str | Iterable[str] | None = None,
        limit: int | None = None,
        from_seq: int | None = None,
        to_seq: int | None = None,
    ) -> Iterator[Entry]:
        """Yield entries in seq order, streaming; with ``limit``, the newest ``limit`` of them.

        ``since`` is inclusive, ``until`` exclusive; ``category`` and ``event`` take one value or
        several (any of them matches); ``from_seq``/``to_seq`` are inclusive.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        stmt = select(*ROW_COLUMNS)
        if since is not None:
            stmt = stmt.where(entries_table.c.time >= format_time(since))
        if until is not None:
            stmt = stmt.where(entries_table.c.time < format_time(until))
        if category is not None:
            stmt = stmt.where(entries_table.c.category.in_(_many(category)))
        if event is not None:
            stmt = stmt.where(entries_table.c.event.in_(_many(event)))
        if from_seq is not None:
            stmt = stmt.where(entries_table.c.seq >= from_seq)
        if to_seq is not None:
            stmt = stmt.where(entries_table.c.seq <= to_seq)
        try:
            with self._read() as conn:
                if limit is not None:
                    rows = conn.execute(stmt.order_by(entries_table.c.seq.desc()).limit(limit)).all()
                    for row in reversed(rows):
                        yield Entry.from_row(row)
                    return
                result = conn.execution_options(yield_per=2000).execute(stmt.order_by(entries_table.c.seq))
                for row in result:
                    yield Entry.from_row(row)
        except OperationalError as exc:
            raise temporary(exc) from None

    def latest_checkpoint(self) -> Entry | None:
        """Return the newest checkpoint entry, or None.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        found = self.entries(event=Checkpoint.event_name, limit=1)
        return found[0] if found else None

    def signing_key(self) -> str | None:
        """Return the fingerprint of the key that signs this ledger now (None before the first checkpoint).

        It is the newest rotation's new key, or else the newest checkpoint's key.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        found = self.entries(event=("checkpoint", "key_rotated"), limit=1)
        if not found:
            return None
        fields = found[0].fields
        key = fields.get("new_fingerprint") if found[0].event == "key_rotated" else fields.get("key_fingerprint")
        return str(key) if key is not None else None

    def seq_window(self, since: datetime | None, until: datetime | None) -> tuple[int, int] | None:
        """Return the first and last seq of the entries with ``since <= time < until`` (None if none).

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        stmt = select(func.min(entries_table.c.seq), func.max(entries_table.c.seq))
        if since is not None:
            stmt = stmt.where(entries_table.c.time >= format_time(since))
        if until is not None:
            stmt = stmt.where(entries_table.c.time < format_time(until))
        try:
            with self._read() as conn:
                low, high = conn.execute(stmt).one()
        except OperationalError as exc:
            raise temporary(exc) from None
        return None if low is None else (int(low), int(high))

    def first_checkpoint_after(self, seq: int) -> Entry | None:
        """Return the first checkpoint entry after ``seq``, or None.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        stmt = (
            select(*ROW_COLUMNS)
            .where(entries_table.c.event == Checkpoint.event_name, entries_table.c.seq > seq)
            .order_by(entries_table.c.seq)
            .limit(1)
        )
        try:
            with self._read() as conn:
                row = conn.execute(stmt).first()
        except OperationalError as exc:
            raise temporary(exc) from None
        return None if row is None else Entry.from_row(row)

    def has_event_between(self, event: str, low: int, high: int) -> bool:
        """Return True when an ``event`` entry has a seq strictly between ``low`` and ``high``.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        stmt = select(entries_table.c.seq).where(
            entries_table.c.event == event, entries_table.c.seq > low, entries_table.c.seq < high
        )
        try:
            with self._read() as conn:
                return conn.execute(stmt.limit(1)).first() is not None
        except OperationalError as exc:
            raise temporary(exc) from None

    def find(self, ref: RecordRef) -> list[Entry]:
        """Return the entries carrying ``ref`` (an index lookup and a probe of the ref filters), oldest first.

        Each hit is re-checked against the entry's own (hash-covered) refs, so a forged index
        row can never make a record look deleted.

        Raises:
            TypeError: ``ref`` is not a RecordRef.
            TemporaryFailure: the database is unreachable.
        """
        if type(ref) is not RecordRef:
            raise TypeError("find() takes a RecordRef made by RefMaker")
        try:
            with self._read() as conn:
                seqs = set(conn.execute(select(refs_table.c.seq).where(refs_table.c.ref == bytes(ref))).scalars())
                seqs.update(self._filtered_seqs(conn, bytes(ref)))
                stmt = select(*ROW_COLUMNS).where(entries_table.c.seq.in_(sorted(seqs))).order_by(entries_table.c.seq)
                rows = conn.execute(stmt).all() if seqs else []
        except OperationalError as exc:
            raise temporary(exc) from None
        return [e for e in (Entry.from_row(r) for r in rows) if e.contains(ref)]

    @staticmethod
    def _check_index(conn: Connection, carried: int, *, deep: bool) -> Damage | None:
        """Return the damage of the ref lookup structures, or None when they cover exactly the carried refs.

        Each entry's refs are covered either by index rows or (entries written since 0.x with many
        refs) by a filter row: the index rows plus the filtered entries' refs must number exactly
        the refs the entries carry (a missing index or filter row would hide records from ``audit
        find``). ``deep`` also compares the index's contents (a multiset digest of every
        ``(seq, ref)``) and rebuilds every filter from its entry's refs.
        """
        filtered: set[int] = set()
        filtered_refs = 0
        bad_filter = False
        if inspect(conn).has_table(ref_filters_table.name):
            f, e = ref_filters_table, entries_table
            joined = f.join(e, e.c.seq == f.c.seq, isouter=True)
            query = select(f.c.seq, e.c.refs if deep else func.length(e.c.refs), f.c.bits if deep else f.c.seq)
            for seq, refs, bits in conn.execution_options(yield_per=256).execute(query.select_from(joined)):
                filtered.add(int(seq))
                if refs is None:
                    bad_filter = True  # a filter of no entry
                    continue
                if deep:
                    filtered_refs += len(refs) // REF_SIZE
                    bad_filter = bad_filter or ref_filter.build(bytes(refs)) != bytes(bits)
                else:
                    filtered_refs += int(refs) // REF_SIZE
        if bad_filter:
            return Damage(None, DamageKind.INDEX_MISMATCH, "a ref filter does not match its entry's refs")
        indexed = conn.execute(select(func.count()).select_from(refs_table)).scalar_one()
        if indexed + filtered_refs != carried:
            return Damage(
                None,
                DamageKind.INDEX_MISMATCH,
                f"the refs index holds {indexed} rows and the ref filters cover {filtered_refs} refs "
                f"but the entries carry {carried} refs",
            )
        if deep:
            carried_digest = multiset_digest(
                (seq, blob[i : i + REF_SIZE])
                for seq, blob in conn.execution_options(yield_per=5000).execute(
                    select(entries_table.c.seq, entries_table.c.refs).where(entries_table.c.refs != b"")
                )
                if seq not in filtered
                for i in range(0, len(blob), REF_SIZE)
            )
            indexed_digest = multiset_digest(
                (seq, bytes(ref))
                for ref, seq in conn.execution_options(yield_per=20000).execute(
                    select(refs_table.c.ref, refs_table.c.seq)
                )
            )
            if carried_digest != indexed_digest:
                return Damage(
                    None, DamageKind.INDEX_MISMATCH, "the refs index does not hold exactly the refs the entries carry"
                )
        return None

    @staticmethod
    def _filtered_seqs(conn: Connection, ref: bytes) -> Iterator[int]:
        """Yield the seqs of entries whose ref filter may hold ``ref`` (audit.ref_filter)."""
        if not inspect(conn).has_table(ref_filters_table.name):
            return
        rows = conn.execution_options(yield_per=256).execute(select(ref_filters_table.c.seq, ref_filters_table.c.bits))
        for seq, bits in rows:
            if ref_filter.may_hold(bits, ref):
                yield int(seq)

    def has_batch(self, batch_id: str) -> bool:
        """Return True when a batch entry with ``batch_id`` is in the ledger (exactly-once relays).

        Raises:
            ValueError: ``batch_id`` is not a canonical UUID.
            TemporaryFailure: the database is unreachable.
        """
        bid = str(BatchId(batch_id))
        try:
            with self._read() as conn:
                return (
                    conn.execute(select(entries_table.c.seq).where(entries_table.c.batch_id == bid)).first() is not None
                )
        except OperationalError as exc:
            raise temporary(exc) from None

    def verify(
        self,
        keys: KeyRing | None = None,
        *,
        trusted: Sequence[TrustedCheckpoint] = (),
        policy: VerifyPolicy | None = None,
        check_index: bool = True,
        deep: bool = False,
    ) -> VerifyResult:
        """Verify the whole ledger in one consistent snapshot and return the result.

        ``policy`` says what ``ok`` requires (keys, trusted checkpoints, the unsigned-tail rule);
        without it one is made of ``keys`` and ``trusted`` with the defaults. ``check_index``
        also compares the number of rows in the refs index with the refs the entries carry (one
        COUNT; a missing index row would hide a record from ``audit find``). ``deep`` compares
        the index's contents too (a multiset digest of every ``(seq, ref)`` on both sides).

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        policy = policy or VerifyPolicy(keys=keys, trusted=tuple(trusted))
        try:
            with self._read() as conn:
                head = conn.execute(select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == 1)).one()
                verifier = ChainVerifier(self.ledger_id, policy, head=(head.seq, bytes(head.hash)))
                rows = conn.execution_options(yield_per=5000).execute(
                    select(*ROW_COLUMNS).order_by(entries_table.c.seq)
                )
                verifier.run(rows)  # SQLAlchemy Rows unpack like the Row tuples
                rows.close()
                result = verifier.finish()
                if result.ok and check_index:
                    result.damage = self._check_index(conn, result.refs, deep=deep)
        except OperationalError as exc:
            raise temporary(exc) from None
        return result
