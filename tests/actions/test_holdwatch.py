"""Narrowing a hold is a release, and dual control, on real PostgreSQL (issue 10 item 7, issue 13 item 2)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.config.loader import load_config
from tests.stores.sql.conftest import SUPPORT, Env, anon_category, hold, tickets

GRACE_DAYS = 7


def narrowings(env: Env) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Return, per way of narrowing, the hold before and after (both protect ticket 2 before)."""
    yesterday = (env.now - timedelta(days=1)).date()
    return {
        "subject removed": (
            hold("LIT-N", ["support"], subjects=["acct_1", "acct_2"]),
            hold("LIT-N", ["support"], subjects=["acct_1"]),
        ),
        "category removed": (hold("LIT-N", ["support", "other"]), hold("LIT-N", ["other"])),
        "expiry moved into the past": (hold("LIT-N", ["support"]), hold("LIT-N", ["support"], expires_at=yesterday)),
        "age floor shortened": (
            hold("LIT-N", ["support"], keep_younger_than="60d"),
            hold("LIT-N", ["support"], keep_younger_than="35d"),
        ),
    }


def configure(env: Env, **daemon: Any) -> None:
    other = anon_category("60d", {"email": "null"}, match={"status": "x"})
    env.configure({"support": SUPPORT, "other": other}, max_clock_skew="300d", **daemon)


class TestNarrowingIsARelease:
    """What the old definition protected stays protected until the grace ends, then goes."""

    @pytest.mark.parametrize(
        "how", ["subject removed", "category removed", "expiry moved into the past", "age floor shortened"]
    )
    def test_rows_kept_through_the_grace(self, pg_env: Env, how: str) -> None:
        """Ticket 2 (acct_2, 40 days old) is held before; after the narrowing it is kept for 7 days, then deleted."""
        env = pg_env
        configure(env)
        before, after = narrowings(env)[how]
        env.write_holds([before])
        env.insert(tickets, [env.ticket(1, 40, account="acct_1"), env.ticket(2, 40, account="acct_2")])
        env.run()
        assert {1, 2} == env.ids()
        env.write_holds([after])
        env.run(now=env.now + timedelta(seconds=10))
        assert {1, 2} == env.ids()
        env.run(now=env.now + timedelta(days=GRACE_DAYS - 1))
        assert {1, 2} == env.ids()
        env.run(now=env.now + timedelta(days=GRACE_DAYS + 1))
        kept = {1} if how == "subject removed" else set()
        assert kept == env.ids()
        assert [2] == [k for k in env.audited_keys() if k == 2]

    def test_ledger_records_what_narrowed(self, pg_env: Env) -> None:
        """hold_changed says subjects narrowed, one removed, the grace end; refs only of the remaining subject."""
        env = pg_env
        configure(env)
        before, after = narrowings(env)["subject removed"]
        env.write_holds([before])
        env.insert(tickets, [env.ticket(2, 40, account="acct_2")])
        env.run()
        env.write_holds([after])
        env.run(now=env.now + timedelta(seconds=10))
        (changed,) = env.entries("hold_changed")
        recorded = datetime.fromisoformat(str(changed.fields["protects_until"]))
        assert (["subjects"], 1, 0) == (
            changed.fields["narrowed"],
            changed.fields["subjects_removed"],
            changed.fields["subjects_added"],
        )
        assert timedelta(days=GRACE_DAYS, seconds=10) <= recorded - env.now < timedelta(days=GRACE_DAYS, seconds=60)
        assert [env.refs.subject("acct_1")] == list(changed.refs)
        assert "acct_2" not in json.dumps(changed.fields)
        held = env.held_counts()
        assert 1 == sum(n for h, n in held.items() if h.startswith("LIT-N/grace-")), held

    def test_holds_list_shows_the_recorded_grace_end(self, pg_env: Env) -> None:
        """Once a run recorded the narrowing, holds list shows its grace end, the same at every call."""
        env = pg_env
        configure(env)
        before, after = narrowings(env)["subject removed"]
        env.write_holds([before])
        env.run()
        env.write_holds([after])
        env.run(now=env.now + timedelta(seconds=10))
        loaded = load_config(env.config_path)

        def former(at: datetime) -> tuple[Any, ...]:
            views = HoldWatcher(loaded, record_changes=False, pending="estimate").views(at)
            (view,) = [v for v in views if v.change == "narrowed"]
            return view.state.value, view.protects_until, view.pending

        first = former(env.now + timedelta(days=1))
        assert first == former(env.now + timedelta(days=2))
        assert ("release_grace", False) == (first[0], first[2])
        assert (env.entries("hold_changed")[0].fields["protects_until"]) == first[1].isoformat().replace("+00:00", "Z")


