"""Whole-partition purge of a range-partitioned target (PostgreSQL): drop, fall back, dry run, archive, crash."""

from __future__ import annotations

import json
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.audit.refs import canonical_key
from retentiond.config.loader import load_config
from retentiond.errors import ConfigError
from retentiond.stores.sql import partition_keys, partitions
from retentiond.stores.sql.partition_catalog import parse_bound
from retentiond.stores.sql.partitions import INTENTS_TABLE, WholePartitions
from retentiond.testing.crashpoints import ENV
from tests.stores.sql.conftest import Env, anon_category, hold, tickets

MONTHS = 12
PER_MONTH = 10
DAY = timedelta(days=1)

# Test DDL: constant text, names are ours.
_PARENT = """
CREATE TABLE tickets (
    id integer NOT NULL, account_id text, status text, closed_at timestamptz NOT NULL, email text, name text,
    ip text, ref text, tier text, born date, seen_at timestamptz, PRIMARY KEY (id, closed_at)
) PARTITION BY RANGE (closed_at)
"""

#: Deletes closed tickets 45 days after closing: leaves 0 (newest) and 1 (straddling) stay with the batches.
CATEGORY: dict[str, Any] = {
    "retain": "45d",
    "action": "delete",
    "sql": [
        {
            "store": "app",
            "table": "tickets",
            "key": ["id", "closed_at"],  # a partitioned table's primary key includes the partition key
            "age_column": "closed_at",
            "subject_column": "account_id",
            "match": {"status": "closed"},
        }
    ],
}


def _bounds(now: datetime, k: int) -> tuple[datetime, datetime]:
    """Return leaf ``k``'s range: 30 days ending ``30 k`` days before ``now`` (k = 0: the newest)."""
    return now - 30 * (k + 1) * DAY, now - 30 * k * DAY


@pytest.fixture
def part_env(pg_url: str, tmp_path: Path) -> Iterator[Env]:
    """An Env whose ``tickets`` is range-partitioned on closed_at: 12 leaves of 30 days, 10 rows each."""
    engine = sa.create_engine(pg_url)
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        conn.execute(sa.text(_PARENT))
        for k in range(MONTHS):
            lo, hi = _bounds(now, k)
            conn.execute(
                sa.text(
                    f"CREATE TABLE tickets_m{k:02d} PARTITION OF tickets FOR VALUES FROM "
                    f"('{lo.isoformat()}') TO ('{hi.isoformat()}')"
                )
            )
    env = Env("postgresql", pg_url, engine, tmp_path, now)
    rows = []
    for k in range(MONTHS):
        for j in range(PER_MONTH):
            i = k * 100 + j
            rows.append(env.ticket(i, _age(k, j), account=f"acct_{i}"))
    env.insert(tickets, rows)
    yield env
    engine.dispose()


def _leaves(env: Env) -> set[str]:
    with env.engine.connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'tickets'::regclass"
                )
            ).scalars()
        )


def _expired(env: Env) -> set[int]:
    return {k * 100 + j for k in range(MONTHS) for j in range(PER_MONTH) if _age(k, j) > 45}


def _age(k: int, j: int) -> float:
    return 30 * k + 1 + j * 2.5


def _check_audit(env: Env, extra: dict[int, datetime] | None = None) -> None:
    """Every removed row has exactly one outcome; no surviving row has one; the ledger verifies."""
    closed = {k * 100 + j: env.at(days=_age(k, j)) for k in range(MONTHS) for j in range(PER_MONTH)}
    closed.update(extra or {})
    by_ref = {env.refs.sql("app", "tickets", [i, at]): i for i, at in closed.items()}
    audited = Counter(by_ref.get(r, -1) for r in env.audited("tickets"))
    assert {i: 1 for i in set(closed) - env.ids()} == dict(audited)
    assert 0 == env.cli("audit", "verify").returncode


class TestParseBound:
    """The bound parser accepts one-column FROM/TO range bounds only."""

    def test_bounds(self) -> None:
        """Literals are unquoted, MINVALUE lower is None; MAXVALUE, lists, two columns, DEFAULT are refused."""
        assert ("2025-01-01 00:00:00+00", "it's") == parse_bound(
            "FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('it''s')"
        )
        assert (None, "2025-02-01") == parse_bound("FOR VALUES FROM (MINVALUE) TO ('2025-02-01')")
        for other in (
            "FOR VALUES FROM ('a') TO (MAXVALUE)",
            "FOR VALUES IN ('a')",
            "FOR VALUES FROM ('a', 1) TO ('b', 2)",
            "DEFAULT",
            "FOR VALUES WITH (modulus 2, remainder 0)",
        ):
            assert None is parse_bound(other)


