"""The figures of a retention report: plain dataclasses, the one thing every renderer reads.

Counting rules (docs/auditing.md, "Reports"), applied per ``batch`` entry of the period:

* ``deleted`` / ``anonymized``: the entry's ``count`` minus its ``prior_versions`` (records);
* ``prior_versions``: the entry's ``prior_versions`` (history rows, noncurrent S3 versions and
  delete markers among its refs);
* ``held``, ``blocked``, ``failed``, ``skipped``: the entry's ``count``.

So ``deleted + anonymized + prior_versions`` equals the sum of ``count`` over the period's
``deleted`` and ``anonymized`` entries, and every other figure is a plain sum of ``count``: an
auditor can recompute each one from an export. ``held`` and ``blocked`` are recorded at every
run (a record a hold keeps for a month is counted by each run of that month); the *latest*
figures give the state at the period's last run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The per-record figures, in the order every renderer shows them.
OUTCOME_FIGURES = ("deleted", "anonymized", "prior_versions", "held", "blocked", "failed", "skipped")

#: Labels for people (HTML headers, CSV ``label`` column).
FIGURE_LABELS = {
    "deleted": "deleted",
    "anonymized": "anonymized",
    "prior_versions": "prior versions",
    "held": "held",
    "blocked": "blocked",
    "failed": "failed",
    "skipped": "skipped",
}


@dataclass
class Figures:
    """Record counts by outcome (see the module docstring for how each is summed)."""

    deleted: int = 0
    anonymized: int = 0
    prior_versions: int = 0
    held: int = 0
    blocked: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, other: Figures) -> None:
        """Add ``other``'s counts to these, in place (spelled out: called several times per entry)."""
        self.deleted += other.deleted
        self.anonymized += other.anonymized
        self.prior_versions += other.prior_versions
        self.held += other.held
        self.blocked += other.blocked
        self.failed += other.failed
        self.skipped += other.skipped

    @property
    def acted(self) -> int:
        """Return the records deleted or anonymized (prior versions not included)."""
        return self.deleted + self.anonymized

    def as_dict(self) -> dict[str, int]:
        """Return the counts by figure name."""
        return {name: getattr(self, name) for name in OUTCOME_FIGURES}


@dataclass(frozen=True)
class Verification:
    """What verifying the ledger found, as the report states it at its top."""

    ok: bool
    ledger_id: str
    entries: int
    head_seq: int
    head_hash: str
    checkpoints: int
    last_checkpoint_seq: int | None
    last_checkpoint_time: str | None
    unsigned_tail: int
    signatures_checked: bool
    key_fingerprints: tuple[str, ...]  # the public keys checkpoints were checked against
    damage: str | None = None  # one line: "seq N: kind: detail"
    damage_seq: int | None = None
    damage_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        out = asdict(self)
        out["key_fingerprints"] = list(self.key_fingerprints)
        return out


@dataclass(frozen=True)
class Period:
    """The report's period: ``since`` inclusive, ``until`` exclusive (UTC RFC 3339 text, None = open)."""

    since: str | None
    until: str | None
    categories: tuple[str, ...] = ()  # the --category filter; empty = every category


@dataclass
class AppliedRetention:
    """A retention period as a run applied it: ``run_start - cutoff``, from ``run_started``."""

    period: str  # "2y", "13mo", "90d", or "N days" when no calendar period fits
    runs: int = 0
    first_run: str = ""
    last_run: str = ""


@dataclass(frozen=True)
class ConfiguredCategory:
    """A category as the given configuration file defines it (not necessarily the one in force)."""

    retain: str
    action: str
    prior_versions: str | None
    targets: int


@dataclass
class CategorySummary:
    """One category over the period."""

    name: str
    totals: Figures = field(default_factory=Figures)
    actions: list[str] = field(default_factory=list)  # actions its batch entries recorded
    applied: list[AppliedRetention] = field(default_factory=list)
    configured: ConfiguredCategory | None = None
    targets: list[str] = field(default_factory=list)  # store/target[/prefix] seen in entries
    failure_entries: int = 0  # ``failed`` entries, including a whole category's failure (count 0)
    held_latest: int = 0  # held at the latest run of the period that audited this category
    blocked_latest: int = 0
    latest_run: str | None = None


@dataclass
class GuardTrip:
    """A ``guard_tripped`` entry, with who allowed it when the ledger says."""

    time: str
    run_id: str | None
    category: str
    target: str
    would_act: int
    total: int
    limit: int
    decision: str  # stopped | allowed
    allowed_by: str | None = None  # the run's recorded actor, when the ledger records one
    reference: str | None = None


