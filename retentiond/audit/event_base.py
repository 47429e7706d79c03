"""The base of the ledger's typed events: field validation, coercion and the stored JSON form.

The events themselves and what their fields may hold are in :mod:`retentiond.audit.events`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, ClassVar, Union

from retentiond.audit.canonical import MAX_SAFE_INTEGER, format_time, parse_time
from retentiond.audit.refs import RecordRef
from retentiond.audit.values import (
    BatchId,
    Digest,
    HashList,
    Label,
    Name,
    PublicKeyHex,
    Refs,
    Signature,
    SqlState,
)


class Event:
    """Base of the ledger's event types; only subclasses are appended."""

    event_name: ClassVar[str] = ""
    #: name of the field holding this event's record refs (indexed for ``audit find``), if any
    refs_field: ClassVar[str | None] = None
    #: name of a second refs field stored after the first in the same refs blob (S3 object refs)
    object_refs_field: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        for f, annotation in _hints(type(self)).items():
            object.__setattr__(self, f, _coerce(annotation, getattr(self, f), f))

    def json_fields(self) -> dict[str, Any]:
        """Return the event's JSON fields (without category, batch_id and refs, stored apart)."""
        out: dict[str, Any] = {}
        for f in _hints(type(self)):
            if f in _TOP_LEVEL or f == self.refs_field or f == self.object_refs_field:
                continue
            out[f] = _encode(getattr(self, f))
        return out

    def refs_blob(self) -> bytes:
        """Return the event's refs concatenated (empty when it carries none)."""
        if self.refs_field is None:
            return b""
        blob = b"".join(getattr(self, self.refs_field))
        if self.object_refs_field is not None:
            blob += b"".join(getattr(self, self.object_refs_field))
        return blob

    @classmethod
    def from_stored(cls, *, category: str | None, batch_id: str | None, fields: Mapping[str, Any], refs: Refs) -> Event:
        """Rebuild a typed event from a stored entry.

        Raises:
            ValueError, TypeError: the stored fields do not fit the event type.
        """
        kwargs: dict[str, Any] = {}
        for f, annotation in _hints(cls).items():
            if f == "category":
                kwargs[f] = category
            elif f == "batch_id":
                kwargs[f] = batch_id
            elif f == cls.refs_field:
                kwargs[f] = refs
            elif f == cls.object_refs_field:
                continue
            elif f in fields:
                kwargs[f] = _decode(annotation, fields[f])
        return cls(**kwargs)


_TOP_LEVEL = ("category", "batch_id")
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        resolved = typing.get_type_hints(cls, include_extras=True)
        hints = {f.name: resolved[f.name] for f in dataclasses.fields(cls)}
        _HINTS[cls] = hints
    return hints


def _optional(annotation: Any) -> Any | None:
    """Return X for ``X | None``, else None."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return None


def _coerce(annotation: Any, value: Any, name: str) -> Any:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[1]  # the validating class
    inner = _optional(annotation)
    if inner is not None:
        return None if value is None else _coerce(inner, value, name)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{name}: expected a tuple of {item_type.__name__}, got {type(value).__name__}")
        if item_type is RecordRef:
            for item in value:
                if type(item) is not RecordRef:
                    raise TypeError(f"{name}: expected RecordRef values (made by RefMaker), got {type(item).__name__}")
            return tuple(value)
        return tuple(_coerce(item_type, v, name) for v in value)
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        if not isinstance(value, Mapping):
            raise TypeError(f"{name}: expected a mapping")
        if len(value) > 1000:
            raise ValueError(f"{name}: at most 1000 items")
        return types.MappingProxyType(
            {_coerce(key_type, k, name): _coerce(value_type, v, name) for k, v in value.items()}
        )
    return _coerce_scalar(annotation, value, name)


def _coerce_scalar(annotation: Any, value: Any, name: str) -> Any:
    if annotation is int:
        if type(value) is not int:
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name}: counts are never negative")
        if value > MAX_SAFE_INTEGER:
            raise ValueError(f"{name}: beyond 2**53 - 1, JSON cannot carry it exactly")
        return value
    if annotation is datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"{name}: expected a datetime, got {type(value).__name__}")
        format_time(value)  # refuses naive values
        return value
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation(value)
    if annotation in (Name, Digest, Signature, BatchId, Label, HashList, PublicKeyHex, SqlState):
        if isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{name}: expected a {annotation.__name__} string, got bytes")
        try:
            return annotation(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    raise TypeError(f"{name}: unsupported field type {annotation!r}")  # pragma: no cover - a coding error


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str.__str__(k): _encode(v) for k, v in value.items()}
    return value


def _decode(annotation: Any, value: Any) -> Any:
    if typing.get_origin(annotation) is Annotated:
        return value
    inner = _optional(annotation)
    if inner is not None:
        return None if value is None else _decode(inner, value)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return tuple(_decode(typing.get_args(annotation)[0], v) for v in value)
    if origin is dict:
        _, value_type = typing.get_args(annotation)
        return {k: _decode(value_type, v) for k, v in value.items()}
    if annotation is datetime:
        return parse_time(value)
    return value
