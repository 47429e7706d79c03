"""How a configuration file becomes issues: reading it, and pydantic's errors as dotted paths with lines.

Every problem is collected (never only the first), each with its dotted path, a message in the
configuration's words, and its line (``locate.py``).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from retentiond.config.locate import dotted, find_line, line_index
from retentiond.errors import ConfigIssue

_UNION_TAGS = {"str", "int", "bool", "float", "list", "dict", "date", "datetime"}
_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "float_type": "must be a number",
    "list_type": "must be an array",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "datetime_type": "must be a date-time",
    "date_type": "must be a date",
}
_TOML_TYPES = {
    "str": "a string",
    "int": "an integer",
    "bool": "a boolean",
    "float": "a float",
    "list": "an array",
    "dict": "a table",
    "date": "a date",
    "datetime": "a date-time",
    "time": "a time",
}


def read_toml(
    path: Path, issues: list[ConfigIssue], raw: bytes | None = None
) -> tuple[dict[str, Any], str, str] | None:
    """Return (data, text, sha256) of ``path`` (or of ``raw``, its would-be content) or None
    after appending the reason to ``issues``."""
    label = str(path)
    try:
        if raw is None:
            raw = path.read_bytes()
    except FileNotFoundError:
        issues.append(ConfigIssue("", "file not found", file=label))
        return None
    except IsADirectoryError:
        issues.append(ConfigIssue("", "is a directory, not a file", file=label))
        return None
    except OSError as exc:
        issues.append(ConfigIssue("", f"cannot read file: {exc.strerror}", file=label))
        return None
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        issues.append(ConfigIssue("", f"not valid UTF-8 (byte {exc.start})", file=label, line=line))
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        syntax_line = int(found.group(1)) if found else None
        message = str(exc).split(" (at line")[0]
        issues.append(ConfigIssue("", f"TOML syntax error: {message}", file=label, line=syntax_line))
        return None
    return data, text, digest


def _unwrap(annotation: Any) -> list[Any]:
    """Return the model classes an annotation may hold (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _unwrap(arg)]
    if origin in (list, dict):
        return [m for arg in typing.get_args(annotation)[-1:] for m in _unwrap(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _known_keys(models: list[type[BaseModel]], loc: tuple[Any, ...]) -> list[str]:
    """Return the keys allowed at ``loc`` (the parent of an unknown key), walking from ``models``."""
    current = models
    for part in loc:
        if isinstance(part, int) or part in _UNION_TAGS:
            continue
        nxt: list[type[BaseModel]] = []
        for model in current:
            info = model.model_fields.get(str(part))
            if info is not None:
                nxt.extend(_unwrap(info.annotation))
        if nxt:
            current = nxt
        # a dict key (store or category name): stay on the dict's value models
    return sorted({name for model in current for name in model.model_fields})


def issues_from(
    exc: ValidationError,
    prefix: tuple[Any, ...],
    models: list[type[BaseModel]],
    file: str,
    index: dict[str, int],
    strip_first: int = 0,
) -> list[ConfigIssue]:
    """Translate pydantic errors into issues with paths, lines and did-you-mean hints."""
    out: list[ConfigIssue] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False, include_input=True):
        raw_loc = err["loc"][strip_first:]
        loc = tuple(p for p in raw_loc if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p)))
        path = dotted(prefix + loc)
        if err["type"] == "extra_forbidden":
            unknown = str(loc[-1])
            allowed = _known_keys(models, loc[:-1])
            close = difflib.get_close_matches(unknown, allowed, n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?" if close else (f"; known keys: {', '.join(allowed)}" if allowed else "")
            )
            message = f"unknown key{hint}"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] in _TYPE_MESSAGES:
            if path in seen:
                continue  # one message per key, not one per member of a union
            got = _TOML_TYPES.get(type(err.get("input")).__name__, "another type")
            if len(raw_loc) > len(loc):
                message = f"has the wrong type: got {got}"
            else:
                message = f"{_TYPE_MESSAGES[err['type']]}, got {got}"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        seen.add(path)
        out.append(ConfigIssue(path, message, file=file, line=find_line(index, path)))
    return out


class Issues:
    """The issues found in one file, each with its dotted path and line."""

    def __init__(self, label: str, text: str) -> None:
        self.label = label
        self.index = line_index(text)
        self.found: list[ConfigIssue] = []

    def add(self, path: str, message: str) -> None:
        """Record ``message`` at the dotted ``path``."""
        self.found.append(ConfigIssue(path, message, file=self.label, line=find_line(self.index, path)))

    def validate(self, model: Any, value: Any, prefix: tuple[Any, ...], models: list[type[BaseModel]]) -> Any:
        """Return ``value`` validated by ``model`` (a model or a TypeAdapter), or None after recording why not."""
        try:
            if isinstance(model, TypeAdapter):
                return model.validate_python(value)
            return model.model_validate(value)
        except ValidationError as exc:
            # A discriminated union (stores) puts its tag first in every error location.
            strip = 1 if isinstance(model, TypeAdapter) else 0
            self.found.extend(issues_from(exc, prefix, models, self.label, self.index, strip))
            return None
