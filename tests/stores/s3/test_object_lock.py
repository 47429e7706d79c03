"""Object Lock: versions under a legal hold or unexpired retention are ``blocked``, never bypassed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.stores.s3.conftest import S3Env, s3_category
from tests.stores.s3.faults import Faults, faults

__all__ = ["faults"]


def _lock(env: S3Env, key: str, version: str | None, how: str) -> None:
    if how == "legal_hold":
        env.client.put_object_legal_hold(Bucket="media", Key=key, VersionId=version, LegalHold={"Status": "ON"})
    else:
        env.client.put_object_retention(
            Bucket="media",
            Key=key,
            VersionId=version,
            Retention={"Mode": how, "RetainUntilDate": env.now + timedelta(days=365)},
        )


class TestBlocked:
    """Locked versions stay, are counted in plan and run, and audited ``blocked``."""

    @pytest.mark.parametrize("how", ["legal_hold", "GOVERNANCE", "COMPLIANCE"])
    def test_locked_version_is_blocked(self, s3env: S3Env, faults: Faults, how: str) -> None:
        """The locked version stays and is reported blocked; free ones go; no bypass header on the wire."""
        s3env.bucket(lock=True)
        locked = s3env.put("tickets/locked", 100)
        free = s3env.put("tickets/free", 100)
        _lock(s3env, "tickets/locked", locked, how)
        s3env.configure({"support": s3_category()})
        plan = s3env.run(mode="plan").targets[0]
        run = s3env.run().targets[0]
        assert (1, 1) == (plan.eligible, plan.blocked)  # blocked is never eligible
        assert (1, 1) == (run.acted, run.blocked)
        assert {("tickets/locked", locked)} == s3env.versions()
        assert [s3env.ref("tickets/free", free)] == s3env.audited()
        assert [s3env.ref("tickets/locked", locked)] == s3env.audited("blocked")
        assert [] == [h for h in faults.headers if "x-amz-bypass-governance-retention" in h]
        assert 0 < faults.calls["DeleteObjects"]

    def test_guard_counts_only_what_could_be_deleted(self, s3env: S3Env) -> None:
        """3 of 4 expired objects locked, max_fraction 0.5: eligible is 1 (not 4), the guard holds, 1 goes."""
        s3env.bucket(lock=True)
        locked = [s3env.put(f"tickets/locked-{i}", 100) for i in range(3)]
        for i, version in enumerate(locked):
            _lock(s3env, f"tickets/locked-{i}", version, "legal_hold")
        s3env.put("tickets/free", 100)
        s3env.configure({"support": s3_category()}, max_fraction_per_run=0.5)
        plan = s3env.run(mode="plan").targets[0]
        report = s3env.run()
        assert (1, 3, "ok") == (plan.eligible, plan.blocked, plan.guard)
        assert ({}, 1, 3) == (report.failed, report.targets[0].acted, report.targets[0].blocked)
        assert 3 == len(s3env.versions())

    def test_locked_prior_version_blocks_only_itself(self, s3env: S3Env) -> None:
        """An expired object whose old version is locked loses its other versions; the locked one is blocked."""
        s3env.bucket(lock=True)
        v1, v2, v3 = s3env.history("tickets/a", [100, 90, 80])
        _lock(s3env, "tickets/a", v1, "legal_hold")
        s3env.configure({"support": s3_category()})
        report = s3env.run()
        assert {("tickets/a", v1)} == s3env.versions()
        assert s3env.refs_of([("tickets/a", v2), ("tickets/a", v3)]) == sorted(s3env.audited())
        assert 1 == report.totals()["blocked"]

    def test_run_summary_shows_blocked(self, s3env: S3Env) -> None:
        """``retentiond run`` prints the blocked count."""
        s3env.bucket(lock=True)
        locked = s3env.put("tickets/locked", 100)
        _lock(s3env, "tickets/locked", locked, "legal_hold")
        s3env.configure({"support": s3_category()})
        done = s3env.cli("run")
        assert 0 == done.returncode, done.stderr
        assert "blocked 1" in done.stdout
