"""``retentiond erase``: one erasure request through the run driver, with an :class:`ErasureSelection`.

An erasure is a run whose selection names subjects instead of cutoffs (``stores.base``): the
same stores, statements, holds (re-read before every batch), batches, outbox / intents, crash
recovery and ledger. What differs is only at the edges:

- the ledger entry that opens it is ``erasure_requested`` (the request reference, the subjects
  as refs — never in clear) and the one that closes it ``erasure_finished`` (per category: acted,
  prior versions, held per hold, kept by rule, failed); its ``batch`` entries carry the request;
- the blast-radius guard is one limit for the whole request (``daemon.erasure_max_records``),
  checked before any category acts; the per-target fraction guard of a run does not apply
  (one person's records may well be most of a small table);
- prior versions go with their record and have no pass of their own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from retentiond.actions.run import Progress, Runner
from retentiond.actions.run_report import RunReport, TargetReport
from retentiond.audit.actor import Actor
from retentiond.audit.events import ErasureFinished, ErasureRequested, Event, GuardDecision, GuardTripped
from retentiond.audit.values import Label
from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.errors import UsageError
from retentiond.logs import get_logger
from retentiond.stores.base import Counts, ErasureSelection, Worker

log = get_logger("retentiond.erase")

MAX_SUBJECTS = 10_000  # one request; a larger list is a bulk deletion, not a person's request


def check_request(request: str) -> str:
    """Return the validated request reference (a ledger Label such as ``DSR-2026-0042``).

    Raises:
        UsageError: not a short label.
    """
    try:
        return str(Label(request))
    except ValueError as exc:
        raise UsageError(f"--request: {exc}") from None


def check_subjects(subjects: Sequence[str]) -> frozenset[str]:
    """Return the request's subjects, stripped and de-duplicated.

    Raises:
        UsageError: none given, an empty one, or more than :data:`MAX_SUBJECTS`.
    """
    cleaned = [s.strip() for s in subjects]
    if not cleaned:
        raise UsageError("give --subject ID (repeatable) or --subjects-file F")
    if any(not s for s in cleaned):
        raise UsageError("a subject identifier is empty")
    if len(set(cleaned)) > MAX_SUBJECTS:
        raise UsageError(f"at most {MAX_SUBJECTS} subjects per request")
    return frozenset(cleaned)


class EraseRunner(Runner):
    """One erasure request (or its dry run): every record of ``subjects``, whatever its age."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        subjects: Sequence[str],
        request: str,
        categories: Sequence[str] = (),
        mode: str = "run",
        allow_large: bool = False,
        now: datetime | None = None,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(
            loaded,
            categories=categories,
            mode=mode,
            allow_large=allow_large,
            reference=check_request(request),
            now=now,
            stop=stop,
            progress=progress,
        )
        self.subjects = check_subjects(subjects)
        self.request = self.reference
        assert self.request is not None
        self.selection = ErasureSelection.at(self.settings, self.run_start, self.request, self.subjects)
        self.kept: Counter[str] = Counter()  # per category: records kept by erasure = "never"
        self._prebuilt: dict[str, list[Worker]] = {}
        self._counts: dict[int, Counts] = {}
        self.guard = "ok"  # ok | tripped | allowed: the request's own limit
        self.found_before = 0  # the subjects' records found before acting (acted + held + kept)

    # -- the edges of the run ------------------------------------------------------------------

    def _started_entry(self) -> Event:
        """Return ``erasure_requested``: the reference, the subjects as refs, the categories, the actor."""
        assert self.audit is not None and self.request is not None
        refs = tuple(self.audit.refs.subject(s) for s in sorted(self.subjects))
        return ErasureRequested(
            request=self.request,
            run_start=self.run_start,
            categories=tuple(self.categories),
            subject_refs=refs,
            subjects=len(refs),
            **Actor.of_this_process().fields(),
        )

    def _finished_entry(self, duration_ms: int) -> Event:
        """Return ``erasure_finished``: per category what went, what was kept and why, what failed."""
        assert self.request is not None
        summary = self.summary()
        return ErasureFinished(
            request=self.request,
            acted=summary["acted"],
            prior_versions=summary["prior_versions"],
            held=summary["held"],
            kept_by_rule=summary["kept_by_rule"],
            failed=summary["failed"],
            failed_categories=tuple(self.report.failed),
            found=summary["found"],
            blocked=summary["blocked"],
        )

    # -- the request's guard -------------------------------------------------------------------

    def _preflight(self, holds: list[Hold], errors: tuple[type[Exception], ...]) -> None:
        """Count the whole request before any category acts; trip its guard above ``erasure_max_records``.

        The workers counted here are the ones the categories then use (an S3 target is listed once).
        """
        total = 0
        for category in self.categories:
            try:
                workers = self._prebuilt[category] = super()._workers(category)
                for worker in workers:
                    counts = self._counts[id(worker)] = worker.counts(holds)
                    total += counts.eligible
            except errors as exc:
                self._prebuilt.pop(category, None)
                self._fail(category, exc)
        limit = self.settings.daemon.erasure_max_records
        if total > limit:
            self.guard = "allowed" if self.allow_large else "tripped"
            log.warning("erasure guard", request=self.request, would_act=total, limit=limit, allowed=self.allow_large)
            if self.writes:
                assert self.audit is not None
                entry = GuardTripped(
                    category="*",
                    store="*",
                    target="*",
                    would_act=total,
                    total=total,
                    limit=limit,
                    decision=GuardDecision.ALLOWED if self.allow_large else GuardDecision.STOPPED,
                    reference=self.request if self.allow_large else None,
                )
                self.audit.ledger.append(entry, run_id=self.run_id)

    def _workers(self, category: str) -> list[Worker]:
        """Return the workers the preflight built and counted (built now if it could not)."""
        if category in self._prebuilt:
            return self._prebuilt.pop(category)
        return super()._workers(category)

    def _category(self, category: str, holds: list[Hold]) -> None:
        if category in self.report.failed:
            return  # failed in the preflight (audited there)
        if self.guard == "tripped":
            if self.mode != "plan":
                self.report.failed[category] = (
                    "guard_tripped: the request would act on more than daemon.erasure_max_records; "
                    "rerun with --allow-large to allow it once"
                )
            return
        super()._category(category, holds)

    def _target_report(self, worker: Worker, counts: Counts) -> TargetReport:
        counts = self._counts.pop(id(worker), counts)
        report = super()._target_report(worker, counts)
        report.guard = "ok"  # the request has its own guard (_preflight), not a fraction of each target
        for category, n in counts.kept.items():
            self.kept[category] += n
        return report

    # -- figures -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Return the request's figures: per category acted, prior versions, kept by rule, failed;
        held per ``category/hold_id``; and ``found``, every record of the subjects the request saw."""
        acted: Counter[str] = Counter()
        prior: Counter[str] = Counter()
        held: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        blocked: Counter[str] = Counter()
        for t in self.report.targets:
            if t.blocked:
                blocked[t.category] += t.blocked
            acted[t.category] += t.acted
            prior[t.category] += t.prior_versions_deleted
            for hold_id, n in t.held.items():
                held[f"{t.category}/{hold_id}"] += n
            # Records the store refused (audited as failed) and what a second pass still left.
            failed[t.category] += t.failed
        for category in self.report.failed:
            failed.setdefault(category, 0)
        found = sum(acted.values()) + sum(held.values()) + sum(self.kept.values()) + sum(failed.values())
        found += sum(blocked.values())
        return {
            "request": self.request,
            "acted": {c: n for c, n in acted.items() if n},
            "prior_versions": {c: n for c, n in prior.items() if n},
            "held": dict(held),
            "kept_by_rule": dict(self.kept),
            "failed": dict(failed),
            "blocked": dict(blocked),
            "found": found,
            # What could go when the request started: 0 means nothing of the subjects' was left to erase.
            "left": sum(t.eligible for t in self.report.targets),
        }


def erase(
    loaded: LoadedConfig,
    *,
    subjects: Sequence[str],
    request: str,
    categories: Sequence[str] = (),
    dry_run: bool = False,
    allow_large: bool = False,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> tuple[RunReport, dict[str, Any]]:
    """Run (or dry-run) erasure request ``request`` for ``subjects``; return the report and the summary.

    Raises:
        UsageError: a bad request reference, no subjects, an unknown category.
        ConfigError, HoldsUnavailable, TemporaryFailure: as a run.
    """
    runner = EraseRunner(
        loaded,
        subjects=subjects,
        request=request,
        categories=categories,
        mode="dry-run" if dry_run else "run",
        allow_large=allow_large,
        now=now,
        stop=stop,
    )
    report = runner.execute()
    return report, runner.summary()


__all__ = ["EraseRunner", "check_request", "check_subjects", "erase"]
