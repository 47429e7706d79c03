"""A one-shot ``retentiond run`` stopped by SIGTERM / SIGINT: finish the batch, audit, summarise, 143 / 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from tests.stores.sql.conftest import ROOT, SUPPORT, Env, pg_env, tickets  # noqa: F401 - pg_env is a fixture

ROWS = 3000


class TestStopSignals:
    """The run stops after its current batch with everything it did audited."""

    @pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
    def test_signal_mid_run(self, pg_env: Env, sig: int, code: int) -> None:  # noqa: F811
        """run_interrupted carries the counts; every deleted row is audited; the outbox is empty; verify passes."""
        pg_env.configure({"support": SUPPORT}, batch_size=20, pause_between_batches="1s")
        pg_env.insert(tickets, [pg_env.ticket(i, 40) for i in range(1, ROWS + 1)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "retentiond", "-c", str(pg_env.config_path), "run"],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not pg_env.batches("deleted"):
            assert time.monotonic() < deadline and proc.poll() is None, "no batch was audited"
            time.sleep(0.05)
        signalled = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - signalled
        gone = ROWS - len(pg_env.ids())
        interrupted = pg_env.entries("run_interrupted")
        assert (code, False) == (proc.returncode, "Traceback" in err), err[-2000:]
        assert stopped_in < 2.0  # within one batch and its pause
        assert 0 < gone < ROWS
        assert ([gone], ["stop_requested"]) == (
            [e.fields["counts"]["deleted"] for e in interrupted],
            [e.fields["reason"] for e in interrupted],
        )
        assert sorted(set(range(1, ROWS + 1)) - pg_env.ids()) == pg_env.audited_keys(candidates=range(1, ROWS + 1))
        assert ("INTERRUPTED" in out, f"deleted {gone}" in out) == (True, True), out
        with pg_env.engine.connect() as conn:
            assert 0 == conn.execute(sa.text("SELECT count(*) FROM retentiond_outbox")).scalar_one()
        assert 0 == pg_env.cli("audit", "verify").returncode
        assert [] == pg_env.entries("run_finished")
