"""The typed events of the audit ledger (SPEC §5).

Every event is a frozen dataclass whose fields may only be: :class:`Name` (config object
names), non-negative ints (counts), the enums below, aware datetimes (stored in UTC), SHA-256
hex digests, a tuple of :class:`~retentiond.audit.refs.RecordRef`, tuples of names, or small
dicts ``Name -> int`` / ``Name -> datetime``. There is deliberately no free-text field: no
record key, value or message can reach the ledger. Values are validated (and plain ``str``
coerced to :class:`Name`) in ``__post_init__``; anything else raises ``TypeError`` or
``ValueError`` before an entry is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from retentiond.audit.event_base import Event
from retentiond.audit.refs import RecordRef
from retentiond.audit.values import (
    Action,
    BatchId,
    BatchIdStr,
    Digest,
    DigestStr,
    GuardDecision,
    HashListStr,
    HoldKind,
    Label,
    LabelStr,
    Name,
    Names,
    NameStr,
    Outcome,
    PublicKeyStr,
    Refs,
    SignatureStr,
    SqlStateStr,
)

# --- the events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigLoaded(Event):
    """The daemon loaded (or reloaded) a valid configuration and holds file."""

    event_name: ClassVar[str] = "config_loaded"
    config_sha256: DigestStr
    holds_sha256: DigestStr | None
    categories: Names = ()
    holds: Names = ()


@dataclass(frozen=True)
class ConfigRejected(Event):
    """A configuration or holds file was refused (SIGHUP with errors, invalid holds)."""

    event_name: ClassVar[str] = "config_rejected"
    source: NameStr  # "config" or "holds"
    file_sha256: DigestStr | None
    issue_count: int


@dataclass(frozen=True)
class HoldPlaced(Event):
    """A hold appeared in the holds file."""

    event_name: ClassVar[str] = "hold_placed"
    refs_field: ClassVar[str | None] = "subject_refs"
    hold_id: NameStr
    kind: HoldKind
    categories: Names
    placed_at: datetime
    expires_at: datetime | None
    hold_sha256: DigestStr  # digest of the hold's definition (reason, subjects and all)
    subject_refs: Refs = ()
    placed_by: LabelStr | None = None  # who placed it, as the holds file names them
    reference: LabelStr | None = None  # matter / ticket / statute reference
    reason_hmac: DigestStr | None = None  # HMAC of the reason text: provable, never stored


@dataclass(frozen=True)
class HoldChanged(Event):
    """A hold's definition changed in the holds file."""

    event_name: ClassVar[str] = "hold_changed"
    refs_field: ClassVar[str | None] = "subject_refs"
    hold_id: NameStr
    kind: HoldKind
    categories: Names
    placed_at: datetime
    expires_at: datetime | None
    hold_sha256: DigestStr
    subject_refs: Refs = ()
    placed_by: LabelStr | None = None
    reference: LabelStr | None = None
    reason_hmac: DigestStr | None = None
    # What narrowed (released, categories, subjects, expires_at, placed_at, keep_younger_than):
    # the former definition keeps protecting until ``protects_until`` (release grace).
    narrowed: Names = ()
    subjects_removed: int = 0
    subjects_added: int = 0
    categories_removed: Names = ()
    protects_until: datetime | None = None


@dataclass(frozen=True)
class HoldReleased(Event):
    """A hold left the holds file (it keeps protecting until ``protects_until``) or expired."""

    event_name: ClassVar[str] = "hold_released"
    hold_id: NameStr
    released_at: datetime
    protects_until: datetime


@dataclass(frozen=True)
class HoldReleaseRefused(Event):
    """Dual control refused a release or narrowing of a legal hold: its former definition stays in force."""

    event_name: ClassVar[str] = "hold_release_refused"
    hold_id: NameStr
    problem: NameStr  # removed_without_lift | lift_not_approved | change_not_approved | approval_reused
    narrowed: Names = ()
    hold_sha256: DigestStr | None = None  # digest of the refused definition (None: removed from the file)