class TestDualControl:
    """hold_release_requires_approval: an unapproved release of a legal hold is refused and audited."""

    def test_unapproved_release_keeps_protecting(self, pg_env: Env) -> None:
        """Removed without approval: kept long after the grace, refusal audited once; an approved lift then releases."""
        env = pg_env
        configure(env, hold_release_requires_approval=True)
        placed = hold("LIT-D", ["support"], subjects=["acct_2"])
        env.write_holds([placed])
        env.insert(tickets, [env.ticket(2, 40, account="acct_2"), env.ticket(3, 40, account="acct_3")])
        env.run()
        env.write_holds([])
        env.run(now=env.now + timedelta(seconds=10))
        env.run(now=env.now + timedelta(days=30))
        assert {2} == env.ids()
        refused = env.entries("hold_release_refused")
        assert [("LIT-D", "removed_without_lift")] == [(e.fields["hold_id"], e.fields["problem"]) for e in refused]
        assert [] == env.entries("hold_released")
        lifted = {**placed, "lifted_by": "j.doe", "lifted_at": date.today(), "lift_approved_by": "gc"}
        env.write_holds([lifted])
        env.run(now=env.now + timedelta(days=31))
        assert {2} == env.ids()  # the approved lift starts the grace
        env.run(now=env.now + timedelta(days=31 + GRACE_DAYS + 1))
        assert set() == env.ids()
        assert 1 == len(env.entries("hold_released"))

    def test_unapproved_narrowing_keeps_the_old_definition(self, pg_env: Env) -> None:
        """A subject removed from a legal hold without approver stays protected after the grace."""
        env = pg_env
        configure(env, hold_release_requires_approval=True)
        env.write_holds([hold("LIT-D", ["support"], subjects=["acct_1", "acct_2"])])
        env.insert(tickets, [env.ticket(1, 40, account="acct_1"), env.ticket(2, 40, account="acct_2")])
        env.run()
        env.write_holds([hold("LIT-D", ["support"], subjects=["acct_1"], changed_by="a", changed_at=date.today())])
        env.run(now=env.now + timedelta(days=GRACE_DAYS + 1))
        assert {1, 2} == env.ids()
        assert ["change_not_approved"] == [e.fields["problem"] for e in env.entries("hold_release_refused")]


class TestHistoryAndReport:
    """holds history and holds report read what the runs recorded."""

    def test_history_and_report(self, pg_env: Env) -> None:
        """Placed, narrowed and released show in history (with who, from the file); the report counts held rows."""
        env = pg_env
        configure(env)
        env.write_holds([hold("LIT-H", ["support"], subjects=["acct_1", "acct_2"])])
        env.insert(tickets, [env.ticket(1, 40, account="acct_1"), env.ticket(2, 40, account="acct_2")])
        env.run()
        env.write_holds([hold("LIT-H", ["support"], subjects=["acct_1"], changed_by="j.doe", changed_at=date.today())])
        env.run(now=env.now + timedelta(seconds=10))
        history = env.cli("--format", "json", "holds", "history", "LIT-H")
        assert 0 == history.returncode, history.stderr
        events = json.loads(history.stdout)["events"]
        assert ["hold_placed", "hold_changed"] == [e["event"] for e in events]
        assert ("legal@test", "j.doe") == (events[0].get("by"), events[1].get("by"))
        copy = env.cli("--format", "json", "holds", "history", "--source", "copy")
        assert [e["seq"] for e in events] == [e["seq"] for e in json.loads(copy.stdout)["events"]]
        at = (env.now + timedelta(days=1)).isoformat()
        report = env.cli("holds", "report", "--at", at, "--format", "json")
        assert 0 == report.returncode, report.stderr
        (row,) = json.loads(report.stdout)["holds"]
        assert ("LIT-H", "in_force", 1, 2) == (
            row["hold_id"],
            row["state"],
            row["records_held_last_run"],
            row["records_held_by_former_definitions"],
        )
        csv_report = env.cli("holds", "report", "--at", at, "--format", "csv")
        assert csv_report.stdout.startswith("hold_id,kind,")
