"""Property: the pure policy and the SQL conditions of the batches agree on random rows, holds and clocks.

Records (``decide``) and their prior versions (``decide_prior_version``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import StaticPool

from retentiond.config.durations import RetentionPeriod
from retentiond.config.holds import Hold
from retentiond.config.models import SqlTarget
from retentiond.policy.decide import Coverage, Row, Verdict, decide, decide_prior_version
from retentiond.policy.holds import protecting, view_all
from retentiond.stores.sql.anonymize import Pseudonymizer
from retentiond.stores.sql.binding import bind_target
from retentiond.stores.sql.outbox import Outbox
from retentiond.stores.sql.predicates import Claim
from retentiond.stores.sql.worker import TargetWorker
from tests.stores.sql.conftest import SUPPORT, create_schema, ticket_versions, tickets

SUBJECTS = ["s1", "s2", "s3"]
RETAINS = [RetentionPeriod(10, "d"), RetentionPeriod(30, "d"), RetentionPeriod(2, "mo")]
#: Ages are drawn around every cutoff and floor in play (days back from run_start, ±1 s).
DAYS = [0, 5, 10, 29, 30, 31, 40, 59, 60, 61, 62, 100]


@pytest.fixture(params=["sqlite", "postgresql"])
def memory_engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """One database shared by every example: in-memory SQLite (StaticPool) or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        engine = sa.create_engine(request.getfixturevalue("pg_url"))
    else:
        engine = sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    create_schema(engine)
    yield engine
    engine.dispose()


def _stored(engine: sa.Engine, value: datetime | None) -> datetime | None:
    """Return an aware UTC instant as the backend stores it (SQLite: naive UTC)."""
    if value is None or engine.dialect.name != "sqlite":
        return value
    return value.replace(tzinfo=None)


@st.composite
def ages(draw: st.DrawFn) -> timedelta | None:
    """Return how long before run_start a row's clock started (None: not started)."""
    if draw(st.integers(0, 9)) == 0:
        return None
    return timedelta(days=draw(st.sampled_from(DAYS)), seconds=draw(st.sampled_from([-1, 0, 1, 3600])))


rows_strategy = st.lists(
    st.tuples(ages(), ages(), st.sampled_from(["closed", "open", None]), st.sampled_from([*SUBJECTS, None])),
    min_size=1,
    max_size=20,
)


@st.composite
def holds_strategy(draw: st.DrawFn, run_start: datetime) -> list[Hold]:
    """Return random holds: categories, subject lists, tax floors, placed/expiry around run_start."""
    out: list[Hold] = []
    for i in range(draw(st.integers(0, 3))):
        data: dict[str, Any] = {
            "id": f"H-{i}",
            "kind": draw(st.sampled_from(["legal", "tax"])),
            "reason": "r",
            "placed_by": "p",
            "placed_at": (run_start + timedelta(days=draw(st.sampled_from([-400, -1, 1])))).date(),
            "categories": draw(st.sampled_from([["acting"], ["other"], ["*"], ["acting", "other"]])),
        }
        if draw(st.booleans()):
            data["subjects"] = draw(st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=2, unique=True))
        if draw(st.booleans()):
            data["keep_younger_than"] = draw(st.sampled_from(["20d", "45d", "70d"]))
        if draw(st.booleans()):
            data["expires_at"] = (run_start + timedelta(days=draw(st.sampled_from([-2, 3])))).date()
            if data["expires_at"] < data["placed_at"]:
                del data["expires_at"]
        out.append(Hold.model_validate(data))
    return out


def _target(age_column: str, match: dict[str, Any] | None, anonymize: bool, *, history: bool = False) -> SqlTarget:
    data: dict[str, Any] = {
        "store": "app",
        "table": "tickets",
        "key": ["id"],
        "age_column": age_column,
        "subject_column": "account_id",
    }
    if match:
        data["match"] = match
    if anonymize:
        data["anonymize"] = {"email": "null"}
    if history:
        data["history"] = SUPPORT["sql"][0]["history"]
    return SqlTarget.model_validate(data)


def _worker(engine: sa.Engine, acting: Claim, others: list[Claim], prior_cutoff: datetime | None) -> TargetWorker:
    return TargetWorker(
        engine,
        acting,
        others,
        batch_size=1000,
        lock_timeout=timedelta(seconds=1),
        statement_timeout=timedelta(seconds=10),
        pseudonym=Pseudonymizer(b"k" * 32),
        outbox=Outbox(engine),
        prior_versions_cutoff=prior_cutoff,
    )


