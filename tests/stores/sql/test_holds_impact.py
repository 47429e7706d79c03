"""Issue 13 items 3 and 4 on PostgreSQL and SQLite: impact, preview, counts and subject checks from the stores."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from retentiond.actions.holds_change import HoldEdit, apply_change, plan_change
from retentiond.actions.holds_impact import CountingStores, impact, preview
from retentiond.config.loader import load_config
from tests.stores.sql.conftest import SUPPORT, Env, hold, tickets

SIXTY: dict[str, Any] = {**SUPPORT, "retain": "60d"}
GRACE = timedelta(days=1)


def _setup(env: Env) -> None:
    """acct_1: three rows expired, one expiring in 20 days, one in 59; acct_2: two expired rows."""
    env.configure({"support": SIXTY}, max_clock_skew="300d", hold_release_grace="1d")
    env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1"])])
    rows = [env.ticket(i, 100) for i in (1, 2, 3)] + [env.ticket(4, 40), env.ticket(5, 1)]
    rows += [env.ticket(10, 100, account="acct_2"), env.ticket(11, 100, account="acct_2")]
    env.insert(tickets, rows)


def _figures(env: Env, edit: HoldEdit) -> dict[str, int]:
    loaded = load_config(env.config_path)
    now = datetime.now(UTC)
    plan = plan_change(loaded, edit, now, check_approval=False)
    with CountingStores(loaded, now) as stores:
        result = impact(loaded, plan, now, stores)
    assert result.after_grace == plan.narrowing.narrows
    return {c: result.total(c) for c in ("released", "30d", "90d", "365d", "kept")}


class TestImpact:
    """`holds impact` figures equal what runs after the change act on."""

    def test_lift_equals_the_runs_after_the_grace(self, env: Env) -> None:
        """Lift: 3 at the release, 1 more by +30d, 2 by +90d; runs at those instants delete exactly that."""
        _setup(env)
        env.run()
        assert {1, 2, 3, 4, 5} == env.ids()  # the baseline: acct_2's rows are gone, acct_1's held
        figures = _figures(env, HoldEdit("lift", "LIT-1", actor="legal"))
        assert {"released": 3, "30d": 1, "90d": 2, "365d": 2, "kept": 0} == figures
        apply_change(load_config(env.config_path), HoldEdit("lift", "LIT-1", actor="legal"), datetime.now(UTC))
        env.run(now=env.now + timedelta(seconds=30))  # records the lift: the grace starts
        assert {1, 2, 3, 4, 5} == env.ids()
        release = env.now + GRACE + timedelta(minutes=5)
        report = env.run(now=release)
        assert figures["released"] == sum(t.acted for t in report.targets if t.target == "tickets")
        report = env.run(now=release + timedelta(days=30))
        assert figures["30d"] == sum(t.acted for t in report.targets if t.target == "tickets")
        report = env.run(now=release + timedelta(days=90))
        assert figures["90d"] - figures["30d"] == sum(t.acted for t in report.targets if t.target == "tickets")
        assert set() == env.ids()

    def test_remove_subject_and_extension(self, env: Env) -> None:
        """Removing the held subject releases its rows; an extension releases none and keeps them past the end."""
        _setup(env)
        env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1", "acct_9"], expires_at=date(2099, 1, 1))])
        env.run()
        figures = _figures(env, HoldEdit("edit", "LIT-1", actor="legal", remove_subjects=("acct_1",)))
        assert (3, 1, 2) == (figures["released"], figures["30d"], figures["90d"])
        extended = _figures(env, HoldEdit("edit", "LIT-1", actor="legal", fields={"expires_at": None}))
        assert {"released": 0, "30d": 0, "90d": 0, "365d": 0, "kept": 0} == extended

    def test_cli_says_when_and_after_the_grace(self, env: Env) -> None:
        """The command prints the release date after the grace, the table and the totals; exit 0."""
        _setup(env)
        env.run()
        done = env.cli("holds", "impact", "LIT-1", "--lift")
        assert 0 == done.returncode, done.stderr
        assert "after the grace (hold_release_grace 1d" in done.stdout
        assert "released at " in done.stdout
        data = json.loads(env.cli("--format", "json", "holds", "impact", "LIT-1", "--lift").stdout)
        assert 3 == data["totals"]["released"]
        assert data["after_grace"] is True
        assert 2 == env.cli("holds", "impact", "LIT-1").returncode  # no change given: usage error
        env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1", "acct_7"])])
        removed = env.cli(
            "--log-level", "debug", "--format", "json", "holds", "impact", "LIT-1", "--remove-subject", "acct_1"
        )
        assert 0 == removed.returncode, removed.stderr
        assert "acct_1" not in removed.stderr  # logs: never a subject
        assert 3 == json.loads(removed.stdout)["totals"]["released"]


class TestPreviewAndCount:
    """`holds add --preview` and `holds list --count` equal the held figures a run audits."""

    def test_preview_equals_the_runs_held_count(self, env: Env) -> None:
        """The preview writes nothing; after adding, a run audits the same count as held for the hold."""
        _setup(env)
        env.insert(tickets, [env.ticket(20, 100, account="acct_3"), env.ticket(21, 90, account="acct_3")])
        before = env.holds_path.read_bytes()
        args = ["holds", "add", "--id", "P-2", "--kind", "legal", "--reason", "matter", "--placed-by", "legal"]
        args += ["--category", "support", "--subject", "acct_3", "--placed-at", "2020-01-01"]
        done = env.cli("--format", "json", *args, "--preview")
        assert 0 == done.returncode, done.stderr
        shown = json.loads(done.stdout)
        assert before == env.holds_path.read_bytes()
        assert 2 == shown["protected"]
        assert 0 == env.cli(*args).returncode
        env.run()
        assert shown["protected"] == env.held_counts()["P-2"]
        listed = json.loads(env.cli("--format", "json", "holds", "list", "--count").stdout)
        counts = {h["id"]: h["protects_now"] for h in listed["holds"]}
        assert {"LIT-1": 3, "P-2": 2} == counts
        assert counts["LIT-1"] == env.held_counts()["LIT-1"]

    def test_preview_in_process(self, env: Env) -> None:
        """The action's preview figure per target for a hold of every subject."""
        _setup(env)
        loaded = load_config(env.config_path)
        fields = {"kind": "tax", "reason": "r", "placed_by": "legal", "placed_at": datetime(2020, 1, 1, tzinfo=UTC)}
        edit = HoldEdit("add", "ALL", actor="legal", fields={**fields, "categories": ["support"]})
        now = datetime.now(UTC)
        plan = plan_change(loaded, edit, now)
        assert plan.new is not None
        with CountingStores(loaded, now) as stores:
            rows = preview(loaded, plan.new, now, stores)
        assert [("support", "tickets", 5)] == [(r.category, r.target, r.figures["protected"]) for r in rows]


