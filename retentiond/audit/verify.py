"""Verification of a ledger's hash chain and checkpoint signatures (SPEC §5, issue 3).

:func:`verify_rows` works on any stream of stored rows in seq order — from the database
(:meth:`Ledger.verify`) or from a JSON-lines export (:func:`verify_export`) — so offline and
online verification are the same code. The fast path does, per entry, one string format, one
SHA-256 and three comparisons; diagnosis of *what* went wrong only runs after the first bad
entry is found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from json import dumps as _dumps
from typing import Any, TextIO

from retentiond.audit.canonical import (
    canonical_loads,
    chain_hash,
    entry_body,
    genesis_hash,
)
from retentiond.audit.signing import KeyRing, checkpoint_message

#: Row layout shared by the database and the export reader.
Row = tuple[int, str, str, "str | None", "str | None", "str | None", str, bytes, bytes, bytes]

_LOOKAHEAD = 1000  # rows read past the first bad one to tell a reorder from a deletion
_RING = 2048  # hashes of recently verified rows kept to locate where a chain link points


class DamageKind(str, Enum):
    """What verification found wrong (a diagnosis; the first bad seq is what is certain)."""

    MODIFIED = "modified"  # an entry's stored fields no longer hash to its stored hash
    DELETED = "deleted"  # a seq is missing, or entries were removed and the rest renumbered
    REORDERED = "reordered"  # entries sit at another entry's seq
    INSERTED = "inserted"  # an entry the chain did not contain when its successor was written
    CHAIN_REBUILT = "chain_rebuilt"  # consistent chain, but not the one a checkpoint signed
    BAD_SIGNATURE = "bad_signature"  # a checkpoint signature fails or names an unknown key
    ROLLED_BACK_CHECKPOINT = "rolled_back_checkpoint"  # a checkpoint that signs another position
    TRUNCATED = "truncated"  # the ledger ends before the head row / a trusted or anchored checkpoint
    INDEX_MISMATCH = "index_mismatch"  # the refs index disagrees with the entries' refs
    MALFORMED = "malformed"  # an export line or checkpoint that cannot be read


@dataclass(frozen=True)
class Damage:
    """The first problem found: ``seq`` (None when not tied to one entry), kind, explanation."""

    seq: int | None
    kind: DamageKind
    detail: str

    def render(self) -> str:
        """Return a one-line description."""
        where = f"seq {self.seq}" if self.seq is not None else "ledger"
        return f"{where}: {self.kind.value}: {self.detail}"


@dataclass(frozen=True)
class TrustedCheckpoint:
    """A checkpoint the auditor holds from outside the ledger (a file or the anchor bucket)."""

    seq: int  # seq of the checkpoint entry itself
    hash: bytes  # its entry hash
    covered_seq: int
    covered_hash: str
    ledger_id: str
    time: str
    key_fingerprint: str
    signature: str
    source: str = "trusted checkpoint"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "trusted checkpoint") -> TrustedCheckpoint:
        """Read a checkpoint entry as printed by ``audit show --format json`` / exported.

        Raises:
            ValueError: it is not a checkpoint entry.
        """
        try:
            if data.get("event") != "checkpoint":
                raise ValueError("not a checkpoint entry")
            f = data["fields"]
            return cls(
                seq=int(data["seq"]),
                hash=bytes.fromhex(data["hash"]),
                covered_seq=int(f["covered_seq"]),
                covered_hash=str(f["covered_hash"]),
                ledger_id=str(f["ledger_id"]),
                time=str(f["signed_at"]),
                key_fingerprint=str(f["key_fingerprint"]),
                signature=str(f["signature"]),
                source=source,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{source} is not a checkpoint entry ({exc.__class__.__name__})") from None


@dataclass
class VerifyResult:
    """Outcome of a verification; ``ok`` is True only when no damage was found."""

    ledger_id: str
    entries: int = 0
    refs: int = 0
    first_seq: int | None = None
    head_seq: int = 0
    head_hash: str = ""
    checkpoints: int = 0
    last_checkpoint_seq: int | None = None
    last_checkpoint_time: str | None = None
    unsigned_tail: int = 0  # entries after the last checkpoint (not yet signed)
    fingerprints: list[str] = field(default_factory=list)
    signatures_checked: bool = False
    trusted_checked: list[str] = field(default_factory=list)
    damage: Damage | None = None

    @property
    def ok(self) -> bool:
        """Return True when the ledger verified."""
        return self.damage is None

    def summary(self) -> str:
        """Return the one-line summary of ``audit verify``."""
        if self.damage is not None:
            return f"FAILED {self.damage.render()}"
        keys = ",".join(f[:16] for f in self.fingerprints) if self.signatures_checked else "NOT CHECKED"
        cp = self.last_checkpoint_time or "none"
        trusted = f" trusted={'+'.join(self.trusted_checked)}" if self.trusted_checked else ""
        start = f" from_seq={self.first_seq}" if self.first_seq not in (None, 1) else ""
        return (
            f"OK ledger={self.ledger_id} entries={self.entries} refs={self.refs} head_seq={self.head_seq} "
            f"head_hash={self.head_hash} last_checkpoint={cp} unsigned_tail={self.unsigned_tail} key={keys}{trusted}{start}"
        )

    def to_json(self) -> dict[str, Any]:
        """Return the result as a JSON-ready dict."""
        return {
            "ok": self.ok,
            "ledger_id": self.ledger_id,
            "entries": self.entries,
            "refs": self.refs,
            "first_seq": self.first_seq,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoints": self.checkpoints,
            "last_checkpoint_seq": self.last_checkpoint_seq,
            "last_checkpoint_time": self.last_checkpoint_time,
            "unsigned_tail": self.unsigned_tail,
            "key_fingerprints": self.fingerprints if self.signatures_checked else [],
            "trusted": self.trusted_checked,
            "damage": None
            if self.damage is None
            else {"seq": self.damage.seq, "kind": self.damage.kind.value, "detail": self.damage.detail},
        }


def _body(row: Row, seq: int | None = None) -> bytes:
    return entry_body(
        seq=row[0] if seq is None else seq,
        time=row[1],
        event=row[2],
        run_id=row[3],
        category=row[4],
        batch_id=row[5],
        fields=row[6],
        refs=row[7],
    )


def _intact_as(row: Row, seq: int) -> bool:
    """Return True when the row's own prev_hash, fields and hash agree with it sitting at ``seq``."""
    try:
        return chain_hash(row[8], _body(row, seq)) == row[9]
    except (TypeError, ValueError):
        return False


