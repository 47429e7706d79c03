"""Which signing key is valid where: the first checkpoint's key, then each rotation's new key.

A checkpoint must be signed by the key valid at its position; a rotation must be signed by the
new key and, normally, by the key it replaces (or name a key the auditor gave).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from retentiond.audit.results import Damage, DamageKind, KeyPeriod
from retentiond.audit.signing import KeyRing, verify_signature


class KeySchedule:
    """The auditor's keys (plus keys learned from verified rotations) and the periods of validity."""

    def __init__(self, ring: KeyRing, periods: list[KeyPeriod]) -> None:
        """Keep a copy of ``ring`` (learned keys join the copy) and append periods to ``periods``."""
        self.ring = ring.copy()
        self.periods = periods

    def check(self, n: int, fp: str, sig: str, message: bytes, what: str, covers_from: int) -> Damage | None:
        """Return damage unless ``sig`` is the current key's signature of ``message`` at seq ``n``.

        The first signature establishes the current key; ``covers_from`` is the first entry
        the signature vouches for (named in the diagnosis).
        """
        if fp not in self.ring.keys:
            return Damage(
                n,
                DamageKind.BAD_SIGNATURE,
                f"{what} signed by unknown key {fp[:32]}: it or the entries before it were forged "
                "(or give its --pubkey)",
            )
        if not self.periods:
            self.periods.append(KeyPeriod(fp, n))
        elif fp != self.periods[-1].fingerprint:
            mine = [p for p in self.periods if p.fingerprint == fp]
            when = (
                f"it was retired at seq {mine[-1].until_seq}"
                if mine and mine[-1].until_seq is not None
                else "no rotation in the ledger makes it the signing key"
            )
            return Damage(
                n,
                DamageKind.KEY_NOT_VALID,
                f"{what} signed by key {fp[:16]}, not by {self.periods[-1].fingerprint[:16]} valid since seq "
                f"{self.periods[-1].from_seq}: {when}",
            )
        if not verify_signature(self.ring.keys[fp], sig, message):
            return Damage(
                n,
                DamageKind.BAD_SIGNATURE,
                f"{what} signature does not verify: it or the entries {covers_from}..{n - 1} it covers were forged",
            )
        return None

    def rotate(
        self, n: int, fields: dict[str, Any], new_key: Ed25519PublicKey, message: bytes, covers_from: int
    ) -> Damage | None:
        """Verify the rotation entry at seq ``n`` and make its new key the current one."""
        new_fp, old_fp, old_sig = str(fields["new_fingerprint"]), fields["old_fingerprint"], fields["old_signature"]
        if not verify_signature(new_key, str(fields["new_signature"]), message):
            return Damage(n, DamageKind.BAD_SIGNATURE, "key rotation not signed by the new key")
        vouched = "rotation"
        if old_sig is None:
            if new_fp not in self.ring.given:
                return Damage(
                    n,
                    DamageKind.BAD_SIGNATURE,
                    f"key rotation without the old key's signature to key {new_fp[:16]}: trust it only by giving "
                    "its public key (--pubkey)",
                )
            vouched = "rotation without old key (auditor)"
        else:
            damage = self.check(n, str(old_fp), str(old_sig), message, "key rotation", covers_from)
            if damage is not None:
                return damage
        self.ring.learn(new_key)
        if self.periods:
            self.periods[-1].until_seq = n
        self.periods.append(KeyPeriod(new_fp, n, vouched_by=vouched))
        return None
