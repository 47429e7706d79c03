"""Rendering helpers for people: aligned tables and a TOML-like dump."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return ``rows`` as a left-aligned text table under ``headers``."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_scalar(v)}" for k, v in value.items()) + " }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def toml_like(data: dict[str, Any], prefix: str = "", *, header: bool = True) -> str:
    """Return a nested dict as TOML: dicts become tables, lists of dicts arrays of tables; None is omitted."""
    out: list[str] = []
    scalars = [(k, v) for k, v in data.items() if v is not None and not _is_table(v)]
    tables = [(k, v) for k, v in data.items() if v is not None and _is_table(v)]
    if scalars and prefix and header:
        out.append(f"[{prefix}]")
    out.extend(f"{k} = {_scalar(v)}" for k, v in scalars)
    if scalars:
        out.append("")
    for key, value in tables:
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, list):
            for item in value:
                out.append(f"[[{path}]]")
                out.append(toml_like(item, path, header=False).rstrip())
                out.append("")
        else:
            out.append(toml_like(value, path).rstrip())
            out.append("")
    return "\n".join(line for line in out if line is not None).rstrip() + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )
