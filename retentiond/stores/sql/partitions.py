"""Whole-partition purge of a range-partitioned SQL target (PostgreSQL declarative partitioning).

A leaf partition whose whole range lies before the acting category's cutoff, and in which
every row satisfies the batches' own condition (expiry, filters, other categories' claims,
holds, rows refused earlier in the run), is removed whole instead of in batches:

1. an intent row (``retentiond_partition_intents``) names the parent and the leaf;
2. ``ALTER TABLE parent DETACH PARTITION leaf CONCURRENTLY`` (autocommit; writers of the
   other partitions are not blocked; ``lock_timeout`` applies);
3. one transaction: lock the detached table, check again that every row is eligible (if
   not: attach it back and leave it to the batches), write the outcome rows of its keys to the
   outbox (chunks of :data:`CHUNK` keys, as batches write them; the texts made by the database
   where SQL writes them exactly, else the keys read with ``COPY``), delete the intent,
   ``DROP TABLE`` (or ``SET SCHEMA`` the target's ``archive_schema``), COMMIT.

A crash leaves an attached leaf (nothing happened), a detached leaf with its intent (the
next run's first step on the target redoes step 3 for it) or the committed drop with its
outbox rows (relayed as usual). Only ``delete`` targets without a history table qualify;
everything else, and every leaf that does not qualify, goes through the batches, which work
on partitioned tables through the parent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from retentiond.config.holds import Hold
from retentiond.logs import get_logger
from retentiond.stores.base import BatchResult
from retentiond.stores.sql import partition_keys
from retentiond.stores.sql.outbox import OutboxRow, now_utc
from retentiond.stores.sql.partition_catalog import Leaf, detached, layout, leaf_table, upper_before
from retentiond.stores.sql.worker import TargetWorker
from retentiond.stores.sql.worker_base import _pg_batch_settings
from retentiond.testing.crashpoints import crash_point

log = get_logger("retentiond.run")

INTENTS_TABLE = "retentiond_partition_intents"
CHUNK = 50_000  # keys per outbox row, as a batch's row holds a batch's keys


def intents_table(metadata: sa.MetaData) -> sa.Table:
    """Return the intent journal's definition registered on ``metadata``."""
    if INTENTS_TABLE in metadata.tables:
        return metadata.tables[INTENTS_TABLE]
    return sa.Table(
        INTENTS_TABLE,
        metadata,
        sa.Column("part_schema", sa.String(200), primary_key=True),
        sa.Column("part_name", sa.String(200), primary_key=True),
        sa.Column("parent_schema", sa.String(200), nullable=False),
        sa.Column("parent_name", sa.String(200), nullable=False),
        sa.Column("lower", sa.Text, nullable=True),  # bound literal texts, to attach it back
        sa.Column("upper", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


@dataclass(frozen=True)
class WholeUnit:
    """A partition a run dropped (or, dry, would drop): its qualified name and row count."""

    name: str
    rows: int


def rebind(expr: ColumnElement[bool], source: sa.Table, dest: sa.Table) -> ColumnElement[bool] | None:
    """Return ``expr`` with every column of ``source`` replaced by ``dest``'s; None if another table remains.

    The batches' condition is built on the parent table; the leaf has the same columns. An
    expression that names any other table is not rebound (None: the caller keeps the batches).
    """

    def replace(element: Any, **_: Any) -> Any:
        if isinstance(element, sa.Column) and element.table is source:
            return dest.c[element.name]
        return None

    opts: dict[str, Any] = {}
    out: ColumnElement[bool] = visitors.replacement_traverse(expr, opts, replace)
    for element in visitors.iterate(out):
        if isinstance(element, sa.Column) and element.table is not dest:
            return None
    return out


class WholePartitions:
    """The whole-partition step of one worker's records pass (once per run, before its batches)."""

    def __init__(self, worker: TargetWorker, run_id: str, run_start: datetime, archive_schema: str | None) -> None:
        self.w = worker
        self.run_id = run_id
        self.run_start = run_start
        self.archive_schema = archive_schema
        self.todo: list[Leaf] | None = None
        self.units: list[WholeUnit] = []  # what this run dropped (or would drop)
        self.intents = intents_table(sa.MetaData())
        self.warned = False  # the "not the owner" warning, once per target and run

    @staticmethod
    def applies(worker: TargetWorker) -> bool:
        """Return True when the worker's target may be purged by partition: PostgreSQL, delete, a run, no history."""
        t = worker.target
        return t.dialect == "postgresql" and worker.action == "delete" and worker.subjects is None and t.history is None

    def next(self, holds: Sequence[Hold], *, dry_run: bool) -> BatchResult | None:
        """Purge (dry: count) the next qualifying partition; None once none is left (the batches go on).

        Raises:
            sqlalchemy.exc.DBAPIError: a database failure (an intent left behind is redone next run).
        """
        if self.todo is None:
            self.todo = self._discover(dry_run)
        while self.todo:
            # Taken off the list once done: a retried failure (lock timeout…) redoes the same leaf,
            # finishing its detach or purge from where the failure left it.
            result = self._one(self.todo[0], holds, dry_run=dry_run)
            self.todo.pop(0)
            if result is not None:
                return result
        return None

    # -- discovery ----------------------------------------------------------------------------

    def _discover(self, dry_run: bool) -> list[Leaf]:
        """Return the intents left by a crash for this target, then the leaves wholly before the cutoff."""
        t = self.w.target
        with self.w.engine.connect() as conn:
            found = layout(conn, t)
            if found is None:
                return []
            if not found.owned:
                # DETACH and DROP need ownership: batches only (SQLSTATE 42501 otherwise). Once per target and run.
                if self.warned:
                    return []
                self.warned = True
                log.warning(
                    "whole-partition purge skipped: the role does not own the partitioned table; batches instead",
                    category=self.w.category,
                    target=self.w.target_name,
                )
                return []
            todo = [] if dry_run else self._left_over(conn)
            named = {(leaf.schema, leaf.name) for leaf in todo}
            for leaf in found.leaves:
                fresh = (leaf.schema, leaf.name) not in named and not leaf.pending
                if fresh and upper_before(conn, t, leaf, self.w.cutoff):
                    todo.append(leaf)
        return todo

    def _left_over(self, conn: sa.Connection) -> list[Leaf]:
        """Return the detached leaves of this target whose purge a crash interrupted (intents); forget stale ones."""
        t = self.w.target
        if not sa.inspect(conn).has_table(INTENTS_TABLE):
            return []
        schema = t.table.schema or str(conn.execute(sa.select(sa.func.current_schema())).scalar_one())
        i = self.intents.c
        rows = conn.execute(sa.select(self.intents).where(i.parent_schema == schema, i.parent_name == t.table.name))
        out: list[Leaf] = []
        stale: list[tuple[str, str]] = []
        for row in rows.all():
            state = detached(conn, row.part_schema, row.part_name)
            if state is None or (state[1] and not state[2]):
                stale.append((row.part_schema, row.part_name))  # gone, or never detached: nothing to redo
            else:
                out.append(Leaf(state[0], row.part_schema, row.part_name, row.lower, row.upper, pending=state[2]))
        for part_schema, part_name in stale:
            conn.execute(self.intents.delete().where(i.part_schema == part_schema, i.part_name == part_name))
        conn.commit()
        return out

    # -- one leaf -----------------------------------------------------------------------------

    def preview(self, holds: Sequence[Hold]) -> dict[str, int]:
        """Return the partitions a run would purge whole now (qualified name → records); nothing is written."""
        out: dict[str, int] = {}
        for leaf in self._discover(dry_run=True):
            found = self._qualifies(leaf, holds)
            if found is not None:
                out[f"{leaf.schema}.{leaf.name}"] = found[2]
        return out

    def _qualifies(self, leaf: Leaf, holds: Sequence[Hold]) -> tuple[sa.Table, ColumnElement[bool], int] | None:
        """Return the leaf's table, the batches' condition rebound to it and its rows, when it may go whole.

        None (the batches decide) when it is empty, when some row is not one the batches would
        delete now, or when the condition cannot be rebound to the leaf.
        """
        t = self.w.target
        part = leaf_table(t, leaf.schema, leaf.name)
        cond = rebind(self.w._batch_condition(holds, self.run_start), t.table, part)
        if cond is None:
            return None
        # One scan: the rows, and whether any of them is protected (bool_or of NULL rows: no rows).
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.bool_or(sa.not_(cond)), sa.false()))
        with self.w.engine.connect() as conn:
            rows, protected = conn.execute(query.select_from(part)).one()
        if not rows or protected:
            return None
        return part, cond, int(rows)

    def _one(self, leaf: Leaf, holds: Sequence[Hold], *, dry_run: bool) -> BatchResult | None:
        """Purge ``leaf`` whole (dry: count it); None when it falls back to the batches."""
        t = self.w.target
        if self._recovering(leaf):
            part = leaf_table(t, leaf.schema, leaf.name)
            cond = rebind(self.w._batch_condition(holds, self.run_start), t.table, part)
            if cond is None:
                cond = sa.false()  # cannot check it: attach it back (the re-check below fails closed)
            return self._purge(leaf, part, cond)
        found = self._qualifies(leaf, holds)
        if found is None:
            return None
        part, cond, rows = found
        if dry_run:
            self.w.excluded.append(self._in_range(leaf))
            self.units.append(WholeUnit(f"{leaf.schema}.{leaf.name}", rows))
            return BatchResult(selected=rows, touched=rows, history=0)
        try:
            self._intend(leaf)
        except sa.exc.ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) != "42501":
                raise
            # The journal cannot be created here: batches for this target (once per target and run).
            log.warning(
                "whole-partition purge skipped: the role may not create retentiond_partition_intents; batches instead",
                category=self.w.category,
                target=self.w.target_name,
            )
            self.todo = []
            return None
        crash_point("sql_partition_after_intent")
        self._detach(leaf)
        crash_point("sql_partition_after_detach")
        return self._purge(leaf, part, cond)

    def _recovering(self, leaf: Leaf) -> bool:
        """Return True for a leaf a crashed run detached (or began to): finish the detach, then purge."""
        state = None
        with self.w.engine.connect() as conn:
            state = detached(conn, leaf.schema, leaf.name)
        if state is None or not state[1]:
            return state is not None
        if state[2]:  # DETACH … CONCURRENTLY interrupted: complete it (constant DDL, quoted names)
            self._ddl(leaf, "FINALIZE")
            return True
        return False

    @staticmethod
    def _protected(conn: sa.Connection, part: sa.Table, cond: ColumnElement[bool]) -> bool:
        """Return True when some row of ``part`` is not one the batches would delete now."""
        return bool(conn.execute(sa.select(sa.exists().select_from(part).where(sa.not_(cond)))).scalar_one())

    def _in_range(self, leaf: Leaf) -> ColumnElement[bool]:
        """Return "the row is not in ``leaf``'s range" (a dry run's batches skip what the partition step counted)."""
        age = self.w.target.table.c[self.w.target.age.name]
        upper = age < sa.cast(sa.literal(leaf.upper, sa.Text), age.type)
        if leaf.lower is None:
            return sa.not_(upper)
        return sa.not_(sa.and_(age >= sa.cast(sa.literal(leaf.lower, sa.Text), age.type), upper))

    def _intend(self, leaf: Leaf) -> None:
        t = self.w.target
        with self.w.engine.begin() as conn:
            self.intents.create(conn, checkfirst=True)
            schema = t.table.schema or str(conn.execute(sa.select(sa.func.current_schema())).scalar_one())
            conn.execute(
                self.intents.insert().values(
                    part_schema=leaf.schema,
                    part_name=leaf.name,
                    parent_schema=schema,
                    parent_name=t.table.name,
                    lower=leaf.lower,
                    upper=leaf.upper,
                    run_id=self.run_id,
                    created_at=now_utc(),
                )
            )

    def _forget(self, conn: sa.Connection, leaf: Leaf) -> None:
        i = self.intents.c
        conn.execute(self.intents.delete().where(i.part_schema == leaf.schema, i.part_name == leaf.name))

    def _ddl(self, leaf: Leaf, how: str) -> None:
        """Run ``ALTER TABLE parent DETACH PARTITION leaf <how>`` outside a transaction, with the store's timeouts.

        ``how`` is the constant CONCURRENTLY or FINALIZE; the names are quoted by SQLAlchemy.
        """
        assert how in ("CONCURRENTLY", "FINALIZE")
        t = self.w.target
        with self.w.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            prep = conn.dialect.identifier_preparer
            part = prep.format_table(leaf_table(t, leaf.schema, leaf.name))
            before = conn.execute(
                sa.select(sa.func.current_setting("lock_timeout"), sa.func.current_setting("statement_timeout"))
            ).one()
            conn.execute(
                sa.select(
                    sa.func.set_config("lock_timeout", f"{int(self.w.lock_timeout.total_seconds() * 1000)}ms", False),
                    sa.func.set_config(
                        "statement_timeout", f"{int(self.w.statement_timeout.total_seconds() * 1000)}ms", False
                    ),
                )
            )
            try:
                conn.exec_driver_sql(f"ALTER TABLE {prep.format_table(t.table)} DETACH PARTITION {part} {how}")
            finally:
                conn.execute(
                    sa.select(
                        sa.func.set_config("lock_timeout", before[0], False),
                        sa.func.set_config("statement_timeout", before[1], False),
                    )
                )

    def _detach(self, leaf: Leaf) -> None:
        """Detach ``leaf`` concurrently; on failure forget the intent when the leaf is still attached, and re-raise."""
        try:
            self._ddl(leaf, "CONCURRENTLY")
        except sa.exc.DBAPIError:
            with self.w.engine.begin() as conn:
                state = detached(conn, leaf.schema, leaf.name)
                if state is not None and state[1] and not state[2]:
                    self._forget(conn, leaf)
            raise

    def _purge(self, leaf: Leaf, part: sa.Table, cond: ColumnElement[bool]) -> BatchResult | None:
        """In one transaction: re-check, read the keys, write the outcomes, drop (or archive) the detached leaf."""
        t = self.w.target
        with self.w.engine.begin() as conn:
            _pg_batch_settings(conn, self.w.lock_timeout, self.w.statement_timeout)
            prep = conn.dialect.identifier_preparer
            name = prep.format_table(part)
            conn.exec_driver_sql(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
            if self._protected(conn, part, cond):
                # A protected row arrived between the check and the detach: attach it back, batches decide.
                lower = "MINVALUE" if leaf.lower is None else _literal(conn, leaf.lower)
                conn.exec_driver_sql(
                    f"ALTER TABLE {prep.format_table(t.table)} ATTACH PARTITION {name} "
                    f"FOR VALUES FROM ({lower}) TO ({_literal(conn, leaf.upper)})"
                )
                self._forget(conn, leaf)
                log.info("partition kept for the batches: a row is protected", target=self.w.target_name)
                return None
            out = self._record(conn, part)
            records = sum(r.count for r in out)
            self._forget(conn, leaf)
            if self.archive_schema is None:
                conn.exec_driver_sql(f"DROP TABLE {name}")
            else:
                conn.exec_driver_sql(f"ALTER TABLE {name} SET SCHEMA {prep.quote_schema(self.archive_schema)}")
            crash_point("sql_partition_before_commit")
        self.units.append(WholeUnit(f"{leaf.schema}.{leaf.name}", records))
        log.info("partition purged whole", target=self.w.target_name, records=records)
        return BatchResult(selected=records, touched=records, history=0, outbox=out)

    def _record(self, conn: sa.Connection, part: sa.Table) -> list[OutboxRow]:
        """Write and return the outbox rows of every row of ``part`` (:data:`CHUNK` keys each).

        The canonical key texts come from the database when every key column has an exact SQL
        text (:func:`partition_keys.key_text_expr`): one statement makes them, aggregates them
        into one JSON array per chunk and inserts the outbox rows, the texts crossing the
        network once (back, for the relay). Else, or when some value has no exact text after
        all (that insert is undone), from the worker's ``key_text`` over the keys of a binary
        COPY, chunk by chunk while it streams, never all keys as tuples at once.
        """
        outcome = self.w.outbox_rows(self.run_id, [], [], key_texts=("", 1))[0]
        cols = [part.c[c.name] for c in self.w.target.key]
        expr = partition_keys.key_text_expr(cols)
        if expr is not None:
            texts, chunk = partition_keys.chunked_texts(part, expr, CHUNK)
            with conn.begin_nested() as savepoint:
                insert = self.w.outbox.insert_aggregate(outcome, texts, per=chunk)
                written = conn.execute(insert).mappings().all()
                if all(r["keys"] is not None for r in written):
                    return [
                        dataclasses.replace(outcome, batch_id=r["batch_id"], count=r["count"], keys=r["keys"])
                        for r in written
                    ]
                savepoint.rollback()
        # Some key column has no exact SQL text (text keys, a year outside 1000-9999): Python makes them.
        out: list[OutboxRow] = []
        for keys in partition_keys.copy_keys(conn, sa.select(*cols), CHUNK):
            out.extend(self.w.outbox_rows(self.run_id, keys, []))
        self.w.outbox.insert(conn, out)
        return out


def _literal(conn: sa.Connection, text: str) -> str:
    """Return ``text`` as an SQL string literal, quoted by the dialect (a partition bound read from the catalog)."""
    return str(sa.literal(text, sa.Text).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
