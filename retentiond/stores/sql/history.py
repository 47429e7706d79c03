"""Prior versions of one SQL target: history rows superseded before the prior-versions cutoff."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from retentiond.config.holds import Hold
from retentiond.stores.base import BatchResult, Cursor
from retentiond.stores.sql import ages
from retentiond.stores.sql.outbox import OutboxRow, now_utc
from retentiond.stores.sql.predicates import in_subjects
from retentiond.stores.sql.worker_base import WorkerBase, _canonical_keys, _pg_timeouts
from retentiond.testing.crashpoints import crash_point


class PriorVersions(WorkerBase):
    """The prior versions (history rows) that expire on their own."""

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
