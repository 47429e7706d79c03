"""The store seam: what a kind of store (SQL, S3, ...) provides to the layers above it.

``actions/``, ``daemon/``, ``cli/`` and the metrics know stores only through this module and
:mod:`retentiond.stores.registry`. A kind lives wholly under ``stores/<kind>/`` and registers
one :class:`StoreKind`; kinds share nothing but this module.

Three levels:

- :class:`StoreKind` — the kind itself, bound to nothing: the targets a category declares in
  it, ``config validate --connect`` (:meth:`StoreKind.inspect`), the daemon's health probe,
  ``explain`` for one record, and :meth:`StoreKind.open` for a run;
- :class:`Store` — one configured store opened for one run (:class:`RunContext`): prepare the
  run, recover what a crash left unaudited (:meth:`Store.journal`), build workers;
- :class:`Worker` — one category's claim on one target: counts for ``plan``, batches (a dry
  run goes through the same batches and stops short of the write), what is left, held counts.

Which records a run looks for is one value, a :data:`Selection`, handed to
:meth:`Store.workers`: :class:`ExpirySelection` (expired by the category's cutoff) or
:class:`ErasureSelection` (every record of a request's subjects). Each kind handles every
variant; the driver has one code path for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from retentiond.config.holds import Hold
from retentiond.errors import ConfigIssue
from retentiond.policy import cutoffs as policy_cutoffs

if TYPE_CHECKING:
    from retentiond.config.loader import LoadedConfig
    from retentiond.config.models import Settings

# -- value types ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRef:
    """One configured target of a category, as the layers above ``stores/`` see it.

    ``target`` is the target's name in reports, metrics and the ledger (a table as configured,
    a bucket); ``prefix`` narrows it where the kind has one (an S3 key prefix), else None;
    ``path`` is the dotted config path of its declaration (``categories.NAME.sql[0]``).
    ``no_subject`` says, when the target cannot tell a record's subject, which option is missing
    and what a subject hold then protects (None: it can tell); ``key_columns`` is how many values
    make a record's key where the kind's records have a column key (None otherwise).
    """

    kind: str
    category: str
    index: int
    store: str
    target: str
    path: str
    prefix: str | None = None
    no_subject: str | None = None
    key_columns: int | None = None


@dataclass(frozen=True)
class ExpirySelection:
    """Records past their category's retention: the selection of every plan and run today.

    ``cutoffs`` maps every category (not only the selected ones: "longest retention wins" needs
    the others) to ``run_start - retain``. ``prior_cutoffs`` maps every category to the instant
    before which prior versions expire on their own (``policy.cutoffs``: ``prior_versions``, by
    default ``retain``, counted from when the version was superseded; one rule for every kind).
    """

    run_start: datetime
    cutoffs: Mapping[str, datetime]
    prior_cutoffs: Mapping[str, datetime]

    @classmethod
    def at(cls, settings: Settings, run_start: datetime) -> ExpirySelection:
        """Return the selection of a plan or run starting at ``run_start``: every category's cutoffs."""
        return cls(
            run_start=run_start,
            cutoffs=policy_cutoffs.cutoffs(settings.categories, run_start),
            prior_cutoffs=policy_cutoffs.prior_versions_cutoffs(settings.categories, run_start),
        )


@dataclass(frozen=True)
class ErasureSelection:
    """Every record of ``subjects``, whatever its age: the selection of an erasure request.

    Decided by :func:`retentiond.policy.erasure.decide_erasure`: holds still win, categories in
    ``never`` (``erasure = "never"``) keep their records, prior versions go with their record (no
    prior-versions pass of their own). ``request`` is the request's reference (a ledger Label).
    """

    run_start: datetime
    request: str
    subjects: frozenset[str]
    never: frozenset[str]

    @classmethod
    def at(cls, settings: Settings, run_start: datetime, request: str, subjects: frozenset[str]) -> ErasureSelection:
        """Return the selection of request ``request`` for ``subjects`` starting at ``run_start``."""
        never = frozenset(name for name, cat in settings.categories.items() if cat.erasure == "never")
        return cls(run_start=run_start, request=request, subjects=subjects, never=never)


# Every selection a store may be handed; a kind that cannot serve a variant refuses it with a
# ConfigError naming the target.
Selection: TypeAlias = ExpirySelection | ErasureSelection


