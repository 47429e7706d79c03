"""Select and act on one SQL target in bounded, keyset-paginated batches.

Each batch is one short transaction: select the next ``batch_size`` candidate keys after
the previous batch's last (age, key) — an index range, never a rescan from the start —
then DELETE or UPDATE those keys with the full eligibility condition repeated in the
statement, RETURNING what it really touched; delete the touched rows' prior versions; and
write the outcome with its refs to the outbox, all before COMMIT.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from retentiond.config.holds import Hold
from retentiond.stores.base import BatchResult, Counts, Cursor
from retentiond.stores.sql import ages
from retentiond.stores.sql.anonymize import Pseudonymizer, rewrite
from retentiond.stores.sql.binding import BoundTarget
from retentiond.stores.sql.outbox import Outbox, OutboxRow, now_utc
from retentiond.stores.sql.predicates import Claim, eligible, held_by, in_subjects, not_anonymized, sql_assignments
from retentiond.testing.crashpoints import crash_point

# The canonical key text of a row's key values (``audit.refs.canonical_key``, handed in).
KeyText = Callable[[Sequence[Any]], str]

__all__ = ["BatchResult", "Counts", "Cursor", "KeyText", "TargetWorker"]


def _pg_timeouts(conn: sa.Connection, lock_timeout: timedelta, statement_timeout: timedelta) -> None:
    # set_config(..., true) is SET LOCAL with bound values: scoped to this batch's transaction.
    conn.execute(
        sa.select(
            sa.func.set_config("lock_timeout", f"{int(lock_timeout.total_seconds() * 1000)}ms", True),
            sa.func.set_config("statement_timeout", f"{int(statement_timeout.total_seconds() * 1000)}ms", True),
        )
    )


def _canonical_keys(key_text: KeyText | None, keys: list[tuple[Any, ...]]) -> str:
    """Return the canonical key texts of ``keys`` as a JSON array (what record refs are made of)."""
    assert key_text is not None, "a worker that writes needs key_text (the canonical key text of a row)"
    return json.dumps([key_text(k) for k in keys], separators=(",", ":"), ensure_ascii=False)


class TargetWorker:
    """Plans and executes one category's claim on one table."""

    def __init__(
        self,
        engine: sa.Engine,
        acting: Claim,
        others: Sequence[Claim],
        *,
        batch_size: int,
        lock_timeout: timedelta,
        statement_timeout: timedelta,
        pseudonym: Pseudonymizer,
        outbox: Outbox,
        prior_versions_cutoff: datetime | None,
        key_text: KeyText | None = None,
    ) -> None:
        self.engine = engine
        self.acting = acting
        self.others = list(others)
        self.target: BoundTarget = acting.target
        self.batch_size = batch_size
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.pseudonym = pseudonym
        self.outbox = outbox
        self.prior_cutoff = prior_versions_cutoff
        self.anonymize = acting.action == "anonymize"
        self.key_text = key_text  # canonical key text of a row's key (handed in: stores do not import audit)

    # -- what the run driver reads (the S3 worker offers the same) -----------------------------

    @property
    def category(self) -> str:
        """Return the acting category."""
        return self.acting.category

    @property
    def action(self) -> str:
        """Return "delete" or "anonymize"."""
        return self.acting.action

    @property
    def cutoff(self) -> datetime:
        """Return the acting category's cutoff for this run."""
        return self.acting.cutoff

    @property
    def store(self) -> str:
        """Return the store name."""
        return self.target.store

    @property
    def target_name(self) -> str:
        """Return the target's name in reports and the ledger (the table as configured)."""
        return self.target.table_name

    @property
    def has_history(self) -> bool:
        """Return True when prior versions expire on their own (history table and prior_versions)."""
        return self.target.history is not None and self.prior_cutoff is not None

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, holds: Sequence[Hold], run_start: datetime) -> ColumnElement[bool]:
        """Return the full condition under which this worker may touch a row now."""
        cond = eligible(self.acting, self.others, holds, run_start)
        if self.anonymize:
            cond = sa.and_(cond, not_anonymized(self.target))
        return cond

    def _key_in(
        self, keys: list[tuple[Any, ...]], columns: Sequence[sa.Column[Any]] | None = None
    ) -> ColumnElement[bool]:
        cols = list(columns or self.target.key)
        if len(cols) == 1:
            values = [k[0] for k in keys]
            if self.target.dialect == "postgresql":
                return cols[0] == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(cols[0].type)))
            return cols[0].in_(values)
        return sa.tuple_(*cols).in_(keys)

    # -- plan ---------------------------------------------------------------------------------

    def counts(self, holds: Sequence[Hold], run_start: datetime) -> Counts:
        """Return total rows, rows this run would act on, rows held per hold, expired history rows."""
        t = self.target.table
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            act = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(self.condition(holds, run_start))
            ).scalar_one()
            held = self._held(conn, holds, run_start)
            held_records = self._held_records(conn, holds, run_start) if held else 0
            history = 0
            if self.target.history is not None:
                # What a run deletes from the history table: the prior versions of the rows it acts
                # on (rule 6) and, with prior_versions, the expired ones of any row; so that plan's
                # figure equals the run's on unchanged data.
                h = self.target.history
                parent_match = sa.and_(*[p == k for p, k in zip(h.parent, self.target.key, strict=True)])
                follows = sa.exists(
                    sa.select(sa.literal(1)).select_from(t).where(parent_match, self.condition(holds, run_start))
                )
                gone = (
                    follows if self.prior_cutoff is None else sa.or_(follows, self._history_condition(holds, run_start))
                )
                history = conn.execute(sa.select(sa.func.count()).select_from(h.table).where(gone)).scalar_one()
        return Counts(
            total=int(total), eligible=int(act), held=held, history_expired=int(history), held_records=held_records
        )

    def remaining(self, holds: Sequence[Hold], run_start: datetime) -> int:
        """Return the records (and expired prior versions) a run would still act on now: 0 after a complete pass."""
        t = self.target
        with self.engine.connect() as conn:
            left = conn.execute(
                sa.select(sa.func.count()).select_from(t.table).where(self.condition(holds, run_start))
            ).scalar_one()
            if self.has_history:
                assert t.history is not None
                left += conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.history.table)
                    .where(self._history_condition(holds, run_start))
                ).scalar_one()
        return int(left)

    def held_counts(self, holds: Sequence[Hold], run_start: datetime) -> dict[str, int]:
        """Return, per hold, the rows this run would act on but for that hold."""
        with self.engine.connect() as conn:
            return self._held(conn, holds, run_start)

    def _held_records(self, conn: sa.Connection, holds: Sequence[Hold], run_start: datetime) -> int:
        """Return the distinct rows any of ``holds`` keeps (a row under two holds counts once)."""
        base = eligible(self.acting, self.others, holds, run_start, ignore_holds=True)
        if self.anonymize:
            base = sa.and_(base, not_anonymized(self.target))
        covering = [self.acting, *self.others]
        any_hold = sa.or_(sa.false(), *[held_by(hold, covering, run_start) for hold in holds])
        query = sa.select(sa.func.count()).select_from(self.target.table).where(sa.and_(base, any_hold))
        return int(conn.execute(query).scalar_one())

    def _held(self, conn: sa.Connection, holds: Sequence[Hold], run_start: datetime) -> dict[str, int]:
        t = self.target.table
        base = eligible(self.acting, self.others, holds, run_start, ignore_holds=True)
        if self.anonymize:
            base = sa.and_(base, not_anonymized(self.target))
        covering = [self.acting, *self.others]
        held: dict[str, int] = {}
        for hold in holds:
            n = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(sa.and_(base, held_by(hold, covering, run_start)))
            ).scalar_one()
            if n:
                held[hold.id] = int(n)
        return held

    # -- act ----------------------------------------------------------------------------------

    def run_batch(
        self, cursor: Cursor, holds: Sequence[Hold], run_start: datetime, run_id: str, *, dry_run: bool
    ) -> BatchResult:
        """Process the next batch after ``cursor`` (advanced in place).

        With ``dry_run`` the selection runs and nothing is written.
        """
        t = self.target
        cond = self.condition(holds, run_start)
        order = [t.table.c[t.age.name], *t.key]
        if not dry_run and t.dialect == "postgresql" and len(t.key) == 1:
            assignments = sql_assignments(t) if self.anonymize else None
            if not self.anonymize or assignments is not None:
                return self._act_batch_pg(cursor, cond, order, run_id, assignments)
        anonymized_cols = [t.table.c[c] for c in (t.config.anonymize or {})]
        select = sa.select(*ages.position_columns(order, t.dialect), *anonymized_cols).where(cond)
        if cursor.after is not None:
            select = select.where(ages.after_position(cursor.after, order, t.dialect))
        select = select.order_by(*order).limit(self.batch_size)
        with self.engine.begin() as conn:
            if t.dialect == "postgresql":
                _pg_timeouts(conn, self.lock_timeout, self.statement_timeout)
            rows = conn.execute(select).all()
            if not rows:
                return BatchResult(selected=0, touched=0, history=0, exhausted=True)
            cursor.after = tuple(rows[-1][: len(order)])
            keys = [tuple(r[1 : len(order)]) for r in rows]
            if dry_run:
                following = 0
                if t.history is not None:
                    # The prior versions a real batch would delete with these rows (SPEC §4 rule 6).
                    h = t.history
                    following = conn.execute(
                        sa.select(sa.func.count()).select_from(h.table).where(self._key_in(keys, h.parent))
                    ).scalar_one()
                return BatchResult(
                    selected=len(rows), touched=len(rows), history=int(following), exhausted=len(rows) < self.batch_size
                )
            crash_point("sql_after_select")
            if self.anonymize:
                touched = self._anonymize(conn, rows, keys, cond, len(order))
            else:
                stmt = sa.delete(t.table).where(self._key_in(keys)).where(cond).returning(*t.key)
                touched = [tuple(r) for r in conn.execute(stmt).all()]
            crash_point("sql_after_action")
            history_keys: list[tuple[Any, ...]] = []
            if t.history is not None and touched:
                h = t.history
                stmt = sa.delete(h.table).where(self._key_in(touched, h.parent)).returning(*h.key)
                history_keys = [tuple(r) for r in conn.execute(stmt).all()]
            crash_point("sql_after_history")
            out = self._outbox_rows(run_id, touched, history_keys)
            self.outbox.insert(conn, out)
            crash_point("sql_after_outbox_insert")
        crash_point("sql_after_commit")
        return BatchResult(
            selected=len(rows),
            touched=len(touched),
            history=len(history_keys),
            outbox=out,
            exhausted=len(rows) < self.batch_size,
        )

    def _act_batch_pg(
        self,
        cursor: Cursor,
        cond: ColumnElement[bool],
        order: list[sa.Column[Any]],
        run_id: str,
        assignments: dict[str, Any] | None,
    ) -> BatchResult:
        """Delete (or anonymize with SQL strategies) the next batch in one statement.

        PostgreSQL, single-column key::

            WITH picked AS (SELECT age, key … WHERE <cond> AND (age, key) > <cursor> ORDER BY age, key LIMIT n),
                 gone AS (DELETE … WHERE key = ANY(ARRAY(SELECT key FROM picked)) AND <cond> RETURNING key)
            SELECT gone.key, last.age, last.key, last.picked
            FROM (SELECT age, key, count(*) OVER () AS picked FROM picked ORDER BY age DESC, key DESC LIMIT 1) AS last
            LEFT JOIN gone ON true

        (or ``UPDATE … SET <assignments>`` with the same condition). The array is computed once,
        so the statement probes the primary key instead of re-running the selection, and the
        batch's keys make one trip to Python. The next keyset position is the last *picked* row,
        ordered by the database (its collation, its values): a position computed in Python would
        disagree with the database's order of text keys and skip rows. Whether the target is
        exhausted is decided by the selection too, not by what the action touched (rows another
        transaction removed or changed meanwhile are not touched, and the next batch goes on).
        """
        t = self.target
        key = t.key[0]
        picked_select = sa.select(order[0].label("age"), key.label("key")).where(cond)
        if cursor.after is not None:
            picked_select = picked_select.where(ages.after_position(cursor.after, order, t.dialect))
        picked = picked_select.order_by(*order).limit(self.batch_size).cte("picked")
        in_batch = key == sa.any_(sa.func.array(sa.select(picked.c.key).scalar_subquery()))
        action = sa.delete(t.table) if assignments is None else sa.update(t.table).values(assignments)
        gone = action.where(in_batch).where(cond).returning(key.label("touched")).cte("gone")
        last = (
            sa.select(picked.c.age, picked.c.key, sa.func.count().over().label("picked"))
            .order_by(picked.c.age.desc(), picked.c.key.desc())
            .limit(1)
            .subquery("last")
        )
        stmt = sa.select(gone.c.touched, last.c.age, last.c.key, last.c.picked).select_from(
            last.outerjoin(gone, sa.true())
        )
        with self.engine.begin() as conn:
            _pg_timeouts(conn, self.lock_timeout, self.statement_timeout)
            crash_point("sql_after_select")
            returned = conn.execute(stmt).all()
            if not returned:
                return BatchResult(selected=0, touched=0, history=0, exhausted=True)
            crash_point("sql_after_action")
            first = returned[0]
            cursor.after = (first.age, first.key)
            selected = int(first.picked)
            touched = [(r.touched,) for r in returned if r.touched is not None]
            history_keys: list[tuple[Any, ...]] = []
            if t.history is not None and touched:
                h = t.history
                hstmt = sa.delete(h.table).where(self._key_in(touched, h.parent)).returning(*h.key)
                history_keys = [tuple(r) for r in conn.execute(hstmt).all()]
            crash_point("sql_after_history")
            out = self._outbox_rows(run_id, touched, history_keys)
            self.outbox.insert(conn, out)
            crash_point("sql_after_outbox_insert")
        crash_point("sql_after_commit")
        return BatchResult(
            selected=selected,
            touched=len(touched),
            history=len(history_keys),
            outbox=out,
            exhausted=selected < self.batch_size,
        )

    def _anonymize(
        self,
        conn: sa.Connection,
        rows: Sequence[sa.Row[Any]],
        keys: list[tuple[Any, ...]],
        cond: ColumnElement[bool],
        key_end: int,
    ) -> list[tuple[Any, ...]]:
        t = self.target
        assignments = sql_assignments(t)
        if assignments is not None:
            stmt = sa.update(t.table).where(self._key_in(keys)).where(cond).values(assignments).returning(*t.key)
            return [tuple(r) for r in conn.execute(stmt).all()]
        # Some strategy needs Python (hmac, truncate_ip, year, month): one guarded UPDATE per row,
        # which also checks the row still holds the values the new ones were computed from.
        strategies = list((t.config.anonymize or {}).items())
        touched: list[tuple[Any, ...]] = []
        for row, key in zip(rows, keys, strict=True):
            old = row[key_end:]
            new = {}
            for (name, strategy), value in zip(strategies, old, strict=True):
                scope = f"{t.store}/{t.table_name}/{name}"
                new[name] = rewrite(t.table.c[name], strategy, value, self.pseudonym, scope)
            if all(new[name] == value for (name, _), value in zip(strategies, old, strict=True)):
                continue  # already in anonymized form
            unchanged = [
                t.table.c[name].is_not_distinct_from(sa.literal(value, t.table.c[name].type))
                for (name, _), value in zip(strategies, old, strict=True)
            ]
            stmt = (
                sa.update(t.table)
                .where(self._key_in([key]))
                .where(cond)
                .where(*unchanged)
                .values(new)
                .returning(*t.key)
            )
            touched.extend(tuple(r) for r in conn.execute(stmt).all())
        return touched

    def _outbox_rows(
        self, run_id: str, touched: list[tuple[Any, ...]], history: list[tuple[Any, ...]]
    ) -> list[OutboxRow]:
        t = self.target
        now = now_utc()
        out: list[OutboxRow] = []
        if touched:
            out.append(
                OutboxRow(
                    batch_id=str(uuid.uuid4()),
                    run_id=run_id,
                    category=t.category,
                    store=t.store,
                    target=t.table_name,
                    action=self.acting.action,
                    outcome="anonymized" if self.anonymize else "deleted",
                    count=len(touched),
                    # prior_versions counts the entry's own refs that are prior versions (as in S3);
                    # the history rows that went with these records have their own entry below.
                    prior_versions=0,
                    refs=b"",
                    keys=_canonical_keys(self.key_text, touched),
                    created_at=now,
                )
            )
        if history:
            assert t.history is not None
            out.append(
                OutboxRow(
                    batch_id=str(uuid.uuid4()),
                    run_id=run_id,
                    category=t.category,
                    store=t.store,
                    target=t.history.name,
                    action="delete",
                    outcome="deleted",
                    count=len(history),
                    prior_versions=len(history),
                    refs=b"",
                    keys=_canonical_keys(self.key_text, history),
                    created_at=now,
                )
            )
        return out

    # -- prior versions -------------------------------------------------------------------------

    def _history_condition(self, holds: Sequence[Hold], run_start: datetime) -> ColumnElement[bool]:
        """Return "a history row superseded before the prior-versions cutoff and not held"."""
        t = self.target
        h = t.history
        assert h is not None and self.prior_cutoff is not None
        superseded = h.superseded
        parent_match = sa.and_(*[p == k for p, k in zip(h.parent, t.key, strict=True)])
        parent = sa.select(sa.literal(1)).select_from(t.table).where(parent_match)
        held_parts: list[ColumnElement[bool]] = []
        for hold in holds:
            if not hold.covers_category(t.category):
                continue
            parts: list[ColumnElement[bool]] = []
            if hold.subjects is not None and t.subject is not None:
                # The parent's subject alone decides: prior_versions expires versions of every
                # parent, matched by the category's filter or not, and the hold's floor applies to
                # the version's own age (below), not the parent's. An orphan's subject is unknown,
                # so it stays held.
                held_parent = parent.where(in_subjects(t, hold.subjects))
                parts.append(sa.or_(sa.exists(held_parent), ~sa.exists(parent)))
            if hold.keep_younger_than is not None:
                floor = hold.keep_younger_than.before(run_start)
                parts.append(ages.after(superseded, floor, t.dialect, t.age_zone))
            held_parts.append(sa.and_(sa.true(), *parts))
        return sa.and_(
            ages.before(superseded, self.prior_cutoff, t.dialect, t.age_zone),
            sa.not_(sa.or_(sa.false(), *held_parts)),
        )

    def run_history_batch(
        self, cursor: Cursor, holds: Sequence[Hold], run_start: datetime, run_id: str, *, dry_run: bool
    ) -> BatchResult:
        """Delete the next batch of expired prior versions (``prior_versions``) after ``cursor``."""
        t = self.target
        h = t.history
        assert h is not None
        cond = self._history_condition(holds, run_start)
        order = [h.superseded, *h.key]
        select = sa.select(*ages.position_columns(order, t.dialect)).where(cond)
        if cursor.after is not None:
            select = select.where(ages.after_position(cursor.after, order, t.dialect))
        select = select.order_by(*order).limit(self.batch_size)
        with self.engine.begin() as conn:
            if t.dialect == "postgresql":
                _pg_timeouts(conn, self.lock_timeout, self.statement_timeout)
            rows = conn.execute(select).all()
            if not rows:
                return BatchResult(selected=0, touched=0, history=0, exhausted=True)
            cursor.after = tuple(rows[-1])
            keys = [tuple(r[1:]) for r in rows]
            if dry_run:
                return BatchResult(
                    selected=len(rows), touched=0, history=len(rows), exhausted=len(rows) < self.batch_size
                )
            stmt = sa.delete(h.table).where(self._key_in(keys, h.key)).where(cond).returning(*h.key)
            deleted = [tuple(r) for r in conn.execute(stmt).all()]
            crash_point("sql_history_after_delete")
            out: list[OutboxRow] = []
            if deleted:
                out.append(
                    OutboxRow(
                        batch_id=str(uuid.uuid4()),
                        run_id=run_id,
                        category=t.category,
                        store=t.store,
                        target=h.name,
                        action="delete",
                        outcome="deleted",
                        count=len(deleted),
                        prior_versions=len(deleted),
                        refs=b"",
                        keys=_canonical_keys(self.key_text, deleted),
                        created_at=now_utc(),
                    )
                )
                self.outbox.insert(conn, out)
        return BatchResult(
            selected=len(rows), touched=0, history=len(deleted), outbox=out, exhausted=len(rows) < self.batch_size
        )