def _diagnose(row: Row, n: int, prev: bytes, recent: dict[bytes, int], rows: Iterator[Row]) -> Damage:
    """Explain why ``row`` (read where seq ``n`` was expected) does not chain onto ``prev``."""
    ahead: list[Row] = []
    for other in rows:
        ahead.append(other)
        if len(ahead) >= _LOOKAHEAD:
            break

    def appears_later(seq: int) -> bool:
        return any(_intact_as(r, seq) for r in ahead)

    seq = row[0]
    if seq > n:
        if appears_later(n):
            return Damage(n, DamageKind.REORDERED, f"the entry written as seq {n} was moved later in the ledger")
        return Damage(n, DamageKind.DELETED, f"entries {n}..{seq - 1} are missing")
    if seq < n:
        return Damage(seq, DamageKind.REORDERED, f"seq {seq} appears after seq {n - 1}")
    if _intact_as(row, n):
        # Exactly as written, but it was written after a different predecessor.
        j = recent.get(row[8])
        if j is not None and j < n - 1:
            return Damage(
                j + 1, DamageKind.INSERTED, f"entries {j + 1}..{n - 1} were not in the chain when seq {n} was written"
            )
        return Damage(
            n - 1,
            DamageKind.MODIFIED,
            f"seq {n - 1} was rewritten with a recomputed hash (seq {n} chains from another entry)",
        )
    for distance in range(1, _LOOKAHEAD + 64):
        if _intact_as(row, n + distance):
            if appears_later(n):
                return Damage(n, DamageKind.REORDERED, f"seq {n} holds the entry written as seq {n + distance}")
            return Damage(n, DamageKind.DELETED, f"{distance} entries were removed at seq {n} and the rest renumbered")
        if n - distance >= 1 and _intact_as(row, n - distance):
            j = recent.get(row[8])
            start = j + 1 if j is not None else n - distance
            return Damage(
                start,
                DamageKind.INSERTED,
                f"entries {start}..{n - 1} were inserted before the entry written as seq {n - distance}",
            )
    if row[8] != prev:
        return Damage(n, DamageKind.MODIFIED, "the stored prev_hash or hash was changed")
    return Damage(n, DamageKind.MODIFIED, "the entry's fields no longer match its hash")


