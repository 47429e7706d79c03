"""`make demo` is one of the README's two commands: it must keep running to its end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class TestDemo:
    """The demo runs every step of the main job on the embedded default and ends verified."""

    def test_demo_runs_to_the_end(self, tmp_path: Path) -> None:
        """Every step succeeds (a step that fails stops the demo with its exit code)."""
        out = tmp_path / "out"
        env = {**os.environ, "RETENTIOND_DEMO_OUT": str(out)}
        done = subprocess.run(
            [sys.executable, "-m", "demo.run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert 0 == done.returncode, done.stdout[-3000:] + done.stderr[-3000:]
        assert "demo: done." in done.stdout
        assert "\nOK ledger=" in done.stdout
        assert (out / "report.html").is_file()
        assert "certificate of DSR-2026-0042:" in done.stdout  # the erasure request's certificate summary
        assert "OK certificate of DSR-2026-0042" in done.stdout  # checked offline
