"""Age comparisons and keyset positions exactly as each database stores and orders them.

PostgreSQL stores ``timestamptz`` / ``timestamp`` as instants of fixed precision: a value read
back by psycopg and bound again compares exactly as it was stored, so ages are compared with
the column itself (an index range).

SQLite has no time type. A ``DATETIME`` column holds whatever the application wrote: text as
SQLite's own ``datetime()`` writes it (``2025-01-01 10:00:00``), as SQLAlchemy writes it (with
six fractional digits), ISO 8601 with ``T``, a trailing ``Z`` or an offset, a date alone, or a
number (Unix epoch). Compared as text against a bound value in one of those formats, rows in
another format sort on the wrong side of the cutoff (an offset-carrying value could even be
deleted hours early). So on SQLite an age is compared through SQLite's own date parser,
``strftime('%Y-%m-%d %H:%M:%f', age, 'auto')`` — UTC text with milliseconds, NULL when the
value is not a time (the clock has not started: kept) — against the instant truncated to the
millisecond, in the direction that keeps a record when the millisecond is not enough to decide.

Keyset positions are different: the batch cursor must compare exactly as the database *orders*
the column, whatever it holds, so it reads and binds the raw stored value
(:func:`position_columns`, :func:`after`); on SQLite that is the stored text (or number) itself,
not a datetime SQLAlchemy re-formats when it binds it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

#: SQLite text of an instant, as ``strftime`` renders it (UTC, milliseconds).
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"
#: The ``auto`` modifier (SQLite 3.38) reads a number as a Unix epoch (or a Julian day when small).
_SQLITE_AUTO = sqlite3.sqlite_version_info >= (3, 38, 0)
#: Values SQLite's date functions read as absolute instants: numbers, a trailing Z, an offset.
_ABSOLUTE_TEXT = ("*[+-][0-9][0-9]:[0-9][0-9]", "*[Zz]")


def instant(column: ColumnElement[Any]) -> ColumnElement[str]:
    """Return the value of ``column`` as SQLite's text with milliseconds (NULL: not a time).

    Numbers, ``Z`` and offsets come out in UTC; naive text stays wall time in the age zone.
    """
    if _SQLITE_AUTO:
        return sa.func.strftime(_SQLITE_FORMAT, column, "auto")
    return sa.func.strftime(_SQLITE_FORMAT, column)


def _absolute(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """Return "SQLite reads ``column`` as an absolute instant" (a number, a trailing Z, an offset)."""
    return sa.or_(
        sa.func.typeof(column).in_(["integer", "real"]), *(column.op("GLOB")(pattern) for pattern in _ABSOLUTE_TEXT)
    )


def _millis(value: datetime) -> str:
    """Return ``value`` (naive) as SQLite's ``strftime`` text, truncated to the millisecond."""
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def _sqlite_compare(
    column: ColumnElement[Any], moment: datetime, zone: ZoneInfo | None, *, before: bool
) -> ColumnElement[bool]:
    """Return "``column`` is strictly before (or after) ``moment``" on SQLite, never NULL.

    Milliseconds decide: a value in the same millisecond as ``moment`` is neither before nor
    after it, so a record is kept (not expired, and held by a floor) when the text cannot tell.
    Naive text is wall time in ``zone`` (UTC when None); numbers, ``Z`` and offsets are absolute.
    """
    utc = moment.astimezone(UTC)
    text = instant(column)

    def compare(point: datetime) -> ColumnElement[bool]:
        # Before: strictly earlier than the millisecond of the instant. After: in or after it.
        bound = sa.literal(_millis(point), sa.String())
        return text < bound if before else text >= bound

    if zone is None or zone.key == "UTC":
        return sa.and_(text.is_not(None), compare(utc.replace(tzinfo=None)))
    wall = utc.astimezone(zone).replace(tzinfo=None)
    absolute = _absolute(column)
    return sa.and_(
        text.is_not(None),
        sa.case((absolute, compare(utc.replace(tzinfo=None))), else_=compare(wall)),
    )


def _value(instant: datetime, column: sa.Column[Any], zone: ZoneInfo | None) -> datetime:
    """Return ``instant`` as a PostgreSQL column stores it: aware UTC, or naive wall time in ``zone`` (UTC)."""
    utc = instant.astimezone(UTC)
    if getattr(column.type, "timezone", False):
        return utc
    return utc.astimezone(zone or UTC).replace(tzinfo=None)


