"""The module-size gate of ``make lint`` (tools/check_module_size.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.check_module_size import ALLOWED, LIMIT, problems

ROOT = Path(__file__).resolve().parents[2]


def _package(tmp_path: Path, modules: dict[str, int]) -> Path:
    package = tmp_path / "retentiond"
    for name, lines in modules.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n" * lines)
    return package


class TestModuleSize:
    """Modules over the limit fail unless allow-listed; stale allow-list entries fail too."""

    def test_long_module_fails(self, tmp_path: Path) -> None:
        """A module one line over the limit is named with its length."""
        package = _package(tmp_path, {**dict.fromkeys(ALLOWED, LIMIT + 1), "policy/new.py": LIMIT + 1})
        assert [f"retentiond/policy/new.py: {LIMIT + 1} lines (limit {LIMIT}): split it by responsibility"] == problems(
            package
        )

    def test_at_limit_passes(self, tmp_path: Path) -> None:
        """A module of exactly the limit passes."""
        package = _package(tmp_path, {**dict.fromkeys(ALLOWED, LIMIT + 1), "policy/new.py": LIMIT})
        assert [] == problems(package)

    def test_stale_allow_list_entry_fails(self, tmp_path: Path) -> None:
        """An allow-listed module that shrank (or is gone) must leave the list."""
        shrunk = sorted(ALLOWED)[0]
        package = _package(tmp_path, {**dict.fromkeys(ALLOWED, LIMIT + 1), shrunk: LIMIT})
        assert [f"retentiond/{shrunk}: allow-listed but not over {LIMIT} lines: remove it from the list"] == problems(
            package
        )

    def test_repository_passes(self) -> None:
        """The package as committed passes the gate (exit 0, no output)."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "check_module_size.py")], capture_output=True, text=True, check=False
        )
        assert (0, "") == (result.returncode, result.stdout)
