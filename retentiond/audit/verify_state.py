"""The state of a ledger verification and how it ends: coverage, the young unsigned tail, the result.

:class:`~retentiond.audit.verify.ChainVerifier` (the rows, checkpoints, rotations) builds on
:class:`ChainState`; see :mod:`retentiond.audit.verify` for what is verified.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retentiond.audit.canonical import canonical_loads, genesis_hash, parse_time
from retentiond.audit.events import OUTCOME_EVENTS
from retentiond.audit.keyschedule import KeySchedule
from retentiond.audit.results import (
    Damage,
    DamageKind,
    Row,
    TrustedCheckpoint,
    VerifyPolicy,
    VerifyResult,
)

_RING = 2048  # hashes of recently verified rows kept to locate where a chain link points
#: Slack on top of ``checkpoint_interval`` for a young unsigned tail: the daemon checks every
#: 30 s whether a checkpoint is due, and clocks differ.
UNSIGNED_GRACE = timedelta(minutes=5)
_MAX_KEPT = 1_000_000  # entry hashes kept since the last checkpoint, to name a rebuilt chain's first change


class ChainState:
    """What a verification keeps between rows, and how it ends (:meth:`finish`)."""

    def __init__(
        self,
        ledger_id: str,
        policy: VerifyPolicy,
        *,
        start: tuple[int, bytes] | None = None,
        head: tuple[int, bytes] | None = None,
        window: bool = False,
    ) -> None:
        self.ledger_id = ledger_id
        self.policy = policy
        self.result = VerifyResult(ledger_id=ledger_id, signatures_checked=policy.keys is not None)
        self.schedule = KeySchedule(policy.keys, self.result.key_periods) if policy.keys is not None else None
        self.keys = self.schedule.ring if self.schedule is not None else None
        self.head = head
        self.window = window
        self.n, self.prev = start if start is not None else (1, genesis_hash(ledger_id))
        self.result.first_seq = self.n
        self._ring: list[tuple[bytes, int] | None] = [None] * _RING
        self._refs_bytes = 0
        self._since: list[bytes] | None = []  # hashes of entries since the last valid checkpoint (inclusive)
        self._since_from = self.n
        self._tail_first: int | None = None
        self._tail_outcome: int | None = None
        self._tail_times: tuple[str, str] | None = None
        self._first_outcome: int | None = None
        self._trusted_at = {t.seq: t for t in policy.trusted}
        self._wanted = {
            s for t in policy.trusted if t.from_seq is not None for s in range(t.from_seq, t.covered_seq + 1)
        }
        self._kept: dict[int, bytes] = {}
        self._check_trusted_signatures()

    def _unsigned(self, n: int, event: str, time: str) -> None:
        """Note an entry that only a later checkpoint can cover."""
        if self._tail_first is None:
            self._tail_first, self._tail_times = n, (time, time)
        elif self._tail_times is not None:
            low, high = self._tail_times
            self._tail_times = (min(low, time), max(high, time))
        if event in OUTCOME_EVENTS:
            if self._tail_outcome is None:
                self._tail_outcome = n
            if self._first_outcome is None:
                self._first_outcome = n

    def _covered(self) -> None:
        """Everything verified so far is covered by a signature."""
        self.result.signed_through = self.n
        self._tail_first = self._tail_outcome = None
        self._tail_times = None

    def _signed_by_current(self, n: int, fp: str, sig: str, message: bytes, what: str) -> Damage | None:
        """Check that ``sig`` is the current key's signature (the first one establishes the key)."""
        assert self.schedule is not None
        start = (self.result.signed_through or (self.result.first_seq or 1) - 1) + 1
        return self.schedule.check(n, fp, sig, message, what, start)

    # --- trusted checkpoints -------------------------------------------------------------------

    def _check_trusted_signatures(self) -> None:
        for t in self.policy.trusted:
            if t.ledger_id != self.ledger_id:
                self._fail(Damage(None, DamageKind.MALFORMED, f"{t.source} belongs to ledger {t.ledger_id!r}"))
                return
            if self.keys is not None:
                problem = self.keys.verify(t.key_fingerprint, t.signature, t.message())
                if problem is not None:
                    self._fail(Damage(t.seq, DamageKind.BAD_SIGNATURE, f"{t.source}: {problem}"))
                    return

    # --- the end -------------------------------------------------------------------------------

    def detached_checkpoint(self, row: Row, window_end: int) -> None:
        """Accept a checkpoint exported without the entries between the window's end and it.

        It covers the window when it is valid, made with the current key, and its signed
        ``entry_hashes`` list the window's last entry with the hash verified here.
        """
        if self.result.damage is not None:
            return
        seq, last_hash = row[0], self.prev
        try:
            f = canonical_loads(row[6])
            t = TrustedCheckpoint.from_json({"event": row[2], "seq": seq, "hash": row[9].hex(), "fields": f})
        except ValueError:
            self._fail(Damage(seq, DamageKind.MALFORMED, "the covering checkpoint cannot be read"))
            return
        if self.keys is None:
            return
        damage = self._signed_by_current(seq, t.key_fingerprint, t.signature, t.message(), "covering checkpoint")
        if damage is None and (t.ledger_id != self.ledger_id or t.covered_seq != seq - 1):
            damage = Damage(seq, DamageKind.ROLLED_BACK_CHECKPOINT, "the covering checkpoint signs another position")
        if damage is None and t.listed(window_end) != last_hash.hex():
            damage = Damage(
                window_end,
                DamageKind.CHAIN_REBUILT,
                f"the covering checkpoint at seq {seq} does not list seq {window_end} with this hash",
            )
        if damage is not None:
            self._fail(damage)
            return
        self.result.key_periods[-1].checkpoints += 1
        self.result.checkpoints += 1
        self.result.last_checkpoint_seq = seq
        self.result.last_checkpoint_time = t.time
        self.result.last_checkpoint_entry = row
        self._covered()

    def _fail(self, damage: Damage) -> None:
        if self.result.damage is None:
            self.result.damage = damage

    def finish(self) -> VerifyResult:
        """Return the result: trusted checkpoints found, head row matched, every entry covered."""
        result = self.result
        last, prev = self.n - 1, self.prev
        result.refs = self._refs_bytes // 32
        result.head_seq, result.head_hash = last, prev.hex()
        result.fingerprints = self.keys.fingerprints() if self.keys is not None else []
        if result.damage is None:
            self._fail_beyond(last)
        if result.damage is None:
            self._coverage(last)
        result.unsigned_tail = 0 if self._tail_first is None else last - self._tail_first + 1
        if result.damage is not None:
            result.unsigned_status = None
        return result

    def _fail_beyond(self, last: int) -> None:
        for t in self.policy.trusted:
            if self.window and not (self.result.first_seq or 1) <= t.seq <= last:
                self.result.notes.append(f"the {t.source} (seq {t.seq}) is outside this window: not checked")
                continue
            if t.seq > last:
                kind = DamageKind.ROLLED_BACK if t.origin == "state" else DamageKind.TRUNCATED
                self._fail(Damage(last + 1, kind, f"the ledger ends at seq {last} but the {t.source} has seq {t.seq}"))
                return
        if self.head is None:
            return
        head_seq, head_hash = self.head
        if head_seq > last:
            self._fail(
                Damage(
                    last + 1,
                    DamageKind.TRUNCATED,
                    f"the ledger ends at seq {last} but its head row records seq {head_seq}",
                )
            )
        elif head_seq < last:
            self._fail(
                Damage(
                    head_seq + 1,
                    DamageKind.INSERTED,
                    f"entries {head_seq + 1}..{last} were added without moving the head row",
                )
            )
        elif head_hash != self.prev:
            self._fail(Damage(last, DamageKind.MODIFIED, "the last entry does not match the head row"))

    def _coverage(self, last: int) -> None:
        """Fail unless every entry is covered by a signature (or the tail is young and outcome-free)."""
        first = self._tail_first
        if first is None:
            return
        result = self.result
        damage: Damage | None = None
        if result.checkpoints == 0 and self._first_outcome is not None:
            damage = Damage(
                self._first_outcome,
                DamageKind.NO_CHECKPOINT,
                f"entries {first}..{last} record outcomes but no valid checkpoint signs any of them",
            )
        elif self._tail_outcome is not None:
            damage = Damage(
                self._tail_outcome,
                DamageKind.UNSIGNED_OUTCOME,
                f"outcome entries from seq {self._tail_outcome} on are covered by no checkpoint (every run ends with "
                "one: a run still in progress, or a forged tail; verify again after the run)",
            )
        elif not self._young():
            damage = Damage(
                first,
                DamageKind.UNSIGNED_TAIL,
                f"entries {first}..{last} are covered by no checkpoint and older than checkpoint_interval "
                f"({self.policy.max_unsigned_age})",
            )
        if damage is None:
            result.unsigned_status = "young"
        elif self.policy.allow_unsigned_tail:
            result.unsigned_status = "allowed"
            result.notes.append(f"not covered by any signature, allowed: {damage.render()}")
        else:
            self._fail(damage)

    def _young(self) -> bool:
        if self._tail_times is None:
            return True
        now = self.policy.now or datetime.now(UTC)
        try:
            oldest, newest = parse_time(self._tail_times[0]), parse_time(self._tail_times[1])
        except ValueError:
            return False
        return now - oldest <= self.policy.max_unsigned_age + UNSIGNED_GRACE and newest <= now + UNSIGNED_GRACE
