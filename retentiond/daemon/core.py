"""The daemon's shared parts: start-time validation, file digests, and what STATUS= and /readyz report."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.actions.inspect import inspect_stores
from retentiond.actions.leases import RunnerLocks
from retentiond.actions.setup import AuditHandles, open_audit
from retentiond.config.loader import LoadedConfig
from retentiond.daemon.metrics import Metrics
from retentiond.daemon.scheduler import JobSpec
from retentiond.daemon.state import ScheduleState
from retentiond.errors import ConfigError

#: Heartbeat period without a systemd watchdog; also the cadence of holds refresh and idle checkpoints.
HEARTBEAT_SECONDS = 30.0
#: A store probe older than this makes /readyz fail.
PROBE_EVERY_SECONDS = 300.0
ERASURE_EVERY_SECONDS = 60.0  # how often queued erasure requests are looked for


def validate(loaded: LoadedConfig) -> None:
    """Check what a start or reload needs beyond the file: keys readable, every store and target usable.

    Raises:
        ConfigError: a key or a target is unusable (the ``config validate --connect`` checks).
        TemporaryFailure: a store or the ledger is unreachable.
    """
    handles = open_audit(loaded)  # reads both keys and opens (creates) the ledger
    handles.close()
    report = inspect_stores(loaded)
    if report.issues:
        raise ConfigError(report.issues)


def file_sha256(path: Path) -> str | None:
    """Return the SHA-256 of ``path``'s bytes, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass
class LastRun:
    """The outcome of a category's last run in this process."""

    result: str
    finished: datetime
    run_id: str | None = None


@dataclass
class Status:
    """What STATUS=, /healthz and /readyz report."""

    started: float = field(default_factory=time.monotonic)
    heartbeat: float = field(default_factory=time.monotonic)
    last_probe: float | None = None
    probe_ok: bool = False
    last_runs: dict[str, LastRun] = field(default_factory=dict)
    last_reload: str = "initial"


class DaemonParts:
    """What the daemon's parts (runs, reload) share: its state and the methods the service defines."""

    loaded: LoadedConfig
    config_path: Path
    tick_seconds: float | None
    stop: threading.Event
    metrics: Metrics
    status: Status
    specs: dict[str, JobSpec]
    state: ScheduleState
    audit: AuditHandles | None
    watcher: HoldWatcher | None
    locks: RunnerLocks | None
    _holds_lock: threading.Lock

    def status_line(self) -> str:
        """Return the one-line status (defined by the service)."""
        raise NotImplementedError

    def _update_next_runs(self) -> None:
        raise NotImplementedError

    def _refresh_holds(self, *, source_on_error: str | None) -> bool:
        raise NotImplementedError

    def _new_watcher(self, loaded: LoadedConfig, audit: AuditHandles) -> HoldWatcher:
        raise NotImplementedError

    def _apply_specs(self, specs: dict[str, JobSpec]) -> None:
        raise NotImplementedError
