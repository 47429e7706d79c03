"""Bind configured SQL targets to reflected tables.

Every table and column that later appears in a statement comes from reflection here, so a
name from the configuration is never formatted into SQL text: SQLAlchemy quotes reflected
identifiers itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from retentiond.config.models import SqlTarget
from retentiond.errors import ConfigError, ConfigIssue


@dataclass(frozen=True)
class BoundHistory:
    """The history table of a target, reflected."""

    table: sa.Table
    key: tuple[sa.Column[Any], ...]
    parent: tuple[sa.Column[Any], ...]
    superseded: sa.Column[Any]
    name: str


@dataclass(frozen=True)
class BoundTarget:
    """A ``[[categories.X.sql]]`` target with its reflected table and columns."""

    category: str
    index: int
    config: SqlTarget
    table: sa.Table
    key: tuple[sa.Column[Any], ...]
    age: sa.Column[Any]
    subject: sa.Column[Any] | None
    history: BoundHistory | None
    dialect: str
    age_zone: ZoneInfo | None  # zone of a naive age column, None when aware

    @property
    def path(self) -> str:
        """Return the config path of the target, for messages."""
        return f"categories.{self.category}.sql[{self.index}]"

    @property
    def store(self) -> str:
        """Return the store name."""
        return self.config.store

    @property
    def table_name(self) -> str:
        """Return the table as configured (optionally schema-qualified)."""
        return self.config.table

    def column(self, name: str) -> sa.Column[Any]:
        """Return the reflected column ``name`` of the target table.

        Raises:
            ConfigError: the column does not exist.
        """
        try:
            return self.table.c[name]
        except KeyError:
            raise ConfigError(
                [ConfigIssue(self.path, f"column {name!r} not found in table {self.table_name!r}")]
            ) from None

    def instant(self, value: datetime) -> datetime:
        """Return ``value`` as the age column stores instants.

        Aware columns take the aware UTC instant. A naive column (PostgreSQL ``timestamp``
        with ``age_timezone``, or SQLite, whose values retentiond reads as UTC) takes the
        naive wall time in its zone, so the comparison stays a plain index range.
        """
        utc = value.astimezone(UTC)
        if self.age_zone is None:
            return utc
        return utc.astimezone(self.age_zone).replace(tzinfo=None)


def split_table_name(name: str) -> tuple[str | None, str]:
    """Return (schema, table) of ``schema.table`` or (None, table)."""
    schema, _, table = name.rpartition(".")
    return (schema or None, table)


def reflect_table(conn: sa.Connection, name: str, metadata: sa.MetaData, path: str) -> sa.Table:
    """Return the reflected table ``name`` (``schema.table`` allowed).

    Raises:
        ConfigError: the table does not exist.
    """
    schema, table = split_table_name(name)
    if schema is not None and schema == conn.dialect.default_schema_name:
        # "public.tickets" and "tickets" are one table: reflect both as the same Table object,
        # so claims of several categories on it share columns (longest retention wins).
        schema = None
    try:
        return sa.Table(table, metadata, schema=schema, autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise ConfigError([ConfigIssue(path, f"table {name!r} does not exist")]) from None


def bind_target(
    conn: sa.Connection, category: str, index: int, target: SqlTarget, metadata: sa.MetaData
) -> BoundTarget:
    """Return ``target`` bound to its reflected table.

    Raises:
        ConfigError: a table or column is missing, or the age column cannot be compared.
    """
    path = f"categories.{category}.sql[{index}]"
    table = reflect_table(conn, target.table, metadata, f"{path}.table")
    issues: list[ConfigIssue] = []

    def col(t: sa.Table, name: str, key: str) -> sa.Column[Any]:
        if name not in t.c:
            issues.append(ConfigIssue(f"{path}.{key}", f"column {name!r} not found in table {t.name!r}"))
            return sa.Column(name)  # placeholder; the error is raised below
        return t.c[name]

    key = tuple(col(table, k, "key") for k in target.key)
    age = col(table, target.age_column, "age_column")
    subject = col(table, target.subject_column, "subject_column") if target.subject_column else None
    for name in target.match or {}:
        col(table, name, "match")
    for name in target.anonymize or {}:
        col(table, name, "anonymize")
    history = None
    if target.history is not None:
        h = target.history
        htable = reflect_table(conn, h.table, metadata, f"{path}.history.table")
        history = BoundHistory(
            table=htable,
            key=tuple(col(htable, k, "history.key") for k in h.key),
            parent=tuple(col(htable, p, "history.parent") for p in h.parent),
            superseded=col(htable, h.superseded_column, "history.superseded_column"),
            name=h.table,
        )
    dialect = conn.dialect.name
    zone: ZoneInfo | None = None
    if not issues:
        age_type = age.type
        if not isinstance(age_type, sa.DateTime):
            issues.append(ConfigIssue(f"{path}.age_column", f"column {target.age_column!r} is not a timestamp"))
        elif dialect == "sqlite":
            zone = ZoneInfo(target.age_timezone or "UTC")
        elif not age_type.timezone:
            if target.age_timezone is None:
                issues.append(
                    ConfigIssue(f"{path}.age_column", "is a timestamp without time zone: declare age_timezone")
                )
            else:
                zone = ZoneInfo(target.age_timezone)
    if issues:
        raise ConfigError(issues)
    return BoundTarget(category, index, target, table, key, age, subject, history, dialect, zone)