@dataclass
class Counts:
    """Plan figures of one target: what exists, what the run would act on, what holds keep.

    ``history_expired`` counts prior versions expired on their own (``prior_versions``);
    ``blocked`` what the store itself would refuse to act on (S3 Object Lock), never part of
    ``eligible``. ``held`` is per hold (a record under two holds is in both: overlapping);
    ``held_records`` counts distinct records. ``kept``, for an erasure, the subject's records a
    category's ``erasure = "never"`` keeps (per that category).
    """

    total: int
    eligible: int
    held: dict[str, int]
    history_expired: int
    blocked: int = 0
    held_records: int = 0
    oldest: datetime | None = None  # age (aware) of the oldest eligible record; None: nothing eligible
    kept: dict[str, int] = field(default_factory=dict)  # kept by a rule (erasure = "never"), per category
    # Units the store would remove whole rather than record by record (SQL: expired partitions), name → records.
    whole: dict[str, int] = field(default_factory=dict)


@dataclass
class Cursor:
    """Position of a pass over one target: opaque to the driver, advanced in place by the worker."""

    after: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class OutcomeRow:
    """One batch outcome, durable in the store's journal (outbox, intents) until the ledger has it.

    ``refs`` holds record refs made by the store (``RecordRefs``); ``keys``, when set, is a JSON
    array of canonical key texts the relay turns into row refs (so no HMAC is computed inside a
    batch's transaction). ``prefix`` names an S3-like target's prefix. ``failure``, on a
    ``failed`` row, is a JSON object of what the store's error named: ``sqlstate``,
    ``constraint``, ``relation`` (object names, never values).
    """

    batch_id: str
    run_id: str
    category: str
    store: str
    target: str
    action: str
    outcome: str
    count: int
    prior_versions: int
    refs: bytes
    created_at: datetime
    keys: str | None = None
    prefix: str | None = None
    failure: str | None = None


@dataclass
class BatchResult:
    """What one batch did (or, on a dry run, would do).

    ``selected``: candidates the batch looked at; ``touched``: records acted on (deleted or
    anonymized); ``history``: prior versions deleted; ``blocked``: refused by the store itself
    (Object Lock); ``failed``: could not be acted on (audited as ``failed`` by the store's rows).
    ``outbox`` are the outcome rows to relay to the ledger (empty on a dry run); ``exhausted``
    ends the phase.
    """

    selected: int
    touched: int
    history: int
    outbox: list[OutcomeRow] = field(default_factory=list)
    exhausted: bool = False
    blocked: int = 0
    failed: int = 0


class Phase(StrEnum):
    """The passes a worker makes over its target, in order (see :meth:`Worker.phases`)."""

    RECORDS = "records"  # the records themselves (and what goes with them)
    PRIOR_VERSIONS = "prior_versions"  # prior versions expired on their own, in a pass of their own


@dataclass
class Findings:
    """What ``config validate --connect`` found about one target.

    ``issues`` refuse the target; ``notes`` inform. ``extra`` is merged into each note of the
    report (facts such as a bucket's versioning).
    """

    issues: list[ConfigIssue] = field(default_factory=list)
    notes: list[ConfigIssue] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def extend(self, other: Findings) -> None:
        """Append ``other``'s issues and notes to these."""
        self.issues.extend(other.issues)
        self.notes.extend(other.notes)


Note: TypeAlias = ConfigIssue  # a note is a located message that refuses nothing


class Explanation(Protocol):
    """Why one record is kept or would be acted on (``retentiond explain``, ``audit find``)."""

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        ...

    def render(self) -> str:
        """Return the explanation as sentences."""
        ...


class RecordRefs(Protocol):
    """Makes record refs (the ledger's ``RefMaker`` satisfies it); stores never import ``audit``."""

    def sql_many(self, store: str, table: str, keys: Any) -> list[Any]:
        """Return the refs of rows ``keys`` of ``store``/``table``."""
        ...

    def s3(self, store: str, bucket: str, object_key: str, version_id: str | None) -> bytes:
        """Return the ref of one object version."""
        ...

    def s3_object(self, store: str, bucket: str, object_key: str) -> bytes:
        """Return the ref of an object (all its versions)."""
        ...