@dataclass(frozen=True)
class RunStarted(Event):
    """A run began: its one ``run_start`` instant and each category's cutoff."""

    event_name: ClassVar[str] = "run_started"
    run_start: datetime
    cutoffs: dict[NameStr, datetime]
    config_sha256: DigestStr | None = None
    actor_unit: NameStr | None = None  # the systemd unit that ran it (the daemon, a timer's service)
    actor_user: NameStr | None = None  # the OS user of the process
    actor_sudo_user: NameStr | None = None  # who ran it through sudo (SUDO_USER)
    reference: LabelStr | None = None  # the operator's ticket (required with --allow-large)


@dataclass(frozen=True)
class Batch(Event):
    """What one batch did to the records of one target (SPEC §5 ``batch``)."""

    event_name: ClassVar[str] = "batch"
    refs_field: ClassVar[str | None] = "refs"
    batch_id: BatchIdStr
    category: NameStr
    store: NameStr
    target: NameStr  # table (optionally schema-qualified) or bucket
    action: Action
    outcome: Outcome
    count: int
    refs: Refs = ()
    prefix: NameStr | None = None  # S3 prefix label of the target, when it has one
    prior_versions: int = 0  # history rows / noncurrent versions removed with these records
    holds: Names = ()  # outcome "held": the hold(s) that kept these records
    #: S3: the object-level ref (``RefMaker.s3_object``) of each version ref, in the same order,
    #: so ``audit find --bucket B --object-key K`` finds every version without its id.
    object_refs: Refs = ()
    #: outcome "failed" of records a statement refused: the SQLSTATE and the object names the
    #: error named (the constraint; the table, e.g. the referencing table of a foreign key).
    #: Never the error's message or DETAIL, which may carry values.
    sqlstate: SqlStateStr | None = None
    constraint: NameStr | None = None
    relation: NameStr | None = None

    object_refs_field: ClassVar[str | None] = "object_refs"
    _failure_fields: ClassVar[tuple[str, ...]] = ("sqlstate", "constraint", "relation")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.refs and len(self.refs) != self.count:
            raise ValueError("count must equal the number of refs when refs are given")
        if self.object_refs and len(self.object_refs) != len(self.refs):
            raise ValueError("object_refs must pair with refs: one object ref per version ref")
        if self.outcome is not Outcome.FAILED and any(getattr(self, f) is not None for f in self._failure_fields):
            raise ValueError("sqlstate, constraint and relation describe a failed outcome only")

    def json_fields(self) -> dict[str, Any]:
        """Return the fields; the failure's fields only when set (earlier entries keep their exact keys)."""
        out = super().json_fields()
        for f in self._failure_fields:
            if out.get(f) is None:
                out.pop(f, None)
        return out

    @staticmethod
    def split(refs: Sequence[RecordRef], count: int) -> tuple[Refs, Refs]:
        """Return ``(refs, object_refs)`` of a refs sequence holding the version refs then their object refs.

        An S3 outcome row carries ``2 * count`` refs (versions, then objects); any other row ``count``
        or none.

        Raises:
            ValueError: the length is neither 0, ``count`` nor ``2 * count``.
        """
        refs = tuple(refs)
        if len(refs) in (0, count):
            return refs, ()
        if len(refs) == 2 * count:
            return refs[:count], refs[count:]
        raise ValueError("a batch carries no refs, one per record, or one per record and one per object")

    @classmethod
    def from_stored(cls, *, category: str | None, batch_id: str | None, fields: Mapping[str, Any], refs: Refs) -> Event:
        """Rebuild the batch (the stored refs are the version refs, then the object refs if any).

        Raises:
            ValueError, TypeError: the stored fields do not fit the event type.
        """
        count = fields.get("count")
        versions, objects = cls.split(refs, count) if isinstance(count, int) and count else (refs, ())
        event = super().from_stored(category=category, batch_id=batch_id, fields=fields, refs=versions)
        return dataclasses.replace(event, object_refs=objects) if objects else event  # type: ignore[type-var]


@dataclass(frozen=True)
class GuardTripped(Event):
    """A run stopped before acting because it would exceed ``max_fraction_per_run``."""

    event_name: ClassVar[str] = "guard_tripped"
    category: NameStr
    store: NameStr
    target: NameStr
    would_act: int
    total: int
    limit: int
    decision: GuardDecision = GuardDecision.STOPPED
    reference: LabelStr | None = None  # decision "allowed": the operator's ticket


