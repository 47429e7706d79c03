"""The append-only, tamper-evident audit ledger (SPEC §5) on SQLAlchemy Core.

Works on PostgreSQL (``postgresql+psycopg://``) and SQLite (``sqlite:///path``). There is no
update or delete method: the only writes are :meth:`Ledger.append` and
:meth:`Ledger.checkpoint`, each returning after its transaction committed.

Appends are serialized by a lock on the one-row head table (``SELECT ... FOR UPDATE`` in
PostgreSQL; ``BEGIN IMMEDIATE`` in SQLite), under which the next seq (gapless: not a database
sequence, which skips on rollback) and the chained hash are computed. An entry, its refs and
the head move commit together or not at all, so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    LargeBinary,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)

from retentiond.audit.canonical import (
    canonical_dumps,
    canonical_loads,
    chain_hash,
    entry_body,
    genesis_hash,
    parse_time,
    utcnow_text,
)
from retentiond.audit.events import EVENT_TYPES, BatchId, Checkpoint, Event, Name
from retentiond.audit.refs import REF_SIZE, RecordRef, split_refs
from retentiond.audit.schema import (
    POSTGRES_TRIGGERS,
    SCHEMA_LOCK_KEY,
    SQLITE_TRIGGERS,
    entries_table,
    head_table,
    metadata,
    refs_table,
)
from retentiond.audit.signing import KeyRing, Signer, checkpoint_message
from retentiond.audit.verify import (
    Row,
    TrustedCheckpoint,
    VerifyResult,
    row_to_json,
    verify_rows,
)
from retentiond.errors import (
    ConfigError,
    ConfigIssue,
    RetentiondError,
    TemporaryFailure,
)

_ROW_COLUMNS = (
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
    def refs(self) -> tuple[RecordRef, ...]:
        """Return the entry's record refs."""
        return split_refs(self.refs_blob)

    @property
    def ref_count(self) -> int:
        """Return how many refs the entry carries."""
        return len(self.refs_blob) // REF_SIZE

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
        return cls.from_stored(category=self.category, batch_id=self.batch_id, fields=self.fields, refs=self.refs)

    def to_json(self) -> dict[str, Any]:
        """Return the export / ``audit show --format json`` object (see docs/auditing.md)."""
        return row_to_json(self.as_row())


def _temporary(exc: Exception) -> TemporaryFailure:
    orig = getattr(exc, "orig", None) or exc
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else orig.__class__.__name__
    return TemporaryFailure(f"audit ledger unreachable: {first_line}")


