"""The run driver on both backends: live holds, fail-closed holds, guard, plan = run, clock, re-checks, explain."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import retentiond.stores.sql.store as sql_store
from retentiond.errors import HoldsUnavailable, TemporaryFailure
from retentiond.stores.sql.outbox import Outbox
from tests.stores.sql.conftest import (
    SUPPORT,
    Env,
    anon_category,
    hold,
    ticket_versions,
    tickets,
)


class TestLiveHolds:
    """Rule 2: holds are re-read before every batch and fail closed."""

    def test_hold_saved_mid_run_protects_from_the_next_batch(self, env: Env) -> None:
        """batch_size 2: after the first batch a subject hold is saved; the remaining rows of that subject stay."""
        env.configure({"support": SUPPORT}, batch_size=2)
        env.insert(tickets, [env.ticket(i, 100 - i, account="acct_a" if i <= 2 else "acct_b") for i in range(1, 11)])
        calls: list[int] = []

        def place_hold(_target: str, n: int) -> None:
            calls.append(n)
            if len(calls) == 1:
                env.write_holds([hold("NEW", ["support"], subjects=["acct_b"])])

        report = env.run(progress=place_hold)
        assert {} == report.failed
        assert set(range(3, 11)) == env.ids()
        assert [1, 2] == env.audited_keys()
        assert {"NEW": 8} == env.held_counts()
        assert 1 == len(env.entries("hold_placed"))

    def test_invalid_holds_at_start_stop_everything(self, env: Env) -> None:
        """The CLI exits 78, audits config_rejected and deletes nothing while the file is invalid."""
        env.configure({"support": SUPPORT})
        env.write_holds("[[hold]]\nid = 'X'\nkind = 'legal'\n")  # reason, placed_by... missing
        env.insert(tickets, [env.ticket(1, 40)])
        done = env.cli("run")
        assert 78 == done.returncode, done.stderr
        assert {1} == env.ids()
        assert 1 == len(env.entries("config_rejected"))
        assert [] == env.batches("deleted")
        assert 0 == env.cli("audit", "verify").returncode

    def test_missing_holds_file_stops_everything(self, env: Env) -> None:
        """A missing holds file fails closed like an invalid one."""
        env.configure({"support": SUPPORT})
        env.holds_path.unlink()
        env.insert(tickets, [env.ticket(1, 40)])
        with pytest.raises(HoldsUnavailable):
            env.run()
        assert {1} == env.ids()
        assert 1 == len(env.entries("config_rejected"))

    def test_holds_invalid_mid_run_stop_before_the_next_batch(self, env: Env) -> None:
        """A holds file broken after the first batch stops the run before the second one."""
        env.configure({"support": SUPPORT}, batch_size=2)
        env.insert(tickets, [env.ticket(i, 100 - i) for i in range(1, 7)])

        def break_file(_target: str, _n: int) -> None:
            env.write_holds("this is = = not toml")

        with pytest.raises(HoldsUnavailable):
            env.run(progress=break_file)
        assert {3, 4, 5, 6} == env.ids()
        assert [1, 2] == env.audited_keys()
        assert 1 == len(env.entries("config_rejected"))
        assert ["holds_invalid"] == [e.fields["reason"] for e in env.entries("run_interrupted")]


class TestGuard:
    """Rule 7: the blast-radius guard and --allow-large."""

    def test_guard_trips_and_allow_large_proceeds(self, env: Env) -> None:
        """5 of 10 rows expired with max_fraction 0.25: exit 1, nothing deleted; --allow-large deletes, audited."""
        env.configure({"support": SUPPORT}, max_fraction_per_run=0.25)
        env.insert(tickets, [env.ticket(i, 40 if i <= 5 else 5) for i in range(1, 11)])
        done = env.cli("run")
        assert 1 == done.returncode, done.stderr
        assert set(range(1, 11)) == env.ids()
        tripped = env.entries("guard_tripped")
        assert [("stopped", 5, 10)] == [
            (e.fields["decision"], e.fields["would_act"], e.fields["total"]) for e in tripped
        ]
        done = env.cli("run", "--allow-large", "--reference", "CHG-1234")
        assert 0 == done.returncode, done.stderr
        assert set(range(6, 11)) == env.ids()
        assert ["stopped", "allowed"] == [e.fields["decision"] for e in env.entries("guard_tripped")]
        started = env.entries("run_started")[-1].fields
        assert ("CHG-1234", "CHG-1234", True) == (
            started["reference"],
            env.entries("guard_tripped")[-1].fields["reference"],
            bool(started["actor_user"]),
        )


class TestPlanEqualsRun:
    """Rule 8: plan's numbers equal what run then does on unchanged data."""

    def test_plan_then_run(self, env: Env) -> None:
        """eligible, held per hold and prior versions from plan equal the run's acted, held and history counts."""
        env.configure(
            {
                "support": {**SUPPORT, "prior_versions": "10d"},
                "contact": anon_category("20d", {"email": "null", "ip": "truncate_ip"}, match={"status": "open"}),
            },
            batch_size=3,
        )
        env.write_holds([hold("H", ["support"], subjects=["acct_h"]), hold("T", ["contact"], keep_younger_than="25d")])
        rows = [
            env.ticket(
                i,
                5 + 7 * i,
                account="acct_h" if i % 4 == 0 else "acct_x",
                email="e",
                ip="10.0.0.9",
                status="closed" if i % 3 else "open",
            )
            for i in range(1, 15)
        ]
        env.insert(tickets, rows)
        # Each ticket has an old version (expired by prior_versions from i = 4) and a fresh one
        # (gone only with its ticket).
        env.insert(
            ticket_versions,
            [{"version_id": 100 + i, "ticket_id": i, "superseded_at": env.at(days=3 * i)} for i in range(1, 15)],
        )
        env.insert(
            ticket_versions,
            [{"version_id": 200 + i, "ticket_id": i, "superseded_at": env.at(days=1)} for i in range(1, 15)],
        )
        plan = env.run(mode="plan")
        run = env.run()
        planned = [(t.category, t.eligible, t.held, t.prior_versions_eligible) for t in plan.targets]
        done = [(t.category, t.acted, t.held, t.prior_versions_deleted) for t in run.targets]
        assert planned == done
        assert all(t.eligible > 0 for t in plan.targets)
        assert 0 < _followed(env, "support") < plan.targets[0].prior_versions_eligible

    def test_dry_run_matches_plan(self, env: Env) -> None:
        """A dry run reports what plan counts (rows and prior versions) and changes nothing."""
        env.configure({"support": {**SUPPORT, "prior_versions": "10d"}}, batch_size=2)
        env.insert(tickets, [env.ticket(i, 30 + i) for i in range(1, 6)])
        env.insert(
            ticket_versions,
            [{"version_id": 100 + i, "ticket_id": i, "superseded_at": env.at(days=1)} for i in range(1, 6)],
        )
        plan = env.run(mode="plan")
        dry = env.run(mode="dry-run")
        expected = [(t.eligible, t.prior_versions_eligible) for t in plan.targets]
        assert expected == [(t.acted, t.prior_versions_deleted) for t in dry.targets]
        assert [(5, 5)] == expected
        assert set(range(1, 6)) == env.ids(tickets)


