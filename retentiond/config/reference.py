"""Generate the configuration reference (``docs/configuration.md``) from the pydantic models.

The Markdown between ``<!-- BEGIN GENERATED -->`` and ``<!-- END GENERATED -->`` is produced
here, from each model's fields (type, default, ``Field(description=...)``), so the reference
cannot drift from what the loader accepts; ``tests/config/test_reference.py`` checks it.

    python -m retentiond.config.reference                      # print the generated part
    python -m retentiond.config.reference --write docs/configuration.md
    python -m retentiond.config.reference --check docs/configuration.md
"""

from __future__ import annotations

import argparse
import functools
import operator
import re
import sys
import types
import typing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from retentiond.config.durations import RetentionPeriod, format_operational
from retentiond.config.holds import Hold
from retentiond.config.models import (
    ANONYMIZE_STRATEGIES,
    AnchorSettings,
    AuditSettings,
    Category,
    DaemonSettings,
    HistoryTable,
    S3Store,
    S3Target,
    Settings,
    SqlStore,
    SqlTarget,
)

BEGIN = "<!-- BEGIN GENERATED -->"
END = "<!-- END GENERATED -->"


@dataclass(frozen=True)
class Section:
    """One TOML table of the reference: its heading, the file it lives in and its model."""

    heading: str
    file: str
    model: type[BaseModel]
    note: str = ""


SECTIONS: tuple[Section, ...] = (
    Section(
        "Top level of `retention.toml`",
        "retention.toml",
        Settings,
        "The file has four tables; each is described below. Any other top-level key is an error.",
    ),
    Section("`[daemon]`", "retention.toml", DaemonSettings),
    Section(
        "`[audit]`",
        "retention.toml",
        AuditSettings,
        "Give at most one of `url` / `url_env` / `url_credential`, and likewise for `hmac_key_*` and `signing_key_*`.",
    ),
    Section("`[audit.anchor]`", "retention.toml", AnchorSettings),
    Section(
        '`[stores.NAME]` with `kind = "sql"`',
        "retention.toml",
        SqlStore,
        "Exactly one of `url`, `url_env`, `url_credential` is required. An inline `url` must not carry a password.",
    ),
    Section(
        '`[stores.NAME]` with `kind = "s3"`',
        "retention.toml",
        S3Store,
        "Credentials come from boto3's standard chain (instance role, `AWS_*` variables, `profile`); "
        "never from this file.",
    ),
    Section(
        "`[categories.NAME]`",
        "retention.toml",
        Category,
        "A category needs at least one target (`[[categories.NAME.sql]]` or `[[categories.NAME.s3]]`); "
        "`retain` must not be below `daemon.min_retention`.",
    ),
    Section(
        "`[[categories.NAME.sql]]`",
        "retention.toml",
        SqlTarget,
        "`store` must name a store of kind `sql`. `anonymize` is required when the category's action is "
        "`anonymize` and refused otherwise; it must not rewrite key or age columns.",
    ),
    Section(
        "`history = { ... }` (in `[[categories.NAME.sql]]`)",
        "retention.toml",
        HistoryTable,
        "An inline table; `parent` has one column per column of the target's `key`, in the same order.",
    ),
    Section(
        "`[[categories.NAME.s3]]`",
        "retention.toml",
        S3Target,
        '`store` must name a store of kind `s3`. S3 targets support `action = "delete"` only.',
    ),
    Section(
        "`[[hold]]`",
        "holds file",
        Hold,
        "In Legal's holds file (`daemon.holds_file`), not in `retention.toml`; see docs/legal-holds.md. "
        'Ids are unique across all holds files; categories must exist (or be `"*"`, alone).',
    ),
)

# Validator function name -> what the value is, in TOML terms.
_VALIDATED: dict[str, str] = {
    "_check_identifier": "string: SQL identifier",
    "_check_table_name": "string: table (`[schema.]name`)",
    "check_name": "string: name",
    "_check_hold_id": "string: hold id",
    "_check_bucket": "string: S3 bucket name",
    "_check_env_name": "string: environment variable name",
    "_check_credential_name": "string: systemd credential name",
    "_check_timezone": "string: IANA time zone",
    "validate_cron": "string: cron (5 fields)",
    "_parse_retention": "string: retention period",
    "_parse_operational": "string: duration",
    "_start_instant": "date or offset date-time",
    "_end_instant": "date or offset date-time",
}
_PLAIN = {str: "string", int: "integer", float: "float", bool: "boolean"}
_SUBTABLES: dict[type[BaseModel], str] = {
    DaemonSettings: "table `[daemon]`",
    AuditSettings: "table `[audit]`",
    AnchorSettings: "table `[audit.anchor]`",
    Category: "table `[categories.NAME]`",
    HistoryTable: "inline table `history = { ... }`",
}
_ARRAYS_OF_TABLES: dict[type[BaseModel], str] = {
    SqlTarget: "array of tables `[[categories.NAME.sql]]`",
    S3Target: "array of tables `[[categories.NAME.s3]]`",
    Hold: "array of tables `[[hold]]`",
}

