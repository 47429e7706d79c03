"""Issue 18: a run leaves no expired row behind, however the ages tie and however they are stored.

The batch cursor walks ``(age, key)`` in the database's own order; ages tie across batch
boundaries (SQLite's ``datetime()`` stores whole seconds), are stored in several text formats
on SQLite (space or ``T``, fractions, ``Z``, offsets, dates, Unix epochs), and text keys sort by
the column's collation on PostgreSQL. One run must remove exactly the unprotected expired rows.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentiond.actions.run import Runner
from retentiond.audit.signing import generate_key_pair
from retentiond.cli.render import toml_like
from retentiond.config.loader import load_config
from tests.stores.sql.conftest import SUPPORT, Env, tickets

#: The run's clock: now (PostgreSQL refuses a run whose clock differs from the server's).
NOW = datetime.now(UTC).replace(microsecond=0)
RETAIN = timedelta(days=30)
FLOOR = timedelta(days=40)  # the tax hold keeps records younger than this
CUTOFF = NOW - RETAIN
HOLD_FLOOR = NOW - FLOOR
#: The instants rows take: many rows share each one, around the cutoff and the hold's floor.
INSTANTS = [
    CUTOFF - timedelta(days=400),
    HOLD_FLOOR - timedelta(seconds=1),
    HOLD_FLOOR + timedelta(seconds=1),
    CUTOFF - timedelta(days=1),
    CUTOFF - timedelta(seconds=1),
    CUTOFF,
    CUTOFF + timedelta(seconds=1),
    CUTOFF + timedelta(days=3),
    (NOW - timedelta(days=45)).replace(hour=0, minute=0, second=0),  # midnight: also written as a bare date
]
BERLIN = ZoneInfo("Europe/Berlin")


def sqlite_text(instant: datetime, form: str, zone: ZoneInfo | None) -> Any:
    """Return ``instant`` as an application might have stored it in an SQLite DATETIME column.

    Naive forms are wall time in ``zone`` (UTC when None); ``Z``, offsets and epochs are absolute.
    """
    wall = instant.astimezone(zone or UTC)
    if form == "datetime()":
        return wall.strftime("%Y-%m-%d %H:%M:%S")
    if form == "sqlalchemy":
        return wall.strftime("%Y-%m-%d %H:%M:%S.%f")
    if form == "T":
        return wall.strftime("%Y-%m-%dT%H:%M:%S")
    if form == "minutes" and wall.second == 0:
        return wall.strftime("%Y-%m-%d %H:%M")
    if form == "date" and (wall.hour, wall.minute, wall.second) == (0, 0, 0):
        return wall.strftime("%Y-%m-%d")
    if form == "Z":
        return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "offset":
        return instant.astimezone(ZoneInfo("America/New_York")).isoformat()
    if form == "epoch":
        return int(instant.timestamp())
    return wall.strftime("%Y-%m-%d %H:%M:%S")


SQLITE_FORMS = ["datetime()", "sqlalchemy", "T", "minutes", "date", "Z", "offset", "epoch"]


@dataclass(frozen=True)
class Generated:
    """One random table: rows (key, subject, age instant or None, storage form) and the run's settings."""

    rows: list[tuple[Any, str, datetime | None, str]]
    key_kind: str  # int | text | composite
    batch_size: int
    zone: ZoneInfo | None
    tax_hold: bool


TEXT_KEYS = ["a", "B", "b", "Ab", "aB", "_x", "1", "Z", "z", "é", "E", "ab", "a b", "A"]


