"""The canonical key texts of a detached partition's rows, in bulk (PostgreSQL, psycopg 3).

Two ways, both in chunks: the texts made and aggregated into JSON arrays by the database
(when every key column's canonical text has an exact SQL form; one value per chunk, written
to the outbox by the same statement), or the key values read with a binary ``COPY … TO STDOUT`` and decoded by psycopg,
whose texts the worker's ``key_text`` makes (one libpq call per row: about 5 µs a key).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

# to_char pattern of audit.refs.canonical_value for an aware datetime: UTC, microseconds, "Z".
_ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def _value_text(column: sa.ColumnElement[Any], *, strict: bool = False) -> ColumnElement[Any] | None:
    """Return the SQL of one key value's canonical text, NULL where SQL cannot match it; None for other types.

    Exact for integers (decimal), UUIDs (lowercase, hyphenated) and ``timestamptz`` in years
    1000-9999 (outside them Python's ``strftime`` and ``to_char`` pad the year differently:
    NULL, and the caller falls back to Python). Text is left to Python: a composite key's JSON
    escaping of it is Python's. No text contains a quote or a backslash.

    ``strict``: instead of NULL, a division by zero that fails the statement evaluating it
    (SQLSTATE 22012), for statements that act on the rows they describe: a NULL text would
    leave a touched row without its ref, a failed statement leaves it untouched (a batch that
    fails so is redone by the split path, whose texts Python makes).
    """
    kind = column.type
    if isinstance(kind, sa.Integer | sa.Uuid) and not isinstance(kind, sa.Boolean):
        return sa.cast(column, sa.Text)
    if isinstance(kind, sa.DateTime) and kind.timezone:
        utc = sa.func.timezone("UTC", column)
        year = sa.extract("year", utc)
        text = sa.func.to_char(utc, _ISO_UTC)
        outside: ColumnElement[Any] = sa.null()
        if strict:
            # year - year: zero known only when the row is read, so the planner cannot fold it away.
            outside = sa.cast(sa.literal(1, sa.Integer) / sa.cast(year - year, sa.Integer), sa.Text)
        return sa.case((sa.and_(year >= 1000, year <= 9999), text), else_=outside)
    return None


def key_text_expr(columns: Sequence[sa.ColumnElement[Any]], *, strict: bool = False) -> ColumnElement[Any] | None:
    """Return the SQL expression of a row's canonical key text (``audit.refs.canonical_key``), or None.

    One column: the value's text. Several: the compact JSON array of the values' texts,
    ``["1","2026-01-01T00:00:00.000000Z"]`` (no text needs JSON escaping). NULL when a value
    has no exact SQL text (see :func:`_value_text`; ``strict``: the statement fails instead).
    """
    parts = [_value_text(c, strict=strict) for c in columns]
    if any(p is None for p in parts):
        return None
    texts = [p for p in parts if p is not None]
    if len(texts) == 1:
        return texts[0]
    out: ColumnElement[Any] = sa.literal('["', sa.Text)
    for i, text in enumerate(texts):
        out = out.op("||")(text).op("||")(sa.literal('"]' if i == len(texts) - 1 else '","', sa.Text))
    return out


def chunked_texts(
    part: sa.Table, expr: ColumnElement[Any], chunk: int
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """Return (the JSON array of the canonical key texts, the chunk number) over the rows of ``part``.

    To aggregate grouped by the chunk number (``chunk`` rows each): the database makes the
    texts and their JSON arrays (``json_agg``, as the batches' outbox rows are made), so a few
    values of ``chunk`` texts each are written, never a row at a time. The array is NULL for a
    chunk in which some value has no exact SQL text (the caller then makes every text in Python).
    """
    numbered = (
        sa.select(expr.label("t"), ((sa.func.row_number().over() - 1) // sa.literal(chunk, sa.BigInteger)).label("c"))
        .select_from(part)
        .subquery("numbered")
    )
    complete = sa.func.count(numbered.c.t) == sa.func.count()
    texts = sa.case((complete, sa.cast(sa.func.json_agg(numbered.c.t), sa.Text)), else_=sa.null())
    return texts, numbered.c.c


def copy_keys(conn: sa.Connection, select: sa.Select[Any], chunk: int) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the rows of ``select`` (no parameters) in chunks of ``chunk``, read with a binary ``COPY … TO STDOUT``.

    psycopg 3 decodes each column with the type the database reports for it (a plain
    ``LIMIT 0`` execution of the same query), so the keys are the Python values a batch's
    ``RETURNING`` gives, and their canonical key texts the same.
    """
    compiled = select.compile(dialect=conn.dialect)
    assert not compiled.params, "the key query of a partition has no parameters"
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(f"{compiled} LIMIT 0")
        types = [d.type_code for d in cur.description]
        with cur.copy(f"COPY ({compiled}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(types)
            rows: list[tuple[Any, ...]] = []
            for row in copy.rows():
                rows.append(tuple(row))
                if len(rows) == chunk:
                    yield rows
                    rows = []
            if rows:
                yield rows
