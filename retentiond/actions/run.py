"""``retentiond plan`` and ``retentiond run``: one pass over the selected categories.

The plan and the run share the selection code (SPEC §4 rule 8): ``plan`` counts with the
same conditions the batches use; ``run --dry-run`` walks the same batches and stops short
of the write. Flow of a real run:

1. one ``run_start``; refuse when a database clock is off by more than ``max_clock_skew``;
2. holds read (fail closed); the outbox of every store relayed (crash recovery: ``reconciled``);
3. ``run_started`` with every cutoff;
4. per category: bind targets, check the blast-radius guard from the plan, then batches —
   holds re-read before each, each batch's outcome relayed from the outbox to the ledger;
5. held rows counted per hold; ``run_finished``; a signed checkpoint.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.actions.leases import CategoryLeases
from retentiond.actions.observe import BatchLog, RunObserver
from retentiond.actions.relay import Relay, relay_rows
from retentiond.actions.run_report import RunReport, TargetReport, counts_entry, guard_entry, worker_target
from retentiond.actions.setup import AuditHandles, hmac_key, open_audit
from retentiond.audit.actor import Actor
from retentiond.audit.events import (
    ConfigRejected,
    Event,
    Outcome,
    Reconciled,
    RunFinished,
    RunInterrupted,
    RunStarted,
)
from retentiond.audit.refs import canonical_key
from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.errors import ConfigError, HoldsUnavailable, RetentiondError, TemporaryFailure
from retentiond.logs import get_logger, log_context
from retentiond.stores import registry
from retentiond.stores.base import (
    Counts,
    Cursor,
    ExpirySelection,
    OutcomeJournal,
    OutcomeRow,
    RunContext,
    Selection,
    Store,
    Worker,
)
from retentiond.testing.crashpoints import crash_point

log = get_logger("retentiond.run")

Progress = Callable[[str, int], None]


class Runner:
    """One plan or run over the selected categories."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        categories: Sequence[str] = (),
        mode: str = "run",
        allow_large: bool = False,
        reference: str | None = None,
        now: datetime | None = None,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        take_leases: bool = False,
        observer: RunObserver | None = None,
    ) -> None:
        settings = loaded.settings
        unknown = [c for c in categories if c not in settings.categories]
        if unknown:
            from retentiond.errors import UsageError

            raise UsageError(f"unknown category: {', '.join(unknown)} (known: {', '.join(settings.categories)})")
        self.loaded = loaded
        self.settings = settings
        self.categories = list(categories) or list(settings.categories)
        self.mode = mode
        self.allow_large = allow_large
        self.reference = reference  # the operator's ticket, validated by audit.actor.check_reference
        self.run_start = (now or datetime.now(UTC)).astimezone(UTC)
        # The run's clock: run_start plus monotonic time elapsed. Hold expiry and release grace
        # are judged on it, so a run started with ``now=`` (tests, replays) is consistent.
        self._started_monotonic = time.monotonic()
        self.run_id = str(uuid.uuid4())
        self.stop = stop or threading.Event()
        self.progress = progress
        # Without an observer a run still logs one line per batch (throttled per target).
        self.observer = observer or BatchLog(settings.daemon.progress_log_interval.total_seconds())
        self.report = RunReport(self.run_id, self.run_start, mode, requested=len(self.categories))
        self.audit: AuditHandles | None = None
        self.relay: Relay | None = None
        self.stores: dict[str, Store] = {}  # kind by kind (registration order), names sorted
        self.selection: Selection = ExpirySelection.at(settings, self.run_start)
        self.request: str | None = None  # an erasure request's reference (its batch entries carry it)
        self.watcher: HoldWatcher | None = None
        # A one-shot run takes each category's runner lease itself (the daemon holds it already).
        self.take_leases = take_leases and self.writes
        self._leases: CategoryLeases | None = None

    def clock(self) -> datetime:
        """Return the run's current instant: ``run_start`` plus the (monotonic) time elapsed since."""
        return self.run_start + timedelta(seconds=time.monotonic() - self._started_monotonic)

    @property
    def writes(self) -> bool:
        """Return True for a real run (plan and dry-run write nothing, not even to the ledger)."""
        return self.mode == "run"

    # -- lifecycle ---------------------------------------------------------------------------

    def execute(self) -> RunReport:
        """Plan or run; return the report.

        Raises:
            ConfigError: keys or targets unusable before anything ran.
            HoldsUnavailable: the holds file is invalid at start (audited on a real run).
            TemporaryFailure: a store or the ledger is unreachable, or clocks disagree.
        """
        # Every line of the run, ours and the libraries', carries the run id (and, below, the
        # category and target being worked on).
        with log_context(run_id=self.run_id):
            return self._execute()

    def _execute(self) -> RunReport:
        started = time.monotonic()
        try:
            self._lease()
            if not self.categories:
                return self.report  # every category runs elsewhere: nothing opened, nothing audited
            self._open()
            holds = self._holds()
            if self.writes:
                self._reconcile()
                crash_point("run_after_reconcile")
                assert self.audit is not None
                self.audit.ledger.append(self._started_entry(), run_id=self.run_id)
                log.info(
                    "run started",
                    run_id=self.run_id,
                    categories=len(self.categories),
                    run_start=self.run_start.isoformat(),
                )
            # A store driver's own errors fail the category, as ours do; anything else fails the run.
            category_errors: tuple[type[Exception], ...] = (ConfigError, TemporaryFailure, *self._store_errors)
            self._preflight(holds, category_errors)
            for category in self.categories:
                if self.stop.is_set():
                    break
                try:
                    with log_context(category=category):
                        self._category(category, holds)
                except HoldsUnavailable:
                    raise
                except category_errors as exc:
                    self._fail(category, exc)
            self._finish(started)
            self._pending()
        except HoldsUnavailable as exc:
            self._holds_rejected(exc)
            raise
        finally:
            self._close()
        return self.report

    def _started_entry(self) -> Event:
        """Return the entry that opens a real run in the ledger (``run_started`` with every cutoff)."""
        assert isinstance(self.selection, ExpirySelection)
        cuts = self.selection.cutoffs
        return RunStarted(
            run_start=self.run_start,
            cutoffs={c: cuts[c] for c in self.categories},
            config_sha256=self.loaded.sha256,
            reference=self.reference,
            **Actor.of_this_process().fields(),
        )

    def _preflight(self, holds: list[Hold], errors: tuple[type[Exception], ...]) -> None:
        """Check the whole pass before any category acts (nothing for a run: its guard is per target)."""

    def _finished_entry(self, duration_ms: int) -> Event:
        """Return the entry that closes a real run that was not interrupted (``run_finished``)."""
        return RunFinished(
            counts=self.report.totals(),
            failed_categories=tuple(self.report.failed),
            duration_ms=duration_ms,
            eligible=self.report.eligible(),
        )

    def _open(self) -> None:
        if self.writes:
            self.audit = open_audit(self.loaded)
            self.relay = Relay(self.audit.ledger, self.audit.refs, requests=self._requests({self.run_id}))
        key = hmac_key(self.loaded) if self.writes else b"retentiond-plan-only-key"
        self._pseudonym_key = key
        ctx = RunContext(
            loaded=self.loaded,
            run_id=self.run_id,
            run_start=self.run_start,
            categories=tuple(self.categories),
            writes=self.writes,
            clock=self.clock,
            pseudonym_key=key,
            key_text=canonical_key,
            refs=self.audit.refs if self.audit is not None else None,
        )
        targets = [t for c in self.categories for t in registry.targets(self.settings, c)]
        for kind in registry.kinds():
            for name in sorted({t.store for t in targets if t.kind == kind.kind}):
                store = kind.open(name, ctx)
                # Registered before anything can fail, so _close() releases it.
                self.stores[name] = store
                store.prepare()
        self.watcher = HoldWatcher(
            self.loaded,
            ledger=self.audit.ledger if self.audit else None,
            refs=self.audit.refs if self.audit else None,
            run_id=self.run_id,
            record_changes=self.writes,
        )

    def _lease(self) -> None:
        """Take the runner lease of every category (one-shot runs); one held elsewhere is skipped.

        Raises:
            TemporaryFailure: the lease's database is unreachable.
        """
        if self.take_leases:
            self._leases = CategoryLeases(self.loaded)
            for category in self._leases.take(self.categories):
                # Out of run_started's cutoffs too: no tick is claimed for a category not run.
                self.categories.remove(category)
                self.report.skipped[category] = "running elsewhere"
                log.warning("category skipped: another runner holds it", category=category, run_id=self.run_id)

    def _pending(self) -> None:
        """Count per store the outcomes still waiting in its outbox or intent journal (0 after a clean run)."""
        if not self.writes:
            return
        errors: tuple[type[Exception], ...] = (RetentiondError, *self._store_errors)
        for store in self.stores.values():
            journal = store.journal()
            try:
                self.report.pending[journal.store_name] = len(journal.pending())
            except errors:
                log.warning("could not count the outcomes still to relay", store=journal.store_name)

    def _close(self) -> None:
        if self._leases is not None:
            self._leases.release()
        if self.relay is not None:
            self.relay.close()
        for store in self.stores.values():
            store.close()
        if self.audit is not None:
            self.audit.close()

    def _holds(self) -> list[Hold]:
        assert self.watcher is not None
        return self.watcher.protecting(self.clock())

    def _holds_rejected(self, exc: HoldsUnavailable) -> None:
        log.error("holds file unusable: no deletion until it is fixed", run_id=self.run_id, issues=len(exc.issues))
        if self.audit is not None and self.writes:
            try:
                if self.relay is not None:
                    self.relay.flush()
                self.audit.ledger.append(
                    ConfigRejected(source="holds", file_sha256=None, issue_count=len(exc.issues)), run_id=self.run_id
                )
                self.audit.ledger.append(
                    RunInterrupted(
                        reason="holds_invalid", counts=self.report.totals(), eligible=self.report.eligible()
                    ),
                    run_id=self.run_id,
                )
                self.audit.checkpoint(run_id=self.run_id)
            except RetentiondError:
                log.error("could not audit the holds failure", run_id=self.run_id)

    # -- crash recovery ----------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Relay outcomes a crashed run committed but did not audit (exactly once)."""
        assert self.audit is not None
        for store in self.stores.values():
            journal = store.journal()
            pending = journal.pending()
            if not pending:
                continue
            completed = self._relay(journal, pending)
            self.audit.ledger.append(
                Reconciled(intents=len(pending), completed=completed, abandoned=0), run_id=self.run_id
            )
            log.warning(
                "reconciled outcomes of an interrupted run",
                store=journal.store_name,
                batches=len(pending),
                appended=completed,
            )

    def _relay(self, outbox: OutcomeJournal, rows: list[OutcomeRow]) -> int:
        """Append each outbox row to the ledger unless it is there already; remove them. Returns appended."""
        assert self.audit is not None
        requests = self._requests({r.run_id for r in rows})
        return relay_rows(self.audit.ledger, self.audit.refs, outbox, rows, requests)

    def _requests(self, run_ids: set[str]) -> dict[str, str]:
        """Return the erasure request of each of ``run_ids`` that served one (its batch entries carry it)."""
        found = {self.run_id: self.request} if self.request and self.run_id in run_ids else {}
        others = run_ids - {self.run_id}
        if others and self.audit is not None:
            for entry in self.audit.ledger.iter_entries(event="erasure_requested"):
                if entry.run_id in others:
                    found[entry.run_id] = str(entry.fields["request"])
        return found

    # -- one category ------------------------------------------------------------------------

    def _category(self, category: str, holds: list[Hold]) -> None:
        cat = self.settings.categories[category]
        workers = self._workers(category)
        reports: list[tuple[Worker, TargetReport]] = []
        for worker in workers:
            counts = worker.counts(holds)
            report = self._target_report(worker, counts)
            reports.append((worker, report))
            self.report.targets.append(report)
        tripped = [r for _, r in reports if r.guard != "ok"]
        for r in tripped:
            if self.writes:
                assert self.audit is not None
                entry = guard_entry(r, self.settings.daemon.max_fraction_per_run, self.reference)
                self.audit.ledger.append(entry, run_id=self.run_id)
            log.warning(
                "blast-radius guard",
                category=category,
                target=r.target,
                would_act=r.eligible,
                total=r.total,
                allowed=r.guard == "allowed",
            )
        if self.mode == "plan":
            return  # the plan shows the guard per target; only a run fails on it
        if any(r.guard == "tripped" for r in tripped) and self.writes:
            self.report.failed[category] = (
                "guard_tripped: would act on more than max_fraction_per_run; rerun with --allow-large to allow it once"
            )
            return
        # A dry run walks on past a tripped guard: its report says the guard would stop a real run.
        for worker, report in reports:
            with log_context(target=report.name):
                self._drain(worker, report, holds)
            if self.stop.is_set():
                return
        log.info(
            "category done",
            category=category,
            action=cat.action,
            acted=sum(r.acted for _, r in reports),
            prior_versions=sum(r.prior_versions_deleted for _, r in reports),
            dry_run=not self.writes,
        )

    @property
    def _store_errors(self) -> tuple[type[Exception], ...]:
        """Return the store drivers' errors that fail one category (not the run)."""
        return tuple(e for kind in registry.kinds() for e in kind.errors)

    def _workers(self, category: str) -> list[Worker]:
        """Return the workers of every target of ``category``, in the order of ``registry.targets``."""
        built: dict[str, list[Worker]] = {}
        ordered: list[Worker] = []
        for target in registry.targets(self.settings, category):
            if target.store not in built:
                built[target.store] = list(self.stores[target.store].workers(category, self.selection))
            ordered.append(built[target.store].pop(0))
        return ordered

    def _target_report(self, worker: Worker, counts: Counts) -> TargetReport:
        report = TargetReport(
            category=worker.category,
            store=worker.store,
            target=worker.target_name,
            action=worker.action,
            cutoff=worker.cutoff,
            total=counts.total,
            eligible=counts.eligible,
            held=counts.held,
            held_records=counts.held_records,
            prior_versions_eligible=counts.history_expired,
            blocked=counts.blocked,
            prefix=worker.prefix or None,
            oldest=counts.oldest,
            whole=dict(counts.whole),
        )
        limit = self.settings.daemon.max_fraction_per_run
        if counts.total and counts.eligible / counts.total > limit:
            report.guard = "allowed" if self.allow_large else "tripped"
        return report

    def _drain(self, worker: Worker, report: TargetReport, holds: list[Hold]) -> None:
        """Run batches until the target is done, holds re-read before each batch; then confirm nothing is left.

        A real run re-counts what is still eligible once its batches are exhausted (the query the
        plan uses). Rows that became eligible during the pass (a hold's grace ended, a row was
        changed behind the cursor) are taken by one more pass; what a second pass still leaves is
        a failure (``incomplete``), never a silent success. Records the store refused in this
        run (audited as ``failed``, retried at the next run) are still eligible and are not
        counted again as incomplete.
        """
        report.blocked = 0  # from here on: what the requests found blocked, not the plan's figure
        self.observer.target_started(report.progress(dry_run=not self.writes))
        try:
            failed = self._sweeps(worker, report)
        finally:
            self.observer.target_finished(report.progress(dry_run=not self.writes))
        if self.relay is not None:
            self.relay.flush()
        if failed:
            reason = (
                f"{failed} records of {worker.store}/{worker.target_name} could not be {worker.action}d "
                "(audited as failed; retried at the next run)"
            )
            earlier = self.report.failed.get(worker.category)
            self.report.failed[worker.category] = f"{earlier}; {reason}" if earlier else reason
        if self.writes and not self.stop.is_set():
            self._audit_held(worker, report)

    def _sweeps(self, worker: Worker, report: TargetReport) -> int:
        """Run up to two passes over the target; return the records (S3: object versions) that failed."""
        failed = 0
        for sweep in (1, 2):
            failed += self._pass(worker, report)
            if not self.writes or self.stop.is_set():
                break
            left = max(0, worker.remaining(self._holds()) - failed)
            if not left:
                break
            if sweep == 1:
                log.warning(
                    "eligible records remain after the pass; one more pass",
                    category=worker.category,
                    target=worker.target_name,
                    remaining=left,
                )
                continue
            self._incomplete(worker, report, left)
        return failed

    def _pass(self, worker: Worker, report: TargetReport) -> int:
        """Run one pass of batches over the target, phase by phase; return the records that failed."""
        pause = self.settings.daemon.pause_between_batches.total_seconds()
        failed = 0
        for phase in worker.phases():
            cursor = Cursor()
            while not self.stop.is_set():
                result = worker.run_batch(phase, cursor, self._holds(), dry_run=not self.writes)
                if result.selected:
                    report.batches += 1
                if result.outbox:
                    assert self.relay is not None
                    self.relay.submit(worker.journal, result.outbox)
                report.acted += result.touched
                report.prior_versions_deleted += result.history
                report.blocked += result.blocked
                failed += result.failed
                report.failed += result.failed
                if self.progress and result.touched:
                    self.progress(report.target, result.touched)
                if result.selected:
                    self.observer.batch_done(report.progress(dry_run=not self.writes))
                if result.exhausted:
                    break
                crash_point("between_batches")
                if pause and self.stop.wait(pause):
                    break
        return failed

    def _incomplete(self, worker: Worker, report: TargetReport, left: int) -> None:
        """Fail the category: eligible records remain after two passes (audited as ``failed``, counts only)."""
        message = f"incomplete: {left} eligible records of {worker.store}/{worker.target_name} remain after the run"
        report.error = message
        report.failed += left
        self.report.failed[worker.category] = message
        log.error("target incomplete", category=worker.category, target=worker.target_name, remaining=left)
        assert self.audit is not None and self.relay is not None
        self.relay.flush()  # the ledger has one writer at a time
        entry = counts_entry(worker_target(worker), worker.action, Outcome.FAILED, left, request=self.request)
        self.audit.ledger.append(entry, run_id=self.run_id)

    def _audit_held(self, worker: Worker, report: TargetReport) -> None:
        """Count what holds kept from this target and audit it per hold (counts, no refs)."""
        assert self.audit is not None
        counts = worker.counts(self._holds())
        report.held, report.held_records = counts.held, counts.held_records
        for hold_id, count in sorted(report.held.items()):
            entry = counts_entry(
                worker_target(worker), worker.action, Outcome.HELD, count, holds=(hold_id,), request=self.request
            )
            self.audit.ledger.append(entry, run_id=self.run_id)
            crash_point("held_between_entries")

    def _fail(self, category: str, exc: Exception) -> None:
        if self.relay is not None:
            # The outbox keeps what could not be relayed; the next run relays it.
            with contextlib.suppress(RetentiondError):
                self.relay.flush()
        reason = type(exc).__name__
        message = str(exc) if isinstance(exc, RetentiondError) else reason
        self.report.failed[category] = message
        if isinstance(exc, RetentiondError):
            self.report.failure_codes[category] = exc.exit_code
        log.error(
            "category failed",
            category=category,
            error=reason,
            detail=message if isinstance(exc, RetentiondError) else None,
        )
        if self.writes and self.audit is not None:
            cat = self.settings.categories[category]
            for target in registry.targets(self.settings, category):
                entry = counts_entry(target, cat.action, Outcome.FAILED, 0, request=self.request)
                self.audit.ledger.append(entry, run_id=self.run_id)

    def _finish(self, started: float) -> None:
        if not self.writes:
            return
        assert self.audit is not None and self.relay is not None
        self.relay.flush()
        duration_ms = int((time.monotonic() - started) * 1000)
        if self.stop.is_set():
            self.report.interrupted = True
            self.audit.ledger.append(
                RunInterrupted(reason="stop_requested", counts=self.report.totals(), eligible=self.report.eligible()),
                run_id=self.run_id,
            )
            log.warning("run interrupted", run_id=self.run_id, **self.report.totals())
        else:
            crash_point("before_run_finished")
            self.audit.ledger.append(self._finished_entry(duration_ms), run_id=self.run_id)
            log.info(
                "run finished",
                run_id=self.run_id,
                duration_ms=duration_ms,
                failed_categories=len(self.report.failed),
                **self.report.totals(),
            )
        crash_point("before_checkpoint")
        self.audit.checkpoint(run_id=self.run_id)