def _check_checkpoint(
    row: Row, n: int, prev: bytes, ledger_id: str, keys: KeyRing | None, last_good_cp: int
) -> Damage | None:
    try:
        f = canonical_loads(row[6])
        covered_seq = f["covered_seq"]
        covered_hash = f["covered_hash"]
        message = checkpoint_message(f["ledger_id"], covered_seq, covered_hash, f["signed_at"])
        fp, sig, cp_ledger = f["key_fingerprint"], f["signature"], f["ledger_id"]
    except (ValueError, KeyError, TypeError):
        return Damage(n, DamageKind.MALFORMED, "checkpoint fields cannot be read")
    if keys is not None:
        problem = keys.verify(fp, sig, message)
        if problem is not None:
            return Damage(
                n,
                DamageKind.BAD_SIGNATURE,
                f"checkpoint {problem}: it or the entries {last_good_cp + 1}..{n - 1} it covers were forged",
            )
    if cp_ledger != ledger_id:
        return Damage(n, DamageKind.ROLLED_BACK_CHECKPOINT, "checkpoint signed for another ledger")
    if covered_seq != n - 1:
        return Damage(
            n,
            DamageKind.ROLLED_BACK_CHECKPOINT,
            f"checkpoint signs seq {covered_seq}, not seq {n - 1} before it (replayed or moved)",
        )
    if covered_hash != prev.hex():
        return Damage(
            last_good_cp + 1,
            DamageKind.CHAIN_REBUILT,
            f"the checkpoint at seq {n} signed another chain: entries {last_good_cp + 1}..{n - 1} were rebuilt",
        )
    return None


def verify_rows(
    rows: Iterable[Row],
    *,
    ledger_id: str,
    keys: KeyRing | None,
    trusted: list[TrustedCheckpoint] = [],  # noqa: B006 - never mutated
    head: tuple[int, bytes] | None = None,
    start: tuple[int, bytes] | None = None,
) -> VerifyResult:
    """Verify rows in seq order and return the result (damage set on the first problem).

    ``head`` is the ``(seq, hash)`` of the head row when verifying a database; ``start`` the
    ``(seq, prev_hash)`` to start from instead of ``(1, genesis)`` (partial exports).
    ``trusted`` checkpoints must each be found, unchanged, in the ledger.
    """
    result = VerifyResult(
        ledger_id=ledger_id, fingerprints=keys.fingerprints() if keys else [], signatures_checked=keys is not None
    )
    for t in trusted:
        if t.ledger_id != ledger_id:
            result.damage = Damage(None, DamageKind.MALFORMED, f"{t.source} belongs to ledger {t.ledger_id!r}")
            return result
        if keys is not None:
            problem = keys.verify(
                t.key_fingerprint, t.signature, checkpoint_message(t.ledger_id, t.covered_seq, t.covered_hash, t.time)
            )
            if problem is not None:
                result.damage = Damage(t.seq, DamageKind.BAD_SIGNATURE, f"{t.source}: {problem}")
                return result
    trusted_at = {t.seq: t for t in trusted}
    n, prev = start if start is not None else (1, genesis_hash(ledger_id))
    result.first_seq = n
    sha = hashlib.sha256
    ring: list[tuple[bytes, int] | None] = [None] * _RING
    last_good_cp = n - 1
    refs_bytes = 0
    it = iter(rows)
    for row in it:
        seq, time, event, run_id, category, batch_id, fields, refs, row_prev, h = row
        try:
            body = (
                '{"batch_id":%s,"category":%s,"event":%s,"fields":%s,"refs":"%s","run_id":%s,"seq":%d,"time":%s}'
                % (
                    "null" if batch_id is None else _enc(batch_id),
                    "null" if category is None else _enc(category),
                    _enc(event),
                    fields,
                    refs.hex(),
                    "null" if run_id is None else _enc(run_id),
                    seq,
                    _enc(time),
                )
            ).encode()
            good = seq == n and row_prev == prev and sha(prev + body).digest() == h
        except (TypeError, ValueError):
            good = False
        if not good:
            recent = {r[0]: r[1] for r in ring if r is not None}
            result.damage = _diagnose(row, n, prev, recent, it)
            return _finish(result, n - 1, prev)
        if event == "checkpoint":
            damage = _check_checkpoint(row, n, prev, ledger_id, keys, last_good_cp)
            if damage is not None:
                result.damage = damage
                return _finish(result, n - 1, prev)
            result.checkpoints += 1
            result.last_checkpoint_seq = n
            result.last_checkpoint_time = time
            last_good_cp = n
        if trusted_at:
            tc = trusted_at.get(n)
            if tc is not None and tc.hash != h:
                # A correctly chained entry that is not the trusted one: if the trusted entry
                # follows it, entries were inserted before it; otherwise the chain was rebuilt.
                following = next(it, None)
                if following is not None and following[9] == tc.hash:
                    recent = {r[0]: r[1] for r in ring if r is not None}
                    j = recent.get(following[8], n - 1)
                    result.damage = Damage(
                        j + 1, DamageKind.INSERTED, f"entries {j + 1}..{n} were inserted before the {tc.source}"
                    )
                else:
                    result.damage = Damage(
                        n,
                        DamageKind.CHAIN_REBUILT,
                        f"entry differs from the {tc.source} (the ledger was rebuilt or rolled back)",
                    )
                return _finish(result, n - 1, prev)
        ring[n % _RING] = (h, n)
        refs_bytes += len(refs)
        prev = h
        n += 1
        result.entries += 1
    result.refs = refs_bytes // 32
    last = n - 1
    for t in trusted:
        if t.seq > last:
            result.damage = Damage(
                last + 1, DamageKind.TRUNCATED, f"the ledger ends at seq {last} but the {t.source} has seq {t.seq}"
            )
            return _finish(result, last, prev)
        result.trusted_checked.append(f"{t.source}@{t.seq}")
    if head is not None:
        head_seq, head_hash = head
        if head_seq > last:
            result.damage = Damage(
                last + 1, DamageKind.TRUNCATED, f"the ledger ends at seq {last} but its head row records seq {head_seq}"
            )
        elif head_seq < last:
            result.damage = Damage(
                head_seq + 1,
                DamageKind.INSERTED,
                f"entries {head_seq + 1}..{last} were added without moving the head row",
            )
        elif head_hash != prev:
            result.damage = Damage(last, DamageKind.MODIFIED, "the last entry does not match the head row")
    return _finish(result, last, prev)