@st.composite
def tables(draw: st.DrawFn, dialect: str) -> Generated:
    """Return random rows with many ties, keys of every kind and a random batch size."""
    key_kind = draw(st.sampled_from(["int", "text", "composite"]))
    n = draw(st.integers(1, 60))
    rows: list[tuple[Any, str, datetime | None, str]] = []
    used: set[Any] = set()
    for i in range(n):
        if key_kind == "int":
            key: Any = draw(st.integers(-1000, 1000).filter(lambda k: k not in used))
        elif key_kind == "text":
            key = draw(st.sampled_from(TEXT_KEYS)) + str(i)
        else:
            key = (draw(st.integers(0, 3)), draw(st.sampled_from(TEXT_KEYS)) + str(i))
        used.add(key)
        age = None if draw(st.integers(0, 9)) == 0 else draw(st.sampled_from(INSTANTS))
        form = draw(st.sampled_from(SQLITE_FORMS)) if dialect == "sqlite" else "native"
        rows.append((key, draw(st.sampled_from(["s1", "s2", "s3"])), age, form))
    return Generated(
        rows=rows,
        key_kind=key_kind,
        batch_size=draw(st.integers(1, 50)),
        zone=draw(st.sampled_from([None, BERLIN])),
        tax_hold=draw(st.booleans()),
    )


def expected_survivors(generated: Generated) -> set[Any]:
    """Return the keys a correct run keeps: not expired, or held (subject s1; the tax floor)."""
    keep = set()
    for key, subject, age, _ in generated.rows:
        expired = age is not None and age < CUTOFF
        floor_held = generated.tax_hold and age is not None and age > HOLD_FLOOR
        if not expired or subject == "s1" or floor_held:
            keep.add(key)
    return keep


def expected_oldest(generated: Generated) -> datetime | None:
    """Return the age of the oldest row a correct run acts on (None: none)."""
    survivors = expected_survivors(generated)
    ages = [age for key, _, age, _ in generated.rows if key not in survivors and age is not None]
    return min(ages, default=None)