@dataclass(frozen=True)
class RunFinished(Event):
    """A run completed; ``counts`` maps outcome names to record counts.

    ``eligible`` maps each category the run counted to the records that were expired and not
    held when its batches began (the backlog the run set out to clear; ``retentiond report``).
    """

    event_name: ClassVar[str] = "run_finished"
    counts: dict[NameStr, int]
    failed_categories: Names = ()
    duration_ms: int = 0
    eligible: dict[NameStr, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInterrupted(Event):
    """A run stopped early (SIGTERM, lost lease); ``reason`` is a short name such as ``sigterm``."""

    event_name: ClassVar[str] = "run_interrupted"
    reason: NameStr
    counts: dict[NameStr, int] = field(default_factory=dict)
    eligible: dict[NameStr, int] = field(default_factory=dict)  # as in RunFinished, for the categories counted


@dataclass(frozen=True)
class Reconciled(Event):
    """After a crash: intents found unfinished and how they were settled."""

    event_name: ClassVar[str] = "reconciled"
    intents: int
    completed: int
    abandoned: int


@dataclass(frozen=True)
class Checkpoint(Event):
    """A signature over ``(ledger id, seq, head hash, time)``; written by ``Ledger.checkpoint``."""

    event_name: ClassVar[str] = "checkpoint"
    ledger_id: NameStr
    covered_seq: int
    covered_hash: DigestStr
    signed_at: datetime
    key_fingerprint: DigestStr
    signature: SignatureStr
    #: v2: the first seq whose hash ``entry_hashes`` lists (the previous checkpoint's own seq)
    from_seq: int | None = None
    #: v2: the hashes of entries ``from_seq..covered_seq``, concatenated hex (signed too)
    entry_hashes: HashListStr | None = None

    def json_fields(self) -> dict[str, Any]:
        """Return the fields; a v1 checkpoint (no ``from_seq``) keeps exactly its v1 keys."""
        out = super().json_fields()
        if self.from_seq is None:
            out.pop("from_seq", None)
            out.pop("entry_hashes", None)
        return out


@dataclass(frozen=True)
class KeyRotated(Event):
    """The checkpoint signing key changed; written by ``Ledger.rotate_key``.

    ``old_signature`` (the old key's, authorizing) is None only for a rotation made without the
    old key (lost or destroyed): verification then accepts the new key only if the auditor
    gives it. ``new_signature`` proves the new key's holder made the rotation.
    """

    event_name: ClassVar[str] = "key_rotated"
    ledger_id: NameStr
    covered_seq: int
    covered_hash: DigestStr
    rotated_at: datetime
    old_fingerprint: DigestStr | None
    new_fingerprint: DigestStr
    new_public_key: PublicKeyStr
    old_signature: SignatureStr | None
    new_signature: SignatureStr


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_name: cls
    for cls in (
        ConfigLoaded,
        ConfigRejected,
        HoldPlaced,
        HoldChanged,
        HoldReleased,
        HoldReleaseRefused,
        RunStarted,
        Batch,
        GuardTripped,
        RunFinished,
        RunInterrupted,
        Reconciled,
        Checkpoint,
        KeyRotated,
    )
}

#: Events a run writes about what it did; one that no checkpoint covers is damage ("unsigned outcome").
OUTCOME_EVENTS = frozenset({"batch", "guard_tripped", "run_finished", "run_interrupted", "reconciled"})


__all__ = [
    "EVENT_TYPES",
    "OUTCOME_EVENTS",
    "Action",
    "Batch",
    "BatchId",
    "Checkpoint",
    "ConfigLoaded",
    "ConfigRejected",
    "Digest",
    "Event",
    "GuardDecision",
    "GuardTripped",
    "HoldChanged",
    "HoldKind",
    "HoldPlaced",
    "HoldReleased",
    "KeyRotated",
    "Label",
    "Name",
    "Outcome",
    "Reconciled",
    "RunFinished",
    "RunInterrupted",
    "RunStarted",
]
