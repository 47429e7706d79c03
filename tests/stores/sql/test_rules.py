"""SPEC §4 rules 1, 3, 4 and 6 on both backends: cutoff, holds, overlap, prior versions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from retentiond.stores.sql.anonymize import Pseudonymizer
from tests.stores.sql.conftest import (
    SUPPORT,
    Env,
    anon_category,
    hold,
    ticket_versions,
    tickets,
)


class TestCutoff:
    """Rule 3: strictly older than run_start - retain; NULL never expires."""

    def test_one_second_either_side_of_the_cutoff(self, env: Env) -> None:
        """A row 1 s older than the cutoff is deleted, 1 s younger is kept, NULL age is kept."""
        env.configure({"support": SUPPORT})
        env.insert(
            tickets,
            [env.ticket(1, 30, seconds=1), env.ticket(2, 30, seconds=-1), env.ticket(3, None), env.ticket(4, 30)],
        )
        report = env.run()
        assert {} == report.failed
        # Row 4 is exactly at the cutoff: not strictly older, so kept.
        assert {2, 3, 4} == env.ids()
        assert [1] == env.audited_keys()
        started = env.entries("run_started")
        assert 1 == len(started)
        recorded = datetime.fromisoformat(str(started[0].fields["cutoffs"]["support"]))
        assert env.now - timedelta(days=30) == recorded

    def test_match_filter_restricts_the_category(self, env: Env) -> None:
        """An expired row that the match filter excludes (or whose filter column is NULL) is kept."""
        env.configure({"support": SUPPORT})
        env.insert(tickets, [env.ticket(1, 40), env.ticket(2, 40, status="open"), env.ticket(3, 40, status=None)])
        env.run()
        assert {2, 3} == env.ids()


class TestHolds:
    """Rule 1: holds win, by category, by subject, with expiry, with a tax floor."""

    def test_hold_by_category_protects_every_row(self, env: Env) -> None:
        """A category hold keeps every expired row and the ledger counts them per hold."""
        env.configure({"support": SUPPORT})
        env.write_holds([hold("LIT-1", ["support"])])
        env.insert(tickets, [env.ticket(i, 40) for i in range(1, 4)])
        env.run()
        assert {1, 2, 3} == env.ids()
        assert {"LIT-1": 3} == env.held_counts()
        assert [] == env.audited()

    def test_hold_by_subject_protects_only_that_subject(self, env: Env) -> None:
        """A subject hold keeps that subject's rows; rows of other subjects and without subject go."""
        env.configure({"support": SUPPORT})
        env.write_holds([hold("LIT-2", ["support"], subjects=["acct_7", "acct_8"])])
        env.insert(
            tickets,
            [
                env.ticket(1, 40, account="acct_7"),
                env.ticket(2, 40, account="acct_8"),
                env.ticket(3, 40, account="acct_9"),
                env.ticket(4, 40, account=None),
            ],
        )
        env.run()
        assert {1, 2} == env.ids()
        assert {"LIT-2": 2} == env.held_counts()

    def test_subject_hold_without_subject_column_fails_closed(self, env: Env) -> None:
        """On a table without subject_column a subject hold protects every row: whose data it is is unknown."""
        target = {k: v for k, v in SUPPORT["sql"][0].items() if k not in ("subject_column", "history")}
        env.configure({"support": {**SUPPORT, "sql": [target]}})
        env.write_holds([hold("LIT-S", ["support"], subjects=["acct_7"])])
        env.insert(tickets, [env.ticket(1, 40, account="acct_7"), env.ticket(2, 40, account="acct_8")])
        env.run()
        assert {1, 2} == env.ids()
        assert {"LIT-S": 2} == env.held_counts()

    def test_hold_on_other_category_does_not_protect(self, env: Env) -> None:
        """A hold naming another category does not protect this category's rows."""
        env.configure({"support": SUPPORT, "other": anon_category("60d", {"email": "null"}, match={"status": "x"})})
        env.write_holds([hold("LIT-3", ["other"])])
        env.insert(tickets, [env.ticket(1, 40)])
        env.run(categories=["support"])
        assert set() == env.ids()

    def test_expired_hold_does_not_protect(self, env: Env) -> None:
        """A hold whose expires_at has passed protects nothing; one not yet placed protects nothing."""
        env.configure({"support": SUPPORT})
        yesterday = (env.now - timedelta(days=2)).date()
        tomorrow = (env.now + timedelta(days=2)).date()
        env.write_holds(
            [
                hold("OLD", ["support"], expires_at=yesterday),
                hold("FUTURE", ["support"], placed_at=tomorrow),
                hold("LIVE", ["support"], subjects=["acct_2"], expires_at=tomorrow),
            ]
        )
        env.insert(tickets, [env.ticket(1, 40, account="acct_1"), env.ticket(2, 40, account="acct_2")])
        env.run()
        assert {2} == env.ids()
        assert {"LIVE": 1} == env.held_counts()

    def test_tax_floor_holds_only_younger_rows(self, env: Env) -> None:
        """keep_younger_than = 60d keeps rows closed less than 60 days ago; older expired rows go."""
        env.configure({"support": SUPPORT})
        env.write_holds([hold("TAX", ["support"], kind="tax", keep_younger_than="60d")])
        env.insert(tickets, [env.ticket(1, 40), env.ticket(2, 59), env.ticket(3, 61), env.ticket(4, 90)])
        env.run()
        assert {1, 2} == env.ids()
        assert {"TAX": 2} == env.held_counts()

    def test_held_counts_per_hold(self, env: Env) -> None:
        """Two holds over the same row each count it; plan and ledger agree."""
        env.configure({"support": SUPPORT})
        env.write_holds([hold("A", ["support"], subjects=["acct_1"]), hold("B", ["*"], subjects=["acct_1", "acct_2"])])
        env.insert(
            tickets,
            [
                env.ticket(1, 40, account="acct_1"),
                env.ticket(2, 40, account="acct_2"),
                env.ticket(3, 40, account="acct_3"),
            ],
        )
        plan = env.run(mode="plan")
        assert {"A": 1, "B": 2} == plan.targets[0].held
        env.run()
        assert {1, 2} == env.ids()
        assert {"A": 1, "B": 2} == env.held_counts()


