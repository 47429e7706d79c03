"""Where a report's entries come from: the ledger a configuration names, verified first.

Two kinds of configuration work:

* the operator's full ``retention.toml`` — the report also shows each category's retention as
  that file configures it, and whether it is the file the ledger recorded as in force;
* an auditor's file with only ``[audit]`` (the ledger's ``url`` or ``url_env`` and optionally
  ``ledger_id``), loaded as the ``audit`` commands load it. The public key comes from
  ``--pubkey`` (or, in an operator's file, is the public half of the signing key); without
  one the report refuses, as ``audit verify`` does: an unchecked ledger is not evidence.

Verification goes through :func:`verify_ledger`, the one adapter to ``retentiond.audit``'s
verifier, and only entries up to the verified head are read back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from retentiond.audit.ledger import Entry, Ledger
from retentiond.audit.results import VerifyPolicy
from retentiond.audit.signing import KeyRing, Signer, load_public_key
from retentiond.config.loader import LoadedConfig, load_config
from retentiond.config.models import AuditSettings
from retentiond.config.secrets import read_secret, read_secret_text
from retentiond.errors import ConfigError, ConfigIssue, UsageError
from retentiond.report.model import ConfiguredCategory, Verification


@dataclass(frozen=True)
class ReportConfig:
    """What a report needs from a configuration file."""

    path: Path
    audit: AuditSettings
    ledger_url: str
    loaded: LoadedConfig | None  # None for an auditor-only file

    @property
    def auditor_only(self) -> bool:
        """Return True when the file has no categories (an auditor's)."""
        return self.loaded is None

    def configured(self) -> dict[str, ConfiguredCategory]:
        """Return each category as the file configures it (empty for an auditor-only file)."""
        if self.loaded is None:
            return {}
        return {
            name: ConfiguredCategory(
                retain=str(cat.retain),
                action=cat.action,
                prior_versions=None if cat.prior_versions is None else str(cat.prior_versions),
                targets=len(cat.sql) + len(cat.s3),
            )
            for name, cat in self.loaded.settings.categories.items()
        }

    def keys(self, pubkeys: Sequence[str]) -> KeyRing | None:
        """Return the public keys checkpoints are checked against: ``pubkeys`` files, else the
        public half of the configured signing key, else None (signatures not checked).

        Raises:
            UsageError: a ``--pubkey`` file cannot be read or is not an Ed25519 key.
            ConfigError: the configured signing key cannot be read.
        """
        if pubkeys:
            found = []
            for name in pubkeys:
                try:
                    found.append(load_public_key(Path(name).read_bytes()))
                except OSError as exc:
                    raise UsageError(f"--pubkey {name}: {exc.strerror}") from None
                except ValueError as exc:
                    raise UsageError(f"--pubkey {name}: {exc}") from None
            return KeyRing.of(*found)
        pem = read_secret(self.audit, "signing_key", "audit", base_dir=self.path.parent)
        if not pem:
            return None
        try:
            return KeyRing.of(Signer.from_pem(pem).public_key)
        except (ValueError, TypeError) as exc:
            raise ConfigError([ConfigIssue("audit.signing_key", f"not an Ed25519 private key in PEM: {exc}")]) from None


def load_report_config(path: str | Path) -> ReportConfig:
    """Return the report's view of the configuration at ``path`` (full, or ``[audit]`` only).

    Raises:
        ConfigError: the file is invalid, or an auditor-only file names no ledger URL.
    """
    loaded = load_config(Path(path), audit_only=True)
    audit = loaded.settings.audit
    url = read_secret_text(audit, "url", "audit", base_dir=loaded.directory)
    if not loaded.settings.categories:
        if not url:
            raise ConfigError(
                [
                    ConfigIssue(
                        "audit.url",
                        "required in a configuration without categories: where the ledger is (url or url_env)",
                        file=str(path),
                    )
                ]
            )
        return ReportConfig(loaded.path, audit, url, None)
    return ReportConfig(loaded.path, audit, url or f"sqlite:///{loaded.state_dir / 'audit.db'}", loaded)


def open_ledger(config: ReportConfig) -> Ledger:
    """Open the configured ledger for reading; never creates one.

    Raises:
        ConfigError: no ledger at the URL (an SQLite file that does not exist included).
        TemporaryFailure: the database is unreachable.
    """
    try:
        url = make_url(config.ledger_url)
    except ArgumentError:
        raise ConfigError([ConfigIssue("audit.url", "not a valid SQLAlchemy database URL")]) from None
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        # Opening would create an empty file where the auditor expected the ledger.
        raise ConfigError([ConfigIssue("audit.url", f"no audit ledger at {url.database}")])
    return Ledger.open(config.ledger_url, config.audit.ledger_id, create=False)


def verify_ledger(ledger: Ledger, keys: KeyRing, *, max_unsigned_age: timedelta) -> Verification:
    """Verify the whole ledger with ``retentiond.audit``'s verifier and return what the report states.

    ``max_unsigned_age`` is the configuration's ``audit.checkpoint_interval``: an unsigned tail
    younger than that, holding no outcome, is tolerated (as by ``audit verify``).
    The one place the report calls verification: when the verifier changes, only this changes.

    Raises:
        TemporaryFailure: the database is unreachable.
    """
    # The same rule as ``audit verify``: no OK without a signature over the entries (issue 11).
    result = ledger.verify(policy=VerifyPolicy(keys=keys, max_unsigned_age=max_unsigned_age))
    damage = result.damage
    return Verification(
        ok=result.ok,
        ledger_id=result.ledger_id,
        entries=result.entries,
        head_seq=result.head_seq,
        head_hash=result.head_hash,
        checkpoints=result.checkpoints,
        last_checkpoint_seq=result.last_checkpoint_seq,
        last_checkpoint_time=result.last_checkpoint_time,
        unsigned_tail=result.unsigned_tail,
        signatures_checked=result.signatures_checked,
        key_fingerprints=tuple(result.fingerprints) if result.signatures_checked else (),
        damage=None if damage is None else damage.render(),
        damage_seq=None if damage is None else damage.seq,
        damage_kind=None if damage is None else damage.kind.value,
    )


def verified_entries(ledger: Ledger, verification: Verification) -> Iterator[Entry]:
    """Yield the entries verification covered (seq 1 to its head), in seq order.

    Entries appended after verification began are left out: the report is about what was verified.

    Raises:
        TemporaryFailure: the database is unreachable.
    """
    for entry in ledger.iter_entries():
        if entry.seq > verification.head_seq:
            return
        yield entry
