"""The one prior-versions default (docs/decision-rules.md) on both backends: without ``prior_versions``, retain."""

from __future__ import annotations

from tests.stores.sql.conftest import SUPPORT, Env, hold, ticket_versions, tickets


class TestPriorVersionsDefault:
    """Without prior_versions, a history row expires once superseded for the category's retain (30d)."""

    def _seed(self, env: Env) -> None:
        """Two live tickets (one of a held subject) with versions either side of the 30-day retain."""
        assert "prior_versions" not in SUPPORT
        env.configure({"support": SUPPORT})
        env.write_holds([hold("LIT", ["support"], subjects=["acct_7"])])
        env.insert(tickets, [env.ticket(1, 5, account="acct_1"), env.ticket(2, None, account="acct_7")])
        env.insert(
            ticket_versions,
            [
                {"version_id": 10, "ticket_id": 1, "superseded_at": env.at(days=31)},  # older than retain
                {"version_id": 11, "ticket_id": 1, "superseded_at": env.at(days=29)},  # younger
                {"version_id": 20, "ticket_id": 2, "superseded_at": env.at(days=40)},  # older, but held
            ],
        )

    def test_old_version_deleted_young_and_held_stay(self, env: Env) -> None:
        """Version 10 goes and is audited as a prior version; 11 (younger) and 20 (held record's) stay."""
        self._seed(env)
        plan = env.run(mode="plan")
        env.run()
        assert {1, 2} == env.ids()
        assert {11, 20} == env.ids(ticket_versions)
        assert 1 == plan.targets[0].prior_versions_eligible
        history = env.batches("deleted", "ticket_versions")
        assert [(1, 1)] == [(e.fields["count"], e.fields["prior_versions"]) for e in history]
        assert [10] == env.audited_keys("ticket_versions")
        assert [] == env.batches("deleted", "tickets")

    def test_rerun_touches_nothing(self, env: Env) -> None:
        """A second run finds nothing left: the default is applied the same way each time."""
        self._seed(env)
        env.run()
        env.run()
        assert {11, 20} == env.ids(ticket_versions)
        assert [10] == env.audited_keys("ticket_versions")