class TestKeyTexts:
    """The database's canonical key texts equal ``audit.refs.canonical_key``, or are NULL (Python makes them)."""

    def test_key_texts(self, pg_engine: sa.Engine) -> None:
        """Integers, UUIDs, timestamptz (microseconds, any offset), alone and combined; years before 1000: NULL."""
        table = sa.Table(
            "k",
            sa.MetaData(),
            sa.Column("i", sa.BigInteger),
            sa.Column("u", sa.Uuid),
            sa.Column("t", sa.DateTime(timezone=True)),
        )
        table.create(pg_engine)
        plus2 = timezone(timedelta(hours=2))
        rows = [
            (0, uuid.UUID(int=0), datetime(1000, 1, 1, tzinfo=UTC)),
            (-(2**63), uuid.uuid4(), datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC)),
            (2**63 - 1, uuid.uuid4(), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
            (42, uuid.uuid4(), datetime(2024, 2, 29, 0, 30, tzinfo=plus2)),
            (7, uuid.uuid4(), datetime(999, 12, 31, 12, tzinfo=UTC)),
        ]
        with pg_engine.begin() as conn:
            conn.execute(table.insert(), [{"i": i, "u": u, "t": t} for i, u, t in rows])
        for names in (["i"], ["u"], ["t"], ["i", "t"], ["t", "u", "i"]):
            cols = [table.c[n] for n in names]
            expr = partition_keys.key_text_expr(cols)
            assert expr is not None
            with pg_engine.connect() as conn:
                got = conn.execute(sa.select(expr, *cols).order_by(table.c.i)).all()
            expected = [
                None if any(isinstance(v, datetime) and v.year < 1000 for v in r[1:]) else canonical_key(tuple(r[1:]))
                for r in got
            ]
            assert expected == [r[0] for r in got]
        assert None is partition_keys.key_text_expr([sa.column("s", sa.Text)])
        both = partition_keys.key_text_expr([table.c.i, table.c.t])
        assert both is not None

        def chunks(size: int) -> list[tuple[str | None, int]]:
            texts, chunk = partition_keys.chunked_texts(table, both, size)
            with pg_engine.connect() as conn:
                return [(j, int(n)) for j, n in conn.execute(sa.select(texts, sa.func.count()).group_by(chunk))]

        # The year 999 (Python's text): its chunk's array is NULL, the other's is whole.
        halves = chunks(2)
        assert [False, False, True] == sorted(j is None for j, _ in halves)
        assert [1, 2, 2] == sorted(n for _, n in halves)
        with pg_engine.begin() as conn:
            conn.execute(table.delete().where(table.c.i == 7))
        got = chunks(3)
        assert [3, 1] == sorted((n for _, n in got), reverse=True)
        texts = sorted(t for j, _ in got for t in json.loads(j or "null"))
        assert sorted(canonical_key((i, t)) for i, _, t in rows if t.year >= 1000) == texts


class TestArchiveSchemaConfig:
    """``archive_schema`` is a SQL identifier on deleting targets only."""

    def test_refused(self, sqlite_env: Env) -> None:
        """With anonymize, or not an identifier, the config is refused naming the key."""
        anon = anon_category("30d", {"email": "null"})
        for target in (
            {**anon["sql"][0], "archive_schema": "archive"},
            {**CATEGORY["sql"][0], "archive_schema": "a-b"},
        ):
            sqlite_env.configure(
                {"support": {**anon, "action": "anonymize" if "anonymize" in target else "delete", "sql": [target]}}
            )
            with pytest.raises(ConfigError) as caught:
                load_config(sqlite_env.config_path)
            named = [i for i in caught.value.issues if "archive_schema" in f"{i.path} {i.message}"]
            assert 1 == len(named)


