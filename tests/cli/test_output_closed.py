"""Commands whose reader goes away, or whose user may not read ``state_dir``, end quietly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """[daemon]
holds_file = "holds.toml"
state_dir = "state"

[stores.app]
kind = "sql"
url = "sqlite:///app.db"

[categories.support_communications]
retain = "30d"
action = "delete"
  [[categories.support_communications.sql]]
  store = "app"
  table = "tickets"
  key = ["id"]
  age_column = "closed_at"
  subject_column = "account_id"
"""
HOLDS = """[[hold]]
id = "LIT-1"
kind = "legal"
reason = "a lawsuit"
placed_by = "legal"
placed_at = 2026-01-01T00:00:00Z
categories = ["support_communications"]
subjects = ["acct_1"]
"""


@pytest.fixture
def folder() -> Iterator[Path]:
    """A config folder another user can read (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="retentiond-pipe-"))
    path.chmod(0o755)
    (path / "retention.toml").write_text(CONFIG, encoding="utf-8")
    (path / "holds.toml").write_text(HOLDS, encoding="utf-8")
    for name in ("retention.toml", "holds.toml"):
        (path / name).chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout a pipe whose reader is already gone (what `| head` ends as)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "retentiond", *args],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


class TestOutputClosed:
    """`… | head` exits quietly with 141 (128 + SIGPIPE), never a BrokenPipeError traceback."""

    @pytest.mark.parametrize("command", [["config", "validate"], ["config", "show"], ["holds", "list"]])
    def test_no_traceback(self, folder: Path, command: list[str]) -> None:
        """stderr carries no traceback and no 'Exception ignored' from the final flush."""
        done = run_into_closed_pipe(*command, "-c", str(folder / "retention.toml"))
        assert (141, "") == (done.returncode, done.stderr)


class TestUnreadableStateDir:
    """`holds list` by a user who may not read state_dir prints the holds and one warning."""

    def test_holds_list_warns_once_and_lists(self, folder: Path) -> None:
        """The holds file is listed; the unreadable grace memory is one warning line, exit 0."""
        state = folder / "state" / "holds"
        state.mkdir(parents=True)
        (state / "state.json").write_text("{}", encoding="utf-8")
        (folder / "state").chmod(0o700)
        if os.geteuid() == 0:
            # root reads everything: run the command as nobody, for whom state_dir is closed.
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        else:
            (folder / "state").chmod(0o000)
            prefix = []
        try:
            done = subprocess.run(
                [*prefix, sys.executable, "-m", "retentiond", "holds", "list", "-c", str(folder / "retention.toml")],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            (folder / "state").chmod(0o700)
        warnings = [line for line in done.stderr.splitlines() if line.strip()]
        assert 0 == done.returncode, done.stderr
        assert "LIT-1" in done.stdout
        assert 1 == len(warnings), done.stderr
        assert warnings[0].startswith("retentiond: warning: cannot read ")
        assert "Traceback" not in done.stderr
