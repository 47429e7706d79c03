"""The figures of a plan or a run: per (category, target), and per run (``retentiond plan`` / ``run`` output)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retentiond.actions.observe import TargetProgress
from retentiond.audit.events import Action, Batch, GuardDecision, GuardTripped, Outcome
from retentiond.errors import ExitCode
from retentiond.stores.base import TargetRef, Worker


@dataclass
class TargetReport:
    """Figures of one (category, target) in a plan or a run."""

    category: str
    store: str
    target: str
    action: str
    cutoff: datetime
    total: int = 0
    eligible: int = 0
    held: dict[str, int] = field(default_factory=dict)  # per hold: overlapping (a record under two is in both)
    held_records: int = 0  # distinct records held
    prior_versions_eligible: int = 0
    guard: str = "ok"  # ok | tripped | allowed
    acted: int = 0
    prior_versions_deleted: int = 0
    batches: int = 0
    error: str | None = None
    blocked: int = 0  # S3 versions Object Lock kept (legal hold or unexpired retention)
    prefix: str | None = None  # S3 targets: the key prefix (two targets may share a bucket)
    failed: int = 0  # records the store refused (audited as failed, retried at the next run)
    oldest: datetime | None = None  # age of the oldest eligible record at the plan (None: nothing eligible)
    whole: dict[str, int] = field(default_factory=dict)  # units the store would remove whole, name → records

    @property
    def name(self) -> str:
        """Return the target as logs, metrics and the terminal name it: ``store/target[/prefix]``."""
        return f"{self.store}/{self.target}" + (f"/{self.prefix}" if self.prefix else "")

    def progress(self, *, dry_run: bool) -> TargetProgress:
        """Return where the target stands, as run observers see it (names and counts only)."""
        return TargetProgress(
            category=self.category,
            target=self.name,
            action=self.action,
            dry_run=dry_run,
            planned=self.eligible,
            batch=self.batches,
            acted=self.acted,
            held=sum(self.held.values()),
            failed=self.failed,
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        out = dict(self.__dict__)
        out["cutoff"] = self.cutoff.isoformat()
        out["oldest"] = self.oldest.isoformat() if self.oldest is not None else None
        return out


@dataclass
class RunReport:
    """The outcome of a plan or a run."""

    run_id: str
    run_start: datetime
    mode: str  # plan | dry-run | run
    targets: list[TargetReport] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    #: category → exit code of its failure's kind (75 temporary); absent: 1
    failure_codes: dict[str, int] = field(default_factory=dict)
    #: category → why it was not run (another process holds its lease)
    skipped: dict[str, str] = field(default_factory=dict)
    requested: int = 0  # categories asked for
    pending: dict[str, int] = field(default_factory=dict)  # per store: outcomes not yet in the ledger at the end

    @property
    def exit_code(self) -> int:
        """Return the exit code of SPEC §6 for this report.

        0 when nothing failed; 75 when every failed category failed for a temporary reason (a
        store unreachable, rerun later), otherwise 1 (an invalid holds file raises instead: 78).
        75 also when every requested category was skipped because another process runs it.
        """
        if self.failed:
            codes = {self.failure_codes.get(c, ExitCode.CATEGORY_FAILED) for c in self.failed}
            return ExitCode.TEMPORARY if codes == {ExitCode.TEMPORARY} else ExitCode.CATEGORY_FAILED
        if self.skipped and len(self.skipped) >= self.requested:
            return ExitCode.TEMPORARY
        return ExitCode.OK

    def totals(self) -> dict[str, int]:
        """Return record counts per outcome over every target."""
        counts: Counter[str] = Counter()
        for t in self.targets:
            counts["deleted" if t.action == "delete" else "anonymized"] += t.acted
            counts["prior_versions"] += t.prior_versions_deleted
            counts["held"] += t.held_records  # distinct records, not the overlapping per-hold sum
            if t.blocked:
                counts["blocked"] += t.blocked
            if t.failed:
                counts["failed"] += t.failed
        return dict(counts)

    def eligible(self) -> dict[str, int]:
        """Return per category the records eligible when its batches began (the run's backlog)."""
        counts: Counter[str] = Counter()
        for t in self.targets:
            counts[t.category] += t.eligible
        return dict(counts)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "run_id": self.run_id,
            "run_start": self.run_start.isoformat(),
            "mode": self.mode,
            "targets": [t.as_dict() for t in self.targets],
            "failed": self.failed,
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "totals": self.totals(),
        }


def worker_target(worker: Worker) -> TargetRef:
    """Return the target ``worker`` acts on, as the ledger names it."""
    return TargetRef("", worker.category, -1, worker.store, worker.target_name, "", worker.prefix or None)


def counts_entry(
    target: TargetRef,
    action: str,
    outcome: Outcome,
    count: int,
    *,
    holds: tuple[str, ...] = (),
    request: str | None = None,
) -> Batch:
    """Return a ``batch`` entry of counts only (no refs) for ``target``: ``held``, or ``failed``.

    ``request`` names the erasure request the entry belongs to (None for a retention run).
    """
    return Batch(
        batch_id=str(uuid.uuid4()),
        category=target.category,
        store=target.store,
        target=target.target,
        action=Action(action),
        outcome=outcome,
        count=count,
        holds=holds,
        prefix=target.prefix,
        request=request,
    )


def guard_entry(report: TargetReport, max_fraction: float, reference: str | None) -> GuardTripped:
    """Return the ``guard_tripped`` entry of a target whose plan exceeded ``max_fraction`` (allowed or stopped)."""
    allowed = report.guard == "allowed"
    return GuardTripped(
        category=report.category,
        store=report.store,
        target=report.target,
        would_act=report.eligible,
        total=report.total,
        limit=int(max_fraction * report.total),
        decision=GuardDecision.ALLOWED if allowed else GuardDecision.STOPPED,
        reference=reference if allowed else None,
    )
