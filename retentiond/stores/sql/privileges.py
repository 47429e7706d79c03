"""The least PostgreSQL privileges of one SQL store: derived from the config, printed, and checked live.

What the statements of a run, plan and explain really do (``worker.py``, ``explain``):

- read (WHERE, ORDER BY, RETURNING) the key, age, subject and match columns of every target on a
  table, and the anonymized columns (``not_anonymized`` and the Python strategies read them);
- ``DELETE`` from delete targets and from every history table (anonymizing deletes prior
  versions too), reading the history key, parent and superseded columns;
- ``UPDATE`` only the anonymized columns (column privileges: a role that may rewrite
  ``email`` may not rewrite ``amount``);
- ``SELECT``, ``INSERT``, ``DELETE`` on the outbox ``retentiond_outbox`` in the role's current
  schema, created there by a DBA (:func:`outbox_ddl`) or by the daemon when it may ``CREATE``;
- ``USAGE`` on each schema.

:func:`grants_sql` prints exactly that; :func:`missing_privileges` asks PostgreSQL
(``has_schema_privilege``, ``has_column_privilege``, ``has_table_privilege``) whether the
connected role holds it, and names each gap with the ``GRANT`` that closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from retentiond.config.models import Settings
from retentiond.stores.sql.outbox import LZ4_KEYS_DDL, OUTBOX_TABLE, outbox_table

#: The schema of a table named without one, in the printed grants: PostgreSQL's default search path.
DEFAULT_SCHEMA = "public"
DEFAULT_ROLE = "retentiond"


# The dialect that quotes identifiers and compiles DDL for print-grants (its constructor is untyped).
_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]


@dataclass
class TableNeeds:
    """What the daemon does to one table: columns read, columns rewritten, whether it deletes."""

    schema: str | None
    table: str
    select: set[str] = field(default_factory=set)
    update: set[str] = field(default_factory=set)
    delete: bool = False

    def qualified(self, default_schema: str = DEFAULT_SCHEMA) -> tuple[str, str]:
        """Return ``(schema, table)`` with ``default_schema`` for a table named without one."""
        return (self.schema or default_schema, self.table)


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None, table)


def store_needs(settings: Settings, store: str, default_schema: str = DEFAULT_SCHEMA) -> list[TableNeeds]:
    """Return what the daemon needs on each table of SQL store ``store``, in config order.

    ``users`` and ``public.users`` are one table when ``default_schema`` is ``public``.
    """
    needs: dict[tuple[str, str], TableNeeds] = {}

    def entry(name: str) -> TableNeeds:
        schema, table = _split(name)
        key = (schema or default_schema, table)
        if key not in needs:
            needs[key] = TableNeeds(schema, table)
        return needs[key]

    for category in settings.categories.values():
        for target in category.sql:
            if target.store != store:
                continue
            t = entry(target.table)
            t.select.update(target.key)
            t.select.add(target.age_column)
            if target.subject_column is not None:
                t.select.add(target.subject_column)
            t.select.update(target.match or {})
            if category.action == "delete":
                t.delete = True
            else:
                t.select.update(target.anonymize or {})
                t.update.update(target.anonymize or {})
            if target.history is not None:
                h = entry(target.history.table)
                h.select.update(target.history.key)
                h.select.update(target.history.parent)
                h.select.add(target.history.superseded_column)
                h.delete = True
    return list(needs.values())


# --------------------------------------------------------------------------- printing


def _q(name: str) -> str:
    return str(_POSTGRESQL.identifier_preparer.quote(name))


def _table_sql(schema: str | None, table: str) -> str:
    return f"{_q(schema)}.{_q(table)}" if schema else _q(table)


def _columns(columns: set[str]) -> str:
    return ", ".join(_q(c) for c in sorted(columns))


def grant_statement(privilege: str, schema: str | None, table: str, role: str, columns: set[str] | None = None) -> str:
    """Return ``GRANT <privilege> [(columns)] ON <table> TO <role>;`` with identifiers quoted as needed."""
    cols = f" ({_columns(columns)})" if columns else ""
    return f"GRANT {privilege}{cols} ON {_table_sql(schema, table)} TO {_q(role)};"


def outbox_ddl() -> str:
    """Return the ``CREATE TABLE IF NOT EXISTS retentiond_outbox`` statement for a DBA (PostgreSQL)."""
    ddl = CreateTable(outbox_table(sa.MetaData()), if_not_exists=True).compile(dialect=_POSTGRESQL)
    lines = [line.rstrip().replace("\t", "  ") for line in str(ddl).strip().splitlines()]
    return "\n".join(lines) + ";"


def grants_sql(settings: Settings, store: str, role: str = DEFAULT_ROLE) -> str:
    """Return the SQL a DBA runs so that ``role`` may do what the daemon does on ``store``, and nothing else."""
    needs = store_needs(settings, store)
    role_q = _q(role)
    lines = [
        f"-- store {store!r}: least privileges of role {role} (PostgreSQL), from the configuration.",
        "-- Run as the tables' owner or a superuser. Tables named without a schema are looked up",
        f"-- through the role's search_path ({DEFAULT_SCHEMA} by default).",
        f"-- CREATE ROLE {role_q} LOGIN;   -- once per cluster, if it does not exist",
    ]
    schemas = sorted({n.schema or DEFAULT_SCHEMA for n in needs} | {DEFAULT_SCHEMA})
    for schema in schemas:
        lines.append(f"GRANT USAGE ON SCHEMA {_q(schema)} TO {role_q};")
    for n in needs:
        # ctid: batches name the rows they picked, and walk page ranges, by tuple id (without it, by key).
        select = n.select | {"ctid"} if n.delete or n.update else n.select
        lines.append(grant_statement("SELECT", n.schema, n.table, role, select))
        if n.update:
            lines.append(grant_statement("UPDATE", n.schema, n.table, role, n.update))
        if n.delete:
            lines.append(grant_statement("DELETE", n.schema, n.table, role))
    lines += [
        "-- The outbox (batch outcomes committed with the rows; see docs/operations.md), in the first schema",
        f"-- of the role's search_path ({DEFAULT_SCHEMA} by default). Either create it here, as below, or instead",
        f"-- GRANT CREATE ON SCHEMA <that schema> TO {role_q}; and let the daemon create it.",
        outbox_ddl(),
        "-- Optional, PostgreSQL >= 14 built with lz4: the batches' key texts are compressed faster than by pglz.",
        f"-- {LZ4_KEYS_DDL};",
        f"GRANT SELECT, INSERT, DELETE ON {_q(OUTBOX_TABLE)} TO {role_q};",
    ]
    if any(n.delete for n in needs):
        lines += [
            "-- Tables range-partitioned on the age column: a partition wholly past the cutoff is purged whole",
            "-- (DETACH PARTITION ... CONCURRENTLY, DROP) only by a role that owns the table (and may create the",
            f"-- journal retentiond_partition_intents); {role} does not, and deletes those rows in batches instead.",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- live check


@dataclass(frozen=True)
class Missing:
    """One privilege the connected role lacks, with the statement that grants it."""

    what: str
    grant: str


def _scalar_row(conn: sa.Connection | sa.Engine, query: sa.Executable) -> tuple[Any, ...]:
    """Return the one row of ``query`` (a SELECT of scalar functions) as a tuple."""
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return tuple(c.execute(query).one())
    return tuple(conn.execute(query).one())


def current_role(conn: sa.Connection | sa.Engine) -> str:
    """Return the role the connection acts as (``current_user``)."""
    return str(_scalar_row(conn, sa.select(sa.func.current_user()))[0])


def missing_privileges(
    conn: sa.Connection | sa.Engine, needs: list[TableNeeds], schemas: dict[int, str], role: str
) -> list[Missing]:
    """Return what the connected PostgreSQL role lacks of ``needs``, one entry per table and privilege.

    ``schemas`` gives, per index into ``needs``, the schema the table resolves to (the
    connection's default schema for a table named without one). Privileges held through
    PUBLIC, role membership or table-wide grants count (the ``has_*_privilege`` functions).

    Raises:
        sqlalchemy.exc.DBAPIError: the database failed while being read.
    """
    preparer = _POSTGRESQL.identifier_preparer
    checks: list[sa.ColumnElement[bool]] = []
    meaning: list[tuple[str, int, str | None]] = []  # (privilege, needs index, column or None)
    n_params = 0

    def bind(value: str) -> sa.BindParameter[str]:
        nonlocal n_params
        n_params += 1
        return sa.bindparam(f"v{n_params}", value, type_=sa.Text)

    for schema in sorted(set(schemas.values())):
        checks.append(sa.func.has_schema_privilege(bind(schema), bind("USAGE")))
        meaning.append(("USAGE", -1, schema))
    for i, n in enumerate(needs):
        # The quoted name is a bound value, parsed by PostgreSQL as an identifier.
        quoted = f"{preparer.quote(schemas[i])}.{preparer.quote(n.table)}"
        for column in sorted(n.select):
            checks.append(sa.func.has_column_privilege(bind(quoted), bind(column), bind("SELECT")))
            meaning.append(("SELECT", i, column))
        for column in sorted(n.update):
            checks.append(sa.func.has_column_privilege(bind(quoted), bind(column), bind("UPDATE")))
            meaning.append(("UPDATE", i, column))
        if n.delete:
            checks.append(sa.func.has_table_privilege(bind(quoted), bind("DELETE")))
            meaning.append(("DELETE", i, None))
    if not checks:
        return []
    row = _scalar_row(conn, sa.select(*checks))
    return _describe([m for m, ok in zip(meaning, row, strict=True) if not ok], needs, schemas, role)


def _describe(
    gaps: list[tuple[str, int, str | None]], needs: list[TableNeeds], schemas: dict[int, str], role: str
) -> list[Missing]:
    out: list[Missing] = []
    grouped: dict[tuple[str, int], list[str]] = {}
    for privilege, index, column in gaps:
        if privilege == "USAGE":
            assert column is not None
            out.append(Missing(f"USAGE on schema {column}", f"GRANT USAGE ON SCHEMA {_q(column)} TO {_q(role)};"))
        elif column is None:
            grouped.setdefault((privilege, index), [])
        else:
            grouped.setdefault((privilege, index), []).append(column)
    for (privilege, index), columns in grouped.items():
        schema, table = schemas[index], needs[index].table
        if columns:
            what = f"{privilege} on column{'s' if len(columns) > 1 else ''} {', '.join(columns)} of {schema}.{table}"
        else:
            what = f"{privilege} on {schema}.{table}"
        out.append(Missing(what, grant_statement(privilege, schema, table, role, set(columns) or None)))
    return out


def outbox_missing(conn: sa.Connection | sa.Engine, exists: bool, schema: str, role: str) -> list[Missing]:
    """Return what the role lacks to use the outbox.

    SELECT/INSERT/DELETE on it, or CREATE in ``schema`` when it does not exist yet.

    Raises:
        sqlalchemy.exc.DBAPIError: the database failed while being read.
    """
    preparer = _POSTGRESQL.identifier_preparer
    if not exists:
        row = _scalar_row(
            conn, sa.select(sa.func.has_schema_privilege(sa.bindparam("s", schema, type_=sa.Text), "CREATE"))
        )
        if row[0]:
            return []
        return [
            Missing(
                f"CREATE on schema {schema} (the outbox table {OUTBOX_TABLE} does not exist yet)",
                "have a DBA create it (`retentiond print-grants`) or "
                f"GRANT CREATE ON SCHEMA {_q(schema)} TO {_q(role)};",
            )
        ]
    quoted = f"{preparer.quote(schema)}.{preparer.quote(OUTBOX_TABLE)}"
    privileges = ("SELECT", "INSERT", "DELETE")
    row = _scalar_row(
        conn,
        sa.select(
            *[
                sa.func.has_table_privilege(sa.bindparam(f"t{i}", quoted, type_=sa.Text), p)
                for i, p in enumerate(privileges)
            ]
        ),
    )
    lacking = [p for p, ok in zip(privileges, row, strict=True) if not ok]
    if not lacking:
        return []
    return [
        Missing(
            f"{', '.join(lacking)} on the outbox {schema}.{OUTBOX_TABLE}",
            f"GRANT {', '.join(lacking)} ON {_q(schema)}.{_q(OUTBOX_TABLE)} TO {_q(role)};",
        )
    ]


def table_gaps(catalog: Any, settings: Settings, store: str, table: Any) -> list[str]:
    """Return, as messages, what the connected role lacks on one reflected table of ``store`` (PostgreSQL).

    ``catalog`` is the connection's ``SchemaCatalog``, ``table`` a ``ReflectedTable`` of it. What
    every target of the store reads and rewrites on the table counts (a run's conditions read the
    columns of every category on it), and, once per catalog, the outbox. Each message names the
    gap and the GRANT that closes it.

    Raises:
        sqlalchemy.exc.DBAPIError: the database failed while being read.
    """
    conn = catalog.connection
    memo = catalog.memo
    if "role" not in memo:
        memo["role"] = current_role(conn)
    role = str(memo["role"])
    default = catalog.default_schema
    needs = [n for n in store_needs(settings, store, default) if n.qualified(default) == (table.schema, table.name)]
    for n in needs:  # a missing column is refused elsewhere; asking about it would be an error
        n.select &= set(table.columns)
        n.update &= set(table.columns)
    gaps = missing_privileges(conn, needs, dict.fromkeys(range(len(needs)), table.schema), role)
    if "outbox" not in memo:
        memo["outbox"] = outbox_missing(conn, catalog.inspector.has_table(OUTBOX_TABLE), default, role)
        gaps = [*memo["outbox"], *gaps]
    return [f"the connected role {role} lacks {gap.what}: {gap.grant}" for gap in gaps]


def access_policy(settings: Settings, name: str, role: str) -> Any:
    """Return the ``AccessPolicy`` (format ``sql``) of SQL store ``name``: :func:`grants_sql` for ``role``."""
    from retentiond.stores.base import AccessPolicy

    url = getattr(settings.stores[name], "url", None)
    if url is not None and not sa.engine.make_url(url).drivername.startswith("postgresql"):
        return AccessPolicy(name, "sql", f"-- store {name!r} is not PostgreSQL: no privileges to grant\n")
    return AccessPolicy(name, "sql", grants_sql(settings, name, role))
