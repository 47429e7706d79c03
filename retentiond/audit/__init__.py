"""The tamper-evident audit ledger (SPEC §5): typed events, record refs, signed checkpoints.

Typical use by the engine::

    refs = RefMaker(hmac_key)
    with Ledger.open(url, ledger_id) as ledger:
        ledger.append(Batch(batch_id=BatchId.new(), category=..., store=..., target=...,
                            action=Action.DELETE, outcome=Outcome.DELETED, count=len(keys),
                            refs=tuple(refs.sql_many(store, table, keys))), run_id=run_id)
        ledger.checkpoint(signer)
"""

from retentiond.audit.events import (
    Action,
    Batch,
    BatchId,
    Checkpoint,
    ConfigLoaded,
    ConfigRejected,
    Digest,
    Event,
    GuardTripped,
    HoldChanged,
    HoldKind,
    HoldPlaced,
    HoldReleased,
    KeyRotated,
    Label,
    Name,
    Outcome,
    Reconciled,
    RunFinished,
    RunInterrupted,
    RunStarted,
)
from retentiond.audit.export import verify_export, write_export
from retentiond.audit.ledger import (
    AppendedEntry,
    DuplicateBatch,
    Entry,
    Head,
    KeyNotCurrent,
    Ledger,
    new_run_id,
)
from retentiond.audit.refs import RecordRef, RefMaker
from retentiond.audit.results import (
    Damage,
    DamageKind,
    KeyPeriod,
    TrustedCheckpoint,
    VerifyPolicy,
    VerifyResult,
)
from retentiond.audit.signing import (
    KeyRing,
    Signer,
    fingerprint,
    generate_key_pair,
    load_private_key,
    load_public_key,
)
from retentiond.audit.verify import ChainVerifier

__all__ = [
    "Action",
    "ChainVerifier",
    "KeyNotCurrent",
    "KeyPeriod",
    "KeyRotated",
    "Label",
    "VerifyPolicy",
    "write_export",
    "AppendedEntry",
    "Batch",
    "BatchId",
    "Checkpoint",
    "ConfigLoaded",
    "ConfigRejected",
    "Damage",
    "DamageKind",
    "Digest",
    "DuplicateBatch",
    "Entry",
    "Event",
    "GuardTripped",
    "Head",
    "HoldChanged",
    "HoldKind",
    "HoldPlaced",
    "HoldReleased",
    "KeyRing",
    "Ledger",
    "Name",
    "Outcome",
    "Reconciled",
    "RecordRef",
    "RefMaker",
    "RunFinished",
    "RunInterrupted",
    "RunStarted",
    "Signer",
    "TrustedCheckpoint",
    "VerifyResult",
    "fingerprint",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "new_run_id",
    "verify_export",
]
