"""Plan counts of one SQL target: total, eligible, held per hold, expired history rows (part of TargetWorker)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from retentiond.config.holds import Hold
from retentiond.stores.base import Counts
from retentiond.stores.sql import ages
from retentiond.stores.sql.history import PriorVersions
from retentiond.stores.sql.predicates import erasable, held_by, not_anonymized


class Counting(PriorVersions):
    """What a plan reads: the rows a run would act on, hold back, and leave."""

    # -- plan ---------------------------------------------------------------------------------

    def counts(self, holds: Sequence[Hold], run_start: datetime) -> Counts:
        """Return total rows, rows this run would act on (and the oldest age among them), rows held per hold,
        expired history rows."""
        t = self.target.table
        age = self.target
        base = self._base(holds, run_start, ignore_holds=True)
        if self.anonymize:
            base = sa.and_(base, not_anonymized(self.target))
        covering = [self.acting, *self.others]
        holding = [held_by(hold, covering, run_start) for hold in holds]
        acts = self.condition(holds, run_start)
        # One scan for every figure (aggregate FILTERs): the total, the rows this run acts on with
        # the oldest age among them (the backlog's age, for the metrics), the rows each hold keeps
        # and the distinct rows any hold keeps.
        figures = sa.select(
            sa.func.count(),
            sa.func.count().filter(acts),
            sa.func.count().filter(sa.and_(base, sa.or_(sa.false(), *holding))),
            *[sa.func.count().filter(sa.and_(base, cond)) for cond in holding],
            *[f.filter(acts) for f in ages.oldest(age.age, age.dialect, age.age_zone)],
        ).select_from(t)
        with self.engine.connect() as conn:
            row = conn.execute(figures).one()
            total, act, held_records = row[0], row[1], int(row[2])
            per_hold = row[3 : 3 + len(holds)]
            held = {hold.id: int(n) for hold, n in zip(holds, per_hold, strict=True) if n}
            oldest = ages.read_oldest(row[3 + len(holds) :], age.age_zone)
            kept: dict[str, int] = {}
            if self.subjects is not None:
                rule = erasable(
                    self.acting, self.others, holds, run_start, self.subjects, self.never, kept_by_rule=True
                )
                n = conn.execute(sa.select(sa.func.count()).select_from(t).where(rule)).scalar_one()
                if n:
                    kept[self.category] = int(n)
            history = 0
            if self.target.history is not None:
                # What a run deletes from the history table: the prior versions of the rows it acts
                # on (rule 6) and, with prior_versions, the expired ones of any row; so that plan's
                # figure equals the run's on unchanged data.
                h = self.target.history
                parent_match = sa.and_(*[p == k for p, k in zip(h.parent, self.target.key, strict=True)])
                follows = sa.exists(sa.select(sa.literal(1)).select_from(t).where(parent_match, acts))
                gone = (
                    follows if self.prior_cutoff is None else sa.or_(follows, self._history_condition(holds, run_start))
                )
                history = conn.execute(sa.select(sa.func.count()).select_from(h.table).where(gone)).scalar_one()
        self.table_rows = int(total)
        self.density = int(act) / int(total) if total else None
        return Counts(
            total=int(total),
            eligible=int(act),
            held=held,
            history_expired=int(history),
            held_records=held_records,
            oldest=oldest,
            kept=kept,
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

    def _held(self, conn: sa.Connection, holds: Sequence[Hold], run_start: datetime) -> dict[str, int]:
        t = self.target.table
        base = self._base(holds, run_start, ignore_holds=True)
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