def _followed(env: Env, category: str) -> int:
    """Return the fresh history rows (versions 201..214, which never expire on their own) deleted with their tickets."""
    fresh = {env.ref("ticket_versions", k) for k in range(201, 215)}
    entries = [e for e in env.batches("deleted", "ticket_versions") if e.category == category]
    return sum(1 for e in entries for ref in e.refs if ref in fresh)


class TestClock:
    """Issue 4 item 1: a database clock off by more than max_clock_skew refuses the run (exit 75)."""

    def test_skew_refused_on_postgresql(self, env: Env) -> None:
        """A run an hour off PostgreSQL's clock refuses with exit 75 and touches nothing; SQLite has no clock."""
        env.configure({"support": SUPPORT})
        env.insert(tickets, [env.ticket(1, 40)])
        later = env.now + timedelta(hours=1)
        if env.backend == "postgresql":
            with pytest.raises(TemporaryFailure) as caught:
                env.run(now=later)
            assert 75 == caught.value.exit_code
            assert {1} == env.ids()
            assert [] == env.entries("run_started")
        else:
            env.run(now=later)
            assert set() == env.ids()


class TestStatementRechecks:
    """Rule 5: the DELETE itself re-checks; only RETURNING is audited."""

    def test_rows_changed_between_select_and_delete_are_not_touched(
        self, env: Env, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Between the SELECT and the DELETE a row gets young, one leaves the filter, one comes under a hold."""
        env.configure({"support": SUPPORT})
        env.write_holds([hold("H", ["support"], subjects=["acct_held"])])
        env.insert(tickets, [env.ticket(i, 40 + i) for i in range(1, 7)])
        engines: list[sa.Engine] = []
        real = sql_store.store_engine

        def spy(*args: Any, **kwargs: Any) -> sa.Engine:
            engine = real(*args, **kwargs)
            engines.append(engine)
            fired: list[bool] = []

            @sa.event.listens_for(engine, "before_cursor_execute")
            def change(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                if "DELETE FROM TICKETS" in statement.upper() and not fired:
                    fired.append(True)
                    with env.engine.begin() as other:
                        other.execute(tickets.update().where(tickets.c.id == 1).values(closed_at=env.at(days=1)))
                        other.execute(tickets.update().where(tickets.c.id == 2).values(status="reopened"))
                        other.execute(tickets.update().where(tickets.c.id == 3).values(account_id="acct_held"))

            return engine

        monkeypatch.setattr(sql_store, "store_engine", spy)
        report = env.run()
        assert {} == report.failed
        assert 1 == len(engines)
        assert {1, 2, 3} == env.ids()
        # Only what RETURNING reported is audited: exactly the rows that are gone.
        assert [4, 5, 6] == env.audited_keys()
        assert 3 == report.targets[0].acted

    def test_every_batch_ref_is_a_row_that_is_gone(self, env: Env) -> None:
        """Over several batches with holds, the refs of deleted entries are exactly the rows no longer present."""
        env.configure({"support": SUPPORT}, batch_size=4)
        env.write_holds([hold("H", ["support"], subjects=["acct_3"])])
        env.insert(tickets, [env.ticket(i, 20 + i, account=f"acct_{i % 5}") for i in range(1, 40)])
        before = env.ids()
        env.run()
        gone = before - env.ids()
        assert sorted(gone) == env.audited_keys()
        assert all(i % 5 == 3 or 20 + i <= 30 for i in env.ids())


class TestExplain:
    """``retentiond explain`` says held / not expired / would be deleted, in words."""

    def test_explain_three_rows(self, env: Env) -> None:
        """A held row, a young row and an expired row each get their decision."""
        env.configure({"support": SUPPORT})
        env.write_holds([hold("LIT-7", ["support"], subjects=["acct_h"])])
        env.insert(tickets, [env.ticket(1, 40, account="acct_h"), env.ticket(2, 5), env.ticket(3, 40)])
        said = {k: env.cli("explain", "--store", "app", "--table", "tickets", "--key", str(k)) for k in (1, 2, 3)}
        assert [0, 0, 0] == [p.returncode for p in said.values()]
        assert "held by LIT-7" in said[1].stdout
        assert "not older than the cutoff" in said[2].stdout
        assert "would be deleted" in said[3].stdout
        missing = env.cli("explain", "--store", "app", "--table", "tickets", "--key", "99")
        assert "No row with that key" in missing.stdout


class TestRefusedBeforeAnyWrite:
    """Rule 7 at run time: unsafe targets fail their category before any write; others still run."""

    def test_cascade_into_an_unmanaged_table(self, env: Env) -> None:
        """A foreign key ON DELETE CASCADE from a table outside the category refuses the delete (exit 1)."""
        with env.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE notes (id INTEGER PRIMARY KEY, "
                    "ticket_id INTEGER REFERENCES tickets(id) ON DELETE CASCADE)"
                )
            )
        env.configure(
            {"support": SUPPORT, "contact": anon_category("30d", {"email": "null"}, match={"status": "open"})}
        )
        env.insert(tickets, [env.ticket(1, 40), env.ticket(2, 40, status="open", email="e")])
        report = env.run()
        assert ["support"] == list(report.failed)
        assert "ON DELETE CASCADE" in report.failed["support"]
        assert 1 == report.exit_code
        rows = env.rows()
        assert ({1, 2}, None) == (set(rows), rows[2]["email"])
        assert ["failed"] == [e.fields["outcome"] for e in env.batches(target="tickets") if e.category == "support"]

    def test_naive_age_column_needs_age_timezone(self, pg_env: Env) -> None:
        """On PostgreSQL a timestamp without time zone is refused unless the target declares age_timezone."""
        with pg_env.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE logs (id integer PRIMARY KEY, at timestamp)"))
            conn.execute(
                sa.text(
                    "INSERT INTO logs VALUES (1, now() AT TIME ZONE 'UTC' - interval '40 days'), "
                    "(2, now() AT TIME ZONE 'UTC' - interval '5 days')"
                )
            )
        target = {"store": "app", "table": "logs", "key": ["id"], "age_column": "at"}
        pg_env.configure({"logs": {"retain": "30d", "action": "delete", "sql": [target]}})
        report = pg_env.run()
        assert ["logs"] == list(report.failed)
        pg_env.configure({"logs": {"retain": "30d", "action": "delete", "sql": [{**target, "age_timezone": "UTC"}]}})
        report = pg_env.run()
        assert {} == report.failed
        with pg_env.engine.connect() as conn:
            assert [2] == list(conn.execute(sa.text("SELECT id FROM logs")).scalars())


class TestDryRunAndJson:
    """Rule 8: --dry-run walks the same batches and writes nothing; plan/run speak JSON."""

    def test_dry_run_writes_nothing_and_matches_plan(self, env: Env) -> None:
        """plan --format json and run --dry-run report the same figures; no row, ledger entry or outbox row appears."""
        env.configure({"support": SUPPORT}, batch_size=3)
        env.write_holds([hold("H", ["support"], subjects=["acct_h"])])
        env.insert(tickets, [env.ticket(i, 35 + i, account="acct_h" if i % 4 == 0 else "acct_x") for i in range(1, 11)])
        plan = json.loads(env.cli("--format", "json", "plan").stdout)
        dry = env.cli("--format", "json", "run", "--dry-run")
        assert 0 == dry.returncode, dry.stderr
        dry_report = json.loads(dry.stdout)
        assert [(8, {"H": 2})] == [(t["eligible"], t["held"]) for t in plan["targets"]]
        assert [8] == [t["acted"] for t in dry_report["targets"]]
        assert set(range(1, 11)) == env.ids()
        assert [] == env.entries()
        done = json.loads(env.cli("--format", "json", "run").stdout)
        assert {"deleted": 8, "held": 2, "prior_versions": 0} == done["totals"]


class TestBatchTransactions:
    """Issue 4 item 2: each batch is its own short transaction with lock and statement timeouts."""

    def test_timeouts_set_in_every_batch_on_postgresql(self, pg_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every batch transaction sets lock_timeout and statement_timeout (SET LOCAL) before its DELETE."""
        pg_env.configure({"support": SUPPORT}, batch_size=2)
        pg_env.insert(tickets, [pg_env.ticket(i, 40 + i) for i in range(1, 6)])
        by_thread: dict[int, list[str]] = {}
        real = sql_store.store_engine

        def spy(*args: Any, **kwargs: Any) -> sa.Engine:
            engine = real(*args, **kwargs)

            @sa.event.listens_for(engine, "before_cursor_execute")
            def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                # The ledger relay runs on its own thread: look at the batch thread's statements.
                by_thread.setdefault(threading.get_ident(), []).append(" ".join(statement.split()).upper())

            return engine

        monkeypatch.setattr(sql_store, "store_engine", spy)
        pg_env.run()
        statements = next(s for s in by_thread.values() if any("DELETE FROM TICKETS" in x for x in s))
        deletes = [i for i, s in enumerate(statements) if "DELETE FROM TICKETS" in s]
        # Three batches of two rows (the last picks one row: the selection says it is the last).
        assert 3 == len(deletes)
        # Per batch: set_config(...) before the DELETE (and its keyset SELECT), in one transaction.
        assert [True] * len(deletes) == [any("SET_CONFIG" in s for s in statements[i - 2 : i]) for i in deletes]


class TestOutboxCompression:
    """The outbox's key texts are compressed with lz4 when the role owns the table (PostgreSQL ≥ 14)."""

    def test_existing_outbox_switched_to_lz4(self, pg_env: Env) -> None:
        """An outbox created before (pglz, the default) has lz4 after a run; the run's outcomes are audited."""
        Outbox(pg_env.engine).table.create(pg_env.engine)
        query = sa.text(
            "SELECT attcompression::text FROM pg_attribute "
            "WHERE attrelid = 'retentiond_outbox'::regclass AND attname = 'keys'"
        )
        with pg_env.engine.connect() as conn:
            before = conn.execute(query).scalar_one()
        pg_env.configure({"support": SUPPORT})
        pg_env.insert(tickets, [pg_env.ticket(i, 40) for i in range(1, 4)])

        report = pg_env.run()

        with pg_env.engine.connect() as conn:
            after = conn.execute(query).scalar_one()
        assert ("", "l", {}, [1, 2, 3]) == (before, after, report.failed, pg_env.audited_keys(candidates=range(10)))
