"""The store contract: what every kind of store must do, run against each registered kind.

One scenario per case — records past their retention, young records, and records of a held
subject — on SQL over PostgreSQL, SQL over SQLite and S3 over moto. A new kind gets these
checks by adding a case: plan equals run on unchanged data; a dry run writes nothing; holds win;
a SIGKILL at each seam point followed by a rerun leaves exactly one outcome per touched record.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
import sqlalchemy as sa

from retentiond.actions.run import RunReport
from retentiond.stores import registry
from tests.stores.s3 import conftest as s3_env
from tests.stores.s3.conftest import s3env  # noqa: F401 - the S3 case's fixture
from tests.stores.sql import conftest as sql_env

EXPIRED = [f"acct_x/{i:03d}" for i in range(1, 10)]
YOUNG = [f"acct_x/{i:03d}" for i in range(10, 13)]
HELD = [f"acct_held/{i:03d}" for i in range(13, 17)]
OLDEST = EXPIRED[4]  # older than the other expired records, younger than the held ones


def age_days(record: str) -> int:
    """Return the scenario's age of ``record`` in days (retention 30 days)."""
    if record in HELD:
        return 60  # older than every eligible record: the oldest eligible age must not see them
    if record in YOUNG:
        return 5
    return 45 if record == OLDEST else 40


