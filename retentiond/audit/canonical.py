"""Canonical JSON, UTC time text and the hash chain of the audit ledger (SPEC §5).

The hash of an entry is ``SHA-256(prev_hash || canonical JSON of the entry without hash)``.
Canonical JSON here means: keys sorted, compact separators (``,`` and ``:``), UTF-8, no
floats (a float anywhere is a programming error and raises), no NaN.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

#: Prefix of the string whose SHA-256 is the genesis ``prev_hash`` of a ledger.
GENESIS_PREFIX = "retentiond-ledger-v1|"

#: Fixed-width UTC time format: fixed width makes the stored text sort like the instants.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_ENCODE = encode_basestring  # the C implementation when available


def _refuse_float(value: str) -> Any:
    raise ValueError("floats are not allowed in canonical JSON")


def canonical_dumps(value: Any) -> str:
    """Return the canonical JSON text of ``value``.

    Raises:
        TypeError: ``value`` contains a float or a type JSON cannot carry.
    """
    _check_no_float(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_no_float(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("floats are not allowed in canonical JSON")
    if isinstance(value, dict):
        for v in value.values():
            _check_no_float(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_no_float(v)


def canonical_loads(text: str | bytes) -> Any:
    """Parse JSON, refusing floats (so a round trip can never change a number).

    Raises:
        ValueError: the text is not JSON or contains a float.
    """
    return json.loads(text, parse_float=_refuse_float, parse_constant=_refuse_float)


def genesis_hash(ledger_id: str) -> bytes:
    """Return the 32-byte ``prev_hash`` of the first entry of ledger ``ledger_id``."""
    return hashlib.sha256((GENESIS_PREFIX + ledger_id).encode("utf-8")).digest()


def format_time(value: datetime) -> str:
    """Return the fixed-width UTC text of an aware datetime.

    Raises:
        ValueError: ``value`` is naive (its instant would be a guess).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: give a timezone-aware datetime")
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Parse the fixed-width UTC text written by :func:`format_time`.

    Raises:
        ValueError: ``text`` is not in that format.
    """
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def utcnow_text() -> str:
    """Return the current instant as fixed-width UTC text."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _js(value: str | None) -> str:
    return "null" if value is None else _ENCODE(value)


def entry_body(
    *,
    seq: int,
    time: str,
    event: str,
    run_id: str | None,
    category: str | None,
    batch_id: str | None,
    fields: str,
    refs: bytes,
) -> bytes:
    """Return the canonical JSON bytes of one entry (without its hash).

    ``fields`` is the stored canonical JSON text of the event's own fields and is spliced
    in verbatim, so the hash covers the exact stored bytes; ``refs`` is the concatenation
    of the 32-byte record refs, carried as one hex string (cheap to hash, see
    docs/performance.md). The result equals ``canonical_dumps`` of the equivalent dict
    (a test asserts it), so an offline verifier can rebuild it from an export line.
    """
    # Keys in sorted order: batch_id, category, event, fields, refs, run_id, seq, time.
    return (
        '{"batch_id":%s,"category":%s,"event":%s,"fields":%s,"refs":"%s","run_id":%s,"seq":%d,"time":%s}'
        % (_js(batch_id), _js(category), _js(event), fields, refs.hex(), _js(run_id), seq, _js(time))
    ).encode("utf-8")


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    """Return ``SHA-256(prev_hash || body)``."""
    return hashlib.sha256(prev_hash + body).digest()
