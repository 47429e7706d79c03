"""JSON-lines exports of the ledger: writing a window with its coverage, and verifying one offline.

Line 1 is a header, then one entry per line (the stored columns, ``fields`` as an object,
binary columns in hex). A window (``--since``/``--until``) is the contiguous seqs
``first_seq..last_seq``; after it come the entries that prove its end is signed: either the
entries up to and including the first checkpoint after the window (``coverage: entries``) or
that checkpoint alone, whose signed ``entry_hashes`` list the window's last entry
(``coverage: checkpoint``). docs/auditing.md describes the format byte for byte.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from retentiond.audit.canonical import canonical_loads, canonical_text, format_time, utcnow_text
from retentiond.audit.verify import ChainVerifier, Damage, DamageKind, Row, VerifyPolicy, VerifyResult

if TYPE_CHECKING:
    from retentiond.audit.ledger import Ledger

EXPORT_FORMAT_V1 = "retentiond-audit-export-v1"
EXPORT_FORMAT = "retentiond-audit-export-v2"
_FORMATS = (EXPORT_FORMAT_V1, EXPORT_FORMAT)


def row_to_json(row: Row) -> dict[str, Any]:
    """Return one stored row as an export / ``audit show --format json`` object.

    The object is the canonical entry (``fields`` parsed) plus ``prev_hash`` and ``hash``;
    ``refs`` stays the concatenated hex string that is hashed (64 hex characters per ref).
    """
    return {
        "seq": row[0],
        "time": row[1],
        "event": row[2],
        "run_id": row[3],
        "category": row[4],
        "batch_id": row[5],
        "fields": canonical_loads(row[6]),
        "refs": row[7].hex(),
        "prev_hash": row[8].hex(),
        "hash": row[9].hex(),
    }


def json_to_row(data: Mapping[str, Any]) -> Row:
    """Return the stored-row tuple of an export object (``fields`` re-encoded as canonical JSON).

    Raises:
        ValueError: a field is missing or has the wrong type.
    """
    try:
        seq = data["seq"]
        if type(seq) is not int:
            raise ValueError("seq is not an int")
        for name in ("time", "event"):
            if not isinstance(data[name], str):
                raise ValueError(f"{name} is not a string")
        for name in ("run_id", "category", "batch_id"):
            if data[name] is not None and not isinstance(data[name], str):
                raise ValueError(f"{name} is not a string")
        if not isinstance(data["fields"], dict):
            raise ValueError("fields is not an object")
        return (
            seq,
            data["time"],
            data["event"],
            data["run_id"],
            data["category"],
            data["batch_id"],
            canonical_text(data["fields"]),
            bytes.fromhex(data["refs"]),
            bytes.fromhex(data["prev_hash"]),
            bytes.fromhex(data["hash"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"missing or wrong field ({exc.__class__.__name__}: {exc})") from None


def export_header(ledger_id: str, **window: Any) -> dict[str, Any]:
    """Return the first line of a JSON-lines export (``window``: first_seq, last_seq, prev_hash, ...)."""
    return {"format": EXPORT_FORMAT, "ledger_id": ledger_id, "exported_at": utcnow_text()} | window


def _line(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def write_export(ledger: Ledger, stream: TextIO, since: datetime | None, until: datetime | None) -> tuple[int, str]:
    """Write the window of entries with ``since <= time < until`` and the proof of its end.

    Returns ``(entries in the window, coverage)`` where coverage is ``entries``, ``checkpoint``,
    ``self`` (the window ends with a checkpoint), ``head`` (it ends at the ledger's head: the
    tail rule of verification applies) or ``none`` (no checkpoint after the window yet).

    Raises:
        TemporaryFailure: the ledger is unreachable.
    """
    window = ledger.seq_window(since, until)
    if window is None:
        stream.write(_line(export_header(ledger.ledger_id, first_seq=None, last_seq=None, coverage="empty")))
        return 0, "empty"
    first, last = window
    entries = ledger.iter_entries(from_seq=first, to_seq=last)
    head = ledger.head().seq
    start = next(iter(ledger.iter_entries(from_seq=first, to_seq=first)))
    coverage, proof = _coverage(ledger, last, head)
    header = export_header(
        ledger.ledger_id,
        first_seq=first,
        last_seq=last,
        prev_hash=start.prev_hash.hex(),
        since=None if since is None else format_time(since.astimezone(UTC)),
        until=None if until is None else format_time(until.astimezone(UTC)),
        coverage=coverage,
    )
    stream.write(_line(header))
    count = 0
    for entry in entries:
        stream.write(_line(entry.to_json()))
        count += 1
    for entry in proof:
        stream.write(_line(entry.to_json()))
    return count, coverage


def _coverage(ledger: Ledger, last: int, head: int) -> tuple[str, list[Any]]:
    """Return how the window ending at ``last`` is proven signed, and the entries that prove it."""
    own = next(iter(ledger.iter_entries(from_seq=last, to_seq=last)))
    if own.event == "checkpoint":
        return "self", []
    if last >= head:
        return "head", []
    checkpoint = ledger.first_checkpoint_after(last)
    if checkpoint is None:
        return "none", []
    from_seq = checkpoint.fields.get("from_seq")
    if (
        isinstance(from_seq, int)
        and from_seq <= last
        and not ledger.has_event_between("key_rotated", last, checkpoint.seq)
    ):
        return "checkpoint", [checkpoint]
    return "entries", list(ledger.iter_entries(from_seq=last + 1, to_seq=checkpoint.seq))


def verify_export(stream: TextIO, policy: VerifyPolicy, *, ledger_id: str | None = None) -> VerifyResult:
    """Verify a JSON-lines export offline: the chain, signatures, keys, and the window's coverage.

    A window is verified from its first entry's ``prev_hash``; a full export from the genesis
    value. Raises nothing for bad content: damage is in the result.
    """
    try:
        header = canonical_loads(stream.readline())
        if not isinstance(header, dict) or header.get("format") not in _FORMATS:
            raise ValueError("not a retentiond audit export")
        file_ledger = str(header["ledger_id"])
    except (ValueError, KeyError):
        return VerifyResult(
            ledger_id=ledger_id or "?", damage=Damage(None, DamageKind.MALFORMED, "line 1 is not an export header")
        )
    if ledger_id is not None and file_ledger != ledger_id:
        return VerifyResult(
            ledger_id=ledger_id, damage=Damage(None, DamageKind.MALFORMED, f"export of ledger {file_ledger!r}")
        )
    reader = _Reader(stream, header)
    first = next(reader.rows(), None)
    if reader.bad is not None and first is None:
        return VerifyResult(ledger_id=file_ledger, damage=reader.bad)
    start = None if first is None or first[0] == 1 else (first[0], first[8])
    window = (
        header.get("last_seq") is not None and header.get("first_seq") not in (None, 1) or bool(header.get("until"))
    )
    verifier = ChainVerifier(file_ledger, policy, start=start, window=window)
    if first is not None:
        problem = reader.check_start(first)
        if problem is not None:
            verifier.result.damage = problem
            return verifier.finish()
        verifier.run(reader.chained(first))
    if reader.detached is not None:
        verifier.detached_checkpoint(reader.detached, reader.last_seq or 0)
    if reader.bad is not None and verifier.result.damage is None:
        verifier.result.damage = reader.bad
    result = verifier.finish()
    if isinstance(header.get("first_seq"), int) and isinstance(header.get("last_seq"), int):
        result.window = (header["first_seq"], header["last_seq"])
    return result


class _Reader:
    """Reads an export's entry lines; sets aside a detached covering checkpoint after the window."""

    def __init__(self, stream: TextIO, header: Mapping[str, Any]) -> None:
        self.stream = stream
        self.header = header
        self.last_seq = header.get("last_seq") if isinstance(header.get("last_seq"), int) else None
        self.detached: Row | None = None
        self.bad: Damage | None = None
        self._lineno = 1
        self._iter = self._rows()

    def rows(self) -> Iterator[Row]:
        """Return the iterator of entry rows."""
        return self._iter

    def _rows(self) -> Iterator[Row]:
        previous: int | None = None
        for line in self.stream:
            self._lineno += 1
            if not line.strip():
                continue
            if self.detached is not None:
                self.bad = Damage(self.detached[0], DamageKind.MALFORMED, "lines after the covering checkpoint")
                return
            try:
                row = json_to_row(canonical_loads(line))
            except ValueError as exc:
                seq = None if previous is None else previous + 1
                self.bad = Damage(seq, DamageKind.MALFORMED, f"export line {self._lineno} cannot be read: {exc}")
                return
            if (
                self.last_seq is not None
                and previous == self.last_seq
                and row[0] > self.last_seq + 1
                and row[2] == "checkpoint"
            ):
                self.detached = row
                continue
            previous = row[0]
            yield row

    def chained(self, first: Row) -> Iterator[Row]:
        """Yield ``first`` and then the remaining rows."""
        yield first
        yield from self._iter

    def check_start(self, first: Row) -> Damage | None:
        """Return damage when the first entry is not where the header says the export starts.

        A v2 export without ``since`` is the ledger from its beginning: it must start at seq 1.
        """
        if self.header.get("format") == EXPORT_FORMAT and self.header.get("since") is None and first[0] != 1:
            return Damage(1, DamageKind.DELETED, f"an export from the beginning starts at seq {first[0]}")
        seq, prev = self.header.get("first_seq"), self.header.get("prev_hash")
        if isinstance(seq, int) and first[0] != seq:
            return Damage(first[0], DamageKind.DELETED, f"the export starts at seq {first[0]}, its header at seq {seq}")
        if isinstance(prev, str) and first[8].hex() != prev:
            return Damage(first[0], DamageKind.MODIFIED, "the first entry's prev_hash differs from the header's")
        return None


CSV_COLUMNS = (
    "seq",
    "time",
    "event",
    "run_id",
    "category",
    "batch_id",
    "store",
    "target",
    "action",
    "outcome",
    "count",
    "ref_count",
    "fields",
    "hash",
)


def write_csv(ledger: Ledger, stream: TextIO, since: datetime | None, until: datetime | None) -> int:
    """Write entries as CSV for spreadsheets (ref counts instead of refs; not verifiable); return the count.

    Raises:
        TemporaryFailure: the ledger is unreachable.
    """
    count = 0
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for e in ledger.iter_entries(since=since, until=until):
        f = e.fields
        writer.writerow(
            [
                e.seq,
                e.time,
                e.event,
                e.run_id or "",
                e.category or "",
                e.batch_id or "",
                f.get("store", ""),
                f.get("target", ""),
                f.get("action", ""),
                f.get("outcome", ""),
                f.get("count", ""),
                e.ref_count,
                e.fields_json,
                e.hash.hex(),
            ]
        )
        count += 1
    return count
