#!/usr/bin/env python3
"""Fail when a module of the package is longer than the house limit (450 lines).

Usage: check_module_size.py [PACKAGE_DIR]   (default: retentiond next to this file's parent)

Prints one line per offending module and exits 1; exits 0 silently otherwise. A module on the
allow-list below may be longer for now, but an allow-list entry that no longer applies (the
module shrank or is gone) fails too, so the list only ever gets shorter.
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 450

# Modules a little over the limit (≤ 470 lines: "~450"). An entry that is no longer over the
# limit fails, so the list only shrinks.
ALLOWED = {
    "actions/run.py",
    "cli/audit_cmd.py",
    "report/aggregate.py",
    "stores/base.py",
}


def problems(package: Path) -> list[str]:
    """Return a sentence per module over ``LIMIT`` lines not allowed, and per stale allow-list entry."""
    out: list[str] = []
    long: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        name = path.relative_to(package).as_posix()
        if lines > LIMIT:
            long.add(name)
            if name not in ALLOWED:
                out.append(f"{package.name}/{name}: {lines} lines (limit {LIMIT}): split it by responsibility")
    for name in sorted(ALLOWED - long):
        out.append(f"{package.name}/{name}: allow-listed but not over {LIMIT} lines: remove it from the list")
    return out


def main(argv: list[str]) -> int:
    """Return the exit status: 0 when every module is within the limit, 1 otherwise."""
    package = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "retentiond"
    found = problems(package)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
