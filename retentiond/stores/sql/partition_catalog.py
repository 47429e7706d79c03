"""PostgreSQL declarative range partitions of a target table, read from the catalog.

Only the simplest layout qualifies for a whole-partition purge (``stores.sql.partitions``):
a table partitioned by RANGE on one column, that column being the target's age column, with
no default partition; each leaf a plain table (not itself partitioned) with a bound
``FOR VALUES FROM (<lower>) TO (<upper>)``. Anything else (list or hash, several key
columns, an expression key, a default partition, sub-partitions, MAXVALUE) leaves the target
to the batches: nothing here guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from retentiond.stores.sql.binding import BoundTarget

# The bound text pg_get_expr(relpartbound) prints for a one-column range partition. A quoted
# literal doubles its quotes; anything else (MAXVALUE upper, several columns) does not match.
_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'(?:[^']|'')*')\) TO \(('(?:[^']|'')*')\)", re.ASCII)

# Constant catalog queries: every value is a bound parameter, no input reaches the text.
_PARENT = sa.text(
    """
    SELECT c.oid, p.partstrat, p.partnatts, p.partattrs[0] = a.attnum AS on_age, p.partexprs IS NULL AS plain,
           pg_has_role(c.relowner, 'USAGE') AS owned
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_partitioned_table p ON p.partrelid = c.oid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = :age
    WHERE n.nspname = COALESCE(:schema, current_schema()) AND c.relname = :name
    """
)
_LEAVES = sa.text(
    """
    SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_expr(c.relpartbound, c.oid) AS bound,
           i.inhdetachpending AS pending
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE i.inhparent = :parent
    ORDER BY c.relname
    """
)


@dataclass(frozen=True)
class Leaf:
    """One leaf partition: its schema and name, its bound literals (None lower: MINVALUE), detach pending."""

    oid: int
    schema: str
    name: str
    lower: str | None
    upper: str
    pending: bool = False


@dataclass(frozen=True)
class Layout:
    """A range-partitioned target: the parent's oid, whether this role owns it, its qualifying leaves."""

    oid: int
    owned: bool
    leaves: tuple[Leaf, ...]


def unquote(literal: str) -> str:
    """Return the text of a SQL string literal as pg_get_expr prints it (``'it''s'`` → ``it's``)."""
    assert literal.startswith("'") and literal.endswith("'")
    return literal[1:-1].replace("''", "'")


def parse_bound(bound: str) -> tuple[str | None, str] | None:
    """Return (lower, upper) literal texts of a one-column range bound; None for anything else.

    ``lower`` is None for MINVALUE. The whole text must match (no second column, no MAXVALUE).
    """
    m = _BOUND.fullmatch(bound)
    if m is None:
        return None
    lower = None if m.group(1) == "MINVALUE" else unquote(m.group(1))
    return lower, unquote(m.group(2))


def layout(conn: sa.Connection, target: BoundTarget) -> Layout | None:
    """Return the target's range partitions on its age column, or None when it does not qualify.

    None: not a partitioned table, not RANGE on exactly the age column, a default partition
    exists (``DETACH … CONCURRENTLY`` refuses it), or a leaf is itself partitioned.
    """
    t = target.table
    row = conn.execute(_PARENT, {"schema": t.schema, "name": t.name, "age": target.age.name}).first()
    if row is None or row.partstrat != "r" or row.partnatts != 1 or not row.on_age or not row.plain:
        return None
    leaves: list[Leaf] = []
    for leaf in conn.execute(_LEAVES, {"parent": row.oid}):
        bound = str(leaf.bound)
        if bound == "DEFAULT" or leaf.relkind != "r":
            return None
        parsed = parse_bound(bound)
        if parsed is None:
            continue  # MAXVALUE upper: never wholly expired
        leaves.append(Leaf(int(leaf.oid), leaf.nspname, leaf.relname, parsed[0], parsed[1], bool(leaf.pending)))
    return Layout(int(row.oid), bool(row.owned), tuple(leaves))


def detached(conn: sa.Connection, schema: str, name: str) -> tuple[int, bool, bool] | None:
    """Return (oid, still a partition, detach pending) of table ``schema.name``; None when it does not exist."""
    row = conn.execute(
        sa.text(
            """
            SELECT c.oid, i.inhrelid IS NOT NULL AS attached, COALESCE(i.inhdetachpending, false) AS pending
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
            WHERE n.nspname = :schema AND c.relname = :name
            """
        ),
        {"schema": schema, "name": name},
    ).first()
    return None if row is None else (int(row.oid), bool(row.attached), bool(row.pending))


def leaf_table(target: BoundTarget, schema: str, name: str) -> sa.Table:
    """Return a table construct for a leaf (or detached leaf) with the target's columns (same names, types)."""
    return sa.Table(name, sa.MetaData(), *[sa.Column(c.name, c.type) for c in target.table.c], schema=schema)


def upper_before(conn: sa.Connection, target: BoundTarget, leaf: Leaf, cutoff: Any) -> bool:
    """Return True when the leaf's exclusive upper bound is at or before ``cutoff`` (compared by the database).

    The bound literal is cast to the age column's own type, and the cutoff is given as the
    column stores instants (``BoundTarget.instant``), so the comparison is the one a row's age
    meets in the batches' ``age < cutoff``: every value the leaf may hold is then expired.
    """
    upper = sa.cast(sa.literal(leaf.upper, sa.Text), target.age.type)
    instant = sa.literal(target.instant(cutoff), target.age.type)
    return bool(conn.execute(sa.select(upper <= instant)).scalar_one())