@dataclass(frozen=True)
class RunContext:
    """What a store needs to know about the plan or run it serves (replaces the driver object).

    ``writes`` is False for ``plan`` and ``run --dry-run`` (nothing may be written, not even a
    journal on disk). ``clock`` is the run's clock (``run_start`` plus monotonic time elapsed).
    ``refs`` is None when nothing is audited. ``key_text`` is the canonical key text of a row's
    key values (what row refs are made of).
    """

    loaded: LoadedConfig
    run_id: str
    run_start: datetime
    categories: tuple[str, ...]
    writes: bool
    clock: Callable[[], datetime]
    pseudonym_key: bytes
    key_text: Callable[[Sequence[Any]], str]
    refs: RecordRefs | None = None

    @property
    def settings(self) -> Settings:
        """Return the loaded settings."""
        return self.loaded.settings

    @property
    def state_dir(self) -> Path:
        """Return the daemon's state directory."""
        return self.loaded.state_dir


# -- protocols -----------------------------------------------------------------------------------


@runtime_checkable
class OutcomeJournal(Protocol):
    """Where a store keeps batch outcomes until the ledger holds them (outbox, intent journal)."""

    store_name: str

    def pending(self) -> list[OutcomeRow]:
        """Return outcomes a crashed run left unaudited, oldest first (resolved against the store).

        Raises:
            TemporaryFailure: the store is unreachable.
        """
        ...

    def remove(self, batch_ids: list[str]) -> None:
        """Forget rows the ledger now holds."""
        ...


class Worker(Protocol):
    """One category's claim on one target for one run, under one :data:`Selection`."""

    @property
    def category(self) -> str:
        """Return the acting category."""
        ...

    @property
    def action(self) -> str:
        """Return "delete" or "anonymize"."""
        ...

    @property
    def cutoff(self) -> datetime:
        """Return the acting category's cutoff for this run."""
        ...

    @property
    def store(self) -> str:
        """Return the store's name."""
        ...

    @property
    def target_name(self) -> str:
        """Return the target's name in reports, metrics and the ledger."""
        ...

    @property
    def prefix(self) -> str | None:
        """Return the target's prefix where the kind has one (S3), else None."""
        ...

    @property
    def journal(self) -> OutcomeJournal:
        """Return the journal the outcome rows of :meth:`run_batch` are acknowledged in."""
        ...

    def phases(self) -> Sequence[Phase]:
        """Return the passes of this target, in order (``RECORDS`` always first)."""
        ...

    def counts(self, holds: Sequence[Hold]) -> Counts:
        """Return the plan figures under ``holds`` (the same conditions the batches use).

        Raises:
            TemporaryFailure: the store is unreachable.
        """
        ...

    def run_batch(self, phase: Phase, cursor: Cursor, holds: Sequence[Hold], *, dry_run: bool) -> BatchResult:
        """Act on the next batch of ``phase`` after ``cursor`` (advanced in place).

        Every destructive statement re-checks the selection, filters and ``holds`` itself; the
        result's rows name only what was really touched. With ``dry_run`` the same selection runs
        and nothing is written.

        Raises:
            TemporaryFailure: the store is unreachable or a request failed beyond its retries.
        """
        ...

    def remaining(self, holds: Sequence[Hold]) -> int:
        """Return how many records are still eligible after the passes (the completeness check).

        Raises:
            TemporaryFailure: the store is unreachable.
        """
        ...

    def held_counts(self, holds: Sequence[Hold]) -> dict[str, int]:
        """Return, per hold id, the records ``holds`` kept from this target."""
        ...

    def released(self, before: Sequence[Hold], after: Sequence[Hold]) -> int:
        """Return the distinct records acted on under ``after`` but not ``before`` (the conditions of
        :meth:`counts`, at the selection's ``run_start``: a later one counts ahead). Raises TemporaryFailure."""
        ...

    def subject_counts(self, subjects: Sequence[str]) -> dict[str, tuple[int, int]] | None:
        """Return per subject (records whose subject is exactly it, records equal to it ignoring case)
        among every record of the target, or None when the target has no subject. Raises TemporaryFailure."""
        ...


