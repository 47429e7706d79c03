"""Issue 13 items 3 and 4 on S3 (moto): impact, preview, counts and subject checks from the bucket."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from retentiond.actions.holds_change import HoldEdit, apply_change, plan_change
from retentiond.actions.holds_impact import CountingStores, impact
from retentiond.config.loader import load_config
from tests.stores.s3.conftest import S3Env, hold, s3_category

PATTERN = "^tickets/(?P<subject>[^/]+)/"


def _setup(s3env: S3Env) -> None:
    """acct_1: one object expired, one expiring in 20 days, one in 59; acct_2: one expired object."""
    s3env.configure(
        {"media": s3_category(retain="60d", subject_pattern=PATTERN)}, hold_release_grace="1d", max_clock_skew="300d"
    )
    s3env.write_holds([hold("LIT-1", ["media"], subjects=["acct_1"])])
    s3env.bucket()
    s3env.put("tickets/acct_1/a", 100)
    s3env.put("tickets/acct_1/b", 40)
    s3env.put("tickets/acct_1/c", 1)
    s3env.put("tickets/acct_2/x", 100)


class TestImpact:
    """Impact figures on a bucket equal what runs after the lift delete."""

    def test_lift_equals_the_runs_after_the_grace(self, s3env: S3Env) -> None:
        """1 at the release, 1 more by +30d, 2 by +90d; the runs delete exactly that."""
        _setup(s3env)
        s3env.run()
        assert 3 == len(s3env.versions())
        loaded = load_config(s3env.config_path)
        now = datetime.now(UTC)
        plan = plan_change(loaded, HoldEdit("lift", "LIT-1", actor="legal"), now, check_approval=False)
        with CountingStores(loaded, now) as stores:
            result = impact(loaded, plan, now, stores)
        figures = {c: result.total(c) for c in ("released", "30d", "90d", "kept")}
        assert {"released": 1, "30d": 1, "90d": 2, "kept": 0} == figures
        apply_change(loaded, HoldEdit("lift", "LIT-1", actor="legal"), now)
        s3env.run(now=s3env.now + timedelta(seconds=30))
        assert 3 == len(s3env.versions())
        release = s3env.now + timedelta(days=1, minutes=5)
        assert figures["released"] == sum(t.acted for t in s3env.run(now=release).targets)
        assert figures["30d"] == sum(t.acted for t in s3env.run(now=release + timedelta(days=30)).targets)
        later = s3env.run(now=release + timedelta(days=90)).targets
        assert figures["90d"] - figures["30d"] == sum(t.acted for t in later)
        assert set() == s3env.versions()

    def test_cli_preview_count_and_subject_checks(self, s3env: S3Env) -> None:
        """--preview writes nothing and equals the held count; list --count; bad subjects flagged exactly."""
        _setup(s3env)
        before = s3env.holds_path.read_bytes()
        args = ["holds", "add", "--id", "P-2", "--kind", "legal", "--reason", "matter", "--placed-by", "legal"]
        args += ["--category", "media", "--subject", "acct_2", "--placed-at", "2020-01-01"]
        done = s3env.cli("--format", "json", *args, "--preview")
        assert 0 == done.returncode, done.stderr
        assert before == s3env.holds_path.read_bytes()
        protected = json.loads(done.stdout)["protected"]
        assert 1 == protected
        assert 0 == s3env.cli(*args).returncode
        s3env.run()
        held = {h: e.fields["count"] for e in s3env.batches("held") for h in e.fields["holds"]}
        assert {"LIT-1": 1, "P-2": protected} == held
        listed = json.loads(s3env.cli("--format", "json", "holds", "list", "--count").stdout)
        assert {"LIT-1": 1, "P-2": 1} == {h["id"]: h["protects_now"] for h in listed["holds"]}
        s3env.write_holds([hold("LIT-1", ["media"], subjects=["acct_1", "ACCT_2", "ghost"])])
        checked = s3env.cli("holds", "check", "--connect")
        assert 0 == checked.returncode, checked.stderr
        warnings = [line for line in checked.stdout.splitlines() if line.startswith("warning:")]
        assert 2 == len(warnings), checked.stdout
        assert "('ACCT_2') matches no record as written but 1 record(s) ignoring case" in warnings[0]
        assert "('ghost') matches no record in any target" in warnings[1]
        assert "ghost" not in checked.stderr
