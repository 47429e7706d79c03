"""Canonical JSON (RFC 8785, JCS), UTC time text and the hash chain of the audit ledger (SPEC §5).

The hash of an entry is ``SHA-256(prev_hash || canonical JSON of the entry without hash)``.
Canonical JSON is the JSON Canonicalization Scheme of RFC 8785: object keys sorted by their
UTF-16 code units, no insignificant whitespace, strings escaped as ECMAScript does (only
``"``, ``\\`` and control characters), UTF-8 output. The ledger narrows it further: no floats
(a float anywhere is a programming error and raises) and integers within ±(2**53 - 1).

The ledger's first format (sorted keys, compact separators, ``ensure_ascii=False``) is the
same byte sequence as JCS for every value the ledger can hold (ASCII keys, no floats, safe
integers): tests/audit/test_canonical.py proves it as a property, so ledgers written before
the switch to an RFC 8785 implementation verify unchanged and no format version was needed.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

import rfc8785

#: Prefix of the string whose SHA-256 is the genesis ``prev_hash`` of a ledger.
GENESIS_PREFIX = "retentiond-ledger-v1|"

#: Fixed-width UTC time format: fixed width makes the stored text sort like the instants.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

#: Largest integer JSON can carry exactly (I-JSON, RFC 7493); JCS refuses larger ones.
MAX_SAFE_INTEGER = 2**53 - 1

_ENCODE = encode_basestring  # the C implementation when available
_LONG_DIGITS = re.compile(r"\d{16}")  # a number that may exceed 2**53 - 1 (or a digit run in a string)


def _refuse_float(value: str) -> Any:
    raise ValueError("floats are not allowed in canonical JSON")


def jcs_dumps(value: Any) -> str:
    """Return the RFC 8785 canonical JSON text of ``value`` (floats included, as JCS prints them).

    Raises:
        ValueError: NaN/infinity, an integer beyond ±(2**53 - 1), lone surrogates, non-string keys,
            or a type JSON cannot carry.
    """
    try:
        return rfc8785.dumps(value).decode("utf-8")
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(str(exc)) from None


def canonical_dumps(value: Any) -> str:
    """Return the canonical JSON text of ``value`` as the ledger stores it: JCS without floats.

    Plain JSON text is used when it is provably identical to JCS (ASCII only, no long number),
    which is the ledger's every entry; anything else goes through the RFC 8785 encoder.

    Raises:
        TypeError: ``value`` contains a float or a type JSON cannot carry.
        ValueError: an integer beyond ±(2**53 - 1), or text JCS cannot encode.
    """
    _check_no_float(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if text.isascii() and not _LONG_DIGITS.search(text):
        return text
    return jcs_dumps(value)


def canonical_text(value: Any) -> str:
    """Return the canonical JSON text of a parsed value known to hold no float (see :func:`canonical_loads`).

    The fast path of :func:`canonical_dumps` without the float walk: verification re-encodes the
    ``fields`` of every exported entry with it.

    Raises:
        ValueError: an integer beyond ±(2**53 - 1), or text JCS cannot encode.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if text.isascii() and not _LONG_DIGITS.search(text):
        return text
    return jcs_dumps(value)


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
    """Parse JSON, refusing floats, NaN and infinities (so a round trip can never change a number).

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
    return "null" if value is None else str(_ENCODE(value))


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
    docs/performance.md). The result equals the JCS text of the equivalent dict (the keys
    below are in JCS order; a test asserts the equality), so an offline verifier can rebuild
    it from an export line.
    """
    # Keys in sorted order: batch_id, category, event, fields, refs, run_id, seq, time.
    return (
        '{"batch_id":%s,"category":%s,"event":%s,"fields":%s,"refs":"%s","run_id":%s,"seq":%d,"time":%s}'  # noqa: UP031
        % (_js(batch_id), _js(category), _js(event), fields, refs.hex(), _js(run_id), seq, _js(time))
    ).encode("utf-8")


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    """Return ``SHA-256(prev_hash || body)``."""
    return hashlib.sha256(prev_hash + body).digest()
