"""Map dotted config paths to line numbers of a TOML text.

tomllib keeps no positions, so this scans the text for table headers and ``key =`` lines.
It is best effort by design: an error whose exact path is not found is reported at the line
of its nearest ancestor (an inline table, an array of tables).
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(
    r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)
_PART = re.compile(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'")


def _split_key(text: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(text)]


def _join(parts: list[str]) -> str:
    return ".".join(parts)


def line_index(text: str) -> dict[str, int]:
    """Return ``{dotted path: 1-based line}`` for every header and key assignment in ``text``.

    Arrays of tables get an index: ``[[categories.a.sql]]`` twice gives ``categories.a.sql[0]``
    and ``categories.a.sql[1]``.
    """
    index: dict[str, int] = {}
    implicit: dict[str, int] = {}  # tables only implied by a header (``categories`` of ``[categories.a]``)
    counters: dict[str, int] = {}
    current: str = ""
    in_multiline: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header and not _ASSIGN.match(line):
            parts = _split_key(header.group(2))
            if header.group(1) == "[[":
                # Nested arrays of tables: resolve the parent against the latest indices.
                parent = _resolve_parent(parts[:-1], counters)
                base = f"{parent}.{parts[-1]}" if parent else parts[-1]
                n = counters.get(base, -1) + 1
                counters[base] = n
                current = f"{base}[{n}]"
            else:
                current = _resolve_parent(parts, counters)
            index.setdefault(current, lineno)
            ancestor = current
            while True:
                cut = max(ancestor.rfind("."), ancestor.rfind("["))
                if cut <= 0:
                    break
                ancestor = ancestor[:cut]
                implicit.setdefault(ancestor, lineno)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = _join(_split_key(assign.group(1)))
            path = f"{current}.{key}" if current else key
            index.setdefault(path, lineno)
            rest = line[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote
    for path, lineno in implicit.items():
        index.setdefault(path, lineno)
    return index


def _resolve_parent(parts: list[str], counters: dict[str, int]) -> str:
    resolved: list[str] = []
    for part in parts:
        resolved.append(part)
        joined = _join(resolved)
        if joined in counters:
            resolved[-1] = f"{part}[{counters[joined]}]"
    return _join(resolved)


def find_line(index: dict[str, int], path: str) -> int | None:
    """Return the line of ``path`` or of its nearest ancestor, or None."""
    candidate = path
    while candidate:
        if candidate in index:
            return index[candidate]
        cut = max(candidate.rfind("."), candidate.rfind("["))
        candidate = candidate[:cut] if cut > 0 else ""
    return None


def dotted(loc: tuple[object, ...]) -> str:
    """Return pydantic's ``loc`` tuple as a dotted path with ``[i]`` indices."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