class TestGrace:
    """A hold that leaves the file keeps protecting for hold_release_grace."""

    def test_removed_hold_protects_until_grace_passes(self, env: Env) -> None:
        """Removed today: kept by a run now and at +6 days; deleted by a run at +8 days (grace 7d)."""
        env.configure({"support": SUPPORT}, max_clock_skew="300d")
        env.write_holds([hold("LIT-9", ["support"])])
        env.insert(tickets, [env.ticket(1, 40)])
        env.run()
        env.write_holds([])
        env.run(now=env.now + timedelta(seconds=10))
        assert {1} == env.ids()
        env.run(now=env.now + timedelta(days=6))
        assert {1} == env.ids()
        assert 1 == len(env.entries("hold_released"))
        env.run(now=env.now + timedelta(days=8))
        assert set() == env.ids()


class TestOverlap:
    """Rule 4: longest retention wins; anonymization happens at its own time."""

    def test_delete_waits_for_the_longer_category(self, env: Env) -> None:
        """support deletes at 30d, audit_trail anonymizes at 90d: rows 40d old are not deleted until 90d."""
        env.configure({"support": SUPPORT, "longer": anon_category("90d", {"email": "null"})})
        env.insert(
            tickets,
            [
                env.ticket(1, 40, email="a@x"),
                env.ticket(2, 100, email="b@x"),
                env.ticket(3, 100, status="open", email="c@x"),
            ],
        )
        report = env.run()
        assert {} == report.failed
        # 1: only support expired -> kept. 2: both expired -> deleted by support (or anonymized first,
        # then deleted). 3: only "longer" covers it (support's filter excludes it) -> anonymized.
        rows = env.rows()
        assert {1, 3} == set(rows)
        assert "a@x" == rows[1]["email"]
        assert rows[3]["email"] is None

    def test_anonymize_does_not_wait_for_a_longer_delete(self, env: Env) -> None:
        """An anonymizing category acts at its own cutoff even when a delete category keeps the row longer."""
        delete_later = {**SUPPORT, "retain": "90d"}
        env.configure({"support": delete_later, "contact": anon_category("30d", {"email": "null"})})
        env.insert(tickets, [env.ticket(1, 40, email="a@x")])
        env.run()
        assert {1: None} == {k: v["email"] for k, v in env.rows().items()}
        assert [1] == env.audited_keys(outcome="anonymized")

    def test_hold_on_the_other_category_protects_the_delete(self, env: Env) -> None:
        """A hold on the longer-covering category keeps the row from the shorter category's delete too."""
        env.configure({"support": SUPPORT, "contact": anon_category("10d", {"email": "null"})})
        env.write_holds([hold("C", ["contact"])])
        env.insert(tickets, [env.ticket(1, 40, email="a@x")])
        env.run()
        assert {1} == env.ids()


