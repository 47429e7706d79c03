"""Crash consistency (SPEC §5): SIGKILL a run mid-way, rerun, and check the ledger against the bucket.

The seam is ``RETENTIOND_TEST_CRASH_AT=<point>:<n>`` (``retentiond.testing.crashpoints``),
read only by a helper that calls ``os.kill(os.getpid(), SIGKILL)``.
"""

from __future__ import annotations

import signal

import pytest

from tests.stores.s3.conftest import S3Env, s3_category

POINTS = [
    "s3_after_intent:1",  # intent durable, request not sent
    "s3_after_intent:4",  # some requests done, another announced
    "s3_after_delete:1",  # versions deleted, outcome not written
    "s3_after_delete:3",
    "s3_after_outcome:2",  # outcome written, not relayed to the ledger
    "s3_before_remove:2",  # relayed, not acknowledged: the rerun must not audit it twice
]


class TestSigkill:
    """After SIGKILL at any point and a rerun: one outcome entry per deleted version, none claimed falsely."""

    @pytest.mark.parametrize("point", POINTS)
    def test_kill_and_rerun(self, s3env: S3Env, point: str) -> None:
        """The invariants hold right after the crash and after the rerun."""
        s3env.bucket()
        items: list[tuple[str, str | None]] = []
        for i in range(16):
            key = f"tickets/{i:03d}"
            items += [(key, v) for v in s3env.history(key, [100, 90])]
        s3env.configure({"support": s3_category()}, store={"max_workers": 2}, batch_size=4)
        crashed = s3env.cli("run", env={"RETENTIOND_TEST_CRASH_AT": point})
        assert -signal.SIGKILL == crashed.returncode, crashed.stderr[-2000:]
        present = s3env.versions()
        gone = [i for i in items if i not in present]
        claimed = s3env.audited()
        assert set(claimed) <= set(s3env.refs_of(gone))  # nothing claimed that still exists
        assert len(claimed) == len(set(claimed))
        report = s3env.run()
        assert {} == report.failed
        assert set() == s3env.versions()
        assert s3env.refs_of(items) == sorted(s3env.audited())  # exactly once each
        assert 0 < len(s3env.entries("reconciled")) or point.startswith("s3_after_intent")
        assert [] == list(s3env.state_dir.glob("s3-spool-*"))  # the crashed run's spool is cleaned up
