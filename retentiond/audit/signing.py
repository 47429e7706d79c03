"""Ed25519 keys and the signed checkpoint message (SPEC §5 "Checkpoints")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from retentiond.audit.canonical import canonical_dumps

CHECKPOINT_DOMAIN = "retentiond-checkpoint-v1"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """Return SHA-256 of the raw 32 public-key bytes, as 64 hex characters."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


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


def checkpoint_message(ledger_id: str, seq: int, head_hash_hex: str, time_text: str) -> bytes:
    """Return the exact bytes a checkpoint signs: canonical JSON of (ledger id, seq, head hash, time)."""
    return canonical_dumps(
        {"domain": CHECKPOINT_DOMAIN, "head_hash": head_hash_hex, "ledger_id": ledger_id, "seq": seq, "time": time_text}
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


@dataclass(frozen=True)
class KeyRing:
    """Public keys an auditor accepts, by fingerprint (several after a key rotation)."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def of(cls, *public_keys: Ed25519PublicKey) -> KeyRing:
        """Return a ring holding ``public_keys``."""
        return cls({fingerprint(k): k for k in public_keys})

    def verify(self, fingerprint_hex: str, signature_hex: str, message: bytes) -> str | None:
        """Return None when the signature is good, else why it is not."""
        key = self.keys.get(fingerprint_hex)
        if key is None:
            return f"signed by unknown key {fingerprint_hex[:32]}"
        try:
            key.verify(bytes.fromhex(signature_hex), message)
        except (InvalidSignature, ValueError):
            return "signature does not verify"
        return None

    def fingerprints(self) -> list[str]:
        """Return the fingerprints of the ring's keys."""
        return sorted(self.keys)