@dataclass
class RunSummary:
    """One run whose ``run_started`` falls in the period."""

    run_id: str
    started: str  # the run's run_start
    categories: list[str]
    status: str = "incomplete"  # finished | interrupted | incomplete (no closing entry: crashed or running)
    finished: str | None = None
    duration_ms: int | None = None
    failed_categories: list[str] = field(default_factory=list)
    interrupted_reason: str | None = None
    figures: Figures = field(default_factory=Figures)  # from the run's batch entries (filtered categories)
    eligible: dict[str, int] = field(default_factory=dict)  # category -> backlog at the run's start
    guard_trips: int = 0
    actor: str | None = None  # who started it, when the ledger records it
    reference: str | None = None  # the ticket an --allow-large run named, when recorded
    config_sha256: str | None = None

    @property
    def failed(self) -> bool:
        """Return True when a category failed, the run was interrupted or never closed."""
        return bool(self.failed_categories) or self.status != "finished" or self.figures.failed > 0


@dataclass
class MonthRuns:
    """Runs started in one month: counts and durations (milliseconds)."""

    month: str
    runs: int = 0
    finished: int = 0
    interrupted: int = 0
    incomplete: int = 0
    with_failures: int = 0
    guard_trips: int = 0
    total_ms: int = 0
    median_ms: int | None = None
    max_ms: int | None = None


@dataclass
class HoldHistory:
    """One hold as the ledger tells its life: placement, changes, release."""

    hold_id: str
    kind: str
    categories: list[str]
    placed_at: str  # the hold's own placed_at (Legal's date)
    expires_at: str | None
    recorded: str  # when the ledger first recorded it (hold_placed entry time)
    subjects: int | None  # number of subject refs; None = every subject of its categories
    placed_by: str | None = None  # when the ledger records it (a later ledger version)
    reference: str | None = None
    changes: list[str] = field(default_factory=list)  # hold_changed entry times
    released_at: str | None = None
    protects_until: str | None = None  # end of the release grace
    held_latest: int = 0  # records it kept at the latest run of the period that counted it
    in_force: bool = False  # protected records at some time during the period
    state: str = "in force"  # at the period's end: in force | in release grace | released | expired | not yet in force


@dataclass
class BacklogPoint:
    """Eligible records of one category at the start of one run."""

    run_id: str
    time: str
    category: str
    eligible: int


@dataclass
class ConfigDigest:
    """A configuration digest the ledger recorded (``config_loaded`` / ``run_started``)."""

    sha256: str
    first_seen: str
    last_seen: str
    loads: int = 0  # config_loaded entries
    runs: int = 0  # run_started entries naming it


@dataclass
class ExtraTable:
    """A section added by an extension (for example erasure requests): a caption and a table."""

    key: str  # stable identifier (JSON key, CSV section)
    title: str
    summary: str
    headers: list[str]
    rows: list[list[str | int]]


@dataclass
class Report:
    """Everything a renderer shows; built by :func:`retentiond.report.aggregate.aggregate`."""

    ledger_id: str
    generated_at: str
    period: Period
    verification: Verification
    first_entry: str | None = None  # time of the first entry in the period
    last_entry: str | None = None
    months: list[str] = field(default_factory=list)  # every month of the period that has entries, gaps filled
    totals: Figures = field(default_factory=Figures)
    by_month: dict[str, dict[str, Figures]] = field(default_factory=dict)  # month -> category -> figures
    categories: dict[str, CategorySummary] = field(default_factory=dict)
    runs: list[RunSummary] = field(default_factory=list)
    run_months: list[MonthRuns] = field(default_factory=list)
    guard_trips: list[GuardTrip] = field(default_factory=list)
    holds: list[HoldHistory] = field(default_factory=list)
    backlog: list[BacklogPoint] = field(default_factory=list)
    configs: list[ConfigDigest] = field(default_factory=list)
    config_rejections: int = 0
    given_config_sha256: str | None = None
    given_config_in_force: bool | None = None  # None: no config given
    last_checkpoint_key: str | None = None  # fingerprint of the key that signed the last checkpoint
    reconciliations: int = 0
    extras: list[ExtraTable] = field(default_factory=list)
    unsummarized: dict[str, int] = field(default_factory=dict)  # events no section reads -> count

    @property
    def failure_entries(self) -> int:
        """Return the ``failed`` entries of the period (record failures and whole-category failures)."""
        return sum(c.failure_entries for c in self.categories.values())

    @property
    def clean(self) -> bool:
        """Return True when the figures may be shown: the ledger verified."""
        return self.verification.ok