@dataclass
class Table:
    """A database with the generated table, a config and a ledger in ``directory``."""

    dialect: str
    url: str
    directory: Path

    def write(self, generated: Generated, *, create: bool = True) -> None:
        """(Re)create the table ``records`` with the generated rows (unless not ``create``); write the config."""
        key_columns = ["k"] if generated.key_kind != "composite" else ["k1", "k2"]
        if create and self.dialect == "sqlite":
            self._sqlite(generated)
        elif create:
            self._postgresql(generated)
        keys = self.directory / "keys"
        if not keys.exists():
            keys.mkdir()
            (keys / "hmac.key").write_bytes(b"k" * 32)
            pem, _, _ = generate_key_pair()
            (keys / "signing.pem").write_bytes(pem)
            os.chmod(keys / "signing.pem", 0o600)
        target: dict[str, Any] = {
            "store": "app",
            "table": "records",
            "key": key_columns,
            "age_column": "created_at",
            "subject_column": "subject",
        }
        if generated.zone is not None:
            target["age_timezone"] = generated.zone.key
        data = {
            "daemon": {
                # A fresh state per example: holds remembered from an earlier example would still
                # protect in their release grace (correctly), which this test is not about.
                "state_dir": str(self.directory / f"state-{uuid.uuid4().hex}"),
                "holds_file": str(self.directory / "holds.toml"),
                "metrics_listen": "",
                "max_fraction_per_run": 1.0,
                "batch_size": generated.batch_size,
                # NOW is fixed when this module is imported, and a full suite reaches this test many
                # minutes later; the clock check itself is tested in test_run.py.
                "max_clock_skew": "1d",
            },
            "audit": {"hmac_key_file": str(keys / "hmac.key"), "signing_key_file": str(keys / "signing.pem")},
            "stores": {"app": {"kind": "sql", "url": self.url}},
            "categories": {"records": {"retain": "30d", "action": "delete", "sql": [target]}},
        }
        (self.directory / "retention.toml").write_text(toml_like(data), encoding="utf-8")
        holds = [
            '[[hold]]\nid = "LEGAL"\nkind = "legal"\nreason = "r"\nplaced_by = "legal"\n'
            'placed_at = 2020-01-01\ncategories = ["records"]\nsubjects = ["s1"]\n'
        ]
        if generated.tax_hold:
            holds.append(
                '[[hold]]\nid = "TAX"\nkind = "tax"\nreason = "r"\nplaced_by = "finance"\n'
                'placed_at = 2020-01-01\ncategories = ["*"]\nkeep_younger_than = "40d"\n'
            )
        (self.directory / "holds.toml").write_text("\n".join(holds), encoding="utf-8")

    def _sqlite(self, generated: Generated) -> None:
        path = self.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as con:
            con.execute("DROP TABLE IF EXISTS records")
            if generated.key_kind == "composite":
                con.execute(
                    "CREATE TABLE records (k1 INTEGER, k2 TEXT, subject TEXT, created_at DATETIME, "
                    "PRIMARY KEY (k1, k2))"
                )
            else:
                kind = "INTEGER" if generated.key_kind == "int" else "TEXT"
                con.execute(f"CREATE TABLE records (k {kind} PRIMARY KEY, subject TEXT, created_at DATETIME)")
            con.execute("CREATE INDEX ix_records_created_at ON records (created_at)")
            values = [
                (*_key_tuple(k), s, None if age is None else sqlite_text(age, form, generated.zone))
                for k, s, age, form in generated.rows
            ]
            marks = ", ".join("?" * len(values[0]))
            con.executemany(f"INSERT INTO records VALUES ({marks})", values)

    def _postgresql(self, generated: Generated) -> None:
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS records")
                # A linguistic collation: "a" < "B" < "b", not the code-point order Python sorts by.
                text = 'text COLLATE "en-x-icu"'
                age = "timestamp" if generated.zone is not None else "timestamptz"
                if generated.key_kind == "composite":
                    columns = f"k1 integer, k2 {text}, subject text, created_at {age}, PRIMARY KEY (k1, k2)"
                else:
                    kind = "integer" if generated.key_kind == "int" else text
                    columns = f"k {kind} PRIMARY KEY, subject text, created_at {age}"
                conn.exec_driver_sql(f"CREATE TABLE records ({columns})")
                conn.exec_driver_sql("CREATE INDEX ix_records_created_at ON records (created_at)")
                table = sa.Table("records", sa.MetaData(), autoload_with=conn)
                names = [c.name for c in table.c]
                rows = []
                for k, s, instant, _ in generated.rows:
                    stored = instant
                    if instant is not None and generated.zone is not None:
                        stored = instant.astimezone(generated.zone).replace(tzinfo=None)
                    rows.append(dict(zip(names, (*_key_tuple(k), s, stored), strict=True)))
                conn.execute(table.insert(), rows)
        finally:
            engine.dispose()

    def keys(self, generated: Generated) -> set[Any]:
        """Return the keys left in the table."""
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                columns = "k1, k2" if generated.key_kind == "composite" else "k"
                rows = conn.exec_driver_sql(f"SELECT {columns} FROM records").all()
        finally:
            engine.dispose()
        if generated.key_kind == "composite":
            return {(r[0], r[1]) for r in rows}
        return {r[0] for r in rows}

    def runner(self, mode: str = "run") -> Runner:
        """Return a Runner at ``NOW`` on the written config."""
        return Runner(load_config(self.directory / "retention.toml"), mode=mode, now=NOW)


def _key_tuple(key: Any) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


