"""Ed25519 keys, the signed checkpoint and key-rotation messages (SPEC §5 "Checkpoints").

A checkpoint signs the canonical JSON of ``(ledger id, seq, head hash, time)``; from format v2
on it also signs the hashes of the entries since the previous checkpoint (``from_seq`` and
``entry_hashes``), which lets verification name the first changed entry of a rebuilt chain and
lets an exported window prove its last entry with one checkpoint. A key rotation is signed by
the old key (authorizing) and by the new one (proof of possession); docs/auditing.md gives the
exact bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from retentiond.audit.canonical import canonical_dumps

CHECKPOINT_DOMAIN = "retentiond-checkpoint-v1"
CHECKPOINT_DOMAIN_V2 = "retentiond-checkpoint-v2"
ROTATION_DOMAIN = "retentiond-key-rotation-v1"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """Return SHA-256 of the raw 32 public-key bytes, as 64 hex characters."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """Return the raw 32 bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """Return the Ed25519 public key whose raw 32 bytes are ``text`` in hex.

    Raises:
        ValueError: not 64 hex characters of a valid key.
    """
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Load an unencrypted PKCS#8 PEM Ed25519 private key.

    Raises:
        ValueError: not a PEM Ed25519 private key (the message never echoes the input).
    """
    try:
        key = serialization.load_pem_private_key(pem.strip() + b"\n", password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key is not an Ed25519 key")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Load a PEM Ed25519 public key (a private key PEM is accepted too: its public half).

    Raises:
        ValueError: neither an Ed25519 public nor private key in PEM.
    """
    if b"PRIVATE KEY" in pem:
        return load_private_key(pem).public_key()
    try:
        key = serialization.load_pem_public_key(pem.strip() + b"\n")
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


def generate_key_pair() -> tuple[bytes, bytes, str]:
    """Return ``(private PEM, public PEM, fingerprint)`` of a fresh Ed25519 key pair."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem, fingerprint(public)


def checkpoint_message(
    ledger_id: str,
    seq: int,
    head_hash_hex: str,
    time_text: str,
    *,
    from_seq: int | None = None,
    entry_hashes: str | None = None,
) -> bytes:
    """Return the exact bytes a checkpoint signs.

    v1 (``from_seq`` None): canonical JSON of domain, head hash, ledger id, seq and time.
    v2: the same plus ``from_seq`` and ``entry_hashes`` (the hex hashes of entries
    ``from_seq..seq``, concatenated), under the v2 domain.
    """
    message: dict[str, object] = {
        "domain": CHECKPOINT_DOMAIN,
        "head_hash": head_hash_hex,
        "ledger_id": ledger_id,
        "seq": seq,
        "time": time_text,
    }
    if from_seq is not None:
        message |= {"domain": CHECKPOINT_DOMAIN_V2, "entry_hashes": entry_hashes or "", "from_seq": from_seq}
    return canonical_dumps(message).encode("utf-8")


def rotation_message(
    ledger_id: str, seq: int, head_hash_hex: str, time_text: str, old_fingerprint: str | None, new_public_key_hex: str
) -> bytes:
    """Return the bytes both keys of a rotation sign: the position it happens at and the new key."""
    return canonical_dumps(
        {
            "domain": ROTATION_DOMAIN,
            "head_hash": head_hash_hex,
            "ledger_id": ledger_id,
            "new_public_key": new_public_key_hex,
            "old_fingerprint": old_fingerprint,
            "seq": seq,
            "time": time_text,
        }
    ).encode("utf-8")


class Signer:
    """Signs checkpoints with an Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        """Keep the key and its public fingerprint."""
        self._key = private_key
        self.public_key = private_key.public_key()
        self.fingerprint = fingerprint(self.public_key)

    @classmethod
    def from_pem(cls, pem: bytes) -> Signer:
        """Return a signer for a PEM private key.

        Raises:
            ValueError: see :func:`load_private_key`.
        """
        return cls(load_private_key(pem))

    def sign(self, message: bytes) -> str:
        """Return the signature of ``message`` as 128 hex characters."""
        return self._key.sign(message).hex()


def verify_signature(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    """Return True when ``signature_hex`` is ``public_key``'s signature of ``message``."""
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass
class KeyRing:
    """Public keys an auditor accepts, by fingerprint; keys learned from signed rotations join it.

    ``given`` are the fingerprints the auditor supplied; the others were vouched for by a
    rotation entry signed with a key already in the ring.
    """

    keys: dict[str, Ed25519PublicKey]
    given: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.given:
            self.given = set(self.keys)

    @classmethod
    def of(cls, *public_keys: Ed25519PublicKey) -> KeyRing:
        """Return a ring holding ``public_keys`` (all of them given by the auditor)."""
        keys = {fingerprint(k): k for k in public_keys}
        return cls(keys, set(keys))

    def copy(self) -> KeyRing:
        """Return an independent copy (verification adds learned keys to its own copy)."""
        return KeyRing(dict(self.keys), set(self.given))

    def learn(self, public_key: Ed25519PublicKey) -> str:
        """Add a key vouched for by a verified rotation; return its fingerprint."""
        fp = fingerprint(public_key)
        self.keys.setdefault(fp, public_key)
        return fp

    def verify(self, fingerprint_hex: str, signature_hex: str, message: bytes) -> str | None:
        """Return None when the signature is good, else why it is not."""
        key = self.keys.get(fingerprint_hex)
        if key is None:
            return f"signed by unknown key {fingerprint_hex[:32]}"
        if not verify_signature(key, signature_hex, message):
            return "signature does not verify"
        return None

    def fingerprints(self) -> list[str]:
        """Return the fingerprints of the ring's keys."""
        return sorted(self.keys)