class Case(Protocol):
    """One kind of store with the scenario's records in it."""

    kind: str
    now: datetime

    def seed(self) -> None:
        """Create the records of EXPIRED, YOUNG and HELD and a config (batch size 2) with hold LIT on acct_held."""

    def present(self) -> set[str]:
        """Return the records still present."""

    def audited(self) -> list[Any]:
        """Return the refs claimed as deleted by the ledger (repeats kept)."""

    def refs(self, records: list[str]) -> list[Any]:
        """Return the refs of ``records``, sorted."""

    def run(self, mode: str = "run") -> RunReport:
        """Plan, dry-run or run in this process."""

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run ``retentiond`` in a subprocess."""

    def entries(self) -> list[Any]:
        """Return every ledger entry."""


def _num(record: str) -> int:
    return int(record.rsplit("/", 1)[1])


class SqlCase:
    """``tickets`` rows: the record id is ``account/number``; held rows belong to ``acct_held``."""

    kind = "sql"
    crash_points = [  # the SQL seam points of a run (``retentiond.testing.crashpoints``)
        "sql_after_select:2",
        "sql_after_action:2",
        "sql_after_outbox_insert:2",
        "sql_after_commit:2",
        "relay_after_append:2",
        "between_batches:2",
        "held_between_entries:1",
        "before_run_finished:1",
    ]

    def __init__(self, env: sql_env.Env) -> None:
        self.env = env
        self.now = env.now
        self.by_num: dict[int, str] = {}

    def seed(self) -> None:
        """See :class:`Case`."""
        self.env.configure({"support": sql_env.SUPPORT}, batch_size=2, max_fraction_per_run=1.0)
        self.env.write_holds([sql_env.hold("LIT", ["support"], subjects=["acct_held"])])
        rows = []
        for r in [*EXPIRED, *YOUNG, *HELD]:
            self.by_num[_num(r)] = r
            rows.append(self.env.ticket(_num(r), age_days(r), account=r.split("/")[0]))
        self.env.insert(sql_env.tickets, rows)

    def present(self) -> set[str]:
        """See :class:`Case`."""
        return {self.by_num[i] for i in self.env.ids()}

    def audited(self) -> list[Any]:
        """See :class:`Case`."""
        return self.env.audited(outcome="deleted")

    def refs(self, records: list[str]) -> list[Any]:
        """See :class:`Case`."""
        return sorted(self.env.ref("tickets", _num(r)) for r in records)

    def run(self, mode: str = "run") -> RunReport:
        """See :class:`Case`."""
        return self.env.run(mode=mode)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """See :class:`Case`."""
        return self.env.cli(*args, env=env)

    def entries(self) -> list[Any]:
        """See :class:`Case`."""
        return self.env.entries()


class S3Case:
    """Objects ``tickets/<account>/<n>`` (one version each); the subject is the account."""

    kind = "s3"
    crash_points = [  # the S3 seam points and the driver's
        "s3_after_intent:2",
        "s3_after_delete:1",
        "s3_after_outcome:2",
        "s3_before_remove:2",
        "between_batches:1",
        "held_between_entries:1",
        "before_run_finished:1",
    ]

    def __init__(self, env: s3_env.S3Env) -> None:
        self.env = env
        self.now = env.now
        self.version: dict[str, str | None] = {}

    def seed(self) -> None:
        """See :class:`Case`."""
        self.env.bucket()
        category = s3_env.s3_category(subject_pattern="^tickets/(?P<subject>[^/]+)/")
        self.env.configure({"support": category}, store={"max_workers": 1}, batch_size=2, max_fraction_per_run=1.0)
        self.env.write_holds([s3_env.hold("LIT", ["support"], subjects=["acct_held"])])
        for r in [*EXPIRED, *YOUNG, *HELD]:
            self.version[r] = self.env.put(f"tickets/{r}", age_days(r))

    def present(self) -> set[str]:
        """See :class:`Case`."""
        return {key.removeprefix("tickets/") for key, _ in self.env.versions()}

    def audited(self) -> list[Any]:
        """See :class:`Case`."""
        return self.env.audited()

    def refs(self, records: list[str]) -> list[Any]:
        """See :class:`Case`."""
        return sorted(self.env.refs_of([(f"tickets/{r}", self.version[r]) for r in records]))

    def run(self, mode: str = "run") -> RunReport:
        """See :class:`Case`."""
        return self.env.run(mode=mode)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """See :class:`Case`."""
        return self.env.cli(*args, env=env)

    def entries(self) -> list[Any]:
        """See :class:`Case`."""
        return self.env.entries()


@pytest.fixture(params=["sql-postgresql", "sql-sqlite", "s3"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    """Each kind of store with the scenario seeded."""
    if request.param == "s3":
        made: Case = S3Case(request.getfixturevalue("s3env"))
        made.seed()
        yield made
        return
    url = request.getfixturevalue("pg_url") if request.param == "sql-postgresql" else f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    sql_env.create_schema(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    made = SqlCase(sql_env.Env(request.param.removeprefix("sql-"), url, engine, tmp_path, now))
    made.seed()
    yield made
    engine.dispose()


class TestEveryKindIsRegistered:
    """The suite covers every registered kind of store."""

    def test_cases_cover_the_registry(self) -> None:
        """A kind without a case here would escape the contract."""
        assert {"sql", "s3"} == {k.kind for k in registry.kinds()}


class TestContract:
    """What every store kind guarantees, checked on the same scenario."""

    def test_plan_equals_run_on_unchanged_data(self, case: Case) -> None:
        """The plan's eligible and held figures are what the run then does."""
        plan = case.run(mode="plan")
        report = case.run()
        assert {} == report.failed
        assert [t.eligible for t in plan.targets] == [t.acted for t in report.targets]
        assert [t.held for t in plan.targets] == [t.held for t in report.targets]
        assert len(EXPIRED) == sum(t.acted for t in report.targets)

    def test_oldest_eligible_age(self, case: Case) -> None:
        """The plan names the age of the oldest eligible record (older held ones aside); none once the run is done."""
        plan = case.run(mode="plan")
        assert [case.now - timedelta(days=45)] == [t.oldest for t in plan.targets]
        case.run()
        assert [None] == [t.oldest for t in case.run(mode="plan").targets]

    def test_dry_run_writes_nothing(self, case: Case) -> None:
        """A dry run walks the batches, reports what it would do, and changes no record and no ledger."""
        before = case.present()
        report = case.run(mode="dry-run")
        assert len(EXPIRED) == sum(t.acted for t in report.targets)
        assert before == case.present()
        assert [] == case.entries()

    def test_holds_win(self, case: Case) -> None:
        """Records of a held subject stay, are never audited as deleted, and are counted as held."""
        report = case.run()
        assert set(HELD) | set(YOUNG) == case.present()
        assert case.refs(EXPIRED) == sorted(case.audited())
        assert {"LIT": len(HELD)} == report.targets[0].held

    @pytest.mark.parametrize(
        ("case", "point"),
        [("sql-postgresql", p) for p in SqlCase.crash_points]
        + [("sql-sqlite", p) for p in SqlCase.crash_points]
        + [("s3", p) for p in S3Case.crash_points],
        indirect=["case"],
    )
    def test_crash_at_each_seam_point_then_rerun(self, case: Case, point: str) -> None:
        """After SIGKILL at a seam point and a rerun, each touched record has exactly one outcome."""
        crashed = case.cli("run", env={"RETENTIOND_TEST_CRASH_AT": point})
        assert -signal.SIGKILL == crashed.returncode, crashed.stderr[-2000:]
        gone = [r for r in EXPIRED if r not in case.present()]
        claimed = case.audited()
        assert len(claimed) == len(set(claimed))
        assert set(claimed) <= set(case.refs(gone))  # nothing claimed that still exists
        report = case.run()
        assert {} == report.failed
        assert set(HELD) | set(YOUNG) == case.present()
        assert case.refs(EXPIRED) == sorted(case.audited())
