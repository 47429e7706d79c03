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
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    func,
    insert,
    inspect,
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

from retentiond.audit.canonical import canonical_dumps, chain_hash, entry_body, genesis_hash, parse_time, utcnow_text
from retentiond.audit.db import Tx, sqlite_setup, temporary
from retentiond.audit.entry import AppendedEntry, DuplicateBatch, Entry, Head
from retentiond.audit.events import Checkpoint, Event, KeyRotated, Name
from retentiond.audit.prepared import prepare_entry
from retentiond.audit.reading import LedgerReader
from retentiond.audit.ref_index import write_ref_index
from retentiond.audit.refs import RefBlock
from retentiond.audit.schema import (
    POSTGRES_FILTER_TRIGGERS,
    POSTGRES_TRIGGERS,
    SCHEMA_LOCK_KEY,
    SQLITE_FILTER_TRIGGERS,
    SQLITE_TRIGGERS,
    add_ref_filters,
    entries_table,
    head_table,
    metadata,
    ref_filters_table,
)
from retentiond.audit.signing import Signer, checkpoint_message, raw_public_key, rotation_message
from retentiond.errors import ConfigError, ConfigIssue

#: A v2 checkpoint lists at most this many entry hashes (the newest ones): bounded entries.
MAX_LISTED_HASHES = 100_000

__all__ = ["AppendedEntry", "DuplicateBatch", "Entry", "Head", "KeyNotCurrent", "Ledger", "new_run_id"]


class KeyNotCurrent(ConfigError):
    """The signing key given is not the ledger's signing key (rotate it with ``audit rotate-key``)."""