class TestPriorVersions:
    """Rule 6 and prior_versions: history follows its record and expires on its own."""

    def test_history_rows_follow_their_record(self, env: Env) -> None:
        """Deleting a ticket deletes its versions in the same batch; versions of kept tickets stay."""
        env.configure({"support": SUPPORT})
        env.insert(tickets, [env.ticket(1, 40), env.ticket(2, 5)])
        env.insert(
            ticket_versions,
            [
                {"version_id": 10, "ticket_id": 1, "superseded_at": env.at(days=1)},
                {"version_id": 11, "ticket_id": 1, "superseded_at": env.at(days=2)},
                {"version_id": 20, "ticket_id": 2, "superseded_at": env.at(days=1)},
            ],
        )
        env.run()
        assert {2} == env.ids()
        assert {20} == env.ids(ticket_versions)
        # The ticket's entry counts the ticket; its versions have their own entry, counted as prior versions.
        assert [(1, 0)] == [(e.fields["count"], e.fields["prior_versions"]) for e in env.batches("deleted", "tickets")]
        history = env.batches("deleted", "ticket_versions")
        assert [(2, 2)] == [(e.fields["count"], e.fields["prior_versions"]) for e in history]
        assert [10, 11] == env.audited_keys("ticket_versions")

    def test_prior_versions_expire_on_their_own(self, env: Env) -> None:
        """With prior_versions = 10d, versions superseded more than 10 days ago go, also of live tickets."""
        env.configure({"support": {**SUPPORT, "prior_versions": "10d"}})
        env.insert(tickets, [env.ticket(1, 5), env.ticket(2, None)])
        env.insert(
            ticket_versions,
            [
                {"version_id": 10, "ticket_id": 1, "superseded_at": env.at(days=11)},
                {"version_id": 11, "ticket_id": 1, "superseded_at": env.at(days=9)},
                {"version_id": 20, "ticket_id": 2, "superseded_at": env.at(days=30)},
            ],
        )
        env.run()
        assert {1, 2} == env.ids()
        assert {11} == env.ids(ticket_versions)
        assert [10, 20] == env.audited_keys("ticket_versions")

    def test_prior_versions_respect_holds_through_the_parent(self, env: Env) -> None:
        """A subject hold keeps the held subject's expired versions (and orphans' versions); others go."""
        env.configure({"support": {**SUPPORT, "prior_versions": "10d"}})
        env.write_holds([hold("LIT", ["support"], subjects=["acct_7"])])
        env.insert(tickets, [env.ticket(1, 5, account="acct_7"), env.ticket(2, 5, account="acct_8")])
        env.insert(
            ticket_versions,
            [
                {"version_id": 10, "ticket_id": 1, "superseded_at": env.at(days=20)},
                {"version_id": 20, "ticket_id": 2, "superseded_at": env.at(days=20)},
                {"version_id": 30, "ticket_id": 99, "superseded_at": env.at(days=20)},
            ],
        )
        env.run()
        assert {10, 30} == env.ids(ticket_versions)

    def test_subject_hold_protects_versions_of_rows_outside_the_filter(self, env: Env) -> None:
        """A held subject's versions stay even when the parent row does not match the category's filter or is old."""
        env.configure({"support": {**SUPPORT, "prior_versions": "10d"}})
        env.write_holds(
            [
                hold("LIT", ["support"], subjects=["acct_7"]),
                hold("TAX", ["support"], subjects=["acct_8"], kind="tax", keep_younger_than="60d"),
            ]
        )
        env.insert(
            tickets,
            [
                env.ticket(1, 100, status="open", account="acct_7"),
                env.ticket(2, 100, status="open", account="acct_8"),
                env.ticket(3, 100, status="open", account="acct_9"),
            ],
        )
        env.insert(
            ticket_versions,
            [
                {"version_id": 10, "ticket_id": 1, "superseded_at": env.at(days=20)},
                {"version_id": 20, "ticket_id": 2, "superseded_at": env.at(days=20)},  # young by the tax floor
                {"version_id": 21, "ticket_id": 2, "superseded_at": env.at(days=70)},  # older than the floor
                {"version_id": 30, "ticket_id": 3, "superseded_at": env.at(days=20)},
            ],
        )
        plan = env.run(mode="plan")
        env.run()
        assert {10, 20} == env.ids(ticket_versions)
        assert 2 == plan.targets[0].prior_versions_eligible

    def test_anonymizing_deletes_prior_versions(self, env: Env) -> None:
        """Anonymizing a record deletes its prior versions (they hold the old values)."""
        env.configure({"contact": anon_category("30d", {"email": "null"}, history=True)})
        env.insert(tickets, [env.ticket(1, 40, email="a@x"), env.ticket(2, 5, email="b@x")])
        env.insert(
            ticket_versions,
            [
                {"version_id": 10, "ticket_id": 1, "superseded_at": env.at(days=1), "email": "old@x"},
                {"version_id": 20, "ticket_id": 2, "superseded_at": env.at(days=1)},
            ],
        )
        env.run()
        assert {20} == env.ids(ticket_versions)


