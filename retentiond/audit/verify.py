"""Verification of a ledger's hash chain, checkpoint signatures, signing keys and coverage (SPEC §5).

:class:`ChainVerifier` works on any stream of stored rows in seq order — from the database
(:meth:`Ledger.verify`) or from a JSON-lines export (:mod:`retentiond.audit.export`) — so
offline and online verification are the same code. The fast path does, per entry, one string
format, one SHA-256 and three comparisons; diagnosis of *what* went wrong only runs after the
first bad entry is found (:mod:`retentiond.audit.diagnose`).

Beyond an unbroken chain, ``ok`` requires coverage: every entry checked must be covered by a
valid checkpoint signature made with the key valid at that position, except a young tail
without outcome entries (see docs/auditing.md, "What OK guarantees").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring as _enc
from typing import Any

from retentiond.audit.canonical import canonical_loads
from retentiond.audit.diagnose import diagnose
from retentiond.audit.events import OUTCOME_EVENTS
from retentiond.audit.results import (
    Damage,
    DamageKind,
    KeyPeriod,
    Row,
    TrustedCheckpoint,
    VerifyPolicy,
    VerifyResult,
)
from retentiond.audit.signing import (
    checkpoint_message,
    fingerprint,
    public_key_from_hex,
    rotation_message,
)
from retentiond.audit.verify_state import _MAX_KEPT, _RING, ChainState


class ChainVerifier(ChainState):
    """Verifies rows fed in seq order; :meth:`finish` returns the :class:`VerifyResult`.

    ``start`` is the ``(seq, prev_hash)`` to start from instead of ``(1, genesis)`` (exported
    windows); ``head`` the ``(seq, hash)`` of the database's head row; ``window`` True means
    trusted checkpoints outside the rows are not applicable (a window of history).
    """

    # --- the rows ------------------------------------------------------------------------------

    def run(self, rows: Iterable[Row]) -> None:
        """Verify ``rows`` (continuing from the rows of earlier calls); stops at the first damage.

        The loop keeps its state in locals (this is the per-entry fast path) and hands it to the
        instance only around the rare entries that need more: checkpoints, rotations, trusted
        checkpoints and the first broken link.
        """
        if self.result.damage is not None:
            return
        start = n = self.n
        prev = self.prev
        sha = hashlib.sha256
        ring = self._ring
        outcomes = OUTCOME_EVENTS
        trusted_at, wanted, kept = self._trusted_at, self._wanted, self._kept
        it = iter(rows)
        for row in it:
            seq, time, event, run_id, category, batch_id, fields, refs, row_prev, h = row
            try:
                body = (
                    '{"batch_id":%s,"category":%s,"event":%s,"fields":%s,"refs":"%s","run_id":%s,"seq":%d,"time":%s}'  # noqa: UP031 - the fast path
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
                self.n, self.prev = n, prev
                self.result.entries += n - start
                recent = {r[0]: r[1] for r in ring if r is not None}
                self._fail(diagnose(row, n, prev, recent, it))
                return
            if event == "checkpoint" or event == "key_rotated" or (trusted_at and n in trusted_at):
                self.n, self.prev = n, prev
                if not self._special(row, it):
                    self.result.entries += n - start
                    return
            else:
                # An entry only a later checkpoint can cover: the tail's first seq, times, outcomes.
                if self._tail_first is None:
                    self._tail_first, self._tail_times = n, (time, time)
                else:
                    low, high = self._tail_times  # type: ignore[misc]  # set with _tail_first
                    if time < low or time > high:
                        self._tail_times = (min(low, time), max(high, time))
                if event in outcomes and self._tail_outcome is None:
                    self._tail_outcome = n
                    if self._first_outcome is None:
                        self._first_outcome = n
                since = self._since
                if since is not None:
                    since.append(h)
                    if len(since) > _MAX_KEPT:
                        self._since = None
            if wanted and n in wanted:
                kept[n] = h
            ring[n % _RING] = (h, n)
            self._refs_bytes += len(refs)
            prev = h
            n += 1
        self.result.entries += n - start
        self.n, self.prev = n, prev

    def _special(self, row: Row, it: Iterator[Row]) -> bool:
        """Handle a checkpoint, a rotation or a trusted position; return False after damage."""
        n, event, h = self.n, row[2], row[9]
        if event == "checkpoint":
            damage = self._checkpoint(row)
        else:
            damage = self._rotation(row) if event == "key_rotated" else None
            self._unsigned(n, event, row[1])
        if damage is None and n in self._trusted_at:
            damage = self._against_trusted(self._trusted_at[n], row, it)
        if damage is not None:
            self._fail(damage)
            return False
        if event == "checkpoint" and self.keys is not None:
            self._since, self._since_from = [h], n
        elif self._since is not None:
            self._since.append(h)
        return True

    # --- checkpoints and rotations -------------------------------------------------------------

    def _checkpoint(self, row: Row) -> Damage | None:
        n, prev = self.n, self.prev
        try:
            f = canonical_loads(row[6])
            covered_seq, covered_hash, signed_at = f["covered_seq"], f["covered_hash"], f["signed_at"]
            fp, sig, cp_ledger = f["key_fingerprint"], f["signature"], f["ledger_id"]
            from_seq, hashes = f.get("from_seq"), f.get("entry_hashes")
            if type(covered_seq) is not int or not all(isinstance(v, str) for v in (covered_hash, signed_at, fp, sig)):
                raise TypeError("field types")
            if from_seq is not None and (type(from_seq) is not int or not isinstance(hashes, str)):
                raise TypeError("field types")
            message = checkpoint_message(
                cp_ledger, covered_seq, covered_hash, signed_at, from_seq=from_seq, entry_hashes=hashes
            )
        except (ValueError, KeyError, TypeError):
            return Damage(n, DamageKind.MALFORMED, "checkpoint fields cannot be read")
        if self.keys is not None:
            damage = self._signed_by_current(n, fp, sig, message, "checkpoint")
            if damage is not None:
                return damage
        if cp_ledger != self.ledger_id:
            return Damage(n, DamageKind.ROLLED_BACK_CHECKPOINT, "checkpoint signed for another ledger")
        if covered_seq != n - 1:
            return Damage(
                n,
                DamageKind.ROLLED_BACK_CHECKPOINT,
                f"checkpoint signs seq {covered_seq}, not seq {n - 1} before it (replayed or moved)",
            )
        if covered_hash != prev.hex():
            return self._rebuilt(n, from_seq, hashes)
        if row[1] != signed_at:
            return Damage(n, DamageKind.MODIFIED, "the checkpoint entry's time differs from the time it signed")
        if from_seq is not None:
            assert isinstance(hashes, str)
            if not 1 <= from_seq <= covered_seq or len(hashes) != 64 * (covered_seq - from_seq + 1):
                return Damage(n, DamageKind.MALFORMED, "checkpoint entry_hashes do not span from_seq..covered_seq")
            if self._since is not None and from_seq >= self._since_from:
                ours = b"".join(self._since[from_seq - self._since_from :]).hex()
                if ours != hashes:
                    return Damage(n, DamageKind.MALFORMED, "checkpoint entry_hashes differ from the entries it covers")
        if self.keys is None:
            return None  # unsigned for our purposes: nothing checked its signature
        period = self.result.key_periods[-1]
        period.checkpoints += 1
        period.first_time = period.first_time or signed_at
        period.last_time = signed_at
        self.result.checkpoints += 1
        self.result.last_checkpoint_seq = n
        self.result.last_checkpoint_time = row[1]
        self.result.last_checkpoint_entry = row
        self._covered()
        return None

    def _rebuilt(self, n: int, from_seq: Any, hashes: Any) -> Damage:
        """Name the first entry that differs from what the checkpoint at ``n`` signed."""
        first = self._first_difference(from_seq, hashes, n - 1)
        if first is not None:
            return Damage(
                first,
                DamageKind.CHAIN_REBUILT,
                f"seq {first} is not the entry the checkpoint at seq {n} signed: entries {first}..{n - 1} "
                "were changed and the chain recomputed",
            )
        start = (self.result.signed_through or (self.result.first_seq or 1) - 1) + 1
        return Damage(
            start,
            DamageKind.CHAIN_REBUILT,
            f"the checkpoint at seq {n} signed another chain: entries {start}..{n - 1} were rebuilt",
        )

    def _first_difference(self, from_seq: Any, hashes: Any, last: int) -> int | None:
        if type(from_seq) is not int or not isinstance(hashes, str) or self._since is None:
            return None
        for seq in range(max(from_seq, self._since_from), last + 1):
            i = (seq - from_seq) * 64
            index = seq - self._since_from
            if index >= len(self._since) or hashes[i : i + 64] != self._since[index].hex():
                return seq
        return None

    def _rotation(self, row: Row) -> Damage | None:
        n, prev = self.n, self.prev
        try:
            f = canonical_loads(row[6])
            old_fp, new_fp, new_hex = f["old_fingerprint"], f["new_fingerprint"], f["new_public_key"]
            old_sig = f["old_signature"]
            if not isinstance(f["new_signature"], str) or not (old_sig is None or isinstance(old_sig, str)):
                raise TypeError("signatures")
            new_key = public_key_from_hex(new_hex)
            message = rotation_message(
                f["ledger_id"], f["covered_seq"], f["covered_hash"], f["rotated_at"], old_fp, new_hex
            )
        except (ValueError, KeyError, TypeError):
            return Damage(n, DamageKind.MALFORMED, "key rotation fields cannot be read")
        if fingerprint(new_key) != new_fp:
            return Damage(n, DamageKind.MALFORMED, "key rotation: new_fingerprint is not the new key's")
        if f["ledger_id"] != self.ledger_id or f["covered_seq"] != n - 1:
            return Damage(n, DamageKind.ROLLED_BACK_CHECKPOINT, "key rotation made at another position or ledger")
        if f["covered_hash"] != prev.hex():
            return self._rebuilt(n, None, None)
        if self.schedule is None:
            return None
        start = (self.result.signed_through or (self.result.first_seq or 1) - 1) + 1
        return self.schedule.rotate(n, f, new_key, message, start)

    # --- trusted checkpoints -------------------------------------------------------------------

    def _against_trusted(self, t: TrustedCheckpoint, row: Row, it: Any) -> Damage | None:
        """Compare the correctly chained entry at ``t.seq`` with the trusted one."""
        n = self.n
        if t.hash == row[9]:
            self.result.trusted_checked.append(f"{t.source}@{t.seq}")
            return None
        low = max(t.from_seq or n, self.result.first_seq or 1)
        changed = (s for s in range(low, min(t.covered_seq, n - 1) + 1) if self._kept.get(s, b"").hex() != t.listed(s))
        diverged = next(changed, n)
        if t.origin == "state":
            return Damage(
                diverged,
                DamageKind.ROLLED_BACK,
                f"another history than the one verified before ({t.source}): it diverges at seq {diverged}",
            )
        following = next(it, None)
        if following is not None and following[9] == t.hash:
            recent = {r[0]: r[1] for r in self._ring if r is not None}
            j = recent.get(following[8], n - 1)
            return Damage(j + 1, DamageKind.INSERTED, f"entries {j + 1}..{n} were inserted before the {t.source}")
        return Damage(
            diverged,
            DamageKind.CHAIN_REBUILT,
            f"entry differs from the {t.source} (the ledger was rebuilt or rolled back from seq {diverged})",
        )


def verify_rows(
    rows: Iterable[Row],
    *,
    ledger_id: str,
    policy: VerifyPolicy,
    head: tuple[int, bytes] | None = None,
    start: tuple[int, bytes] | None = None,
) -> VerifyResult:
    """Verify rows in seq order and return the result (damage set on the first problem).

    ``head`` is the ``(seq, hash)`` of the head row when verifying a database; ``start`` the
    ``(seq, prev_hash)`` to start from instead of ``(1, genesis)``.
    """
    verifier = ChainVerifier(ledger_id, policy, head=head, start=start)
    verifier.run(rows)
    return verifier.finish()


__all__ = [
    "ChainVerifier",
    "Damage",
    "DamageKind",
    "KeyPeriod",
    "Row",
    "TrustedCheckpoint",
    "VerifyPolicy",
    "VerifyResult",
    "verify_rows",
]