class Ledger:
    """An open audit ledger. Use :meth:`open`; close with :meth:`close` or ``with``."""

    def __init__(self, engine: Engine, ledger_id: str) -> None:
        """Wrap an engine whose schema exists; prefer :meth:`open`."""
        self._engine = engine
        self.ledger_id = str(Name(ledger_id))
        self.dialect = engine.dialect.name
        self.genesis = genesis_hash(self.ledger_id)

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, ledger_id: str = "retentiond", *, create: bool = True) -> Ledger:
        """Open the ledger at SQLAlchemy ``url``, creating its schema when missing and ``create``.

        Raises:
            ConfigError: bad URL, unsupported database, schema missing (``create=False``), or the
                database holds a ledger with another id.
            TemporaryFailure: the database is unreachable.
        """
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError([ConfigIssue("audit.url", "not a valid SQLAlchemy database URL")]) from None
        backend = parsed.get_backend_name()
        if backend not in ("postgresql", "sqlite"):
            raise ConfigError(
                [ConfigIssue("audit.url", f"the audit ledger supports postgresql and sqlite, not {backend}")]
            )
        try:
            if backend == "sqlite":
                engine = create_engine(parsed, connect_args={"timeout": 60})
                _sqlite_setup(engine)
            else:
                engine = create_engine(parsed, pool_pre_ping=True)
        except (NoSuchModuleError, ArgumentError) as exc:
            raise ConfigError([ConfigIssue("audit.url", f"unusable database URL: {exc}")]) from None
        ledger = cls(engine, ledger_id)
        try:
            ledger._ensure_schema(create)
        except (OperationalError, DBAPIError) as exc:
            engine.dispose()
            if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) and not exc.connection_invalidated:
                raise
            raise _temporary(exc) from None
        except BaseException:
            engine.dispose()
            raise
        return ledger

    def _ensure_schema(self, create: bool) -> None:
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
            if not inspect(conn).has_table(head_table.name):
                if not create:
                    raise ConfigError([ConfigIssue("audit.url", "no audit ledger at this URL")])
                metadata.create_all(conn)
                for ddl in POSTGRES_TRIGGERS if self.dialect == "postgresql" else SQLITE_TRIGGERS:
                    conn.execute(text(ddl))
            row = conn.execute(select(head_table.c.ledger_id).where(head_table.c.id == 1)).first()
            if row is None:
                if not create:
                    raise ConfigError([ConfigIssue("audit.url", "the audit ledger has no head row")])
                conn.execute(
                    insert(head_table).values(id=1, ledger_id=self.ledger_id, seq=0, hash=self.genesis, time=None)
                )
            elif row.ledger_id != self.ledger_id:
                raise ConfigError(
                    [
                        ConfigIssue(
                            "audit.ledger_id", f"this database holds ledger {row.ledger_id!r}, not {self.ledger_id!r}"
                        )
                    ]
                )

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- transactions ----------------------------------------------------------------------

    def _write(self) -> Any:
        """Return a context manager: a write transaction holding SQLite's write lock from BEGIN."""
        return _Tx(self._engine, write=True)

    def _read(self) -> Any:
        """Return a context manager: one consistent snapshot for reads."""
        return _Tx(self._engine, write=False)

    # --- writing ---------------------------------------------------------------------------

    def append(self, event: Event, *, run_id: str | None = None) -> AppendedEntry:
        """Append ``event`` and return once the entry is committed (durable).

        Raises:
            TypeError: ``event`` is not one of the ledger's event types.
            ValueError: ``run_id`` is not a plain name/UUID.
            DuplicateBatch: a batch with the same ``batch_id`` is already in the ledger.
            TemporaryFailure: the database is unreachable (nothing was written).
        """
        if not isinstance(event, Event) or type(event) not in EVENT_TYPES.values():
            raise TypeError(f"the ledger appends retentiond.audit events only, not {type(event).__name__}")
        if isinstance(event, Checkpoint):
            raise TypeError("checkpoints are written with Ledger.checkpoint(signer)")
        run = None if run_id is None else str(Name(run_id))
        fields = canonical_dumps(event.json_fields())
        refs = event.refs_blob()
        category = getattr(event, "category", None)
        batch_id = getattr(event, "batch_id", None)
        try:
            with self._write() as conn:
                head = self._lock_head(conn)
                return self._insert(conn, head, event.event_name, run, category, batch_id, fields, refs)
        except IntegrityError:
            if batch_id is not None and self.has_batch(batch_id):
                raise DuplicateBatch(f"batch {batch_id} is already in the audit ledger") from None
            raise
        except OperationalError as exc:
            raise _temporary(exc) from None

    def _lock_head(self, conn: Connection) -> Head:
        stmt = select(head_table.c.seq, head_table.c.hash, head_table.c.time).where(head_table.c.id == 1)
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).one()
        return Head(row.seq, bytes(row.hash), row.time)

    def _insert(
        self,
        conn: Connection,
        head: Head,
        event_name: str,
        run_id: str | None,
        category: str | None,
        batch_id: str | None,
        fields: str,
        refs: bytes,
        time: str | None = None,
    ) -> AppendedEntry:
        seq = head.seq + 1
        now = time or utcnow_text()
        body = entry_body(
            seq=seq,
            time=now,
            event=event_name,
            run_id=run_id,
            category=category,
            batch_id=batch_id,
            fields=fields,
            refs=refs,
        )
        digest = chain_hash(head.hash, body)
        conn.execute(
            insert(entries_table).values(
                seq=seq,
                time=now,
                event=event_name,
                run_id=run_id,
                category=category,
                batch_id=batch_id,
                fields=fields,
                refs=refs,
                prev_hash=head.hash,
                hash=digest,
            )
        )
        if refs:
            if self.dialect == "postgresql":
                # One statement with the refs as one bytea parameter, cut into 32-byte refs
                # server-side: a bytea[] parameter costs a Python-side escape per element
                # (~3 µs/ref), executemany a round trip per row.
                position = func.generate_series(0, len(refs) // REF_SIZE - 1).column_valued("i")
                blob = bindparam("refs_blob", refs, type_=LargeBinary)
                conn.execute(
                    insert(refs_table).from_select(
                        ["ref", "seq"],
                        select(func.substr(blob, position * REF_SIZE + 1, REF_SIZE), literal(seq, BigInteger)),
                    )
                )
            else:
                chunks = [refs[i : i + REF_SIZE] for i in range(0, len(refs), REF_SIZE)]
                conn.execute(insert(refs_table), [{"ref": c, "seq": seq} for c in chunks])
        conn.execute(update(head_table).where(head_table.c.id == 1).values(seq=seq, hash=digest, time=now))
        return AppendedEntry(seq, digest, now)

    def checkpoint(
        self, signer: Signer, *, run_id: str | None = None, if_older_than: timedelta | None = None
    ) -> Entry | None:
        """Sign ``(ledger id, head seq, head hash, time)`` and append it as a checkpoint entry.

        With ``if_older_than``, does nothing (returns None) when the newest checkpoint is
        younger than that. Returns the committed checkpoint entry otherwise.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        run = None if run_id is None else str(Name(run_id))
        try:
            with self._write() as conn:
                head = self._lock_head(conn)
                now = utcnow_text()
                if if_older_than is not None:
                    last = conn.execute(
                        select(entries_table.c.time)
                        .where(entries_table.c.event == Checkpoint.event_name)
                        .order_by(entries_table.c.seq.desc())
                        .limit(1)
                    ).scalar()
                    if last is not None and parse_time(now) - parse_time(last) < if_older_than:
                        return None
                signature = signer.sign(checkpoint_message(self.ledger_id, head.seq, head.hash.hex(), now))
                event = Checkpoint(
                    ledger_id=self.ledger_id,
                    covered_seq=head.seq,
                    covered_hash=head.hash.hex(),
                    signed_at=parse_time(now),
                    key_fingerprint=signer.fingerprint,
                    signature=signature,
                )
                fields = canonical_dumps(event.json_fields())
                appended = self._insert(conn, head, event.event_name, run, None, None, fields, b"", time=now)
                return Entry(
                    appended.seq, now, event.event_name, run, None, None, fields, b"", head.hash, appended.hash
                )
        except OperationalError as exc:
            raise _temporary(exc) from None

    def checkpoint_if_due(self, signer: Signer, interval: timedelta) -> Entry | None:
        """Write a checkpoint when the newest one is older than ``interval`` (or there is none).

        Returns the new checkpoint entry, or None when none was due.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        return self.checkpoint(signer, if_older_than=interval)

    # --- reading ---------------------------------------------------------------------------

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
            raise _temporary(exc) from None
        return Head(row.seq, bytes(row.hash), row.time)

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        category: str | None = None,
        event: str | None = None,
        limit: int | None = None,
        from_seq: int | None = None,
    ) -> list[Entry]:
        """Return entries in seq order, filtered; with ``limit``, the newest ``limit`` of them.

        ``since`` is inclusive, ``until`` exclusive.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        return list(
            self.iter_entries(since=since, until=until, category=category, event=event, limit=limit, from_seq=from_seq)
        )

    def iter_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        category: str | None = None,
        event: str | None = None,
        limit: int | None = None,
        from_seq: int | None = None,
    ) -> Iterator[Entry]:
        """Yield entries like :meth:`entries`, streaming (for exports of any size).

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        from retentiond.audit.canonical import format_time

        stmt = select(*_ROW_COLUMNS)
        if since is not None:
            stmt = stmt.where(entries_table.c.time >= format_time(since))
        if until is not None:
            stmt = stmt.where(entries_table.c.time < format_time(until))
        if category is not None:
            stmt = stmt.where(entries_table.c.category == category)
        if event is not None:
            stmt = stmt.where(entries_table.c.event == event)
        if from_seq is not None:
            stmt = stmt.where(entries_table.c.seq >= from_seq)
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
            raise _temporary(exc) from None

    def latest_checkpoint(self) -> Entry | None:
        """Return the newest checkpoint entry, or None.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        found = self.entries(event=Checkpoint.event_name, limit=1)
        return found[0] if found else None

    def find(self, ref: RecordRef) -> list[Entry]:
        """Return the entries carrying ``ref`` (an index lookup), oldest first.

        Each hit is re-checked against the entry's own (hash-covered) refs, so a forged index
        row can never make a record look deleted.

        Raises:
            TypeError: ``ref`` is not a RecordRef.
            TemporaryFailure: the database is unreachable.
        """
        if type(ref) is not RecordRef:
            raise TypeError("find() takes a RecordRef made by RefMaker")
        seqs = select(refs_table.c.seq).where(refs_table.c.ref == bytes(ref)).scalar_subquery()
        stmt = select(*_ROW_COLUMNS).where(entries_table.c.seq.in_(seqs)).order_by(entries_table.c.seq)
        try:
            with self._read() as conn:
                rows = conn.execute(stmt).all()
        except OperationalError as exc:
            raise _temporary(exc) from None
        return [e for e in (Entry.from_row(r) for r in rows) if e.contains(ref)]

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
            raise _temporary(exc) from None

    def verify(
        self,
        keys: KeyRing | None,
        *,
        trusted: Sequence[TrustedCheckpoint] = (),
        check_index: bool = True,
        deep: bool = False,
    ) -> VerifyResult:
        """Verify the whole ledger in one consistent snapshot and return the result.

        ``check_index`` also compares the number of rows in the refs index with the refs the
        entries carry (one COUNT; a missing index row would hide a record from ``audit find``).
        ``deep`` compares the index's contents too (a multiset digest of every ``(seq, ref)``
        on both sides: about 1 s per million refs more).

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        try:
            with self._read() as conn:
                head = conn.execute(select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == 1)).one()
                result_rows = conn.execution_options(yield_per=5000).execute(
                    select(*_ROW_COLUMNS).order_by(entries_table.c.seq)
                )
                result = verify_rows(
                    result_rows,  # type: ignore[arg-type]  # Rows unpack like the Row tuples
                    ledger_id=self.ledger_id,
                    keys=keys,
                    trusted=list(trusted),
                    head=(head.seq, bytes(head.hash)),
                )
                result_rows.close()
                if result.ok and check_index:
                    indexed = conn.execute(select(func.count()).select_from(refs_table)).scalar_one()
                    if indexed != result.refs:
                        from retentiond.audit.verify import Damage, DamageKind

                        result.damage = Damage(
                            None,
                            DamageKind.INDEX_MISMATCH,
                            f"the refs index holds {indexed} rows but the entries carry {result.refs} refs",
                        )
                if result.ok and deep:
                    carried = _multiset_digest(
                        (seq, blob[i : i + REF_SIZE])
                        for seq, blob in conn.execution_options(yield_per=5000).execute(
                            select(entries_table.c.seq, entries_table.c.refs).where(entries_table.c.refs != b"")
                        )
                        for i in range(0, len(blob), REF_SIZE)
                    )
                    indexed_digest = _multiset_digest(
                        (seq, bytes(ref))
                        for ref, seq in conn.execution_options(yield_per=20000).execute(
                            select(refs_table.c.ref, refs_table.c.seq)
                        )
                    )
                    if carried != indexed_digest:
                        from retentiond.audit.verify import Damage, DamageKind

                        result.damage = Damage(
                            None,
                            DamageKind.INDEX_MISMATCH,
                            "the refs index does not hold exactly the refs the entries carry",
                        )
        except OperationalError as exc:
            raise _temporary(exc) from None
        return result


