"""The transactional outbox: batch outcomes written in the same transaction as the DELETE/UPDATE.

A batch's outcome is inserted into ``retentiond_outbox`` in the target database inside the
transaction that deletes or anonymizes the rows (with the rows' canonical key texts, which
the relay turns into refs off the batch's critical path; the outbox row, and with it those
keys, is removed once the ledger holds the refs), so "rows gone" and "outcome recorded" commit
together or not at all. A relay then appends each outbox row to the audit ledger (exactly
once: the ledger knows every batch id) and removes it. After a crash, the next run relays
what is left before doing anything else (``reconciled``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from retentiond.stores.base import OutcomeRow

OUTBOX_TABLE = "retentiond_outbox"


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    """Return the outbox table definition registered on ``metadata``."""
    if OUTBOX_TABLE in metadata.tables:
        return metadata.tables[OUTBOX_TABLE]
    return sa.Table(
        OUTBOX_TABLE,
        metadata,
        sa.Column("batch_id", sa.String(36), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(200), nullable=False),
        sa.Column("store", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("prior_versions", sa.Integer, nullable=False, default=0),
        sa.Column("refs", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # Canonical key texts (JSON array) of the rows, when their refs are computed by the relay
        # instead of inside the batch's transaction; removed with the row once relayed.
        sa.Column("keys", sa.Text, nullable=True),
        # A failed row's SQLSTATE and object names (JSON; see OutcomeRow.failure). Added in 0.x:
        # ``Outbox.ensure`` adds it to an outbox created before.
        sa.Column("failure", sa.Text, nullable=True),
    )


# A constant statement (no input reaches it): SQLAlchemy Core has no ALTER TABLE construct.
_ADD_FAILURE = sa.text("ALTER TABLE retentiond_outbox ADD COLUMN failure TEXT")


# Constant statement (SQLAlchemy Core has no ALTER TABLE construct); print-grants shows it too.
LZ4_KEYS_DDL = "ALTER TABLE retentiond_outbox ALTER COLUMN keys SET COMPRESSION lz4"


def _lz4_keys(conn: sa.Connection) -> None:
    """Have PostgreSQL compress new ``keys`` values with lz4 instead of pglz, when it can and the role may.

    Every batch statement writes its rows' key texts (a JSON array of up to ``batch_size``
    texts; a whole partition's, 50,000 a row) in its own transaction: pglz compressed 2.4 MB of
    texts in about 18 ms, lz4 in under 1 ms at about the same size (measured on PostgreSQL 15,
    the partitioned benchmark's run 10 % faster). Best effort, once per table: left as it is on
    PostgreSQL < 14, a server built without lz4, or a table the role does not own (a DBA's:
    ``print-grants`` shows the statement).
    """
    if (conn.dialect.server_version_info or (0,)) < (14,):
        return
    attribute = sa.table(
        "pg_attribute", sa.column("attrelid"), sa.column("attname"), sa.column("attcompression"), schema="pg_catalog"
    )
    relation = sa.table("pg_class", sa.column("oid"), sa.column("relowner"), schema="pg_catalog")
    row = conn.execute(
        sa.select(sa.cast(attribute.c.attcompression, sa.Text), sa.func.pg_has_role(relation.c.relowner, "USAGE"))
        .select_from(attribute.join(relation, relation.c.oid == attribute.c.attrelid))
        .where(attribute.c.attrelid == sa.func.to_regclass(OUTBOX_TABLE), attribute.c.attname == "keys")
    ).one_or_none()
    if row is None or row[0] == "l" or not row[1]:
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.text(LZ4_KEYS_DDL))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "0A000":  # feature_not_supported: no lz4 in this build
            raise


# An outbox row is the shared outcome row (its ``prefix`` is never set by SQL and not stored).
OutboxRow = OutcomeRow


#: Advisory-lock key serialising the outbox's creation (an arbitrary constant of retentiond's).
_CREATE_LOCK = 0x7274645F6F757478  # "rtd_outx"


class Outbox:
    """The outbox of one SQL store."""

    def __init__(self, engine: sa.Engine, store_name: str = "") -> None:
        self.engine = engine
        self.store_name = store_name
        self.table = outbox_table(sa.MetaData())

    def ensure(self) -> None:
        """Create the outbox table when it does not exist yet; add the ``failure`` column to an older one.

        Two runners of different categories may open one store at the same moment; on PostgreSQL
        a transaction-level advisory lock makes the second wait for the first's ``CREATE TABLE``
        (without it, both pass the existence check and one fails on the catalog's unique index).

        Raises:
            ConfigError: the table or the column is missing and the role may not create it (SQLSTATE 42501).
        """
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK)))
                self.table.create(conn, checkfirst=True)
                columns = {c["name"] for c in sa.inspect(conn).get_columns(OUTBOX_TABLE)}
                if "failure" not in columns:
                    conn.execute(_ADD_FAILURE)
                if conn.dialect.name == "postgresql":
                    _lz4_keys(conn)
        except sa.exc.ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) != "42501":
                raise
            from retentiond.errors import ConfigError, ConfigIssue

            raise ConfigError(
                [
                    ConfigIssue(
                        f"stores.{self.store_name}",
                        f"the outbox table {OUTBOX_TABLE} (or its column failure) does not exist and the role may "
                        "not create it: have a DBA create it (`retentiond print-grants`) or grant CREATE on the "
                        "role's schema",
                    )
                ]
            ) from None

    def insert(self, conn: sa.Connection, rows: list[OutboxRow]) -> None:
        """Insert ``rows`` in the caller's transaction."""
        if rows:
            conn.execute(self.table.insert(), [{c.name: getattr(r, c.name) for c in self.table.c} for r in rows])

    def insert_aggregate(
        self, row: OutboxRow, keys: sa.ColumnElement[Any], *, per: sa.ColumnElement[Any] | None = None
    ) -> sa.Insert:
        """Return an INSERT of ``row`` whose ``count`` counts the rows and ``keys`` is the aggregate ``keys``.

        Meant as a CTE of the statement that returns the rows it touched, ``keys`` the JSON
        array of their canonical key texts (``stores.sql.keyed.json_texts``): no row is inserted
        when it touched none. ``RETURNING batch_id, count, keys``. With ``per``, one row per
        value of ``per`` (chunks of a partition's keys), each with a batch id of its own made by
        the database (``gen_random_uuid()``, PostgreSQL ≥ 13).
        """
        columns = [c for c in self.table.c if c.name not in ("count", "keys")]
        values = [
            sa.cast(sa.func.gen_random_uuid(), sa.String).label(c.name)
            if per is not None and c.name == "batch_id"
            else sa.literal(getattr(row, c.name), c.type).label(c.name)
            for c in columns
        ]
        counted = sa.func.count()
        aggregate = sa.select(*values, counted.label("count"), keys.label("keys"))
        aggregate = aggregate.having(counted > 0) if per is None else aggregate.group_by(per)
        names = [c.name for c in columns] + ["count", "keys"]
        c = self.table.c
        return self.table.insert().from_select(names, aggregate).returning(c["batch_id"], c["count"], c["keys"])

    def pending(self) -> list[OutboxRow]:
        """Return the rows left by batches whose outcome has not reached the ledger, oldest first."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(OUTBOX_TABLE):
                return []
            result = conn.execute(sa.select(self.table).order_by(self.table.c.created_at, self.table.c.batch_id))
            return [OutboxRow(**row._mapping) for row in result]

    def remove(self, batch_ids: list[str]) -> None:
        """Delete relayed rows."""
        if batch_ids:
            with self.engine.begin() as conn:
                conn.execute(self.table.delete().where(self.table.c.batch_id.in_(batch_ids)))


def now_utc() -> datetime:
    """Return the current UTC time (aware)."""
    return datetime.now(UTC)
