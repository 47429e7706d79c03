"""HMAC-SHA256 computed inside PostgreSQL statements, the key kept out of the server's log.

A batch computes its records' refs (and ``hmac`` pseudonyms) in the statement that touches
the rows instead of sending every key to Python and back. PostgreSQL has no built-in HMAC
(pgcrypto is an extension a least-privileged role may not have), but it has ``sha256()``,
and HMAC is two hashes (RFC 2104)::

    HMAC(K, m) = sha256((K' xor opad) || sha256((K' xor ipad) || m))

with ``K'`` the key padded to 64 bytes (hashed first when longer). The result is byte for byte
the HMAC Python computes, so refs made in the database and refs made in Python are one format.

The padded keys never travel as statement parameters (a slow statement's parameters are in
the server log under ``log_min_duration_statement``): they are copied with ``COPY … FROM
STDIN`` — whose data no log setting records — into a temporary table, and the statement reads
them with a scalar subquery. In a batch's transaction the table empties itself at COMMIT
(:meth:`KeyedHash.load`); on a run's autocommit connections for one-statement batches
(``stores.sql.engine.statement_engine``) it keeps them for the session, copied once per
connection (:meth:`KeyedHash.load_session`), and goes with the session when the run closes
the store. Temporary tables are never written to the WAL, and no other session can read them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.elements import ColumnElement

from retentiond.stores.sql.partition_keys import key_text_expr

_BLOCK = 64  # SHA-256's block size in bytes

_metadata = sa.MetaData()
#: Per-session, emptied at every COMMIT (``ON COMMIT DELETE ROWS``): nothing outlives the batch.
keys_table = sa.Table(
    "retentiond_hmac_keys",
    _metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("inner_pad", sa.LargeBinary, nullable=False),
    sa.Column("outer_pad", sa.LargeBinary, nullable=False),
    schema="pg_temp",
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
_CREATE = CreateTable(keys_table, if_not_exists=True)
#: The same table on an autocommit connection: its rows stay for the session (``PRESERVE ROWS``).
_session_keys = sa.Table(
    keys_table.name,
    sa.MetaData(),
    *[sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in keys_table.c],
    schema="pg_temp",
    prefixes=["TEMPORARY"],
    postgresql_on_commit="PRESERVE ROWS",
)
_CREATE_SESSION = CreateTable(_session_keys, if_not_exists=True)
#: ``Connection.info`` key: which KeyedHash's keys the session holds (the info goes with the connection).
_LOADED = "retentiond_hmac_keys"
# Constant text (no input reaches it): SQLAlchemy Core has no COPY construct.
_COPY = "COPY pg_temp.retentiond_hmac_keys (name, inner_pad, outer_pad) FROM STDIN"


def pads(key: bytes) -> tuple[bytes, bytes]:
    """Return HMAC-SHA256's inner and outer padded keys of ``key`` (RFC 2104)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


class KeyedHash:
    """Named HMAC-SHA256 keys for statements of one PostgreSQL store."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        """Keep the padded form of each named key (names are constants of the caller)."""
        self._pads = {name: pads(key) for name, key in keys.items()}
        self._token = object()  # names these keys in a session's Connection.info

    def load(self, conn: sa.Connection) -> None:
        """Make the keys readable by the statements of ``conn``'s current transaction.

        Raises:
            sqlalchemy.exc.DBAPIError: the role may not create temporary tables (SQLSTATE 42501).
        """
        conn.execute(_CREATE)
        self._copy(conn)

    def load_session(self, conn: sa.Connection) -> None:
        """Make the keys readable by the statements of ``conn``'s session, an autocommit connection.

        Copied once per connection (again after a reconnect, or when another KeyedHash's keys
        are there); they stay until the session ends.

        Raises:
            sqlalchemy.exc.DBAPIError: the role may not create temporary tables (SQLSTATE 42501).
        """
        if conn.info.get(_LOADED) is self._token:
            return
        conn.execute(_CREATE_SESSION)
        conn.execute(sa.delete(_session_keys))
        self._copy(conn)
        conn.info[_LOADED] = self._token

    def _copy(self, conn: sa.Connection) -> None:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(_COPY) as copy:
            for name, (inner, outer) in self._pads.items():
                copy.write_row((name, inner, outer))

    def digest(self, name: str, message: ColumnElement[Any]) -> ColumnElement[bytes]:
        """Return the SQL expression of HMAC-SHA256(key ``name``, UTF-8 bytes of ``message``) as bytea."""
        if name not in self._pads:
            raise KeyError(name)
        c = keys_table.c
        inner = sa.select(c.inner_pad).where(c.name == name).scalar_subquery()
        outer = sa.select(c.outer_pad).where(c.name == name).scalar_subquery()
        data = sa.func.convert_to(sa.cast(message, sa.Text), "UTF8", type_=sa.LargeBinary)
        inner_hash = sa.func.sha256(inner.op("||")(data), type_=sa.LargeBinary)
        return sa.func.sha256(outer.op("||")(inner_hash), type_=sa.LargeBinary)


def key_text_sql(column: sa.Column[Any]) -> ColumnElement[Any] | None:
    """Return the SQL expression of a one-column key's canonical text, or None when only Python has it.

    Matches ``audit.refs.canonical_value`` for integers (decimal), text (as is; not ``char(n)``,
    whose padding PostgreSQL's cast drops) and UUIDs (lowercase, hyphenated).
    """
    kind = column.type
    if isinstance(kind, sa.Enum | sa.CHAR | sa.NCHAR):
        return None
    if isinstance(kind, sa.Integer | sa.Uuid):
        return sa.cast(column, sa.Text)
    if isinstance(kind, sa.String):
        return sa.cast(column, sa.Text)
    return None


def row_key_text_sql(columns: Sequence[sa.Column[Any]]) -> ColumnElement[Any] | None:
    """Return the SQL expression of a row's canonical key text for statements that act, or None.

    One column: :func:`key_text_sql`. Several (a partitioned table's key holds its partition
    column): the compact JSON array of the values' texts when every column's type has an exact
    SQL text (integers, UUIDs, ``timestamptz``); a value SQL cannot write exactly fails the
    statement rather than leave its row without a ref (``partition_keys.key_text_expr``, strict).
    """
    if len(columns) == 1:
        return key_text_sql(columns[0])
    return key_text_expr(columns, strict=True)


def json_texts(key_texts: ColumnElement[Any], columns: Sequence[sa.Column[Any]]) -> ColumnElement[str]:
    """Return the aggregate of ``key_texts`` (:func:`row_key_text_sql` of ``columns``) as a JSON array's text.

    Decimal integers and UUIDs hold no character JSON escapes, so the array of a one-column key
    of those types is joined as plain text (measured: a sixth of ``json_agg``'s cost in a
    statement deleting 500,000 rows); other texts (a composite key's hold quotes) go through
    ``json_agg``.
    """
    if len(columns) == 1 and isinstance(columns[0].type, sa.Integer | sa.Uuid):
        joined = sa.func.string_agg(key_texts, sa.literal('","', sa.Text), type_=sa.Text)
        return sa.literal('["', sa.Text).op("||")(joined).op("||")(sa.literal('"]', sa.Text))
    return sa.cast(sa.func.json_agg(key_texts), sa.Text)
