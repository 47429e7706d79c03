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
from retentiond.stores.sql.binding import BoundTarget
from retentiond.stores.sql.outbox import OutboxRow, now_utc
from retentiond.stores.sql.predicates import HoldScope, any_held_through, column_in_subjects
from retentiond.stores.sql.worker_base import WorkerBase, _canonical_keys, _pg_batch_settings
from retentiond.testing.crashpoints import crash_point


class PriorVersions(WorkerBase):
    """The prior versions (history rows) that expire on their own."""

    # -- prior versions -------------------------------------------------------------------------

    def _history_scopes(self) -> list[HoldScope]:
        """Return how a hold reads a history row: through its parent, by when it was superseded.

        The parent's subject alone decides: prior versions of every parent expire, matched by the
        category's filter or not, and a hold's floor applies to the version's own age, not the
        parent's. An orphan's subject is unknown, so a subject-scoped hold protects it. A hold on
        another category claiming the same table protects the versions too, its filters unread
        (fails closed: the versions of a record it covers are its prior versions as well).
        """
        t = self.target
        h = t.history
        assert h is not None
        parent_match = sa.and_(*[p == k for p, k in zip(h.parent, t.key, strict=True)])
        parent = sa.select(sa.literal(1)).select_from(t.table).where(parent_match)

        def scope(category: str, subject_column: str | None) -> HoldScope:
            if subject_column is None:
                return HoldScope(category, sa.true(), h.superseded, None, t.dialect, t.age_zone)
            column = t.table.c[subject_column]

            def subject_in(subjects: Sequence[str]) -> ColumnElement[bool]:
                matches = column_in_subjects(column, t.dialect, subjects)
                return sa.or_(sa.exists(parent.where(matches)), ~sa.exists(parent))

            return HoldScope(category, sa.true(), h.superseded, subject_in, t.dialect, t.age_zone)

        def subject_of(claim_target: BoundTarget) -> str | None:
            return None if claim_target.subject is None else str(claim_target.subject.name)

        return [scope(t.category, subject_of(t))] + [scope(o.category, subject_of(o.target)) for o in self.others]

    def _history_condition(self, holds: Sequence[Hold], run_start: datetime) -> ColumnElement[bool]:
        """Return "a history row superseded before the prior-versions cutoff and not held"."""
        t = self.target
        h = t.history
        assert h is not None and self.prior_cutoff is not None
        return sa.and_(
            ages.before(h.superseded, self.prior_cutoff, t.dialect, t.age_zone),
            sa.not_(any_held_through(holds, self._history_scopes(), run_start)),
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
        select = ages.keyset_page(order, cond, cursor.after, t.dialect, self.batch_size)
        with self.engine.begin() as conn:
            if t.dialect == "postgresql":
                _pg_batch_settings(conn, self.lock_timeout, self.statement_timeout)
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
