"""Edit Legal's holds file as text, keeping everything outside the edited hold byte for byte.

``tomlkit`` keeps comments, order and formatting. A new hold is appended after the file's
last byte; an edited hold's changed keys are replaced where they stand and new keys go after
its last key (never after the comments that introduce the next block, which tomlkit counts
as part of the previous table). Validation is not done here: the caller validates the result
with the daemon's own validator (``config.loader.validate_holds``) before writing anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Array, Item, Table

#: The order of keys in a hold written by ``holds add`` (the shipped template's order).
KEY_ORDER = (
    "id",
    "kind",
    "matter",
    "reason",
    "reference",
    "placed_by",
    "placed_at",
    "expires_at",
    "categories",
    "subjects",
    "keep_younger_than",
)
_MULTILINE_FROM = 4  # subject lists longer than this are written one per line


class HoldEditError(ValueError):
    """The edit cannot be made (no such hold, a form of TOML this tool does not rewrite)."""


def _value(value: Any) -> Any:
    """Return a tomlkit item for a plain value (aware datetimes keep their offset)."""
    if isinstance(value, Item):
        return value
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        array.extend(str(v) for v in value)
        if len(value) > _MULTILINE_FROM:
            array.multiline(True)
        return array
    if isinstance(value, (date, datetime, str, bool, int)):
        return tomlkit.item(value)
    raise TypeError(f"cannot write a {type(value).__name__} to the holds file")  # a coding error


def render_hold(fields: Mapping[str, Any]) -> str:
    """Return the ``[[hold]]`` block of ``fields`` (keys in :data:`KEY_ORDER`, then the rest)."""
    table = tomlkit.table()
    ordered = [k for k in KEY_ORDER if k in fields] + [k for k in fields if k not in KEY_ORDER]
    for key in ordered:
        if fields[key] is not None:
            table.add(key, _value(fields[key]))
    doc = tomlkit.document()
    holds = tomlkit.aot()
    holds.append(table)
    doc.append("hold", holds)
    return doc.as_string()


def append_hold(text: str, fields: Mapping[str, Any], *, heading: str | None = None) -> str:
    """Return ``text`` with a new ``[[hold]]`` block (preceded by a ``# heading`` line) at its end."""
    block = render_hold(fields)
    if heading:
        block = f"# {heading}\n{block}"
    if not text:
        return block
    separator = "\n" if text.endswith("\n") else "\n\n"
    return text + separator + block


def _parse(text: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise HoldEditError(f"the file is not valid TOML ({exc}); fix it first") from None


def _holds(doc: tomlkit.TOMLDocument) -> list[Table]:
    found = doc.get("hold")
    if found is None:
        return []
    if not isinstance(found, AoT):
        raise HoldEditError("holds are not written as [[hold]] blocks in this file; edit it by hand")
    return list(found.body)


def hold_ids(text: str) -> list[str]:
    """Return the ids of the ``[[hold]]`` blocks of ``text``, in order.

    Raises:
        HoldEditError: the text is not TOML, or holds are not ``[[hold]]`` blocks.
    """
    return [str(t.get("id")) for t in _holds(_parse(text))]


class HoldBlock:
    """One ``[[hold]]`` table being edited in place."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, key: str) -> Any:
        """Return the plain value of ``key`` (None when absent)."""
        item: Any = self._table.get(key)
        return item.unwrap() if isinstance(item, Item) else item

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` (replacing it where it stands, or adding it after the last key); None removes it."""
        if value is None:
            if key in self._table:
                del self._table[key]
            return
        if key in self._table:
            self._table[key] = _value(value)
            return
        body = self._table.value.body
        last = max((i for i, (k, _) in enumerate(body) if k is not None), default=-1)
        if last + 1 >= len(body):
            self._table.add(key, _value(value))
        else:
            # Trailing comments and blank lines belong (for tomlkit) to this table but introduce
            # the next block: the new key goes before them.
            self._table.value._insert_at(last + 1, key, _value(value))

    def set_list(self, key: str, values: Sequence[str]) -> None:
        """Replace the array ``key``, keeping it one-per-line when it was (or is long)."""
        old = self._table.get(key)
        array = _value(list(values))
        if isinstance(old, Array) and "\n" in old.as_string():
            array.multiline(True)
        self.set(key, array)


def edit_hold(text: str, hold_id: str, change: Any) -> str:
    """Return ``text`` after ``change(block)`` edited the ``[[hold]]`` whose id is ``hold_id``.

    Raises:
        HoldEditError: no such hold in ``text``, or the text cannot be edited.
    """
    doc = _parse(text)
    for table in _holds(doc):
        if table.get("id") == hold_id:
            change(HoldBlock(table))
            result = doc.as_string()
            # A key added to the file's last table comes without a line end of its own.
            return result + "\n" if text.endswith("\n") and not result.endswith("\n") else result
    raise HoldEditError(f"no hold {hold_id!r} in this file")


def merged(current: Iterable[str] | None, add: Iterable[str], remove: Iterable[str]) -> list[str]:
    """Return ``current`` with ``add`` appended (once each, in order) and ``remove`` taken out."""
    out = list(current or [])
    for value in add:
        if value not in out:
            out.append(value)
    gone = set(remove)
    return [v for v in out if v not in gone]
