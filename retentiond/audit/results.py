"""What verification takes and gives: the policy, trusted checkpoints, damage kinds, the result.

:class:`VerifyResult` is the function-level API for callers such as ``retentiond report``:
``ok``, ``summary()``, ``head_seq``/``head_hash``, ``last_checkpoint_seq``/``_time``,
``key_fingerprint`` and ``to_json()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from retentiond.audit.signing import KeyRing, checkpoint_message

#: Row layout shared by the database and the export reader:
#: seq, time, event, run_id, category, batch_id, fields (JSON text), refs, prev_hash, hash.
Row = tuple[int, str, str, "str | None", "str | None", "str | None", str, bytes, bytes, bytes]


class DamageKind(StrEnum):
    """What verification found wrong (a diagnosis; the first bad seq is what is certain)."""

    MODIFIED = "modified"  # an entry's stored fields no longer hash to its stored hash
    DELETED = "deleted"  # a seq is missing, or entries were removed and the rest renumbered
    REORDERED = "reordered"  # entries sit at another entry's seq
    INSERTED = "inserted"  # an entry the chain did not contain when its successor was written
    CHAIN_REBUILT = "chain_rebuilt"  # consistent chain, but not the one a checkpoint signed
    BAD_SIGNATURE = "bad_signature"  # a signature fails or names a key nobody vouches for
    KEY_NOT_VALID = "key_not_valid"  # signed by a known key outside its validity (retired, or not yet)
    ROLLED_BACK_CHECKPOINT = "rolled_back_checkpoint"  # a checkpoint that signs another position
    TRUNCATED = "truncated"  # the ledger ends before the head row / a trusted or anchored checkpoint
    ROLLED_BACK = "rolled_back"  # older head or another history than the --state file remembers
    NO_CHECKPOINT = "no_checkpoint"  # outcome entries, and no valid checkpoint at all
    UNSIGNED_OUTCOME = "unsigned_outcome"  # an outcome entry no checkpoint covers
    UNSIGNED_TAIL = "unsigned_tail"  # entries no checkpoint covers, older than checkpoint_interval
    INDEX_MISMATCH = "index_mismatch"  # the refs index disagrees with the entries' refs
    MALFORMED = "malformed"  # an export line, checkpoint or rotation that cannot be read


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
    """A checkpoint the auditor holds from outside the ledger (a file, the --state file, the anchor bucket).

    ``origin`` is ``file``, ``state`` or ``anchor``: a mismatch with a ``state`` checkpoint is
    reported as ``rolled_back``.
    """

    seq: int  # seq of the checkpoint entry itself
    hash: bytes  # its entry hash
    covered_seq: int
    covered_hash: str
    ledger_id: str
    time: str
    key_fingerprint: str
    signature: str
    source: str = "trusted checkpoint"
    origin: str = "file"
    from_seq: int | None = None
    entry_hashes: str | None = None

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], source: str = "trusted checkpoint", origin: str = "file"
    ) -> TrustedCheckpoint:
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
                origin=origin,
                from_seq=None if f.get("from_seq") is None else int(f["from_seq"]),
                entry_hashes=None if f.get("entry_hashes") is None else str(f["entry_hashes"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{source} is not a checkpoint entry ({exc.__class__.__name__})") from None

    def message(self) -> bytes:
        """Return the bytes its signature covers."""
        return checkpoint_message(
            self.ledger_id,
            self.covered_seq,
            self.covered_hash,
            self.time,
            from_seq=self.from_seq,
            entry_hashes=self.entry_hashes,
        )

    def listed(self, seq: int) -> str | None:
        """Return the hex hash this checkpoint signed for entry ``seq`` (v2 only), or None."""
        if self.from_seq is None or self.entry_hashes is None or not self.from_seq <= seq <= self.covered_seq:
            return None
        i = (seq - self.from_seq) * 64
        return self.entry_hashes[i : i + 64]


@dataclass(frozen=True)
class VerifyPolicy:
    """What an ``OK`` requires beyond an unbroken chain.

    ``keys`` None checks the chain only (nothing then counts as signed, so ``ok`` needs
    ``allow_unsigned_tail``). ``max_unsigned_age`` is the ledger's ``checkpoint_interval``.
    ``now`` defaults to the wall clock.
    """

    keys: KeyRing | None
    trusted: tuple[TrustedCheckpoint, ...] = ()
    max_unsigned_age: timedelta = timedelta(hours=1)
    allow_unsigned_tail: bool = False
    now: datetime | None = None


@dataclass
class KeyPeriod:
    """When one signing key was the ledger's: from ``from_seq`` until ``until_seq`` (None: still)."""

    fingerprint: str
    from_seq: int
    until_seq: int | None = None
    vouched_by: str = "auditor"  # auditor (--pubkey) | rotation (signed by the old key) | rotation without old key
    checkpoints: int = 0
    first_time: str | None = None
    last_time: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return dict(self.__dict__)


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
    signed_through: int | None = None  # highest seq covered by a valid signature
    unsigned_tail: int = 0  # entries after that
    unsigned_status: str | None = None  # young | allowed (when unsigned_tail > 0 and still ok)
    fingerprints: list[str] = field(default_factory=list)
    key_periods: list[KeyPeriod] = field(default_factory=list)
    signatures_checked: bool = False
    trusted_checked: list[str] = field(default_factory=list)
    window: tuple[int, int] | None = None  # an exported window: its first and last seq
    notes: list[str] = field(default_factory=list)
    damage: Damage | None = None
    last_checkpoint_entry: Row | None = None  # the newest valid checkpoint (for --state)

    @property
    def ok(self) -> bool:
        """Return True when the ledger verified."""
        return self.damage is None

    @property
    def key_fingerprint(self) -> str | None:
        """Return the fingerprint of the key that signs the ledger now (the last key period's)."""
        return self.key_periods[-1].fingerprint if self.key_periods else None

    def summary(self) -> str:
        """Return the one-line summary of ``audit verify``."""
        if self.damage is not None:
            return f"FAILED {self.damage.render()}"
        key = (self.key_fingerprint or "none")[:16] if self.signatures_checked else "NOT CHECKED"
        cp = f"{self.last_checkpoint_time}@{self.last_checkpoint_seq}" if self.last_checkpoint_time else "none"
        tail = f"unsigned_tail={self.unsigned_tail}"
        if self.unsigned_status == "young":
            tail += " (younger than checkpoint_interval, no outcome)"
        elif self.unsigned_status == "allowed":
            tail += " (ALLOWED by --allow-unsigned-tail: NOT covered by any signature)"
        extra = ""
        if len(self.key_periods) > 1:
            extra += f" key_rotations={len(self.key_periods) - 1}"
        if self.trusted_checked:
            extra += f" trusted={'+'.join(self.trusted_checked)}"
        if self.window is not None:
            extra += f" window={self.window[0]}..{self.window[1]}"
        elif self.first_seq not in (None, 1):
            extra += f" from_seq={self.first_seq}"
        return (
            f"OK ledger={self.ledger_id} entries={self.entries} refs={self.refs} head_seq={self.head_seq} "
            f"head_hash={self.head_hash} last_checkpoint={cp} {tail} key={key}{extra}"
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
            "signed_through": self.signed_through,
            "unsigned_tail": self.unsigned_tail,
            "unsigned_status": self.unsigned_status,
            "key_fingerprint": self.key_fingerprint if self.signatures_checked else None,
            "key_fingerprints": self.fingerprints if self.signatures_checked else [],
            "key_periods": [p.to_json() for p in self.key_periods],
            "trusted": self.trusted_checked,
            "window": list(self.window) if self.window else None,
            "notes": self.notes,
            "damage": None
            if self.damage is None
            else {"seq": self.damage.seq, "kind": self.damage.kind.value, "detail": self.damage.detail},
        }