class TestSubjectChecks:
    """`holds check --connect` and `config validate --connect` flag subjects that match nothing or differ in case."""

    def test_warnings_exactly_for_the_bad_subjects(self, env: Env) -> None:
        """acct_1 matches (no warning); ACCT_2 only ignoring case; nobody matches nothing; acct_5 has a case twin."""
        _setup(env)
        env.insert(tickets, [env.ticket(30, 100, account="Acct_5"), env.ticket(31, 100, account="acct_5")])
        env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1", "ACCT_2", "nobody", "acct_5"])])
        done = env.cli("holds", "check", "--connect")
        assert 0 == done.returncode, done.stderr
        warnings = [line for line in done.stdout.splitlines() if line.startswith("warning:")]
        assert 3 == len(warnings), done.stdout
        assert "subject 2 of 4 ('ACCT_2') matches no record as written but 2 record(s) ignoring case" in warnings[0]
        assert "subject 3 of 4 ('nobody') matches no record in any target" in warnings[1]
        assert "subject 4 of 4 ('acct_5') matches 1 record(s); 1 more differ only in case" in warnings[2]
        plain = env.cli("holds", "check")
        assert "warning:" not in plain.stdout  # without --connect no store is asked
        validate = env.cli("config", "validate", "--connect")
        assert 0 == validate.returncode, validate.stderr
        assert 3 == validate.stdout.count("holds: warning: hold LIT-1")
        assert [] == [e for e in env.entries() if "nobody" in json.dumps(e.fields)]
