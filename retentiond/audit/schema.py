"""Tables of the audit ledger and the static trigger DDL that makes them append-only.

Table names are constants of this module; the trigger DDL below is static text with no
configuration value interpolated (SQL is otherwise built with SQLAlchemy constructs only).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.exc import ProgrammingError

metadata = MetaData()

#: One row (id = 1): the chain's head. Appends lock it (``SELECT ... FOR UPDATE``) so that two
#: writers can never compute the same seq; it also lets verify notice a truncated tail.
head_table = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("ledger_id", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("time", String(27), nullable=True),
)

#: The entries. ``time`` is fixed-width UTC text (sorts like the instant; hashed as stored);
#: ``fields`` the canonical JSON of the event's own fields; ``refs`` the concatenated 32-byte
#: record refs; ``prev_hash`` is redundant with the chain but lets verify tell a modified
#: entry from a missing or moved one.
entries_table = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String(27), nullable=False),
    Column("event", String(40), nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("category", String(200), nullable=True),
    Column("batch_id", String(36), nullable=True),
    Column("fields", Text, nullable=False),
    Column("refs", LargeBinary, nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Index("audit_entries_time", "time"),
    Index("audit_entries_event_seq", "event", "seq"),
    Index("audit_entries_category_seq", "category", "seq"),
    Index("audit_entries_batch_id", "batch_id", unique=True),
)

#: One row per record ref, so that ``audit find`` is an index lookup, not a scan.
refs_table = Table(
    "audit_refs",
    metadata,
    Column("ref", LargeBinary, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("audit_refs_ref", "ref"),
)

#: One row per batch entry with many refs (``audit.ref_filter.FILTER_MIN``): a filter of its refs,
#: in place of one ``audit_refs`` row per ref (derived from the entry's hash-covered refs).
ref_filters_table = Table(
    "audit_ref_filters",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("bits", LargeBinary, nullable=False),
)

#: Advisory lock key serializing schema creation in PostgreSQL (ASCII of "rtdaudit").
SCHEMA_LOCK_KEY = 0x7274646175646974

POSTGRES_TRIGGERS: tuple[str, ...] = (
    """
    CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        RAISE EXCEPTION 'retentiond audit ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END
    $fn$
    """,
    """
    CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.ledger_id = OLD.ledger_id AND NEW.seq = OLD.seq + 1 THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'retentiond audit head only moves forward one entry at a time: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $fn$
    """,
    (
        "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries"
        " FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    ),
    (
        "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    ),
    (
        "CREATE TRIGGER audit_refs_append_only BEFORE UPDATE OR DELETE ON audit_refs"
        " FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    ),
    (
        "CREATE TRIGGER audit_refs_no_truncate BEFORE TRUNCATE ON audit_refs"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    ),
    (
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head"
        " FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()"
    ),
    (
        "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    ),
)

SQLITE_TRIGGERS: tuple[str, ...] = (
    (
        "CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit ledger is append-only'); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit ledger is append-only'); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS audit_refs_no_update BEFORE UPDATE ON audit_refs"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit ledger is append-only'); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS audit_refs_no_delete BEFORE DELETE ON audit_refs"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit ledger is append-only'); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit ledger is append-only'); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head"
        " WHEN NEW.seq <> OLD.seq + 1 OR NEW.id <> OLD.id OR NEW.ledger_id <> OLD.ledger_id"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit head only moves forward one entry at a time'); END"
    ),
)

#: The ref filters' triggers, created with the ledger and added to a ledger created before them.
POSTGRES_FILTER_TRIGGERS: tuple[str, ...] = (
    (
        "CREATE TRIGGER audit_ref_filters_append_only BEFORE UPDATE OR DELETE ON audit_ref_filters"
        " FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    ),
    (
        "CREATE TRIGGER audit_ref_filters_no_truncate BEFORE TRUNCATE ON audit_ref_filters"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    ),
)
SQLITE_FILTER_TRIGGERS: tuple[str, ...] = (
    (
        "CREATE TRIGGER IF NOT EXISTS audit_ref_filters_no_update BEFORE UPDATE ON audit_ref_filters"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit ledger is append-only'); END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS audit_ref_filters_no_delete BEFORE DELETE ON audit_ref_filters"
        " BEGIN SELECT RAISE(ABORT, 'retentiond audit ledger is append-only'); END"
    ),
)


def add_ref_filters(conn: Connection) -> bool:
    """Add the ref filters' table and triggers to a ledger created before them; False when the role may not.

    Without the table, entries keep one index row per ref (findable either way).

    Raises:
        sqlalchemy.exc.ProgrammingError: a failure other than a missing privilege.
    """
    pg = conn.dialect.name == "postgresql"
    try:
        with conn.begin_nested():
            ref_filters_table.create(conn)
            for ddl in POSTGRES_FILTER_TRIGGERS if pg else SQLITE_FILTER_TRIGGERS:
                conn.execute(text(ddl))
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":
            raise
        return False
    return True