class TestAnonymize:
    """Strategies of SPEC §3, stable pseudonyms and idempotence."""

    def test_every_strategy(self, env: Env) -> None:
        """null, redact, fixed, hmac, truncate_ip (v4 and v6), year and month rewrite as documented."""
        env.configure({"contact": anon_category()})
        seen = env.at(days=40) if env.backend == "sqlite" else env.now - timedelta(days=40)
        values: dict[str, Any] = {
            "email": "a@x",
            "name": "Ann",
            "ref": "cust-1",
            "tier": "gold",
            "born": date(1990, 7, 14),
            "seen_at": seen,
        }
        env.insert(
            tickets,
            [
                env.ticket(1, 40, ip="192.0.2.77", **values),
                env.ticket(2, 40, ip="2001:db8:1:2::5", **values),
                env.ticket(3, 5, ip="192.0.2.77", **values),
            ],
        )
        report = env.run()
        assert {} == report.failed
        rows = env.rows()
        one, two = rows[1], rows[2]
        assert (None, "[redacted]", "gone", "192.0.2.0", date(1990, 1, 1)) == (
            one["email"],
            one["name"],
            one["tier"],
            one["ip"],
            one["born"],
        )
        assert "2001:db8:1::" == two["ip"]
        assert str(one["ref"]).startswith("anon:") and one["ref"] == two["ref"]
        assert (1, 0, 0) == (one["seen_at"].day, one["seen_at"].hour, one["seen_at"].minute)
        assert "cust-1" == rows[3]["ref"]
        assert [1, 2] == env.audited_keys(outcome="anonymized")

    def test_hmac_pseudonym_is_the_documented_hmac(self, env: Env) -> None:
        """With SQL-only strategies the pseudonym is made in the statement on PostgreSQL: the same value as Python's."""
        env.configure({"contact": anon_category("30d", {"email": "null", "ref": "hmac"})})
        refs = {1: "cust-é 1", 2: None, 3: "anon:x"}
        env.insert(tickets, [env.ticket(k, 40, ref=ref, email="a@x") for k, ref in refs.items()])
        report = env.run()
        after = env.rows()
        expected = Pseudonymizer(env.hmac_key)("app/tickets/ref", "cust-é 1")

        assert ({}, expected, None, "anon:x") == (report.failed, after[1]["ref"], after[2]["ref"], after[3]["ref"])
        assert [1, 2, 3] == env.audited_keys(outcome="anonymized")

    def test_hmac_is_stable_across_runs_and_rerun_touches_nothing(self, env: Env) -> None:
        """The same value gets the same pseudonym in a later run; a rerun touches 0 rows."""
        env.configure({"contact": anon_category()})
        env.insert(tickets, [env.ticket(1, 40, ref="cust-1", ip="10.1.2.3", born=date(1990, 7, 14))])
        env.run()
        first = env.rows()[1]["ref"]
        env.insert(tickets, [env.ticket(2, 40, ref="cust-1")])
        env.run(now=env.now + timedelta(seconds=5))
        assert first == env.rows()[2]["ref"]
        before = len(env.audited())
        report = env.run(now=env.now + timedelta(seconds=10))
        assert 0 == sum(t.acted for t in report.targets)
        assert before == len(env.audited())

    def test_sql_only_strategies_are_idempotent(self, env: Env) -> None:
        """null/redact/fixed run as one UPDATE; a rerun selects none of the rewritten rows."""
        env.configure({"contact": anon_category("30d", {"email": "null", "name": "redact", "tier": "fixed:gone"})})
        env.insert(tickets, [env.ticket(i, 40, email="e", name="n", tier="t") for i in range(1, 6)])
        first = env.run()
        second = env.run(now=env.now + timedelta(seconds=1))
        assert [5, 0] == [first.targets[0].acted, second.targets[0].acted]
        assert 0 == second.targets[0].eligible


