"""SPEC §5 crash consistency: SIGKILL at many points of ``retentiond run``, then a rerun.

After every crash and a clean rerun: each deleted or anonymized record has exactly one outcome
entry, no outcome entry claims a record that still exists (or was not anonymized), the outbox
is empty, the ledger verifies, and ``reconciled`` appears whenever the crash left outbox rows.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from retentiond.stores.sql.outbox import OUTBOX_TABLE
from retentiond.testing.crashpoints import ENV, POINTS
from tests.stores.sql.conftest import (
    SUPPORT,
    Env,
    anon_category,
    hold,
    ticket_versions,
    tickets,
)

#: Points reached more than once in the scenario crash on the 2nd time: mid-run, after real work.
NTH = {
    "sql_after_select": 2,
    "sql_after_action": 2,
    "sql_after_history": 2,
    "sql_after_outbox_insert": 2,
    "sql_after_commit": 2,
    "relay_after_append": 3,
    "between_batches": 2,
}
#: Points whose crash always leaves committed outcomes in the outbox.
LEAVES_OUTBOX = {"sql_after_commit", "relay_after_append"}


def _setup(env: Env) -> None:
    """Tickets to delete (with prior versions, some held) and to anonymize (Python strategy), batch_size 4."""
    env.configure(
        {
            "support": {**SUPPORT, "prior_versions": "10d"},
            "contact": anon_category("30d", {"email": "null", "ref": "hmac"}, match={"status": "open"}),
        },
        batch_size=4,
    )
    env.write_holds(
        [hold("LIT", ["support"], subjects=["acct_h"]), hold("ALL", ["support"], subjects=["acct_h", "acct_g"])]
    )
    env.insert(
        tickets,
        [
            env.ticket(
                i,
                20 + 2 * i,
                status="open" if i % 3 == 0 else "closed",
                account="acct_h" if i % 7 == 0 else ("acct_g" if i % 11 == 0 else "acct_x"),
                email=f"u{i}@x",
                ref=f"c{i}",
            )
            for i in range(1, 31)
        ],
    )
    env.insert(
        ticket_versions,
        [{"version_id": 100 + i, "ticket_id": i, "superseded_at": env.at(days=20)} for i in range(1, 31)]
        + [{"version_id": 200 + i, "ticket_id": i, "superseded_at": env.at(days=1)} for i in range(1, 31)],
    )


def _outbox_rows(env: Env) -> int:
    with env.engine.connect() as conn:
        if not sa.inspect(conn).has_table(OUTBOX_TABLE):
            return 0
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {OUTBOX_TABLE}")).scalar_one())


def _check_invariants(env: Env) -> None:
    """Assert SPEC §5's invariants on tickets (deleted and anonymized) and ticket_versions."""
    rows = env.rows()
    deleted = Counter(env.audited("tickets", "deleted"))
    anonymized = Counter(env.audited("tickets", "anonymized"))
    for i in range(1, 31):
        ref = env.ref("tickets", i)
        if i not in rows:
            assert (i, 1, 0) == (i, deleted[ref], anonymized[ref])
        elif rows[i]["email"] is None:
            assert (i, 0, 1) == (i, deleted[ref], anonymized[ref])
            assert str(rows[i]["ref"]).startswith("anon:")
        else:
            assert (i, 0, 0) == (i, deleted[ref], anonymized[ref])
    versions = env.ids(ticket_versions)
    claimed = Counter(env.audited("ticket_versions"))
    for v in [100 + i for i in range(1, 31)] + [200 + i for i in range(1, 31)]:
        assert (v, 0 if v in versions else 1) == (v, claimed[env.ref("ticket_versions", v)])
    # No claim on anything else (e.g. refs of rows that never existed).
    assert sum(deleted.values()) + sum(anonymized.values()) == 30 - len(
        [r for r in rows.values() if r["email"] is not None]
    )
    assert 0 == _outbox_rows(env)


def _crash_then_rerun(env: Env, specs: Sequence[str]) -> None:
    """Run once per crash spec (each must die by SIGKILL), then a clean run; check the invariants."""
    leftovers = 0
    for spec in specs:
        done = env.cli("--log-level", "error", "run", env={ENV: spec})
        assert -signal.SIGKILL == done.returncode, done.stderr[-2000:]
        leftovers += _outbox_rows(env)
    if specs[-1].split(":")[0] in LEAVES_OUTBOX:
        assert leftovers > 0
    done = env.cli("--log-level", "error", "run")
    assert 0 == done.returncode, done.stderr[-2000:]
    _check_invariants(env)
    assert (leftovers > 0) == bool(env.entries("reconciled"))
    verified = env.cli("audit", "verify")
    assert 0 == verified.returncode, verified.stdout + verified.stderr
    # A further run (in-process: cheaper than another interpreter) finds nothing to do.
    before = len(env.audited("tickets")) + len(env.audited("ticket_versions"))
    assert 0 == sum(t.acted + t.prior_versions_deleted for t in env.run().targets)
    assert before == len(env.audited("tickets")) + len(env.audited("ticket_versions"))


class TestCrashConsistency:
    """SIGKILL at every crash point (SQLite), at the riskiest ones (PostgreSQL), and during recovery."""

    def test_clean_run_reference(self, sqlite_env: Env) -> None:
        """Without a crash the scenario deletes, anonymizes, holds and expires versions (so crashes hit real work)."""
        _setup(sqlite_env)
        report = sqlite_env.run()
        acted = {t.category: t.acted for t in report.targets}
        assert acted["support"] > 8 and acted["contact"] > 4
        assert {"LIT", "ALL"} == set(sqlite_env.held_counts())
        _check_invariants(sqlite_env)

    @pytest.mark.parametrize("point", POINTS)
    def test_sqlite(self, sqlite_env: Env, point: str) -> None:
        """Crash at ``point`` on SQLite, rerun: invariants hold."""
        _setup(sqlite_env)
        _crash_then_rerun(sqlite_env, [f"{point}:{NTH.get(point, 1)}"])

    @pytest.mark.parametrize(
        "point", ["sql_after_outbox_insert", "sql_after_commit", "relay_after_append", "sql_history_after_delete"]
    )
    def test_postgresql(self, pg_env: Env, point: str) -> None:
        """Crash at ``point`` with the store on PostgreSQL, rerun: invariants hold."""
        _setup(pg_env)
        _crash_then_rerun(pg_env, [f"{point}:{NTH.get(point, 1)}"])

    def test_crash_during_recovery(self, sqlite_env: Env) -> None:
        """A crash after commit, then a crash while the next run relays the outbox, then a clean run."""
        _setup(sqlite_env)
        _crash_then_rerun(sqlite_env, ["sql_after_commit:2", "relay_after_append:1"])
