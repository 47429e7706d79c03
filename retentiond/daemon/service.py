"""The long-running service: start, schedule, reload on SIGHUP, stop on SIGTERM.

Threads and why:

* the main thread only waits and reacts: signals set flags and wake it; it reloads, sends the
  watchdog ping and stops. Reload runs here, never in a signal handler.
* APScheduler's scheduler thread fires jobs into two executors: ``runs`` (one thread: one
  category at a time per process, to keep the load on production databases predictable) and
  ``service`` (one thread: the heartbeat, holds refresh, store probe, idle checkpoint).
* the watchdog ping is sent by the main thread only while the heartbeat job keeps running, so a
  wedged scheduler stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.actions.leases import RunnerLocks, runner_locks
from retentiond.actions.setup import AuditHandles, ledger_url, open_audit
from retentiond.config.loader import LoadedConfig
from retentiond.daemon import sdnotify
from retentiond.daemon.core import (  # noqa: F401 - validate and file_sha256 are re-exported
    ERASURE_EVERY_SECONDS,
    HEARTBEAT_SECONDS,
    PROBE_EVERY_SECONDS,
    LastRun,
    Status,
    file_sha256,
    validate,
)
from retentiond.daemon.metrics import Metrics, MetricsServer
from retentiond.daemon.reload import Reloading
from retentiond.daemon.runs import CategoryRuns
from retentiond.daemon.scheduler import JobSpec, job_specs, missed_since
from retentiond.daemon.state import ScheduleState
from retentiond.daemon.wakeup import Wakeup
from retentiond.errors import (
    HoldsUnavailable,
    RetentiondError,
    TemporaryFailure,
)
from retentiond.logs import get_logger
from retentiond.stores import registry

log = get_logger("retentiond.daemon")


class Daemon(CategoryRuns, Reloading):
    """``retentiond daemon``: one instance per process (category runs and reload in their own modules)."""

    def __init__(self, loaded: LoadedConfig, *, tick_seconds: float | None = None) -> None:
        self.loaded = loaded
        self.config_path = loaded.path
        self.tick_seconds = tick_seconds
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.wakeup = Wakeup()  # a signal delivered to any thread wakes the main loop at once
        self.reload_requested = False
        self.signals_received = 0
        self.metrics = Metrics()
        self.status = Status()
        self.specs: dict[str, JobSpec] = {}
        self.state = ScheduleState(loaded.state_dir)
        self._holds_lock = threading.Lock()
        self.audit: AuditHandles | None = None
        self.watcher: HoldWatcher | None = None
        self.locks: RunnerLocks | None = None
        self.server: MetricsServer | None = None
        self.scheduler: BackgroundScheduler | None = None
        watchdog = sdnotify.watchdog_interval()
        self.watchdog_every = watchdog
        self.heartbeat_every = min(HEARTBEAT_SECONDS, watchdog / 2) if watchdog else HEARTBEAT_SECONDS
        if tick_seconds is not None:
            self.heartbeat_every = min(self.heartbeat_every, max(0.5, tick_seconds))

    # -- start ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code (0 after a clean stop).

        Raises:
            ConfigError: the configuration, a key or a target is unusable at start (exit 78).
            TemporaryFailure: a store or the ledger is unreachable at start (exit 75).
        """
        self._install_signals()
        sdnotify.notify("STATUS=starting: validating configuration and stores")
        validate(self.loaded)
        self.status.last_probe, self.status.probe_ok = time.monotonic(), True
        try:
            self._start_server()  # before anything is audited: a taken port is a clean exit 75
            self.audit = open_audit(self.loaded)
            self.locks = runner_locks(
                ledger_url(self.loaded), self.loaded.settings.audit.ledger_id, self.loaded.state_dir
            )
            self.watcher = self._new_watcher(self.loaded, self.audit)
            holds_ok = self._refresh_holds(source_on_error="holds")
            self.metrics.init_config(self.loaded)
            self._ledger_health()
            for name, remembered in self.state.all().items():
                if remembered.last_success is not None and name in self.loaded.settings.categories:
                    self.metrics.last_success.labels(name).set(remembered.last_success.timestamp())
            self._audit_loaded(self.loaded)
            self._mark_reload(True)
            self.metrics.holds_valid.set(1 if holds_ok else 0)
            for name, config in self.loaded.settings.stores.items():
                if registry.kind(config.kind).probed:
                    self.metrics.store_up.labels(name).set(1)
            self._start_scheduler()
            self._catch_up()
            sdnotify.notify("READY=1", f"STATUS={self.status_line()}")
            log.info(
                "daemon ready",
                config_sha256=self.loaded.sha256,
                categories=len(self.specs),
                pid=os.getpid(),
                watchdog_seconds=self.watchdog_every,
                tick_seconds=self.tick_seconds,
            )
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _new_watcher(self, loaded: LoadedConfig, audit: AuditHandles) -> HoldWatcher:
        return HoldWatcher(loaded, ledger=audit.ledger, refs=audit.refs, run_id=None, record_changes=True)

    def _start_server(self) -> None:
        listen = self.loaded.settings.daemon.metrics_listen
        if not listen:
            return
        try:
            self.server = MetricsServer(listen, self.metrics, self.health, self.ready)
        except OSError as exc:
            # Most often another daemon on this host already listens there: retrying may help.
            raise TemporaryFailure(f"cannot listen on daemon.metrics_listen {listen}: {exc.strerror or exc}") from None
        self.server.start()

    def _start_scheduler(self) -> None:
        daemon = self.loaded.settings.daemon
        self.scheduler = BackgroundScheduler(
            executors={"runs": ThreadPoolExecutor(1), "service": ThreadPoolExecutor(1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(daemon.misfire_grace_time.total_seconds())),
            },
            timezone=daemon.timezone,
        )
        self.scheduler.add_listener(self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        self.scheduler.add_job(
            self._heartbeat,
            IntervalTrigger(seconds=self.heartbeat_every),
            id="service:heartbeat",
            executor="service",
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.add_job(
            self._erasure_requests,
            IntervalTrigger(seconds=min(ERASURE_EVERY_SECONDS, self.tick_seconds or ERASURE_EVERY_SECONDS)),
            id="service:erasure-requests",
            executor="runs",  # one run at a time: a queued request waits for the category runs, and they for it
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )
        self._apply_specs(job_specs(self.loaded, self.tick_seconds))
        self.scheduler.start()
        self._update_next_runs()

    def _apply_specs(self, specs: dict[str, JobSpec]) -> None:
        """Add, reschedule and remove category jobs so they match ``specs``."""
        assert self.scheduler is not None
        for name in [n for n in self.specs if n not in specs]:
            self.scheduler.remove_job(f"category:{name}")
            log.info("category unscheduled", category=name)
        for name, spec in specs.items():
            job_id = f"category:{name}"
            old = self.specs.get(name)
            if old is None:
                self.scheduler.add_job(
                    self._scheduled,
                    spec.trigger,
                    args=[name],
                    id=job_id,
                    executor="runs",
                    misfire_grace_time=spec.misfire_grace_seconds,
                )
                log.info("category scheduled", category=name, schedule=str(spec.trigger))
            elif old.key != spec.key:
                self.scheduler.modify_job(job_id, misfire_grace_time=spec.misfire_grace_seconds)
                self.scheduler.reschedule_job(job_id, trigger=spec.trigger)
                log.info("category rescheduled", category=name, schedule=str(spec.trigger))
        self.specs = specs

    def _catch_up(self) -> None:
        """Run at once every category whose last scheduled run was missed while the daemon was down."""
        assert self.scheduler is not None
        now = datetime.now(UTC)
        remembered = self.state.all()
        for name, spec in self.specs.items():
            last = remembered.get(name)
            tick = missed_since(spec.trigger, last.last_success if last else None, now)
            if tick is None:
                continue
            log.info(
                "catch-up run",
                category=name,
                missed_tick=tick.isoformat(),
                last_success=last.last_success.isoformat() if last and last.last_success else None,
            )
            self.scheduler.add_job(
                self._run_category,
                args=[name, tick, "catch-up"],
                id=f"catch-up:{name}",
                executor="runs",
                misfire_grace_time=None,
                next_run_time=now,
            )

    # -- the main thread -----------------------------------------------------------------------

    def _install_signals(self) -> None:
        self.wakeup.install()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop_signal(self, signum: int, _: FrameType | None) -> None:
        self.signals_received += 1
        if self.signals_received > 1:
            # Second signal: leave now. Every ledger append and every batch is its own
            # transaction, and the outbox makes the next start reconcile: nothing is half-written.
            os.write(2, b'{"event": "second stop signal: exiting at once", "level": "warning"}\n')
            os._exit(128 + signum)
        self.stop.set()
        self.wake.set()

    def _on_hup(self, _: int, __: FrameType | None) -> None:
        self.reload_requested = True
        self.wake.set()

    def _loop(self) -> None:
        next_ping = time.monotonic()
        while not self.stop.is_set():
            next_ping = self._loop_once(next_ping)

    def _loop_once(self, next_ping: float) -> float:
        """Wait for a signal or the next watchdog ping, react; return when the next ping is due."""
        timeout = self.heartbeat_every if self.watchdog_every is None else max(0.0, next_ping - time.monotonic())
        if not self.wake.is_set():
            self.wakeup.wait(timeout)
        self.wake.clear()
        if self.stop.is_set():
            return next_ping
        if self.reload_requested:
            self.reload_requested = False
            self.reload()
        if self.watchdog_every is not None and time.monotonic() >= next_ping:
            if self.scheduler_alive():
                sdnotify.notify("WATCHDOG=1")
            else:
                log.error(
                    "scheduler heartbeat stale: withholding the watchdog ping",
                    stale_seconds=round(time.monotonic() - self.status.heartbeat, 1),
                )
            next_ping = time.monotonic() + self.watchdog_every
        return next_ping

    def _shutdown(self) -> None:
        """Stop taking work, let the running batch finish, release everything (each part may be unset)."""
        sdnotify.notify("STOPPING=1", "STATUS=stopping: finishing the current batch")
        log.info("stopping: no new batch; the current one finishes")
        self.stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # waits for a running category to finish its batch
        if self.server is not None:
            self.server.stop()
        if self.locks is not None:
            self.locks.close()
        if self.audit is not None:
            self._checkpoint_at_stop()
            self.audit.close()
        self.wakeup.close()
        log.info("stopped")

    def _checkpoint_at_stop(self) -> None:
        """Sign what this daemon appended since the last checkpoint (a reload's ``config_loaded``,
        hold events): an auditor verifying next month must not find an unsigned tail."""
        assert self.audit is not None
        try:
            entry = self.audit.checkpoint(if_unsigned=True)
        except RetentiondError as exc:
            log.warning("checkpoint at stop failed", error=type(exc).__name__)
            return
        if entry is not None:
            log.info("checkpoint at stop", seq=entry.seq)

    # -- health ---------------------------------------------------------------------------------

    def scheduler_alive(self) -> bool:
        """Return True while the scheduler runs and its heartbeat job ran recently."""
        if self.scheduler is None or not self.scheduler.running:
            return False
        return time.monotonic() - self.status.heartbeat < 2 * self.heartbeat_every + 5

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Return /healthz: the scheduler is alive."""
        return self.scheduler_alive(), {"heartbeat_age_seconds": round(time.monotonic() - self.status.heartbeat, 1)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Return /readyz: config loaded, the last store probe succeeded and is recent."""
        age = None if self.status.last_probe is None else time.monotonic() - self.status.last_probe
        fresh = age is not None and age < 3 * PROBE_EVERY_SECONDS
        ok = self.scheduler_alive() and fresh and self.status.probe_ok and not self.stop.is_set()
        return ok, {
            "config_sha256": self.loaded.sha256,
            "holds_sha256": self.watcher.digest if self.watcher else None,
            "last_reload": self.status.last_reload,
            "store_probe_ok": self.status.probe_ok,
            "store_probe_age_seconds": None if age is None else round(age, 1),
            "categories": sorted(self.specs),
            "last_runs": {
                k: {"result": v.result, "finished": v.finished.isoformat()} for k, v in self.status.last_runs.items()
            },
        }

    def status_line(self) -> str:
        """Return the STATUS= text: config hash, next run, last result (no personal data)."""
        parts = [f"config_sha256={self.loaded.sha256}", f"reload={self.status.last_reload}"]
        upcoming = self._next_run()
        if upcoming is not None:
            parts.append(f"next={upcoming[0]}@{upcoming[1].astimezone(UTC).isoformat(timespec='seconds')}")
        if self.status.last_runs:
            name, last = max(self.status.last_runs.items(), key=lambda kv: kv[1].finished)
            parts.append(f"last={name}:{last.result}")
        return "; ".join(parts)

    def _next_runs(self) -> dict[str, datetime]:
        """Return the next fire time of every category, from its trigger.

        Computed from the triggers, not asked of the scheduler: job threads call this, and
        APScheduler's ``shutdown(wait=True)`` holds the job-store lock while it waits for them.
        """
        now = datetime.now(UTC)
        out: dict[str, datetime] = {}
        for name, spec in list(self.specs.items()):
            when = spec.trigger.get_next_fire_time(None, now)
            if when is not None:
                out[name] = when
        return out

    def _next_run(self) -> tuple[str, datetime] | None:
        upcoming = self._next_runs()
        if not upcoming:
            return None
        name = min(upcoming, key=lambda n: upcoming[n])
        return name, upcoming[name]

    def _update_next_runs(self) -> None:
        for name, when in self._next_runs().items():
            self.metrics.next_run.labels(name).set(when.timestamp())

    # -- service jobs -------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Prove the scheduler dispatches; refresh holds, probe stores, checkpoint when idle too long."""
        self.status.heartbeat = time.monotonic()
        if self.stop.is_set():
            return
        self._refresh_holds(source_on_error=None)
        if self.status.last_probe is None or time.monotonic() - self.status.last_probe >= PROBE_EVERY_SECONDS:
            self._probe_stores()
        self._checkpoint_if_due()
        self._ledger_health()
        self._update_next_runs()
        sdnotify.notify(f"STATUS={self.status_line()}")

    def _refresh_holds(self, *, source_on_error: str | None) -> bool:
        """Re-read the holds (auditing changes); return False when the file is unusable.

        With ``source_on_error``, an unusable file is also audited as ``config_rejected``.
        """
        with self._holds_lock:
            watcher = self.watcher
            if watcher is None:
                return False
            try:
                active = watcher.protecting(datetime.now(UTC))
            except HoldsUnavailable as exc:
                self.metrics.holds_valid.set(0)
                log.error("holds file unusable: no deletion until it is fixed", issues=len(exc.issues))
                if source_on_error is not None:
                    self._audit_rejected(
                        source_on_error,
                        file_sha256(self.loaded.holds_path) if self.loaded.holds_path.is_file() else None,
                        max(1, len(exc.issues)),
                    )
                return False
            except TemporaryFailure as exc:
                log.warning("could not record hold changes now", error=str(exc))
                return False
            self.metrics.holds_valid.set(1)
            self.metrics.holds_active.set(len(active))
            return True

    def _probe_stores(self) -> None:
        ok = True
        for name, store in self.loaded.settings.stores.items():
            up = registry.kind(store.kind).probe(self.loaded, name)
            if up is None:
                continue  # this kind of store is not probed
            self.metrics.store_up.labels(name).set(1 if up else 0)
            ok = ok and up
        self.status.last_probe, self.status.probe_ok = time.monotonic(), ok

    def _checkpoint_if_due(self) -> None:
        if self.audit is None:
            return
        try:
            entry = self.audit.checkpoint(if_older_than=self.loaded.settings.audit.checkpoint_interval)
        except RetentiondError as exc:
            log.warning("idle checkpoint failed", error=type(exc).__name__)
            return
        if entry is not None:
            log.info("idle checkpoint", seq=entry.seq)


def run_daemon(loaded: LoadedConfig, *, tick_seconds: float | None = None) -> int:
    """Run the daemon on ``loaded``; return its exit code.

    Raises:
        ConfigError: unusable configuration at start (exit 78).
        TemporaryFailure: stores or ledger unreachable at start (exit 75).
    """
    return Daemon(loaded, tick_seconds=tick_seconds).run()