class TestGraceInPlan:
    """A hold just removed from the file protects in plan and explain as it will in the run."""

    def test_plan_sees_a_just_removed_hold_in_grace(self, env: Env) -> None:
        """After the hold leaves the file, plan (which records nothing) still counts its rows as held."""
        env.configure({"support": SUPPORT})
        env.write_holds([hold("GONE", ["support"])])
        env.insert(tickets, [env.ticket(1, 40)])
        env.run()
        env.write_holds([])
        plan = env.run(mode="plan", now=env.now + timedelta(seconds=5))
        assert (0, {"GONE": 1}) == (plan.targets[0].eligible, plan.targets[0].held)
        said = env.cli("explain", "--store", "app", "--table", "tickets", "--key", "1")
        assert "held by GONE" in said.stdout, said.stdout + said.stderr
        run = env.run(now=env.now + timedelta(seconds=10))
        assert (0, {"GONE": 1}) == (run.targets[0].acted, run.targets[0].held)


class TestCompositeKeys:
    """Composite primary keys and history parents: selection, RETURNING, refs."""

    def test_composite_key_delete_with_history(self, env: Env) -> None:
        """Rows keyed (tenant, n) are deleted with their versions; refs use the composite key."""
        md = sa.MetaData()
        orders = sa.Table(
            "orders",
            md,
            sa.Column("tenant", sa.Text, primary_key=True),
            sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("done_at", sa.DateTime(timezone=True)),
        )
        versions = sa.Table(
            "order_versions",
            md,
            sa.Column("vid", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("tenant", sa.Text),
            sa.Column("n", sa.Integer),
            sa.Column("superseded_at", sa.DateTime(timezone=True)),
        )
        md.create_all(env.engine)
        target = {
            "store": "app",
            "table": "orders",
            "key": ["tenant", "n"],
            "age_column": "done_at",
            "history": {
                "table": "order_versions",
                "key": ["vid"],
                "parent": ["tenant", "n"],
                "superseded_column": "superseded_at",
            },
        }
        env.configure({"orders": {"retain": "30d", "action": "delete", "sql": [target]}}, batch_size=2)
        env.insert(
            orders,
            [{"tenant": t, "n": n, "done_at": env.at(days=40 if n < 3 else 5)} for t in "ab" for n in range(1, 5)],
        )
        env.insert(
            versions,
            [
                {"vid": i, "tenant": t, "n": n, "superseded_at": env.at(days=1)}
                for i, (t, n) in enumerate([(t, n) for t in "ab" for n in range(1, 5)])
            ],
        )
        report = env.run()
        assert {} == report.failed
        with env.engine.connect() as conn:
            left = set(conn.execute(sa.select(orders.c.tenant, orders.c.n)).all())
            left_versions = set(conn.execute(sa.select(versions.c.tenant, versions.c.n)).all())
        assert {(t, n) for t in "ab" for n in (3, 4)} == left == left_versions
        refs = {env.refs.sql("app", "orders", [t, n]): (t, n) for t in "ab" for n in range(1, 5)}
        claimed = sorted(refs[r] for e in env.batches("deleted", "orders") for r in e.refs)
        assert [("a", 1), ("a", 2), ("b", 1), ("b", 2)] == claimed
        assert 4 == sum(e.ref_count for e in env.batches("deleted", "order_versions"))


class TestInetColumns:
    """truncate_ip on a PostgreSQL inet column is correct and idempotent."""

    def test_inet_truncate_ip_rerun_touches_nothing(self, pg_env: Env) -> None:
        """An inet column truncates to /24 and /48 and a rerun finds nothing left to anonymize."""
        with pg_env.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE visits (id integer PRIMARY KEY, at timestamptz, addr inet)"))
            conn.execute(
                sa.text(
                    "INSERT INTO visits VALUES (1, now() - interval '40 days', '192.0.2.77'), "
                    "(2, now() - interval '40 days', '2001:db8:1:2::5'), (3, now() - interval '5 days', '10.9.9.9')"
                )
            )
        target = {
            "store": "app",
            "table": "visits",
            "key": ["id"],
            "age_column": "at",
            "anonymize": {"addr": "truncate_ip"},
        }
        pg_env.configure({"visits": {"retain": "30d", "action": "anonymize", "sql": [target]}})
        first = pg_env.run()
        second = pg_env.run(now=pg_env.now + timedelta(seconds=1))
        with pg_env.engine.connect() as conn:
            addrs: dict[int, str] = dict(conn.execute(sa.text("SELECT id, host(addr) FROM visits")).all())
        assert {1: "192.0.2.0", 2: "2001:db8:1::", 3: "10.9.9.9"} == addrs
        assert [2, 0] == [first.targets[0].acted, second.targets[0].acted]


class TestSchemaQualifiedOverlap:
    """Rule 4 sees a table however its name is spelled."""

    def test_qualified_and_bare_names_are_one_table(self, pg_env: Env) -> None:
        """support on "tickets" and a longer category on "public.tickets": the delete waits for the longer one."""
        longer = anon_category("90d", {"email": "null"})
        longer["sql"][0]["table"] = "public.tickets"
        pg_env.configure({"support": SUPPORT, "longer": longer})
        pg_env.insert(tickets, [pg_env.ticket(1, 40, email="a@x"), pg_env.ticket(2, 100, email="b@x")])
        report = pg_env.run()
        assert {} == report.failed
        assert {1} == pg_env.ids()