class TestWholePurge:
    """Expired, unprotected leaves are dropped whole and audited; the rest goes through the batches."""

    @pytest.mark.parametrize("texts", ["sql", "python"])
    def test_drop_hold_straddle(self, part_env: Env, monkeypatch: pytest.MonkeyPatch, texts: str) -> None:
        """Leaves 2–11 but the held one are dropped; the held row, the straddling leaf's young rows survive."""
        env = part_env
        monkeypatch.setattr(partitions, "CHUNK", 3)  # several outbox rows per partition
        if texts == "python":  # the key texts made by key_text from binary COPY values
            monkeypatch.setattr(partition_keys, "key_text_expr", lambda columns: None)
        else:  # the database makes every text: the Python path is not taken

            def no_python(*args: Any) -> None:
                raise AssertionError("key texts made in Python")

            monkeypatch.setattr(partition_keys, "copy_keys", no_python)
        env.configure({"support": CATEGORY})
        env.write_holds([hold("LIT", ["support"], subjects=["acct_503"])])
        report = env.run()
        assert {} == report.failed
        expected_leaves = {"tickets_m00", "tickets_m01", "tickets_m05"}
        assert expected_leaves == _leaves(env)
        assert {i for i in range(MONTHS * 100) if i % 100 < PER_MONTH} - _expired(env) | {503} == env.ids()
        _check_audit(env)
        assert len(_expired(env)) - 1 == sum(t.acted for t in report.targets)

    @pytest.mark.parametrize("held", [False, True])
    def test_key_text_only_python_writes(self, part_env: Env, held: bool) -> None:
        """A key in the year 999 (SQL cannot write Python's text): audited by the Python path, whole leaf or batch."""
        env = part_env
        oldest = _bounds(env.now, MONTHS - 1)[0]
        ancient = {9999: datetime(999, 6, 1, tzinfo=UTC), 9998: datetime(1500, 6, 1, tzinfo=UTC)}
        with env.engine.begin() as conn:  # test DDL: the bound is ours
            conn.execute(
                sa.text(f"CREATE TABLE tickets_old PARTITION OF tickets FOR VALUES FROM (MINVALUE) TO ('{oldest}')")
            )
        env.insert(tickets, [{**env.ticket(i, 1, account=f"acct_{i}"), "closed_at": at} for i, at in ancient.items()])
        env.configure({"support": CATEGORY})
        # Held: the leaf goes through the batches, whose statement cannot write 9999's text (the
        # batch is redone by the path whose texts Python makes); else it is purged whole.
        env.write_holds([hold("LIT", ["support"], subjects=["acct_9998"])] if held else [])
        report = env.run()
        assert {} == report.failed
        assert held == ("tickets_old" in _leaves(env))
        assert (9999 not in env.ids(), 9998 in env.ids()) == (True, held)
        _check_audit(env, ancient)

    def test_dry_run_lists_and_changes_nothing(self, part_env: Env) -> None:
        """A dry run counts each expired row once (partition step, then batches) and changes nothing."""
        env = part_env
        env.configure({"support": CATEGORY})
        before = env.ids()
        runner = env.runner(mode="dry-run")
        report = runner.execute()
        assert before == env.ids()
        assert {f"tickets_m{k:02d}" for k in range(MONTHS)} == _leaves(env)
        assert len(_expired(env)) == sum(t.acted for t in report.targets)
        assert [] == env.entries()
        whole = {f"public.tickets_m{k:02d}": PER_MONTH for k in range(2, MONTHS)}
        assert [whole] == [t.whole for t in report.targets]

    def test_plan_lists_partitions(self, part_env: Env) -> None:
        """``plan`` names each partition a run would remove whole, with its records; the held one is not listed."""
        env = part_env
        env.configure({"support": CATEGORY})
        env.write_holds([hold("LIT", ["support"], subjects=["acct_503"])])
        done = env.cli("plan")
        assert 0 == done.returncode, done.stderr[-2000:]
        units = ", ".join(f"public.tickets_m{k:02d} ({PER_MONTH} records)" for k in range(2, MONTHS) if k != 5)
        assert [f"WHOLE support app/tickets: would remove whole {units}"] == [
            line for line in done.stdout.splitlines() if line.startswith("WHOLE")
        ]
        assert {f"tickets_m{k:02d}" for k in range(MONTHS)} == _leaves(env)

    def test_archive_schema(self, part_env: Env) -> None:
        """With archive_schema the expired leaves move to that schema instead of being dropped."""
        env = part_env
        with env.engine.begin() as conn:
            conn.execute(sa.text("CREATE SCHEMA archive"))
        env.configure({"support": {**CATEGORY, "sql": [{**CATEGORY["sql"][0], "archive_schema": "archive"}]}})
        env.run()
        assert {"tickets_m00", "tickets_m01"} == _leaves(env)
        with env.engine.connect() as conn:
            moved = set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'archive'")).scalars())
        assert {f"tickets_m{k:02d}" for k in range(2, MONTHS)} == moved
        _check_audit(env)

    def test_not_owner_uses_batches(self, part_env: Env) -> None:
        """A role that does not own the table deletes the same rows in batches; every leaf stays."""
        env = part_env
        role = f"rtd_part_{env.engine.url.database}"
        with env.engine.begin() as conn:
            conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(sa.text(f'GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
            conn.execute(sa.text(f'GRANT CREATE, USAGE ON SCHEMA public TO "{role}"'))
        try:
            env.url = env.engine.url.set(username=role).render_as_string(hide_password=False)
            env.configure({"support": CATEGORY})
            report = env.run()
            assert {} == report.failed
            assert {f"tickets_m{k:02d}" for k in range(MONTHS)} == _leaves(env)
            assert {i for i in range(MONTHS * 100) if i % 100 < PER_MONTH} - _expired(env) == env.ids()
            _check_audit(env)
        finally:
            with env.engine.begin() as conn:
                conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
                conn.execute(sa.text(f'DROP ROLE "{role}"'))

    def test_protected_row_arriving_before_detach(self, part_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """A held row written after the check and before the detach keeps its leaf (attached back, batches)."""
        env = part_env
        env.configure({"support": CATEGORY})
        env.write_holds([hold("LIT", ["support"], subjects=["acct_late"])])
        intend = WholePartitions._intend
        lo, _ = _bounds(env.now, 7)

        def late_writer(self: WholePartitions, leaf: Any) -> None:
            if leaf.name == "tickets_m07":
                env.insert(tickets, [{"id": 9999, "account_id": "acct_late", "status": "closed", "closed_at": lo}])
            intend(self, leaf)

        monkeypatch.setattr(WholePartitions, "_intend", late_writer)
        report = env.run()
        assert {} == report.failed
        assert {"tickets_m00", "tickets_m01", "tickets_m07"} == _leaves(env)
        assert 9999 in env.ids()
        _check_audit(env, {9999: lo})
        assert {i for i in range(MONTHS * 100) if i % 100 < PER_MONTH} - _expired(env) | {9999} == env.ids()
        with env.engine.connect() as conn:
            assert 0 == conn.execute(sa.text(f"SELECT count(*) FROM {INTENTS_TABLE}")).scalar_one()


class TestInterruptedDetach:
    """A DETACH … CONCURRENTLY cancelled in its wait (intent written) is finalized and purged by the next run."""

    def test_pending_detach_finalized(self, part_env: Env) -> None:
        """The leaf left "detach pending" is finalized, dropped and audited once; no intent remains."""
        env = part_env
        env.configure({"support": CATEGORY})
        with env.engine.connect() as conn:
            bound = conn.execute(
                sa.text("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'tickets_m03'")
            ).scalar_one()
        parsed = parse_bound(bound)
        assert parsed is not None
        with env.engine.begin() as conn:
            table = partitions.intents_table(sa.MetaData())
            table.create(conn)
            conn.execute(
                table.insert().values(
                    part_schema="public",
                    part_name="tickets_m03",
                    parent_schema="public",
                    parent_name="tickets",
                    lower=parsed[0],
                    upper=parsed[1],
                    run_id="crashed",
                    created_at=env.now,
                )
            )
        # An open snapshot makes the detach wait; its statement_timeout cancels it: "detach pending".
        with env.engine.connect() as blocker, env.engine.connect() as other:
            blocker.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            blocker.execute(sa.text("SELECT count(*) FROM tickets")).scalar_one()
            other = other.execution_options(isolation_level="AUTOCOMMIT")
            other.execute(sa.text("SET statement_timeout = '500ms'"))
            with pytest.raises(sa.exc.OperationalError):
                other.execute(sa.text("ALTER TABLE tickets DETACH PARTITION tickets_m03 CONCURRENTLY"))
            blocker.rollback()
        with env.engine.connect() as conn:
            assert conn.execute(
                sa.text("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'tickets_m03'::regclass")
            ).scalar_one()
        report = env.run()
        assert {} == report.failed
        assert {"tickets_m00", "tickets_m01"} == _leaves(env)
        assert {i for i in range(MONTHS * 100) if i % 100 < PER_MONTH} - _expired(env) == env.ids()
        with env.engine.connect() as conn:
            assert 0 == conn.execute(sa.text(f"SELECT count(*) FROM {INTENTS_TABLE}")).scalar_one()
        _check_audit(env)


class TestCrash:
    """SIGKILL between a leaf's detach and its drop: the next run finishes it, audited exactly once."""

    @pytest.mark.parametrize(
        "point", ["sql_partition_after_intent", "sql_partition_after_detach", "sql_partition_before_commit"]
    )
    def test_crash_then_rerun(self, part_env: Env, point: str) -> None:
        """After the crash and a clean rerun every expired leaf is gone and each row audited once."""
        env = part_env
        env.configure({"support": CATEGORY})
        done = env.cli("--log-level", "error", "run", env={ENV: f"{point}:2"})
        assert -signal.SIGKILL == done.returncode, done.stderr[-2000:]
        done = env.cli("--log-level", "error", "run")
        assert 0 == done.returncode, done.stderr[-2000:]
        assert {"tickets_m00", "tickets_m01"} == _leaves(env)
        with env.engine.connect() as conn:
            tables = set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
            assert 0 == conn.execute(sa.text(f"SELECT count(*) FROM {INTENTS_TABLE}")).scalar_one()
        assert not {f"tickets_m{k:02d}" for k in range(2, MONTHS)} & tables
        assert {i for i in range(MONTHS * 100) if i % 100 < PER_MONTH} - _expired(env) == env.ids()
        _check_audit(env)