def _multiset_digest(pairs: Iterator[tuple[int, bytes]] | Any) -> int:
    """Return an order-independent digest of ``(seq, ref)`` pairs (sum of 128-bit hashes)."""
    import hashlib

    total = 0
    sha = hashlib.sha256
    for seq, ref in pairs:
        total += int.from_bytes(sha(seq.to_bytes(8, "big") + ref).digest()[:16], "big")
    return total & ((1 << 128) - 1)


class _Tx:
    """A transaction on a fresh connection: writes take SQLite's lock at BEGIN (IMMEDIATE);
    reads in PostgreSQL use REPEATABLE READ so that verify sees one snapshot."""

    def __init__(self, engine: Engine, *, write: bool) -> None:
        self._engine = engine
        self._write = write

    def __enter__(self) -> Connection:
        conn = self._engine.connect()
        if self._engine.dialect.name == "sqlite":
            conn = conn.execution_options(rtd_immediate=self._write)
        elif not self._write:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        self._conn = conn
        self._tx = conn.begin()
        return conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        finally:
            self._conn.close()


def _sqlite_setup(engine: Engine) -> None:
    """Make pysqlite leave transactions to us (BEGIN IMMEDIATE / DEFERRED), WAL, synchronous=FULL."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not emit its own BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so the seq read and the insert are atomic.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("rtd_immediate") else "BEGIN")


def new_run_id() -> str:
    """Return a fresh run id (a UUID)."""
    return str(uuid.uuid4())
