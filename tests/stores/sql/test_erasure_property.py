"""Property: the pure ``decide_erasure`` and the SQL condition of an erasure's batches agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentiond.config.durations import RetentionPeriod
from retentiond.policy.decide import Coverage, Row
from retentiond.policy.erasure import ErasureVerdict, decide_erasure
from retentiond.policy.holds import protecting, view_all
from retentiond.stores.sql.anonymize import Pseudonymizer
from retentiond.stores.sql.binding import bind_target
from retentiond.stores.sql.outbox import Outbox
from retentiond.stores.sql.predicates import Claim, erasable
from retentiond.stores.sql.worker import TargetWorker
from tests.stores.sql.conftest import tickets
from tests.stores.sql.test_property import SUBJECTS, _target, holds_strategy, memory_engine, rows_strategy

__all__ = ["memory_engine"]  # the module-scoped in-memory SQLite fixture, shared with test_property


def _verdicts(
    rows: list[tuple[Any, ...]],
    run_start: datetime,
    acting: Coverage,
    others: list[Coverage],
    holds: list[Any],
    subjects: frozenset[str],
    never: frozenset[str],
) -> dict[ErasureVerdict, set[int]]:
    out: dict[ErasureVerdict, set[int]] = {v: set() for v in ErasureVerdict}
    for i, (a, b, status, subject) in enumerate(rows):
        row = Row(
            values={
                "status": status,
                "closed_at": None if a is None else run_start - a,
                "seen_at": None if b is None else run_start - b,
            },
            subject=subject,
        )
        decision = decide_erasure(row, acting, others, holds, run_start, subjects, never, has_subject=True)
        out[decision.verdict].add(i)
    return out


class TestErasureDecisionAgreesWithSql:
    """For random subjects, holds and categories, the erasure decision equals the pure policy function."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        data=st.data(),
        run_start=st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2030, 12, 31)).map(
            lambda d: d.replace(microsecond=0, tzinfo=UTC)
        ),
        rows=rows_strategy,
        acting_action=st.sampled_from(["delete", "anonymize"]),
        other_action=st.sampled_from(["delete", "anonymize", None]),
        acting_match=st.sampled_from([None, {"status": "closed"}]),
        other_match=st.sampled_from([None, {"status": "open"}, {"status": "closed"}]),
        subjects=st.lists(st.sampled_from([*SUBJECTS, "nobody"]), min_size=1, max_size=3, unique=True),
        never=st.sampled_from([frozenset(), frozenset({"acting"}), frozenset({"other"})]),
    )
    def test_same_rows(
        self,
        memory_engine: sa.Engine,
        data: st.DataObject,
        run_start: datetime,
        rows: list[tuple[Any, ...]],
        acting_action: str,
        other_action: str | None,
        acting_match: dict[str, Any] | None,
        other_match: dict[str, Any] | None,
        subjects: list[str],
        never: frozenset[str],
    ) -> None:
        """Erased, held and kept-by-rule rows are the same in SQL as in decide_erasure()."""
        holds = protecting(view_all(data.draw(holds_strategy(run_start)), [], run_start, RetentionPeriod(7, "d")))
        with memory_engine.begin() as conn:
            conn.execute(tickets.delete())
            conn.execute(
                tickets.insert(),
                [
                    {
                        "id": i,
                        "status": status,
                        "account_id": subject,
                        "email": "e@x",
                        "closed_at": None if a is None else (run_start - a).replace(tzinfo=None),
                        "seen_at": None if b is None else (run_start - b).replace(tzinfo=None),
                    }
                    for i, (a, b, status, subject) in enumerate(rows)
                ],
            )
            metadata = sa.MetaData()
            acting_target = bind_target(
                conn, "acting", 0, _target("closed_at", acting_match, acting_action == "anonymize"), metadata
            )
            other_target = bind_target(
                conn, "other", 0, _target("seen_at", other_match, other_action == "anonymize"), metadata
            )
        acting = Claim(acting_target, acting_action, run_start)
        others = [] if other_action is None else [Claim(other_target, other_action, run_start)]
        worker = TargetWorker(
            memory_engine,
            acting,
            others,
            batch_size=1000,
            lock_timeout=timedelta(seconds=1),
            statement_timeout=timedelta(seconds=10),
            pseudonym=Pseudonymizer(b"k" * 32),
            outbox=Outbox(memory_engine),
            prior_versions_cutoff=None,
            subjects=sorted(subjects),
            never=never,
        )
        kept = erasable(acting, others, holds, run_start, sorted(subjects), never, kept_by_rule=True)
        with memory_engine.connect() as conn:
            ids = acting_target.table.c.id
            erased = set(conn.execute(sa.select(ids).where(worker.condition(holds, run_start))).scalars())
            by_rule = set(conn.execute(sa.select(ids).where(kept)).scalars())
            held = worker.held_counts(holds, run_start)

        acting_cov = Coverage("acting", acting_action, run_start, "closed_at", dict(acting_match or {}))
        other_covs = [Coverage("other", c.action, run_start, "seen_at", dict(other_match or {})) for c in others]
        expected = _verdicts(rows, run_start, acting_cov, other_covs, holds, frozenset(subjects), never)
        assert expected[ErasureVerdict.ERASE] == erased
        assert expected[ErasureVerdict.KEPT_BY_RULE] == by_rule
        assert len(expected[ErasureVerdict.HELD]) <= sum(held.values())
        assert bool(expected[ErasureVerdict.HELD]) == bool(held)