STRATEGIES: dict[str, str] = {
    "null": "Set the column to NULL (the column must be nullable).",
    "redact": "Replace a text value with the fixed marker `[redacted]`.",
    "hmac": (
        "Replace the value with a keyed pseudonym `anon:` + 32 hex characters of HMAC-SHA256 "
        "(stable: equal inputs give equal outputs; the column needs room for 37 characters)."
    ),
    "truncate_ip": "Keep the network of an IP address: IPv4 /24, IPv6 /48.",
    "year": "Truncate a date or timestamp to 1 January of its year (UTC calendar).",
    "month": "Truncate a date or timestamp to the first day of its month (UTC calendar).",
    "fixed:<value>": "Replace the value with the literal text after `fixed:` (at most 200 characters).",
}

# Table rows are one line each in the generated Markdown; the source splits them into fragments.
DURATIONS = (
    "Two grammars, on purpose. A number (digits only: no sign, no fraction, no space) directly followed by a unit.\n"
    "\n"
    "| Grammar | Units | Used by | Notes |\n"
    "|---|---|---|---|\n"
    "| retention period | `d` days, `w` weeks, `mo` calendar months, `y` calendar years "
    "| `retain`, `prior_versions`, `min_retention`, `hold_release_grace`, `keep_younger_than` "
    '| Greater than zero, at most 200 years. A bare `m` is refused, so `"6m"` can never mean six minutes where '
    "six months was meant. Months and years are calendar arithmetic in UTC: `1mo` before 2026-03-31 is 2026-02-28; "
    "`1y` before 2028-02-29 is 2027-02-28. |\n"
    "| duration | `s` seconds, `m` minutes, `h` hours, `d` days "
    "| pauses, timeouts, intervals (`pause_between_batches`, `checkpoint_interval`, `lock_timeout`, ...) "
    '| At most 366 days. Zero only where the description allows it (`pause_between_batches = "0s"`). |\n'
    "\n"
    "Cron schedules have five fields (minute hour day-of-month month day-of-week) with standard crontab\n"
    "semantics: Sunday is `0` (or `7`), and when both day fields are restricted either one matching fires.\n"
    "They are evaluated in `daemon.timezone`; retention cutoffs are always UTC instants.\n"
)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """Return (annotation without ``None``, whether None was allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) != len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return functools.reduce(operator.or_, args), optional
    return annotation, False


def _constraints(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        if isinstance(item, Ge):
            parts.append(f"≥ {item.ge}")
        elif isinstance(item, Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, Le):
            parts.append(f"≤ {item.le}")
        elif isinstance(item, Lt):
            parts.append(f"< {item.lt}")
        elif isinstance(item, MinLen) and item.min_length > 0:
            parts.append(f"at least {item.min_length}")
        elif isinstance(item, MaxLen):
            parts.append(f"at most {item.max_length}")
    return ", ".join(parts)


def toml_type(annotation: Any, metadata: list[Any] | None = None) -> str:
    """Return the TOML type of a field annotation, e.g. ``array of string: SQL identifier``."""
    metadata = list(metadata or [])
    annotation, _ = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return toml_type(inner, extra + metadata)
    described = ""
    for item in metadata:
        func = getattr(item, "func", None)
        if func is not None and func.__name__ in _VALIDATED:
            described = _VALIDATED[func.__name__]
    bounds = _constraints(metadata)
    if described:
        return f"{described} ({bounds})" if bounds and "duration" not in described else described
    if origin is Literal:
        return " \\| ".join(f'`"{v}"`' for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(toml_type(a) for a in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and item in _ARRAYS_OF_TABLES:
            return _ARRAYS_OF_TABLES[item]
        base = f"array of {toml_type(item)}"
        return f"{base} ({bounds})" if bounds else base
    if origin is dict:
        key, value = typing.get_args(annotation)
        value_origin = typing.get_origin(_strip_optional(value)[0])
        if value_origin is typing.Annotated and typing.get_args(value)[0] == SqlStore | S3Store:
            return "tables `[stores.NAME]`"
        if isinstance(value, type) and value is Category:
            return "tables `[categories.NAME]`"
        return f"inline table {{ {toml_type(key)} = {toml_type(value)} }}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _SUBTABLES.get(annotation, "table")
    if annotation in _PLAIN:
        base = _PLAIN[annotation]
        return f"{base} ({bounds})" if bounds else base
    return str(annotation)


def _format_default(value: Any) -> str:
    if isinstance(value, BaseModel):
        return "(table)"
    if isinstance(value, RetentionPeriod):
        return f'`"{value}"`'
    if isinstance(value, timedelta):
        return f'`"{format_operational(value)}"`'
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, (int, float)):
        return f"`{value}`"
    if value == [] or value == {}:
        return "empty"
    return f"`{value}`"


def default_text(info: FieldInfo) -> str:
    """Return the default of a field as the reference shows it ("required", "unset", a value)."""
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        return _format_default(info.default_factory())  # type: ignore[call-arg]
    if info.default is None or info.default is PydanticUndefined:
        return "unset"
    return _format_default(info.default)


def _cell(text: str) -> str:
    """Return description text safe for a Markdown table cell; 'quoted' literals become code."""
    text = re.sub(r"(?<!\w)'([^'\s][^']*)'(?!\w)", r"`\1`", text)
    text = re.sub(r"(?<!`)\[\"\*\"\]", '`["*"]`', text)
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("*", "\\*").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|").replace("\n", " ")


def field_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """Return (key, type, default, description) for every field of ``model``."""
    rows = []
    for name, info in model.model_fields.items():
        rows.append(
            (f"`{name}`", toml_type(info.annotation, info.metadata), default_text(info), _cell(info.description or ""))
        )
    return rows


def _section(section: Section) -> str:
    doc = (section.model.__doc__ or "").strip().splitlines()[0]
    doc = re.sub(r"^``[^`]+``(?: with ``[^`]+``)?:\s*", "", doc).replace("``", "`")
    lines = [f"### {section.heading}", "", f"*{section.file}* — {doc}", ""]
    if section.note:
        lines += [section.note, ""]
    lines += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    lines += [f"| {k} | {t} | {d} | {desc} |" for k, t, d, desc in field_rows(section.model)]
    return "\n".join(lines) + "\n"


def generate() -> str:
    """Return the generated Markdown (without the markers)."""
    parts = [
        "## Keys\n",
        "Every key of every table, generated from the models that validate the files. Keys not listed are errors.\n",
    ]
    parts += [_section(s) for s in SECTIONS]
    parts += ["## Durations and schedules\n", DURATIONS]
    parts += [
        "## Anonymize strategies\n",
        'Values of `anonymize = { column = "strategy" }` in `[[categories.NAME.sql]]`. The strategy must fit '
        "the column's type and constraints; `retentiond config validate --connect` checks this against the database.\n",
        "| Strategy | Effect |\n|---|---|\n"
        + "".join(f"| `{name}` | {STRATEGIES[name]} |\n" for name in ANONYMIZE_STRATEGIES),
    ]
    return "\n".join(parts).rstrip() + "\n"


def splice(document: str, generated: str) -> str:
    """Return ``document`` with the text between the markers replaced by ``generated``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers {BEGIN} / {END} not found in order")
    return document[: start + len(BEGIN)] + "\n" + generated + document[end:]


def generated_part(document: str) -> str:
    """Return the text between the markers of ``document`` (without the newline after BEGIN)."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers {BEGIN} / {END} not found in order")
    return document[start + len(BEGIN) + 1 : end]


def main(argv: list[str] | None = None) -> int:
    """Print, write or check the generated reference; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m retentiond.config.reference", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="replace the generated part of FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 when the generated part of FILE is out of date")
    args = parser.parse_args(argv)
    text = generate()
    if args.write:
        path = Path(args.write)
        path.write_text(splice(path.read_text(encoding="utf-8"), text), encoding="utf-8")
        return 0
    if args.check:
        current = generated_part(Path(args.check).read_text(encoding="utf-8"))
        if current != text:
            print(
                f"{args.check} is out of date: run python -m retentiond.config.reference --write {args.check}",
                file=sys.stderr,
            )
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
