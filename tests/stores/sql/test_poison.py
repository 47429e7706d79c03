"""Issue 10, items 1 and 2: one bad record never blocks the rest; transient errors retried, others named."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

import retentiond.stores.sql.retry as sql_retry
from retentiond.testing.crashpoints import ENV
from tests.stores.sql.conftest import SUPPORT, Env, anon_category, ticket_versions, tickets

PLAIN = {"retain": "30d", "action": "delete", "sql": [{**SUPPORT["sql"][0]}]}
PLAIN["sql"][0].pop("history")


def _failed(env: Env) -> list[dict[str, Any]]:
    """Return the ``failed`` batch entries of tickets as (fields, keys) dicts."""
    by_ref = {env.ref("tickets", k): k for k in range(200)}
    return [{**e.fields, "keys": sorted(by_ref[r] for r in e.refs)} for e in env.batches("failed", "tickets") if e.refs]


def _failed_keys(env: Env) -> list[int]:
    return sorted(k for e in _failed(env) for k in e["keys"])


class TestForeignKeyRestrict:
    """A row another table refers to (ON DELETE RESTRICT) is failed alone; every other row goes."""

    @pytest.fixture
    def invoices(self, pg_env: Env) -> Env:
        env = pg_env
        with env.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE invoices (id int PRIMARY KEY, ticket_id int "
                    "CONSTRAINT invoices_ticket_fk REFERENCES tickets(id) ON DELETE RESTRICT)"
                )
            )
        env.configure({"support": PLAIN}, batch_size=4)
        env.insert(tickets, [env.ticket(i, 40 + i) for i in range(1, 21)])
        with env.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO invoices VALUES (1, 3), (2, 7), (3, 18)"))
        return env

    def test_other_rows_deleted_poison_rows_failed_and_audited(self, invoices: Env) -> None:
        """Rows 3, 7 and 18 stay and are audited failed (SQLSTATE, constraint, table); the run exits 1."""
        env = invoices
        done = env.cli("run")
        assert 1 == done.returncode, done.stderr
        assert {3, 7, 18} == env.ids()
        assert sorted(set(range(1, 21)) - {3, 7, 18}) == env.audited_keys()
        assert [3, 7, 18] == _failed_keys(env)
        entry = _failed(env)[0]
        assert ("23503", "invoices_ticket_fk", "invoices") == (
            entry["sqlstate"],
            entry["constraint"],
            entry["relation"],
        )
        assert "FAILED support: 3 records of app/tickets could not be deleted" in done.stdout
        assert "incomplete" not in done.stdout + done.stderr
        assert {"deleted": 17, "failed": 3} == {
            k: v for k, v in env.entries("run_finished")[-1].fields["counts"].items() if v
        }
        assert 0 == env.cli("audit", "verify").returncode

    def test_failed_rows_are_retried_at_the_next_run(self, invoices: Env) -> None:
        """The next run tries them again (failed again while referenced; deleted once the reference is gone)."""
        env = invoices
        env.run()
        plan = env.run(mode="plan")
        assert 3 == plan.targets[0].eligible  # still eligible: plan shows what failed at the last run
        second = env.run()
        assert 3 == second.targets[0].failed
        assert [3, 3, 7, 7, 18, 18] == _failed_keys(env)
        with env.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM invoices"))
        third = env.run()
        assert ({}, set()) == (third.failed, env.ids())
        assert list(range(1, 21)) == env.audited_keys()

    def test_config_validate_connect_warns_naming_the_referencing_table(self, invoices: Env) -> None:
        """``config validate --connect`` warns about the restricting key, naming public.invoices."""
        done = invoices.cli("config", "validate", "--connect")
        assert 0 == done.returncode, done.stderr
        assert "warning: foreign key public.invoices(ticket_id)" in done.stdout
        assert "ON DELETE RESTRICT" in done.stdout


class TestConstraintOnAnonymization:
    """A unique or check constraint an anonymization hits fails those rows only."""

    def test_unique_index_hit_by_a_fixed_value(self, env: Env) -> None:
        """Every row set to the same unique value: one is anonymized, the others failed (both backends)."""
        with env.engine.begin() as conn:
            conn.execute(sa.text("CREATE UNIQUE INDEX tickets_tier_key ON tickets (tier)"))
        env.configure({"contact": anon_category("30d", {"tier": "fixed:gone"})}, batch_size=4)
        env.insert(tickets, [env.ticket(i, 40 + i, tier=f"t{i}") for i in range(1, 11)])
        report = env.run()
        tiers = {i: r["tier"] for i, r in env.rows().items()}
        assert 1 == list(tiers.values()).count("gone")
        assert 1 == len(env.audited_keys(outcome="anonymized"))
        assert 9 == len(_failed_keys(env)) == report.targets[0].failed
        expected = "23505" if env.backend == "postgresql" else "23000"
        assert {expected} == {e["sqlstate"] for e in _failed(env)}
        assert "contact" in report.failed
        assert "incomplete" not in report.failed["contact"]

    def test_check_constraint_with_a_python_strategy(self, pg_env: Env) -> None:
        """Nulling email breaks a CHECK on VIP rows: they fail (23514, the constraint named), the rest is anonymized."""
        env = pg_env
        with env.engine.begin() as conn:
            conn.execute(
                sa.text("ALTER TABLE tickets ADD CONSTRAINT vip_email CHECK (email IS NOT NULL OR tier <> 'vip')")
            )
        env.configure({"contact": anon_category("30d", {"email": "null", "ref": "hmac"})}, batch_size=3)
        env.insert(
            tickets,
            [
                env.ticket(i, 40 + i, email=f"u{i}@x", ref=f"r{i}", tier="vip" if i in (2, 5) else "std")
                for i in range(1, 9)
            ],
        )
        report = env.run()
        rows = env.rows()
        assert {2, 5} == {i for i, r in rows.items() if r["email"] is not None}
        assert [2, 5] == _failed_keys(env)
        assert {("23514", "vip_email", "tickets")} == {
            (e["sqlstate"], e["constraint"], e["relation"]) for e in _failed(env)
        }
        assert 6 == report.targets[0].acted


class TestTriggerRaises:
    """A trigger that refuses some deletes (RAISE) fails those rows; the keyset pass still reaches every row."""

    def test_trigger_refusing_every_tenth_row(self, env: Env) -> None:
        """ids 10, 20, 30 refused by the trigger stay with their prior versions; the other 27 and theirs go."""
        with env.engine.begin() as conn:
            if env.backend == "postgresql":
                conn.execute(
                    sa.text(
                        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                        "IF OLD.id % 10 = 0 THEN RAISE EXCEPTION 'ticket % is special', OLD.id; END IF; "
                        "RETURN OLD; END $$"
                    )
                )
                conn.execute(
                    sa.text("CREATE TRIGGER refuse BEFORE DELETE ON tickets FOR EACH ROW EXECUTE FUNCTION refuse()")
                )
            else:
                conn.execute(
                    sa.text(
                        "CREATE TRIGGER refuse BEFORE DELETE ON tickets WHEN old.id % 10 = 0 "
                        "BEGIN SELECT RAISE(ABORT, 'special'); END"
                    )
                )
        env.configure({"support": SUPPORT}, batch_size=7)
        env.insert(tickets, [env.ticket(i, 40 + i) for i in range(1, 31)])
        env.insert(
            ticket_versions,
            [{"version_id": 100 + i, "ticket_id": i, "superseded_at": env.at(days=1)} for i in range(1, 31)],
        )
        report = env.run()
        assert {10, 20, 30} == env.ids()
        assert {110, 120, 130} == env.ids(ticket_versions)
        assert [10, 20, 30] == _failed_keys(env)
        expected = "P0001" if env.backend == "postgresql" else "23000"
        assert {expected} == {e["sqlstate"] for e in _failed(env)}
        assert "3 records of app/tickets could not be deleted" in report.failed["support"]
        ledger_text = json.dumps([e.fields for e in env.entries()])
        assert "special" not in ledger_text  # the trigger's message (values) never reaches the ledger

    def test_crash_after_a_split_batch_commits(self, pg_env: Env) -> None:
        """SIGKILL after a split batch's COMMIT: the rerun relays its deleted and failed outcomes exactly once."""
        env = pg_env
        with env.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF OLD.id = 2 THEN RAISE EXCEPTION 'no'; END IF; RETURN OLD; END $$"
                )
            )
            conn.execute(
                sa.text("CREATE TRIGGER refuse BEFORE DELETE ON tickets FOR EACH ROW EXECUTE FUNCTION refuse()")
            )
        env.configure({"support": PLAIN}, batch_size=4)
        env.insert(tickets, [env.ticket(i, 40 - i) for i in range(1, 9)])
        done = env.cli("--log-level", "error", "run", env={ENV: "sql_after_commit:1"})
        assert -signal.SIGKILL == done.returncode, done.stderr[-2000:]
        assert {2, 5, 6, 7, 8} == env.ids()
        env.cli("--log-level", "error", "run")
        assert {2} == env.ids()
        assert [1, 3, 4, 5, 6, 7, 8] == env.audited_keys()
        assert [2, 2] == _failed_keys(env)  # once per run: the crashed run's, relayed, and the rerun's
        assert 1 == len(env.entries("reconciled"))
        assert 0 == env.cli("audit", "verify").returncode