class Ledger(LedgerReader):
    """An open audit ledger. Use :meth:`open`; close with :meth:`close` or ``with``."""

    def __init__(self, engine: Engine, ledger_id: str) -> None:
        """Wrap an engine whose schema exists; prefer :meth:`open`."""
        self._engine = engine
        self.ledger_id = str(Name(ledger_id))
        self.dialect = engine.dialect.name
        self.genesis = genesis_hash(self.ledger_id)
        # Whether the ledger has the ref filters' table (set by _ensure_schema; a ledger created
        # before it, opened by a role that may not add it, keeps one index row per ref).
        self._filters = False

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
                sqlite_setup(engine)
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
            raise temporary(exc) from None
        except BaseException:
            engine.dispose()
            raise
        return ledger

    def _ensure_schema(self, create: bool) -> None:
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
            pg = self.dialect == "postgresql"
            if not inspect(conn).has_table(head_table.name):
                if not create:
                    raise ConfigError([ConfigIssue("audit.url", "no audit ledger at this URL")])
                metadata.create_all(conn)
                for ddl in (
                    (POSTGRES_TRIGGERS + POSTGRES_FILTER_TRIGGERS) if pg else (SQLITE_TRIGGERS + SQLITE_FILTER_TRIGGERS)
                ):
                    conn.execute(text(ddl))
            self._filters = inspect(conn).has_table(ref_filters_table.name)
            if not self._filters and create:
                self._filters = add_ref_filters(conn)
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
        return Tx(self._engine, write=True)

    # --- writing ---------------------------------------------------------------------------

    def append(self, event: Event, *, run_id: str | None = None, refs: RefBlock | None = None) -> AppendedEntry:
        """Append ``event`` and return once the entry is committed (durable).

        ``refs``: the event's record refs made in bulk, given apart (the event itself then
        carries none); the entry is the one the event with these refs would make.

        Raises:
            TypeError: ``event`` is not one of the ledger's event types.
            ValueError: ``run_id`` is not a plain name/UUID.
            DuplicateBatch: a batch with the same ``batch_id`` is already in the ledger.
            TemporaryFailure: the database is unreachable (nothing was written).
        """
        return self.append_many([(event, run_id, refs)])[0]

    def append_many(self, items: Sequence[tuple[Event, str | None, RefBlock | None]]) -> list[AppendedEntry]:
        """Append each (event, run id, refs given apart) of ``items`` in order, all in one transaction.

        Returns their entries once committed: one lock of the head, one commit for all (the
        relay appends the batches that queued up while it wrote the previous ones so).
        All or nothing: an error leaves none of them written.

        Raises:
            TypeError: an event is not one of the ledger's event types.
            ValueError: a ``run_id`` is not a plain name/UUID.
            DuplicateBatch: one of the batches is already in the ledger.
            TemporaryFailure: the database is unreachable.
        """
        prepared = [prepare_entry(event, run_id, refs) for event, run_id, refs in items]
        if not prepared:
            return []
        try:
            with self._write() as conn:
                head = self._lock_head(conn)
                out: list[AppendedEntry] = []
                for p in prepared:
                    # The head moves one entry at a time (the schema's trigger refuses a jump).
                    entry = self._insert(conn, head, *p)
                    head = Head(entry.seq, entry.hash, entry.time)
                    out.append(entry)
                return out
        except IntegrityError:
            for p in prepared:
                if p.batch_id is not None and self.has_batch(p.batch_id):
                    raise DuplicateBatch(f"batch {p.batch_id} is already in the audit ledger") from None
            raise
        except OperationalError as exc:
            raise temporary(exc) from None

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
        write_ref_index(conn, seq=seq, refs=refs, filters=self._filters)
        conn.execute(update(head_table).where(head_table.c.id == 1).values(seq=seq, hash=digest, time=now))
        return AppendedEntry(seq, digest, now)

    def checkpoint(
        self,
        signer: Signer,
        *,
        run_id: str | None = None,
        if_older_than: timedelta | None = None,
        if_unsigned: bool = False,
    ) -> Entry | None:
        """Sign the chain head and append it as a checkpoint entry (format v2, see docs/auditing.md).

        The signature covers ``(ledger id, head seq, head hash, time)`` and the hashes of the
        entries since the previous checkpoint. With ``if_older_than``, does nothing (returns
        None) when the newest checkpoint is younger than that; with ``if_unsigned``, when the
        newest entry is a checkpoint already. Returns the committed entry.

        Raises:
            KeyNotCurrent: ``signer`` is not the ledger's signing key (a rotation must come first).
            TemporaryFailure: the database is unreachable.
        """
        run = None if run_id is None else str(Name(run_id))
        try:
            with self._write() as conn:
                head = self._lock_head(conn)
                now = utcnow_text()
                last = conn.execute(
                    select(entries_table.c.seq, entries_table.c.time)
                    .where(entries_table.c.event == Checkpoint.event_name)
                    .order_by(entries_table.c.seq.desc())
                    .limit(1)
                ).first()
                if (
                    if_older_than is not None
                    and last is not None
                    and parse_time(now) - parse_time(last.time) < if_older_than
                ):
                    return None
                if if_unsigned and last is not None and last.seq == head.seq:
                    return None
                self._check_current(conn, signer)
                from_seq, hashes = self._listed(conn, head, 1 if last is None else last.seq)
                signature = signer.sign(
                    checkpoint_message(
                        self.ledger_id, head.seq, head.hash.hex(), now, from_seq=from_seq, entry_hashes=hashes
                    )
                )
                event = Checkpoint(
                    ledger_id=self.ledger_id,
                    covered_seq=head.seq,
                    covered_hash=head.hash.hex(),
                    signed_at=parse_time(now),
                    key_fingerprint=signer.fingerprint,
                    signature=signature,
                    from_seq=from_seq,
                    entry_hashes=hashes,
                )
                fields = canonical_dumps(event.json_fields())
                appended = self._insert(conn, head, event.event_name, run, None, None, fields, b"", time=now)
                return Entry(
                    appended.seq, now, event.event_name, run, None, None, fields, b"", head.hash, appended.hash
                )
        except OperationalError as exc:
            raise temporary(exc) from None

    def _listed(self, conn: Connection, head: Head, since: int) -> tuple[int | None, str | None]:
        """Return ``(from_seq, entry_hashes)`` of a checkpoint over ``since..head`` (None for an empty ledger)."""
        if head.seq == 0:
            return None, None
        since = max(since, head.seq - MAX_LISTED_HASHES + 1)
        hashes = conn.execute(
            select(entries_table.c.hash).where(entries_table.c.seq >= since).order_by(entries_table.c.seq)
        ).scalars()
        return since, b"".join(bytes(h) for h in hashes).hex()

    def _check_current(self, conn: Connection, signer: Signer) -> None:
        current = self._current_key(conn)
        if current is not None and current != signer.fingerprint:
            raise KeyNotCurrent(
                [
                    ConfigIssue(
                        "audit.signing_key_credential",
                        f"the signing key {signer.fingerprint[:16]} is not this ledger's signing key {current[:16]}: "
                        "record the change first with `retentiond audit rotate-key` (see docs/auditing.md)",
                    )
                ]
            )

    def _current_key(self, conn: Connection) -> str | None:
        row = conn.execute(
            select(entries_table.c.event, entries_table.c.fields)
            .where(entries_table.c.event.in_(("checkpoint", "key_rotated")))
            .order_by(entries_table.c.seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        from retentiond.audit.canonical import canonical_loads

        fields = canonical_loads(row.fields)
        return str(fields["new_fingerprint"] if row.event == "key_rotated" else fields["key_fingerprint"])

    def rotate_key(self, old: Signer | None, new: Signer, *, run_id: str | None = None) -> Entry:
        """Record that ``new`` signs this ledger from now on, then sign a checkpoint with it.

        ``old`` is the current signing key, which authorizes the change; None records a rotation
        without it (lost key): verification then trusts the new key only when the auditor gives it.

        Returns the checkpoint entry signed by ``new``.

        Raises:
            KeyNotCurrent: ``old`` is not the ledger's signing key, or ``new`` already is.
            TemporaryFailure: the database is unreachable.
        """
        run = None if run_id is None else str(Name(run_id))
        try:
            with self._write() as conn:
                head = self._lock_head(conn)
                current = self._current_key(conn)
                if current == new.fingerprint:
                    raise KeyNotCurrent([ConfigIssue("--new-key", "this key already signs the ledger")])
                if old is not None:
                    self._check_current(conn, old)
                now = utcnow_text()
                new_hex = raw_public_key(new.public_key).hex()
                old_fp = None if old is None else old.fingerprint
                message = rotation_message(self.ledger_id, head.seq, head.hash.hex(), now, old_fp, new_hex)
                event = KeyRotated(
                    ledger_id=self.ledger_id,
                    covered_seq=head.seq,
                    covered_hash=head.hash.hex(),
                    rotated_at=parse_time(now),
                    old_fingerprint=old_fp,
                    new_fingerprint=new.fingerprint,
                    new_public_key=new_hex,
                    old_signature=None if old is None else old.sign(message),
                    new_signature=new.sign(message),
                )
                fields = canonical_dumps(event.json_fields())
                self._insert(conn, head, event.event_name, run, None, None, fields, b"", time=now)
        except OperationalError as exc:
            raise temporary(exc) from None
        entry = self.checkpoint(new, run_id=run_id)
        assert entry is not None
        return entry

    def checkpoint_if_due(self, signer: Signer, interval: timedelta) -> Entry | None:
        """Write a checkpoint when the newest one is older than ``interval`` (or there is none).

        Returns the new checkpoint entry, or None when none was due.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        return self.checkpoint(signer, if_older_than=interval)


def new_run_id() -> str:
    """Return a fresh run id (a UUID)."""
    return str(uuid.uuid4())