class TestDecideAgreesWithSql:
    """SPEC §4: decide() and the statements' WHERE clause select the same rows."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        data=st.data(),
        run_start=st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2030, 12, 31)).map(
            lambda d: d.replace(microsecond=0, tzinfo=UTC)
        ),
        rows=rows_strategy,
        acting_action=st.sampled_from(["delete", "anonymize"]),
        other_action=st.sampled_from(["delete", "anonymize", None]),
        retains=st.tuples(st.sampled_from(RETAINS), st.sampled_from(RETAINS)),
        acting_match=st.sampled_from([None, {"status": "closed"}]),
        other_match=st.sampled_from([None, {"status": "open"}, {"status": "closed"}]),
    )
    def test_same_rows(
        self,
        memory_engine: sa.Engine,
        data: st.DataObject,
        run_start: datetime,
        rows: list[tuple[Any, ...]],
        acting_action: str,
        other_action: str | None,
        retains: tuple[RetentionPeriod, RetentionPeriod],
        acting_match: dict[str, Any] | None,
        other_match: dict[str, Any] | None,
    ) -> None:
        """For every generated row, "decide says ACT" equals "the batch condition selects it"."""
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
                        "closed_at": None if a is None else _stored(memory_engine, run_start - a),
                        "seen_at": None if b is None else _stored(memory_engine, run_start - b),
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
        acting = Claim(acting_target, acting_action, retains[0].before(run_start))
        others = [] if other_action is None else [Claim(other_target, other_action, retains[1].before(run_start))]
        worker = _worker(memory_engine, acting, others, None)
        with memory_engine.connect() as conn:
            selected = set(
                conn.execute(sa.select(acting_target.table.c.id).where(worker.condition(holds, run_start))).scalars()
            )

        acting_cov = Coverage("acting", acting_action, acting.cutoff, "closed_at", dict(acting_match or {}))
        other_covs = [Coverage("other", c.action, c.cutoff, "seen_at", dict(other_match or {})) for c in others]
        expected = set()
        for i, (a, b, status, subject) in enumerate(rows):
            row = Row(
                values={
                    "status": status,
                    "closed_at": None if a is None else run_start - a,
                    "seen_at": None if b is None else run_start - b,
                },
                subject=subject,
            )
            if decide(row, acting_cov, other_covs, holds, run_start, has_subject=True).verdict is Verdict.ACT:
                expected.add(i)
        assert expected == selected

    def test_placed_at_dates_are_utc_days(self) -> None:
        """A hold placed "today" is active from 00:00 UTC (the generator relies on it)."""
        h = Hold.model_validate(
            {
                "id": "X",
                "kind": "legal",
                "reason": "r",
                "placed_by": "p",
                "placed_at": date(2026, 1, 2),
                "categories": ["*"],
            }
        )
        assert datetime(2026, 1, 2, tzinfo=UTC) == h.placed_at


class TestPriorVersionsAgreeWithSql:
    """decide_prior_version() and the prior-versions batches' WHERE clause select the same history rows."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        data=st.data(),
        run_start=st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2030, 12, 31)).map(
            lambda d: d.replace(microsecond=0, tzinfo=UTC)
        ),
        parents=st.lists(st.sampled_from([*SUBJECTS, None]), min_size=0, max_size=8),
        versions=st.lists(
            st.tuples(
                st.integers(0, 9),  # parent index; one past the parents is an orphan (its record is gone)
                st.sampled_from(DAYS),
                st.sampled_from([-1, 0, 1, 3600]),
            ),
            min_size=1,
            max_size=20,
        ),
        prior=st.sampled_from(RETAINS),
        acting_match=st.sampled_from([None, {"status": "open"}]),
        with_other=st.booleans(),
    )
    def test_same_history_rows(
        self,
        memory_engine: sa.Engine,
        data: st.DataObject,
        run_start: datetime,
        parents: list[str | None],
        versions: list[tuple[int, int, int]],
        prior: RetentionPeriod,
        acting_match: dict[str, Any] | None,
        with_other: bool,
    ) -> None:
        """For every generated history row, "decide_prior_version says ACT" equals "the condition selects it".

        With ``with_other``, a second category ("other", filtered) claims the same table: its holds
        protect the versions too.
        """
        holds = protecting(view_all(data.draw(holds_strategy(run_start)), [], run_start, RetentionPeriod(7, "d")))
        with memory_engine.begin() as conn:
            conn.execute(ticket_versions.delete())
            conn.execute(tickets.delete())
            if parents:
                conn.execute(
                    tickets.insert(),
                    [{"id": i, "status": "closed", "account_id": subject} for i, subject in enumerate(parents)],
                )
            conn.execute(
                ticket_versions.insert(),
                [
                    {
                        "version_id": v,
                        "ticket_id": parent,
                        "superseded_at": _stored(memory_engine, run_start - timedelta(days=days, seconds=seconds)),
                    }
                    for v, (parent, days, seconds) in enumerate(versions)
                ],
            )
            target = bind_target(
                conn, "acting", 0, _target("closed_at", acting_match, False, history=True), sa.MetaData()
            )
            other = bind_target(conn, "other", 0, _target("closed_at", {"status": "open"}, False), sa.MetaData())
        cutoff = prior.before(run_start)
        others = [Claim(other, "delete", RetentionPeriod(90, "d").before(run_start))] if with_other else []
        worker = _worker(
            memory_engine, Claim(target, "delete", RetentionPeriod(30, "d").before(run_start)), others, cutoff
        )
        assert target.history is not None
        with memory_engine.connect() as conn:
            selected = set(
                conn.execute(
                    sa.select(target.history.table.c.version_id).where(worker._history_condition(holds, run_start))
                ).scalars()
            )

        # The category's filter does not apply to prior versions: a cutoff-only coverage.
        coverage = Coverage("acting", "delete", cutoff, "superseded_at")
        expected = set()
        for v, (parent, days, seconds) in enumerate(versions):
            exists = parent < len(parents)
            version = Row(
                values={"superseded_at": run_start - timedelta(days=days, seconds=seconds)},
                subject=parents[parent] if exists else None,
            )
            decision = decide_prior_version(
                version, coverage, holds, run_start, has_subject=exists, others=["other"] if with_other else []
            )
            if decision.verdict is Verdict.ACT:
                expected.add(v)
        assert expected == selected