class TestTransientErrors:
    """Lock timeouts are retried per batch with growing waits, then fail the category with the SQLSTATE."""

    def _locker(self, env: Env, row: int, release_after: float | None) -> threading.Event:
        """Hold a row lock on ``row`` from another connection; release it after ``release_after`` s (or when set)."""
        locked, stop = threading.Event(), threading.Event()

        def hold() -> None:
            with env.engine.connect() as conn:
                conn.execute(sa.text("SELECT id FROM tickets WHERE id = :id FOR UPDATE"), {"id": row})
                locked.set()
                stop.wait(release_after)
                conn.rollback()

        threading.Thread(target=hold, daemon=True).start()
        assert locked.wait(10)
        return stop

    def test_lock_timeout_retried_then_succeeding(self, pg_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """A row locked for ~2.5 s: the batch times out, waits, is retried and deletes everything."""
        env = pg_env
        env.configure({"support": PLAIN}, store={"lock_timeout": "1s", "retry_wait": "1s"}, batch_size=5)
        env.insert(tickets, [env.ticket(i, 40 + i) for i in range(1, 11)])
        waits: list[float] = []
        real_sleep = sql_retry.sleep
        monkeypatch.setattr(sql_retry, "sleep", lambda s: (waits.append(s), real_sleep(s)))
        stop = self._locker(env, 3, release_after=2.5)
        report = env.run()
        stop.set()
        assert ({}, set()) == (report.failed, env.ids())
        assert list(range(1, 11)) == env.audited_keys()
        assert 1 <= len(waits)
        assert all(1.0 <= w < 1.5 or w >= 2.0 for w in waits)
        assert waits == sorted(waits)

    def test_lock_timeout_exhausting_the_retries(self, pg_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """Locked throughout: three attempts with growing waits, then the category fails naming 55P03."""
        env = pg_env
        env.configure({"support": PLAIN}, store={"lock_timeout": "1s", "retry_attempts": 3}, batch_size=20)
        env.insert(tickets, [env.ticket(i, 40 + i) for i in range(1, 11)])
        waits: list[float] = []
        monkeypatch.setattr(sql_retry, "sleep", waits.append)
        stop = self._locker(env, 3, release_after=None)
        try:
            started = time.monotonic()
            report = env.run()
        finally:
            stop.set()
        assert 2 == len(waits) and waits[0] < waits[1]
        assert time.monotonic() - started < 30
        reason = report.failed["support"]
        assert "SQLSTATE 55P03 LockNotAvailable" in reason
        assert "lock timeout" in reason
        assert "after 3 attempts" in reason
        assert set(range(1, 11)) == env.ids()


class TestConnectionErrors:
    """A database that does not exist is a configuration error (78), named by SQLSTATE and message."""

    def test_missing_database_exits_78(self, pg_env: Env) -> None:
        """``run`` and ``plan`` on a database that does not exist exit 78 (not 75), naming stores.app.url."""
        env = pg_env
        env.url = sa.make_url(env.url).set(database="rtd_no_such_database").render_as_string(hide_password=False)
        env.configure({"support": PLAIN})
        for command in ("run", "plan"):
            done = env.cli(command)
            assert 78 == done.returncode, (command, done.stderr)
            assert "stores.app.url" in done.stderr
            assert "3D000" in done.stderr
            assert "Traceback" not in done.stderr

    def test_malformed_url_from_the_environment_exits_78(self, pg_env: Env) -> None:
        """A port that is not a number in ``url_env``: exit 78 naming stores.app.url, no traceback, URL not echoed."""
        env = pg_env
        env.configure({"support": PLAIN})
        text = env.config_path.read_text(encoding="utf-8")
        env.config_path.write_text(
            text.replace(f"url = {json.dumps(env.url)}", 'url_env = "APP_URL"'), encoding="utf-8"
        )
        assert "APP_URL" in env.config_path.read_text(encoding="utf-8")
        for command in (("plan",), ("run",), ("config", "validate", "--connect")):
            done = env.cli(*command, env={"APP_URL": "postgresql+psycopg://postgres@127.0.0.1:notaport/x"})
            assert 78 == done.returncode, (command, done.stderr)
            assert "stores.app" in done.stderr
            assert "notaport" not in done.stderr
            assert "Traceback" not in done.stderr
