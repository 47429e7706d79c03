"""Counts are distinct records: a row under two holds is held once (plan, summary, run_finished)."""

from __future__ import annotations

from tests.stores.sql.conftest import SUPPORT, Env, hold, tickets


class TestHeldOnce:
    """Two holds over the same rows: ``held`` counts each row once; per hold stays a breakdown."""

    def test_two_holds_same_rows(self, pg_env: Env) -> None:
        """4 rows under both holds and 1 under one only: held 5 (not 9); per hold 5 and 4."""
        pg_env.configure({"support": SUPPORT})
        pg_env.write_holds(
            [hold("LIT", ["support"], subjects=["acct_h"]), hold("TAX", ["support"], subjects=["acct_h", "acct_t"])]
        )
        rows = [pg_env.ticket(i, 40, account="acct_h") for i in range(1, 5)]
        rows += [pg_env.ticket(5, 40, account="acct_t"), pg_env.ticket(6, 40, account="acct_free")]
        pg_env.insert(tickets, rows)
        plan = pg_env.run(mode="plan")
        report = pg_env.run()
        finished = pg_env.entries("run_finished")
        assert (5, {"LIT": 4, "TAX": 5}) == (plan.targets[0].held_records, plan.targets[0].held)
        assert (5, 5) == (plan.totals()["held"], report.totals()["held"])
        assert [5] == [e.fields["counts"]["held"] for e in finished]
        assert {"LIT": 4, "TAX": 5} == pg_env.held_counts()  # the ledger's per-hold breakdown
        shown = pg_env.cli("plan")
        assert "per hold (overlapping)" in shown.stdout and "LIT:4, TAX:5" in shown.stdout
