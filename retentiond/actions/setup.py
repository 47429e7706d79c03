"""Open what actions need from a loaded configuration: the ledger, its keys, the anchor bucket.

Secrets are read here, at use time, from ``*_env`` / ``*_credential`` / ``*_file``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from retentiond.audit.anchor import Anchor, checkpoint_and_anchor
from retentiond.audit.ledger import Ledger
from retentiond.audit.refs import RefMaker
from retentiond.audit.signing import Signer
from retentiond.config.loader import LoadedConfig
from retentiond.config.secrets import read_secret, read_secret_text
from retentiond.errors import ConfigError, ConfigIssue
from retentiond.stores import registry


def ledger_url(loaded: LoadedConfig) -> str:
    """Return the ledger's URL: configured, or the SQLite file ``audit.db`` in ``state_dir``."""
    audit = loaded.settings.audit
    url = read_secret_text(audit, "url", "audit", base_dir=loaded.directory)
    if url:
        return url
    loaded.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{loaded.state_dir / 'audit.db'}"


def hmac_key(loaded: LoadedConfig) -> bytes:
    """Return the key of record refs.

    Raises:
        ConfigError: none configured, or unreadable.
    """
    key = read_secret(loaded.settings.audit, "hmac_key", "audit", base_dir=loaded.directory)
    if not key:
        raise ConfigError(
            [
                ConfigIssue(
                    "audit.hmac_key_credential",
                    "required: the key of record refs (hmac_key_env, hmac_key_credential or hmac_key_file)",
                )
            ]
        )
    return key


def signer(loaded: LoadedConfig) -> Signer:
    """Return the checkpoint signer.

    Raises:
        ConfigError: no signing key configured, or it is not an Ed25519 private key.
    """
    pem = read_secret(loaded.settings.audit, "signing_key", "audit", base_dir=loaded.directory)
    if not pem:
        raise ConfigError(
            [
                ConfigIssue(
                    "audit.signing_key_credential",
                    "required: the Ed25519 key that signs checkpoints (signing_key_env, signing_key_credential "
                    "or signing_key_file; `retentiond audit keygen` makes one)",
                )
            ]
        )
    try:
        return Signer.from_pem(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError([ConfigIssue("audit.signing_key", f"not an Ed25519 private key in PEM: {exc}")]) from None


def anchor(loaded: LoadedConfig) -> Anchor | None:
    """Return the WORM bucket checkpoints are copied to (``[audit.anchor]``), or None.

    Raises:
        ConfigError: the anchor's store is not an S3 store, or its client cannot be made.
    """
    settings = loaded.settings.audit.anchor
    if settings is None:
        return None
    store = loaded.settings.stores.get(settings.store)
    if store is None:
        raise ConfigError([ConfigIssue("audit.anchor.store", f"{settings.store!r} is not an S3 store of [stores]")])
    client = registry.kind(store.kind).anchor_client(loaded, settings.store)
    return Anchor(client, settings.bucket, settings.prefix, loaded.settings.audit.ledger_id, settings.retain_days)


@dataclass
class AuditHandles:
    """An open ledger with the keys a run writes with, and the optional anchor bucket."""

    ledger: Ledger
    refs: RefMaker
    signer: Signer
    anchor: Anchor | None = None

    def checkpoint(
        self, *, run_id: str | None = None, if_older_than: timedelta | None = None, if_unsigned: bool = False
    ) -> Any:
        """Write a signed checkpoint, copied to the anchor bucket when one is configured.

        Returns the checkpoint entry, or None when ``if_older_than`` or ``if_unsigned`` (the
        newest entry is a checkpoint already) found none due.

        Raises:
            TemporaryFailure: the ledger or the anchor bucket is unreachable.
        """
        return checkpoint_and_anchor(
            self.ledger, self.signer, self.anchor, run_id=run_id, if_older_than=if_older_than, if_unsigned=if_unsigned
        )

    def close(self) -> None:
        """Close the ledger."""
        self.ledger.close()


def open_audit(loaded: LoadedConfig) -> AuditHandles:
    """Return the ledger, ref maker and signer for a run.

    Raises:
        ConfigError: a key is missing or invalid.
        TemporaryFailure: the ledger database is unreachable.
    """
    key = hmac_key(loaded)
    sign = signer(loaded)
    try:
        refs = RefMaker(key)
    except ValueError as exc:
        raise ConfigError([ConfigIssue("audit.hmac_key", str(exc))]) from None
    worm = anchor(loaded)
    ledger = Ledger.open(ledger_url(loaded), loaded.settings.audit.ledger_id)
    return AuditHandles(ledger=ledger, refs=refs, signer=sign, anchor=worm)
