"""The live schema of one SQL store as reflection reports it: tables and inbound foreign keys, each read once.

What :mod:`retentiond.stores.sql.inspect` checks a target against (``config validate --connect``
and run start). Everything is read through SQLAlchemy reflection; no SQL text is built from
configuration values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, Inspector

_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})


@dataclass(frozen=True)
class ReflectedTable:
    """What reflection found about one table."""

    schema: str
    name: str
    columns: dict[str, dict[str, Any]]
    primary_key: tuple[str, ...]
    unique_sets: tuple[frozenset[str], ...]


@dataclass(frozen=True)
class InboundForeignKey:
    """A foreign key of ``(schema, table)`` that refers to another table; ``ondelete`` upper-case or ''."""

    schema: str
    table: str
    name: str | None
    columns: tuple[str, ...]
    ondelete: str


class SchemaCatalog:
    """Reflected tables and foreign keys of one connection, each read once and cached.

    Build one per connection and pass it to every :func:`inspect_sql_target` call of that
    store, so a config with many targets reflects each table (and the foreign keys of the
    whole database) only once.
    """

    def __init__(self, conn: Connection | Engine) -> None:
        self.inspector: Inspector = sa.inspect(conn)
        self.dialect: str = self.inspector.dialect.name
        self.default_schema: str = self.inspector.default_schema_name or ""
        self._tables: dict[tuple[str, str], ReflectedTable | None] = {}
        self._inbound: dict[tuple[str, str], list[InboundForeignKey]] | None = None
        self.connection = conn
        # Per-connection facts the privilege check reads once (role name, outbox gaps).
        self.memo: dict[str, Any] = {}

    def split(self, qualified: str) -> tuple[str, str]:
        """Return ``(schema, table)`` of a config table name, with the default schema filled in."""
        schema, _, name = qualified.rpartition(".")
        return (schema or self.default_schema, name)

    def _schema_arg(self, schema: str) -> str | None:
        return None if schema == self.default_schema else schema

    def table(self, qualified: str) -> ReflectedTable | None:
        """Return the reflected table named ``qualified`` (``schema.table`` or ``table``), or None if absent."""
        key = self.split(qualified)
        if key not in self._tables:
            self._tables[key] = self._reflect(*key)
        return self._tables[key]

    def _reflect(self, schema: str, name: str) -> ReflectedTable | None:
        arg = self._schema_arg(schema)
        insp = self.inspector
        with warnings.catch_warnings():
            # Unknown column types (extensions, domains) reflect as NullType with a warning.
            warnings.simplefilter("ignore", sa_exc.SAWarning)
            if not insp.has_table(name, schema=arg):
                return None
            columns = {c["name"]: dict(c) for c in insp.get_columns(name, schema=arg)}
            pk = tuple(insp.get_pk_constraint(name, schema=arg).get("constrained_columns") or ())
            unique: list[frozenset[str]] = [
                frozenset(u["column_names"]) for u in insp.get_unique_constraints(name, schema=arg)
            ]
            try:
                indexes = insp.get_indexes(name, schema=arg)
            except NotImplementedError:  # pragma: no cover - every supported dialect has it
                indexes = []
            unique.extend(frozenset(c for c in i["column_names"] if c) for i in indexes if i.get("unique"))
        return ReflectedTable(schema, name, columns, pk, tuple(unique))

    def inbound_foreign_keys(self, qualified: str) -> list[InboundForeignKey]:
        """Return every foreign key in the database that refers to table ``qualified``."""
        if self._inbound is None:
            self._inbound = self._all_foreign_keys()
        return list(self._inbound.get(self.split(qualified), []))

    def _all_foreign_keys(self) -> dict[tuple[str, str], list[InboundForeignKey]]:
        inbound: dict[tuple[str, str], list[InboundForeignKey]] = {}
        if self.dialect == "sqlite":
            return self._sqlite_foreign_keys()
        schemas = [s for s in self.inspector.get_schema_names() if s not in _SYSTEM_SCHEMAS and not s.startswith("pg_")]
        for schema in schemas:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sa_exc.SAWarning)
                found = self.inspector.get_multi_foreign_keys(schema=self._schema_arg(schema))
            for (table_schema, table), fks in found.items():
                owner = table_schema or schema
                for fk in fks:
                    # PostgreSQL omits the referred schema when it is on the search path.
                    referred = (fk.get("referred_schema") or self.default_schema, fk["referred_table"])
                    inbound.setdefault(referred, []).append(
                        InboundForeignKey(
                            owner,
                            table,
                            fk.get("name"),
                            tuple(fk["constrained_columns"]),
                            str((fk.get("options") or {}).get("ondelete") or "").upper(),
                        )
                    )
        return inbound

    def _sqlite_foreign_keys(self) -> dict[tuple[str, str], list[InboundForeignKey]]:
        # SQLAlchemy's SQLite reflection drops ON DELETE of column-level REFERENCES clauses;
        # the table-valued PRAGMA function reports it, with the table name as a bound parameter.
        inbound: dict[tuple[str, str], list[InboundForeignKey]] = {}
        conn = self.connection
        for table in self.inspector.get_table_names():
            pragma = sa.func.pragma_foreign_key_list(sa.bindparam("t", table)).table_valued(
                "id", "seq", "table", "from", "to", "on_update", "on_delete", "match"
            )
            query = sa.select(pragma.c.id, pragma.c.table, pragma.c["from"], pragma.c.on_delete).order_by(
                pragma.c.id, pragma.c.seq
            )
            if isinstance(conn, Engine):
                with conn.connect() as c:
                    rows = c.execute(query).all()
            else:
                rows = conn.execute(query).all()
            grouped: dict[int, tuple[str, list[str], str]] = {}
            for fk_id, referred, column, ondelete in rows:
                entry = grouped.setdefault(fk_id, (referred, [], str(ondelete or "").upper()))
                entry[1].append(column)
            for referred, columns, ondelete in grouped.values():
                inbound.setdefault((self.default_schema, referred), []).append(
                    InboundForeignKey(self.default_schema, table, None, tuple(columns), ondelete)
                )
        return inbound
