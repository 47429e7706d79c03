"""Check a SQL target against the live database schema (``config validate --connect`` and run start).

Everything here reads the catalog through SQLAlchemy reflection (``sqlalchemy.inspect``); no
SQL text is built from configuration values. What is checked for one ``[[categories.X.sql]]``:

- the table exists; the ``key`` columns exist and are the primary key (a unique, non-primary
  key is a note; a key that is neither primary nor unique is refused: record refs and
  "one outcome per record" need a unique key);
- ``age_column`` exists and is a timestamp WITH time zone (PostgreSQL ``timestamptz``). A
  timestamp without time zone is accepted only when the target declares ``age_timezone``
  (SPEC §4 rule 3). Dates, text and numbers are refused (SPEC §4 rule 7).
  **SQLite** has no time-zone type: a column declared ``DATETIME`` or ``TIMESTAMP`` is
  accepted without ``age_timezone`` and its values are taken as UTC (or as ``age_timezone``
  when it is set); a note says so. Any other declared type is refused;
- ``subject_column``, the ``match`` columns (whose value type must fit the column) and the
  ``history`` table, its key, parent and ``superseded_column`` (a timestamp, same rule);
- each ``anonymize`` strategy fits its column: ``null`` needs a nullable column;
  ``redact``/``fixed:<v>``/``hmac`` a text column long enough for the value
  (``[redacted]``, ``<v>``, ``anon:`` + 32 hex characters); ``truncate_ip`` text or PostgreSQL
  ``inet``/``cidr``; ``year``/``month`` a date or timestamp;
- ``ON DELETE CASCADE`` foreign keys INTO a table this target deletes from, from a table that
  is not a target of the same category, are refused (SPEC §4 rule 7). The table deleted from
  is the target table when the category's action is ``delete`` and the history table in
  every case (anonymizing deletes prior versions). ``SET NULL``/``SET DEFAULT`` and plain
  references are reported as notes (they rewrite outside rows, or make deletes fail);
- on PostgreSQL, the connected role has the privileges the statements use, column by column
  (``retentiond.stores.sql.privileges``): SELECT on the columns read, UPDATE on the anonymized
  columns only, DELETE on delete targets and history tables, USAGE on schemas, the outbox.

Issues are refusals; notes are information an operator should see.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retentiond.config.models import Category, Settings, SqlTarget
from retentiond.errors import ConfigIssue
from retentiond.stores.base import Findings
from retentiond.stores.sql.catalog import InboundForeignKey, ReflectedTable, SchemaCatalog
from retentiond.stores.sql.predicates import PSEUDONYM_LENGTH, REDACTED

# What the anonymizer writes, so that a column too short for it is refused before any write.
REDACT_MARKER = REDACTED
HMAC_OUTPUT_LENGTH = PSEUDONYM_LENGTH

_SQLITE_TIMESTAMP_NAMES = frozenset({"DATETIME", "TIMESTAMP"})

# The findings of one target (the shared type; the old name stays for callers).
TargetFindings = Findings

__all__ = [
    "REDACT_MARKER",
    "InboundForeignKey",
    "ReflectedTable",
    "SchemaCatalog",
    "check_sql_target",
    "inspect_sql_target",
]


# --------------------------------------------------------------------------- type helpers


def _is_timestamp(type_: Any) -> bool:
    return isinstance(type_, sa.DateTime)


def _is_date(type_: Any) -> bool:
    return isinstance(type_, sa.Date) and not isinstance(type_, sa.DateTime)


def _is_text(type_: Any) -> bool:
    return isinstance(type_, sa.String) and not isinstance(type_, sa.Enum)


def _is_inet(type_: Any) -> bool:
    from sqlalchemy.dialects import postgresql

    return isinstance(type_, (postgresql.INET, postgresql.CIDR))


def _type_name(type_: Any, dialect: Any = None) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - some reflected types cannot compile without a dialect
        return type(type_).__name__


def _text_length(type_: Any) -> int | None:
    return getattr(type_, "length", None)


class _Checker:
    """Checks one target; collects issues and notes with their dotted paths."""

    def __init__(self, catalog: SchemaCatalog, settings: Settings, category_name: str, index: int) -> None:
        self.catalog = catalog
        self.settings = settings
        self.category_name = category_name
        self.category: Category = settings.categories[category_name]
        self.target: SqlTarget = self.category.sql[index]
        self.path = f"categories.{category_name}.sql[{index}]"
        self.findings = TargetFindings()

    def issue(self, path: str, message: str) -> None:
        self.findings.issues.append(ConfigIssue(path, message))

    def note(self, path: str, message: str) -> None:
        self.findings.notes.append(ConfigIssue(path, message))

    def column(self, table: ReflectedTable, name: str, path: str) -> dict[str, Any] | None:
        found = table.columns.get(name)
        if found is None:
            self.issue(path, f"column {name!r} does not exist in table {table.schema}.{table.name}")
        return found

    # ---------------------------------------------------------------- checks

    def run(self) -> TargetFindings:
        target = self.target
        table = self.catalog.table(target.table)
        if table is None:
            self.issue(
                f"{self.path}.table",
                f"table {target.table!r} does not exist (schema {self.catalog.split(target.table)[0]!r})",
            )
        else:
            self.check_key(table, target.key, f"{self.path}.key")
            age = self.column(table, target.age_column, f"{self.path}.age_column")
            if age is not None:
                self.check_timestamp(age, f"{self.path}.age_column")
            if target.subject_column is not None:
                self.column(table, target.subject_column, f"{self.path}.subject_column")
            for name, value in (target.match or {}).items():
                col = self.column(table, name, f"{self.path}.match.{name}")
                if col is not None:
                    self.check_match_value(col, value, f"{self.path}.match.{name}")
            for name, strategy in (target.anonymize or {}).items():
                col = self.column(table, name, f"{self.path}.anonymize.{name}")
                if col is not None:
                    self.check_strategy(col, strategy, f"{self.path}.anonymize.{name}")
            if self.category.action == "delete":
                self.check_cascades(target.table, f"{self.path}.table")
            self.check_privileges(table, f"{self.path}.table")
        if target.history is not None:
            self.check_history()
        return self.findings

    def check_key(self, table: ReflectedTable, key: list[str], path: str) -> None:
        missing = [k for k in key if k not in table.columns]
        for k in missing:
            self.issue(path, f"key column {k!r} does not exist in table {table.schema}.{table.name}")
        if missing:
            return
        wanted = frozenset(key)
        if table.primary_key and frozenset(table.primary_key) == wanted:
            return
        if wanted in table.unique_sets:
            pk = ", ".join(table.primary_key) or "none"
            self.note(path, f"key ({', '.join(key)}) is unique but not the primary key (primary key: {pk})")
            return
        pk = ", ".join(table.primary_key) or "none"
        self.issue(
            path,
            f"key ({', '.join(key)}) is neither the primary key (primary key: {pk}) nor unique: "
            "a key must identify one row",
        )

    def check_timestamp(self, col: dict[str, Any], path: str) -> None:
        type_ = col["type"]
        name = col["name"]
        if self.catalog.dialect == "sqlite":
            if _is_timestamp(type_) and type(type_).__name__.upper() in _SQLITE_TIMESTAMP_NAMES:
                if self.target.age_timezone is None:
                    self.note(path, f"SQLite has no time-zone type: values of {name!r} are taken as UTC")
                return
            self.issue(
                path,
                f"column {name!r} is {_type_name(type_, self.catalog.inspector.dialect)}, not a timestamp: "
                "declare it DATETIME or TIMESTAMP",
            )
            return
        if _is_timestamp(type_):
            if getattr(type_, "timezone", False):
                if self.target.age_timezone is not None:
                    self.note(f"{self.path}.age_timezone", f"ignored for {name!r}: the column carries its time zone")
                return
            if self.target.age_timezone is None:
                self.issue(
                    path,
                    f"column {name!r} is a timestamp without time zone: "
                    "use timestamptz or declare age_timezone on the target",
                )
            return
        kind = "a date, not a timestamp" if _is_date(type_) else "not a timestamp"
        self.issue(
            path,
            f"column {name!r} is {_type_name(type_, self.catalog.inspector.dialect)}, {kind}: "
            "the clock needs a timestamp with time zone",
        )

    def check_match_value(self, col: dict[str, Any], value: object, path: str) -> None:
        type_ = col["type"]
        if isinstance(type_, sa.types.NullType):
            return
        if isinstance(value, bool):
            fits = isinstance(type_, sa.Boolean) or (self.catalog.dialect == "sqlite" and isinstance(type_, sa.Integer))
            wanted = "a boolean"
        elif isinstance(value, int):
            fits = isinstance(type_, (sa.Integer, sa.Numeric))
            wanted = "a number"
        else:
            fits = isinstance(type_, sa.String)  # Enum is a String
            wanted = "text"
        if not fits:
            self.issue(
                path,
                f"value {type(value).__name__} does not fit column {col['name']!r} "
                f"of type {_type_name(type_, self.catalog.inspector.dialect)} (needs {wanted})",
            )

    def check_strategy(self, col: dict[str, Any], strategy: str, path: str) -> None:
        type_ = col["type"]
        name = col["name"]
        tname = _type_name(type_, self.catalog.inspector.dialect)
        if strategy == "null":
            if not col.get("nullable", True):
                self.issue(path, f"strategy 'null' needs a nullable column; {name!r} is NOT NULL")
            return
        if strategy in ("redact", "hmac") or strategy.startswith("fixed:"):
            if not _is_text(type_):
                self.issue(path, f"strategy {strategy.split(':')[0]!r} needs a text column; {name!r} is {tname}")
                return
            output = {"redact": REDACT_MARKER, "hmac": "0" * HMAC_OUTPUT_LENGTH}.get(
                strategy, strategy[len("fixed:") :]
            )
            length = _text_length(type_)
            if length is not None and len(output) > length:
                what = {
                    "redact": f"the marker {REDACT_MARKER!r}",
                    "hmac": f"a {HMAC_OUTPUT_LENGTH}-character pseudonym",
                }.get(strategy, f"the value ({len(output)} characters)")
                self.issue(path, f"column {name!r} is {tname}: too short for {what}")
            return
        if strategy == "truncate_ip":
            if not (_is_text(type_) or _is_inet(type_)):
                self.issue(path, f"strategy 'truncate_ip' needs a text, inet or cidr column; {name!r} is {tname}")
            return
        if strategy in ("year", "month"):
            if not (_is_timestamp(type_) or _is_date(type_)):
                self.issue(path, f"strategy {strategy!r} needs a date or timestamp column; {name!r} is {tname}")
            return
        self.issue(path, f"unknown anonymize strategy {strategy!r}")  # pragma: no cover - the model refuses it

    def same_category_tables(self) -> set[tuple[str, str]]:
        tables: set[tuple[str, str]] = set()
        for other in self.category.sql:
            if other.store != self.target.store:
                continue
            tables.add(self.catalog.split(other.table))
            if other.history is not None:
                tables.add(self.catalog.split(other.history.table))
        return tables

    def check_cascades(self, qualified: str, path: str) -> None:
        allowed = self.same_category_tables()
        schema, name = self.catalog.split(qualified)
        for fk in self.catalog.inbound_foreign_keys(qualified):
            source = (fk.schema, fk.table)
            if source == (schema, name) or source in allowed:
                continue
            label = f"{fk.schema}.{fk.table}({', '.join(fk.columns)})"
            if fk.ondelete == "CASCADE":
                self.issue(
                    path,
                    f"foreign key {label} → {schema}.{name} has ON DELETE CASCADE: deleting here would delete rows "
                    f"of {fk.schema}.{fk.table}, which is not a target of category {self.category_name!r}",
                )
            elif fk.ondelete in ("SET NULL", "SET DEFAULT"):
                self.note(
                    path,
                    f"foreign key {label} → {schema}.{name} has ON DELETE {fk.ondelete}: "
                    f"deletes here rewrite rows of {fk.schema}.{fk.table}",
                )
            else:
                self.note(
                    path,
                    f"warning: foreign key {label} → {schema}.{name} has ON DELETE {fk.ondelete or 'NO ACTION'}: "
                    f"a record here that a row of {fk.schema}.{fk.table} refers to cannot be deleted "
                    "(it is audited as failed and retried at each run)",
                )

    def check_history(self) -> None:
        history = self.target.history
        assert history is not None
        hpath = f"{self.path}.history"
        htable = self.catalog.table(history.table)
        if htable is None:
            self.issue(
                f"{hpath}.table",
                f"table {history.table!r} does not exist (schema {self.catalog.split(history.table)[0]!r})",
            )
            return
        self.check_key(htable, history.key, f"{hpath}.key")
        for name in history.parent:
            self.column(htable, name, f"{hpath}.parent")
        superseded = self.column(htable, history.superseded_column, f"{hpath}.superseded_column")
        if superseded is not None:
            self.check_timestamp(superseded, f"{hpath}.superseded_column")
        self.check_cascades(history.table, f"{hpath}.table")
        self.check_privileges(htable, f"{hpath}.table")

    def check_privileges(self, table: ReflectedTable, path: str) -> None:
        if self.catalog.dialect == "postgresql":
            from retentiond.stores.sql.privileges import table_gaps

            for message in table_gaps(self.catalog, self.settings, self.target.store, table):
                self.issue(path, message)


def inspect_sql_target(
    conn: Connection | Engine,
    settings: Settings,
    category_name: str,
    index: int,
    *,
    catalog: SchemaCatalog | None = None,
) -> TargetFindings:
    """Return the issues and notes of target ``categories.<category_name>.sql[<index>]`` on ``conn``.

    ``conn`` must be connected to the target's store. Pass one ``catalog`` for all targets
    of a store to reflect each table once.

    Raises:
        KeyError / IndexError: the category or target does not exist in ``settings``.
        sqlalchemy.exc.DBAPIError: the database failed while being read.
    """
    if catalog is None:
        catalog = SchemaCatalog(conn)
    return _Checker(catalog, settings, category_name, index).run()


def check_sql_target(
    conn: Connection | Engine,
    settings: Settings,
    category_name: str,
    index: int,
    *,
    catalog: SchemaCatalog | None = None,
) -> list[ConfigIssue]:
    """Return the refusals of one SQL target (empty when it may run); see :func:`inspect_sql_target`.

    Raises:
        sqlalchemy.exc.DBAPIError: the database failed while being read.
    """
    return inspect_sql_target(conn, settings, category_name, index, catalog=catalog).issues