def _finish(result: VerifyResult, last: int, prev: bytes) -> VerifyResult:
    result.head_seq = last
    result.head_hash = prev.hex()
    result.unsigned_tail = last - (result.last_checkpoint_seq or (result.first_seq or 1) - 1)
    return result


from json.encoder import encode_basestring as _enc  # type: ignore[attr-defined]

# --- exports ------------------------------------------------------------------------------------

EXPORT_FORMAT = "retentiond-audit-export-v1"


def export_header(ledger_id: str) -> dict[str, Any]:
    """Return the first line of a JSON-lines export."""
    return {"format": EXPORT_FORMAT, "ledger_id": ledger_id}


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
    """Return the stored-row tuple of an export object.

    Raises:
        ValueError: a field is missing or has the wrong type.
    """
    try:
        seq = data["seq"]
        if type(seq) is not int:
            raise ValueError("seq is not an int")
        return (
            seq,
            data["time"],
            data["event"],
            data["run_id"],
            data["category"],
            data["batch_id"],
            # canonical_loads already refused floats: dump directly (the float walk is per-entry overhead).
            _dumps(data["fields"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            bytes.fromhex(data["refs"]),
            bytes.fromhex(data["prev_hash"]),
            bytes.fromhex(data["hash"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"missing or wrong field ({exc})") from None


def verify_export(
    stream: TextIO,
    *,
    keys: KeyRing | None,
    trusted: list[TrustedCheckpoint] = [],  # noqa: B006 - never mutated
    ledger_id: str | None = None,
) -> VerifyResult:
    """Verify a JSON-lines export offline (header line, then one entry per line).

    A partial export (``--since``) is verified from its first entry's ``prev_hash``; a full
    one from the genesis value. Raises nothing for bad content: damage is in the result.
    """
    header_line = stream.readline()
    try:
        header = canonical_loads(header_line)
        if header.get("format") != EXPORT_FORMAT:
            raise ValueError("not a retentiond audit export")
        file_ledger = str(header["ledger_id"])
    except (ValueError, AttributeError, KeyError):
        return VerifyResult(
            ledger_id=ledger_id or "?", damage=Damage(None, DamageKind.MALFORMED, "line 1 is not an export header")
        )
    if ledger_id is not None and file_ledger != ledger_id:
        return VerifyResult(
            ledger_id=ledger_id, damage=Damage(None, DamageKind.MALFORMED, f"export of ledger {file_ledger!r}")
        )
    state: dict[str, Any] = {}

    def rows() -> Iterator[Row]:
        for lineno, line in enumerate(stream, start=2):
            if not line.strip():
                continue
            try:
                row = json_to_row(canonical_loads(line))
            except ValueError as exc:
                state["bad"] = (lineno, str(exc))
                return
            yield row

    gen = rows()
    first = next(gen, None)
    if first is None:
        result = verify_rows([], ledger_id=file_ledger, keys=keys, trusted=trusted)
    else:
        start = None if first[0] == 1 else (first[0], first[8])

        def chained() -> Iterator[Row]:
            yield first
            yield from gen

        result = verify_rows(chained(), ledger_id=file_ledger, keys=keys, trusted=trusted, start=start)
    if "bad" in state and (result.damage is None or result.damage.kind is DamageKind.TRUNCATED):
        lineno, why = state["bad"]
        result.damage = Damage(result.head_seq + 1, DamageKind.MALFORMED, f"export line {lineno} cannot be read: {why}")
    return result
