"""Record refs: keyed, irreversible names for records (SPEC §5).

A :class:`RecordRef` is ``HMAC-SHA256(key, "v1|<store>|<table or bucket>|<canonical key>")``.
The ledger stores only refs, never keys or values, so it never needs erasing; an auditor who
holds the HMAC key recomputes a ref to prove "this record was deleted on that day".

Canonical key text (documented in docs/auditing.md; changing it orphans every stored ref):

* one key column: the canonical text of its value;
* several key columns: the compact JSON array (``["a","b"]``, no spaces, UTF-8) of the
  canonical texts of the values, in key-column order;
* canonical text of a value: ``int`` in decimal; ``str`` as is; ``uuid.UUID`` in lowercase
  hyphenated form; aware ``datetime`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; ``date`` as
  ``YYYY-MM-DD``. Anything else (bool, float, bytes, None, naive datetime) is refused.
* S3 objects: ``<object key>#<version id>``, version id ``null`` for an unversioned object
  (the name S3 itself gives it).
* S3 objects, every version at once (:meth:`RefMaker.s3_object`):
  ``v1|@object|<store>|<bucket>|<object key>`` (``@`` cannot start a store name, so this
  message never equals a version's or a row's);
* hold subjects (:meth:`RefMaker.subject`): ``v1|subject|<subject id>``;
* a hold's reason text (:meth:`RefMaker.hold_reason`): ``v1|@hold-reason|<reason>``, kept as a
  hex digest so that the reason is provable with the key but never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

_TOKEN = object()  # only this module can build refs: see RecordRef.__new__
_LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}$")
REF_SIZE = 32


class RecordRef(bytes):
    """An opaque 32-byte HMAC naming one record; made only by :class:`RefMaker`.

    It is a ``bytes`` subclass so that many refs join cheaply, but a plain ``bytes`` or
    ``str`` is never accepted where a ref is expected (the event types check the class).
    """

    __slots__ = ()

    def __new__(cls, value: bytes, _token: object = None) -> RecordRef:
        """Refuse construction outside this package.

        Raises:
            TypeError: called without the private token (use RefMaker).
        """
        if _token is not _TOKEN:
            raise TypeError("RecordRef values are made by RefMaker, never from raw bytes")
        if len(value) != REF_SIZE:
            raise ValueError("a RecordRef is 32 bytes")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"RecordRef({self.hex()})"

    __str__ = __repr__


class RefBlock:
    """Many refs kept as one ``bytes`` value (``REF_SIZE`` bytes each, in order); made only by :class:`RefMaker`.

    What the relay hands the ledger for a batch of thousands of records: making one
    :class:`RecordRef` object per record cost as much as computing the refs.
    """

    __slots__ = ("blob",)

    def __init__(self, blob: bytes | bytearray, _token: object = None) -> None:
        """Refuse construction outside this module.

        Raises:
            TypeError: called without the private token (use RefMaker).
            ValueError: the blob is not a whole number of refs.
        """
        if _token is not _TOKEN:
            raise TypeError("RefBlock values are made by RefMaker, never from raw bytes")
        if len(blob) % REF_SIZE:
            raise ValueError("a RefBlock holds whole 32-byte refs")
        self.blob = bytes(blob)

    def __len__(self) -> int:
        """Return the number of refs."""
        return len(self.blob) // REF_SIZE

    def refs(self) -> tuple[RecordRef, ...]:
        """Return the refs one by one (one object each)."""
        return split_refs(self.blob)

    def __repr__(self) -> str:
        return f"RefBlock({len(self)} refs)"


def split_refs(blob: bytes) -> tuple[RecordRef, ...]:
    """Return the refs of a stored concatenation of 32-byte refs (internal)."""
    return tuple(RecordRef(blob[i : i + REF_SIZE], _TOKEN) for i in range(0, len(blob), REF_SIZE))


def _label(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise ValueError(f"invalid {kind} name for a record ref (letters, digits, _ . - / only)")
    return value


def canonical_value(value: Any) -> str:
    """Return the canonical text of one key value (see the module docstring).

    Raises:
        TypeError: the value's type has no canonical text.
        ValueError: a naive datetime.
    """
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is int:
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime key refused: give a timezone-aware value")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):  # str subclasses (enums etc.): their plain text
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value)
    raise TypeError(f"no canonical key text for a {kind.__name__} value")


def canonical_key(key_values: Sequence[Any]) -> str:
    """Return the canonical key text of a record's primary-key values.

    Raises:
        TypeError: ``key_values`` is not a non-empty tuple/list, or holds an unsupported type.
    """
    if not isinstance(key_values, (tuple, list)) or not key_values:
        raise TypeError("key_values must be a non-empty tuple of the key column values")
    if len(key_values) == 1:
        return canonical_value(key_values[0])
    return json.dumps([canonical_value(v) for v in key_values], separators=(",", ":"), ensure_ascii=False)


class RefMaker:
    """Computes record refs with the ledger's HMAC key."""

    def __init__(self, hmac_key: bytes) -> None:
        """Keep a pre-keyed HMAC object; ``hmac_key`` must have at least 16 bytes.

        Raises:
            TypeError: the key is not bytes.
            ValueError: the key is shorter than 16 bytes.
        """
        if not isinstance(hmac_key, (bytes, bytearray)):
            raise TypeError("hmac_key must be bytes")
        if len(hmac_key) < 16:
            raise ValueError("the audit HMAC key must have at least 16 bytes")
        self._key = bytes(hmac_key)
        self._base = hmac.new(self._key, digestmod=hashlib.sha256)
        # HMAC's two keyed SHA-256 states (RFC 2104), copied per ref: a quarter of the cost of
        # hmac.digest(), which re-derives them for every message (refs of whole batches).
        padded = (hashlib.sha256(self._key).digest() if len(self._key) > 64 else self._key).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def _many(self, prefix: str, texts: Iterable[str]) -> list[RecordRef]:
        """Return HMAC(key, prefix + text) of each text as refs (the one trusted bulk maker)."""
        inner, outer, new = self._inner.copy, self._outer.copy, bytes.__new__
        out: list[RecordRef] = []
        append = out.append
        for text in texts:
            i = inner()
            i.update((prefix + text).encode("utf-8"))
            o = outer()
            o.update(i.digest())
            # bytes.__new__ skips the token check: this is the one trusted maker.
            append(new(RecordRef, o.digest()))
        return out

    def _make(self, message: str) -> RecordRef:
        h = self._base.copy()
        h.update(message.encode("utf-8"))
        return RecordRef(h.digest(), _TOKEN)

    def sql(self, store: str, table: str, key_values: Sequence[Any]) -> RecordRef:
        """Return the ref of the SQL row with primary key ``key_values`` in ``store``/``table``.

        Raises:
            ValueError: ``store``/``table`` are not plain names, or a naive datetime key.
            TypeError: ``key_values`` is not a tuple of supported values.
        """
        return self._make(f"v1|{_label('store', store)}|{_label('table', table)}|{canonical_key(key_values)}")

    def sql_many(self, store: str, table: str, keys: Iterable[Sequence[Any]]) -> list[RecordRef]:
        """Return the refs of many rows of one table (well under 1 µs per key).

        Raises:
            Same as :meth:`sql`.
        """
        prefix = f"v1|{_label('store', store)}|{_label('table', table)}|"
        return self._many(prefix, map(canonical_key, keys))

    def sql_texts(self, store: str, table: str, texts: Iterable[str]) -> list[RecordRef]:
        """Return the refs of rows of one table given by their canonical key texts (what an outbox row keeps).

        Raises:
            ValueError: ``store``/``table`` are not plain names.
        """
        return self._many(f"v1|{_label('store', store)}|{_label('table', table)}|", texts)

    def sql_text_block(self, store: str, table: str, texts: Iterable[str]) -> RefBlock:
        """Return :meth:`sql_texts` as one :class:`RefBlock` (no object per ref: half the time).

        Raises:
            ValueError: ``store``/``table`` are not plain names.
        """
        start = self._inner.copy()
        start.update(f"v1|{_label('store', store)}|{_label('table', table)}|".encode())
        inner, outer = start.copy, self._outer.copy
        out = bytearray()
        extend = out.extend
        for text in texts:
            i = inner()
            i.update(text.encode("utf-8"))
            o = outer()
            o.update(i.digest())
            extend(o.digest())
        return RefBlock(out, _TOKEN)

    def s3(self, store: str, bucket: str, object_key: str, version_id: str | None) -> RecordRef:
        """Return the ref of one object version (``version_id`` None: unversioned, ``null``).

        Raises:
            ValueError: ``store``/``bucket`` are not plain names.
            TypeError: ``object_key`` or ``version_id`` is not a string.
        """
        if not isinstance(object_key, str) or not (version_id is None or isinstance(version_id, str)):
            raise TypeError("object_key and version_id must be strings")
        version = "null" if version_id is None else version_id
        return self._make(f"v1|{_label('store', store)}|{_label('bucket', bucket)}|{object_key}#{version}")

    def s3_object(self, store: str, bucket: str, object_key: str) -> RecordRef:
        """Return the object-level ref of ``object_key``: the same for every version of it.

        Recorded beside each version ref of an S3 batch so that ``audit find`` needs no version id.

        Raises:
            ValueError: ``store``/``bucket`` are not plain names.
            TypeError: ``object_key`` is not a string.
        """
        if not isinstance(object_key, str):
            raise TypeError("object_key must be a string")
        return self._make(f"v1|@object|{_label('store', store)}|{_label('bucket', bucket)}|{object_key}")

    def hold_reason(self, reason: str) -> str:
        """Return the keyed digest (64 hex characters) of a hold's reason text.

        Raises:
            TypeError: ``reason`` is not a string.
        """
        if not isinstance(reason, str):
            raise TypeError("reason must be a string")
        return self._make(f"v1|@hold-reason|{reason}").hex()

    def subject(self, subject_id: str) -> RecordRef:
        """Return the ref of a data subject named by a hold (subject IDs are personal data).

        Raises:
            TypeError: ``subject_id`` is not a string.
        """
        if not isinstance(subject_id, str):
            raise TypeError("subject_id must be a string")
        return self._make(f"v1|subject|{subject_id}")
