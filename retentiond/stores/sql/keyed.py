"""HMAC-SHA256 computed inside PostgreSQL statements, the key kept out of the server's log.

A batch computes its records' refs (and ``hmac`` pseudonyms) in the statement that touches
the rows instead of sending every key to Python and back. PostgreSQL has no built-in HMAC
(pgcrypto is an extension a least-privileged role may not have), but it has ``sha256()``,
and HMAC is two hashes (RFC 2104)::

    HMAC(K, m) = sha256((K' xor opad) || sha256((K' xor ipad) || m))

with ``K'`` the key padded to 64 bytes (hashed first when longer). The result is byte for byte
the HMAC Python computes, so refs made in the database and refs made in Python are one format.

The padded keys never travel as statement parameters (a slow statement's parameters are in
the server log under ``log_min_duration_statement``): each transaction copies them with
``COPY … FROM STDIN`` — whose data no log setting records — into a temporary table that
empties itself at COMMIT, and the statement reads them with a scalar subquery.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.elements import ColumnElement

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

    def load(self, conn: sa.Connection) -> None:
        """Make the keys readable by the statements of ``conn``'s current transaction.

        Raises:
            sqlalchemy.exc.DBAPIError: the role may not create temporary tables (SQLSTATE 42501).
        """
        conn.execute(_CREATE)
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