@pytest.fixture(params=["sqlite", "postgresql"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Table]:
    """An empty database of either dialect (one per test; examples recreate the table)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'app.db'}"
    yield Table(request.param, url, tmp_path)


class TestOneRunLeavesNothingBehind:
    """Issue 18: exactly the unprotected expired rows go, in one run, whatever the ties and formats."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_random_ties_keys_formats_and_batch_sizes(self, table: Table, data: st.DataObject) -> None:
        """One run removes exactly the expired, unheld rows; a plan afterwards finds nothing eligible."""
        generated = data.draw(tables(table.dialect))
        table.write(generated)
        report = table.runner().execute()
        assert {} == report.failed
        assert expected_survivors(generated) == table.keys(generated)
        plan = table.runner("plan").execute()
        assert [0] == [t.eligible for t in plan.targets]

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_plan_names_the_oldest_eligible_age(self, table: Table, data: st.DataObject) -> None:
        """Issue 17: the plan's oldest is the earliest age of the rows a run acts on, whatever the formats, zone."""
        generated = data.draw(tables(table.dialect))
        table.write(generated)
        plan = table.runner("plan").execute()
        assert [expected_oldest(generated)] == [t.oldest for t in plan.targets]

    def test_sqlite_datetime_ties_at_batch_boundaries(self, tmp_path: Path) -> None:
        """The reproduction: 20,000 rows with 300 distinct datetime() values, batch 1000, all deleted at once."""
        path = tmp_path / "app.db"
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE records (k INTEGER PRIMARY KEY, subject TEXT, created_at DATETIME)")
            con.execute("CREATE INDEX ix_records_created_at ON records (created_at)")
            con.executemany(
                "INSERT INTO records VALUES (?, 's2', datetime(?, ?))",
                [(i, NOW.strftime("%Y-%m-%d %H:%M:%S"), f"-{400 + i % 300} days") for i in range(20_000)],
            )
        generated = Generated(rows=[], key_kind="int", batch_size=1000, zone=None, tax_hold=False)
        table = Table("sqlite", f"sqlite:///{path}", tmp_path)
        table.write(generated, create=False)
        plan = table.runner("plan").execute()
        assert [20_000] == [t.eligible for t in plan.targets]
        report = table.runner().execute()
        assert {} == report.failed
        assert 20_000 == report.targets[0].acted
        assert set() == table.keys(generated)


class TestCompletenessCheck:
    """Issue 18 item 2: a pass that ends while eligible records remain is retried once, then fails loudly."""

    @staticmethod
    def _stop_early(monkeypatch: pytest.MonkeyPatch, passes_cut: int) -> list[int]:
        """Make the first batch of the first ``passes_cut`` passes claim the target is exhausted (a cursor bug)."""
        from retentiond.stores.sql.worker import TargetWorker

        real = TargetWorker.run_batch
        calls: list[int] = []

        def cut(self: TargetWorker, cursor: Any, *args: Any, **kwargs: Any) -> Any:
            first = cursor.after is None
            result = real(self, cursor, *args, **kwargs)
            if first:
                calls.append(1)
                if len(calls) <= passes_cut:
                    result.exhausted = True
            return result

        monkeypatch.setattr(TargetWorker, "run_batch", cut)
        return calls

    def test_rows_left_by_a_pass_are_taken_by_a_second(self, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """A pass that stops early (rows changed behind the cursor) is followed by one more; nothing is left."""
        env.configure({"support": SUPPORT}, batch_size=2)
        env.insert(tickets, [env.ticket(i, 40) for i in range(1, 8)])
        passes = self._stop_early(monkeypatch, passes_cut=1)
        report = env.run()
        assert {} == report.failed
        assert set() == env.ids()
        assert 2 == len(passes)
        assert list(range(1, 8)) == env.audited_keys()

    def test_rows_still_left_fail_the_category(self, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """Still eligible after two passes: the category fails (exit 1), the count is audited as failed."""
        env.configure({"support": SUPPORT}, batch_size=2)
        env.insert(tickets, [env.ticket(i, 40) for i in range(1, 8)])
        self._stop_early(monkeypatch, passes_cut=2)
        report = env.run()
        assert 1 == report.exit_code
        assert report.failed["support"].startswith("incomplete: 3 eligible records of app/tickets remain")
        assert 3 == len(env.ids())
        assert [3] == [e.fields["count"] for e in env.batches("failed", "tickets")]
        assert ["support"] == list(env.entries("run_finished")[0].fields["failed_categories"])

    def test_dry_run_is_not_checked(self, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """A dry run acts on nothing, so nothing it leaves is a failure."""
        env.configure({"support": SUPPORT}, batch_size=2)
        env.insert(tickets, [env.ticket(i, 40) for i in range(1, 8)])
        report = env.run(mode="dry-run")
        assert {} == report.failed
        assert 7 == len(env.ids())
