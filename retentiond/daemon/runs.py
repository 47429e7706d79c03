"""Category runs of the daemon: one category per job, under the category's runner lock, once per tick."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent

from retentiond.actions.observe import BatchLog, Observers
from retentiond.daemon import sdnotify
from retentiond.daemon.core import DaemonParts, LastRun
from retentiond.daemon.progress import StatusProgress
from retentiond.errors import HoldsUnavailable, RetentiondError, TemporaryFailure
from retentiond.logs import get_logger

log = get_logger("retentiond.daemon")


@dataclass(frozen=True)
class TickDone:
    """A tick another runner completed: its run, and when it succeeded (None: it failed the category)."""

    run_id: str
    success: datetime | None


class CategoryRuns(DaemonParts):
    """The run jobs of :class:`~retentiond.daemon.service.Daemon` (a mixin)."""

    def _scheduled(self, category: str) -> None:
        spec = self.specs.get(category)
        if spec is None:
            return  # unscheduled by a reload while queued
        self._run_category(category, spec.trigger.previous_fire_time(datetime.now(UTC)), "schedule")

    def _run_category(self, category: str, tick: datetime, reason: str) -> None:
        """Run one category for ``tick`` unless stopping, locked elsewhere, or done for this tick."""
        from retentiond.actions.run import Runner

        if self.stop.is_set():
            return
        loaded = self.loaded  # a reload swaps the reference; this run keeps the config it started with
        if category not in loaded.settings.categories:
            return
        assert self.locks is not None
        try:
            held = self.locks.try_acquire(category)
        except TemporaryFailure as exc:
            self._finished(category, tick, "failed", None, 0.0)
            log.error("runner lock unavailable", category=category, error=str(exc))
            return
        if held is None:
            self.metrics.runs.labels(category, "skipped").inc()
            log.info(
                "run skipped: another runner holds the category",
                category=category,
                tick=tick.isoformat(),
                reason=reason,
            )
            return
        try:
            done = self._tick_done(category, tick, retry_failed=reason == "catch-up")
            if done is not None:
                self.metrics.runs.labels(category, "skipped").inc()
                if done.success is not None:
                    # Another runner's success is this category's last success too (RetentionRunMissed).
                    self.state.record(category, tick, "success", done.run_id, done.success)
                    self.metrics.last_success.labels(category).set(done.success.timestamp())
                log.info(
                    "run skipped: tick already done by another runner",
                    category=category,
                    tick=tick.isoformat(),
                    reason=reason,
                )
                return
            started = time.monotonic()
            progress = Observers(
                [
                    BatchLog(loaded.settings.daemon.progress_log_interval.total_seconds()),
                    StatusProgress(self.status_line),
                ]
            )
            runner = Runner(loaded, categories=[category], mode="run", stop=self.stop, observer=progress)
            result = "failed"
            try:
                report = runner.execute()
            except HoldsUnavailable:
                self.metrics.holds_valid.set(0)  # audited by the runner (config_rejected + run_interrupted)
            except RetentiondError as exc:
                log.error("run failed", category=category, error=type(exc).__name__, detail=str(exc))
            except sa.exc.SQLAlchemyError as exc:
                log.error("run failed", category=category, error=type(exc).__name__)
            else:
                result = "interrupted" if report.interrupted else ("failed" if report.failed else "success")
                self.metrics.observe_run(category, report)
                for target in report.targets:
                    name = f"{target.store}/{target.target}"
                    self.metrics.records.labels(
                        category, name, "deleted" if target.action == "delete" else "anonymized"
                    ).inc(target.acted)
                    self.metrics.records.labels(category, name, "prior_versions_deleted").inc(
                        target.prior_versions_deleted
                    )
                    self.metrics.held.labels(category, name).set(target.held_records)
                    if target.blocked:  # S3 Object Lock: only S3 targets pre-initialise this label
                        self.metrics.records.labels(category, name, "blocked").inc(target.blocked)
                    if target.failed:  # records the store refused (audited as failed)
                        self.metrics.records.labels(category, name, "failed").inc(target.failed)
            duration = time.monotonic() - started
            self.metrics.run_duration.labels(category).observe(duration)
            self.state.record(category, tick, result, runner.run_id, datetime.now(UTC))
            self._finished(category, tick, result, runner.run_id, duration)
            self._ledger_health()
        finally:
            held.release()

    def _ledger_health(self) -> None:
        """Refresh the ledger's health metrics (unsigned tail, newest checkpoint); a failure is logged only."""
        if self.audit is None:
            return
        try:
            self.metrics.observe_ledger(self.audit.ledger)
        except RetentiondError as exc:
            log.warning("could not read the ledger's health", error=type(exc).__name__)

    def _tick_done(self, category: str, tick: datetime, *, retry_failed: bool = False) -> TickDone | None:
        """Return how ``category``'s ``tick`` was completed already by a runner (any host), or None.

        ``state_dir`` answers for this host's daemons; the ledger answers for every host that
        writes to it: a ``run_started`` for the category at or after the tick whose run has a
        ``run_finished``. A run that was killed or stopped has none, so its tick is taken again.
        With ``retry_failed`` (catch-up at start) a run that failed the category does not count:
        the category is caught up, as docs/operations.md promises. Call while holding the lease.
        """
        state = self.state.get(category)
        done_here = state.done_tick is not None and state.done_tick >= tick
        if done_here and not (retry_failed and state.last_result == "failed"):
            success = state.last_success if state.last_result == "success" else None
            return TickDone(state.last_run_id or "", success)
        if self.audit is None:
            return None
        try:
            entries = self.audit.ledger.entries(since=tick)
        except RetentiondError as exc:
            log.warning("could not read the ledger to check the tick", category=category, error=type(exc).__name__)
            return None
        started = {e.run_id for e in entries if e.event == "run_started" and category in e.fields.get("cutoffs", {})}
        found: TickDone | None = None
        for e in entries:
            if e.event != "run_finished" or e.run_id not in started:
                continue
            failed = category in e.fields.get("failed_categories", ())
            if failed and retry_failed:
                continue
            found = TickDone(e.run_id or "", None if failed else datetime.fromisoformat(e.time))
        return found

    def _finished(self, category: str, tick: datetime, result: str, run_id: str | None, duration: float) -> None:
        now = datetime.now(UTC)
        self.metrics.runs.labels(category, result).inc()
        if result == "success":
            self.metrics.last_success.labels(category).set(now.timestamp())
        self.status.last_runs[category] = LastRun(result, now, run_id)
        self._update_next_runs()
        log.info(
            "category run",
            category=category,
            tick=tick.isoformat(),
            result=result,
            run_id=run_id,
            duration_ms=int(duration * 1000),
        )
        sdnotify.notify(f"STATUS={self.status_line()}")

    def _erasure_requests(self) -> None:
        """Run the queued erasure requests (``erase --queue``) and export how many are pending and overdue.

        A request that fails stays queued and is tried at the next look; one past its deadline
        raises ``retentiond_erasure_requests_overdue`` (alert rule in docs/operations.md).
        """
        from retentiond.actions import requests

        loaded = self.loaded
        if not self.stop.is_set():  # a holds file in error fails the request closed (HoldsUnavailable)
            try:
                requests.run_pending(loaded, stop=self.stop)
            except RetentiondError as exc:
                log.error("queued erasure requests failed", error=type(exc).__name__)
        states = requests.states(loaded)
        self.metrics.erasure_pending.set(sum(1 for s in states if s.state != "done"))
        self.metrics.erasure_overdue.set(sum(1 for s in states if s.state == "overdue"))

    def _on_job_event(self, event: JobExecutionEvent) -> None:
        category = event.job_id.partition(":")[2] if event.job_id.startswith(("category:", "catch-up:")) else None
        if event.code == EVENT_JOB_MISSED:
            if category:
                self.metrics.missed.labels(category).inc()
            log.warning(
                "scheduled run missed (later than misfire_grace_time)",
                job=event.job_id,
                scheduled=event.scheduled_run_time.isoformat(),
            )
        elif event.code == EVENT_JOB_ERROR:
            if category:
                self.metrics.job_errors.labels(category).inc()
                self.metrics.runs.labels(category, "failed").inc()
            log.error("job raised", job=event.job_id, error=type(event.exception).__name__)