class Store(Protocol):
    """One configured store opened for one plan or run."""

    name: str

    def prepare(self) -> None:
        """Make the store ready for the run: clock-skew check, journal/outbox ready on a real run.

        Raises:
            TemporaryFailure: unreachable, or its clock differs from ours by more than ``max_clock_skew``.
            ConfigError: the store's configuration is unusable (URL, endpoint).
        """
        ...

    def journal(self) -> OutcomeJournal:
        """Return the journal whose pending rows a crash left unaudited (relayed before anything else)."""
        ...

    def workers(self, category: str, selection: Selection) -> list[Worker]:
        """Return one worker per target of ``category`` in this store, bound and checked.

        Raises:
            ConfigError: a target is unusable (missing table/bucket, unsafe schema).
            TemporaryFailure: the store is unreachable.
        """
        ...

    def close(self) -> None:
        """Release connections, pools, spools and journals (never raises)."""
        ...


@dataclass(frozen=True)
class AccessPolicy:
    """The least privileges the daemon needs on one store, as text its administrator applies.

    ``format`` is ``"sql"`` (GRANT statements: ``retentiond print-grants``) or ``"iam-json"``
    (an IAM policy document: ``retentiond print-iam-policy``); ``text`` ends with a newline.
    """

    store: str
    format: str
    text: str


class StoreKind(Protocol):
    """A kind of store (the value a ``[stores.NAME]`` ``kind`` names); registered in the registry."""

    kind: str
    # The options that locate one record for ``explain`` / ``audit find`` (e.g. table, key).
    record_fields: tuple[str, ...]
    # Errors of this kind's driver that fail one category (audited as ``failed``), not the run.
    errors: tuple[type[Exception], ...]
    # Whether :meth:`probe` checks this kind's stores (the daemon's ``store_up`` starts at 1 for them).
    probed: bool

    def targets(self, settings: Settings, category: str) -> list[TargetRef]:
        """Return the targets of ``category`` that live in stores of this kind, in config order."""
        ...

    def outcomes(self, action: str) -> tuple[str, ...]:
        """Return the record outcomes a target of this kind reports for ``action`` (metric labels)."""
        ...

    def open(self, name: str, ctx: RunContext) -> Store:
        """Return store ``name`` opened for the run ``ctx`` (no connection needs to be made yet).

        Raises:
            ConfigError: the store's configuration is unusable.
        """
        ...

    def inspect(self, loaded: LoadedConfig, name: str, targets: Sequence[TargetRef]) -> Iterator[Findings]:
        """Connect to store ``name`` and check each of ``targets`` (``config validate --connect``).

        Yields each target's findings as soon as it is checked (what was found before a failure counts).

        Raises:
            ConfigError: the store itself is refused (URL, credentials, missing database).
            TemporaryFailure: the store is unreachable (the message names the store, never its URL).
        """
        ...

    def probe(self, loaded: LoadedConfig, name: str) -> bool | None:
        """Return True when store ``name`` answers, False when not, None when this kind is not probed."""
        ...

    def explain(
        self,
        loaded: LoadedConfig,
        name: str,
        record: Mapping[str, Any],
        holds_at: Callable[[datetime], Sequence[Hold]],
    ) -> Explanation:
        """Return why the record located by ``record`` (keys: :attr:`record_fields`) is kept or acted on.

        ``holds_at(now)`` returns the holds protecting at ``now`` (called only when needed).

        Raises:
            UsageError: no category names the record's target, or the locator is malformed.
            TemporaryFailure: the store is unreachable.
        """
        ...

    def access_policy(self, settings: Settings, name: str, role: str) -> AccessPolicy:
        """Return the least privileges of store ``name`` derived from ``settings``.

        ``role`` names who receives them where the format names one (SQL grants).
        """
        ...

    def anchor_client(self, loaded: LoadedConfig, name: str) -> Any:  # Any: boto3 clients are untyped
        """Return a client of store ``name`` for the ledger's WORM anchor (``[audit.anchor]``).

        Raises:
            ConfigError: this kind cannot hold an anchor, or its client cannot be made.
        """
        ...


__all__ = [
    "AccessPolicy",
    "BatchResult",
    "Counts",
    "Cursor",
    "Explanation",
    "ErasureSelection",
    "ExpirySelection",
    "Findings",
    "Note",
    "OutcomeJournal",
    "OutcomeRow",
    "Phase",
    "RecordRefs",
    "RunContext",
    "Selection",
    "Store",
    "StoreKind",
    "TargetRef",
    "Worker",
]