def _sqlite_prefilter(column: sa.Column[Any], instant: datetime) -> ColumnElement[bool]:
    """Return a raw comparison that every value before ``instant`` passes (an index range on SQLite).

    Text that starts with a date at least two days after the instant's UTC date is later than
    the instant in any zone and format (offsets are under a day); numbers sort before text.
    """
    limit = (instant.astimezone(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")
    return column < sa.literal(limit, sa.String())


def before(column: sa.Column[Any], instant: datetime, dialect: str, zone: ZoneInfo | None) -> ColumnElement[bool]:
    """Return "``column`` holds a time strictly before ``instant``" (NULL or not a time: false).

    ``zone`` is the zone of naive values (``age_timezone``; SQLite's naive text defaults to UTC).
    """
    if dialect == "sqlite":
        return sa.and_(_sqlite_prefilter(column, instant), _sqlite_compare(column, instant, zone, before=True))
    return sa.and_(column.is_not(None), column < sa.literal(_value(instant, column, zone), column.type))


def after(column: sa.Column[Any], instant: datetime, dialect: str, zone: ZoneInfo | None) -> ColumnElement[bool]:
    """Return "``column`` holds a time strictly after ``instant``" (NULL or not a time: false)."""
    if dialect == "sqlite":
        return _sqlite_compare(column, instant, zone, before=False)
    return sa.and_(column.is_not(None), column > sa.literal(_value(instant, column, zone), column.type))


def is_time(column: sa.Column[Any], dialect: str) -> ColumnElement[bool]:
    """Return "``column`` holds a time" (not NULL, and on SQLite a value its date functions read)."""
    if dialect == "sqlite":
        return instant(column).is_not(None)
    return column.is_not(None)


def oldest(column: sa.Column[Any], dialect: str, zone: ZoneInfo | None) -> list[ColumnElement[Any]]:
    """Return the aggregates of the earliest time in ``column`` (NULL and not a time: ignored).

    Read the selected values back with :func:`read_oldest`. On SQLite with a zone other than
    UTC, absolute values and naive wall times are two minimums (text of different zones does
    not compare); otherwise one.
    """
    if dialect != "sqlite":
        return [sa.func.min(column)]
    text = instant(column)
    if zone is None or zone.key == "UTC":
        return [sa.func.min(text)]
    absolute = _absolute(column)
    return [sa.func.min(sa.case((absolute, text))), sa.func.min(sa.case((sa.not_(absolute), text)))]


def read_oldest(values: Sequence[Any], zone: ZoneInfo | None) -> datetime | None:
    """Return the aware UTC instant of the aggregates :func:`oldest` selected (None: no time).

    Naive values are wall time in ``zone`` (UTC when None); SQLite's absolute minimum is UTC.
    """
    found: list[datetime] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            naive_zone = zone if i == len(values) - 1 else None  # the absolute minimum comes first
            parsed = parsed.replace(tzinfo=naive_zone or UTC)
        found.append(parsed.astimezone(UTC))
    return min(found, default=None)


def position_columns(columns: Sequence[sa.Column[Any]], dialect: str) -> list[ColumnElement[Any]]:
    """Return ``columns`` to select for a keyset position: their raw stored values on SQLite."""
    if dialect == "sqlite":
        return [sa.type_coerce(c, sa.types.NullType()) for c in columns]
    return list(columns)


def after_position(position: Sequence[Any], columns: Sequence[sa.Column[Any]], dialect: str) -> ColumnElement[bool]:
    """Return "``(columns...)`` sorts after ``position``", comparing exactly as the database orders.

    ``position`` must come from :func:`position_columns` (raw values on SQLite), so a value is
    bound back unchanged and rows tied with it on the age are ordered by the key, never skipped.
    """
    if dialect == "sqlite":
        bound = [sa.bindparam(None, v, type_=sa.types.NullType()) for v in position]
    else:
        bound = [sa.literal(v, c.type) for v, c in zip(position, columns, strict=True)]
    return sa.tuple_(*columns) > sa.tuple_(*bound)


def keyset_page(
    order: Sequence[sa.Column[Any]],
    condition: ColumnElement[bool],
    after: Sequence[Any] | None,
    dialect: str,
    limit: int,
    *extra: sa.Column[Any],
) -> sa.Select[Any]:
    """Return the next ``limit`` rows in ``order`` after the position ``after`` (None: from the start).

    The selected columns are the position (:func:`position_columns`, what ``after`` is made of)
    followed by ``extra``. The one keyset page every batch kind reads.
    """
    select = sa.select(*position_columns(order, dialect), *extra).where(condition)
    if after is not None:
        select = select.where(after_position(after, order, dialect))
    return select.order_by(*order).limit(limit)
