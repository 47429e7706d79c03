"""Prometheus metrics on a private registry, and the small HTTP server for /metrics, /healthz, /readyz.

Labels carry category, store/target and outcome names from the configuration, never a
record's key or a subject: no personal data in labels. Every label set of every category is
created at start (and at reload) so that ``absent()``/``rate()`` alerts see zeros, not gaps.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from retentiond import __version__
from retentiond.audit.canonical import parse_time
from retentiond.config.loader import LoadedConfig
from retentiond.logs import get_logger
from retentiond.stores import registry

log = get_logger("retentiond.metrics")

RUN_RESULTS = ("success", "failed", "interrupted", "skipped")
_DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, float("inf"))

Probe = Callable[[], tuple[bool, dict[str, Any]]]


class Metrics:
    """Every metric the daemon exports."""

    def __init__(self) -> None:
        # The *_created series double the exposition for no alerting value (process-wide switch;
        # the daemon is the only exporter in its process).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self.build_info = Gauge(
            "retentiond_build_info", "Always 1; the version label says which build runs.", ["version"], registry=r
        )
        self.build_info.labels(__version__).set(1)
        self.last_success = Gauge(
            "retentiond_last_success_timestamp_seconds",
            "Unix time of the last run of the category that finished without failure (0: never).",
            ["category"],
            registry=r,
        )
        self.next_run = Gauge(
            "retentiond_next_run_timestamp_seconds",
            "Unix time of the category's next scheduled run.",
            ["category"],
            registry=r,
        )
        self.records = Counter(
            "retentiond_records",
            "Records acted on or kept, per category, target and outcome.",
            ["category", "target", "outcome"],
            registry=r,
        )
        # A gauge: the same held records are found again every run, so a counter would re-add them.
        self.held = Gauge(
            "retentiond_records_held",
            "Distinct records holds kept from the target at its last run.",
            ["category", "target"],
            registry=r,
        )
        self.runs = Counter(
            "retentiond_runs",
            "Runs per category and result (success, failed, interrupted, skipped).",
            ["category", "result"],
            registry=r,
        )
        self.run_duration = Histogram(
            "retentiond_run_duration_seconds",
            "Wall time of a category's run.",
            ["category"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.missed = Counter(
            "retentiond_scheduler_missed",
            "Scheduled runs APScheduler dropped (later than misfire_grace_time).",
            ["category"],
            registry=r,
        )
        self.job_errors = Counter(
            "retentiond_scheduler_job_errors", "Jobs that raised an unexpected error.", ["category"], registry=r
        )
        self.holds_active = Gauge(
            "retentiond_holds_active", "Holds that protect records now (file and release grace).", registry=r
        )
        self.holds_valid = Gauge(
            "retentiond_holds_file_valid",
            "1 when the holds file is readable and valid, 0 when every deletion is stopped.",
            registry=r,
        )
        self.reload_ok = Gauge(
            "retentiond_config_last_reload_successful",
            "1 when the last load or reload was accepted, 0 when refused.",
            registry=r,
        )
        self.reload_time = Gauge(
            "retentiond_config_last_reload_success_timestamp_seconds",
            "Unix time of the last accepted load or reload.",
            registry=r,
        )
        self.reloads = Counter("retentiond_config_reloads", "Reloads (SIGHUP) per result.", ["result"], registry=r)
        self.store_up = Gauge(
            "retentiond_store_up", "1 when the last probe of the store succeeded.", ["store"], registry=r
        )
        self.checkpoint_time = Gauge(
            "retentiond_last_checkpoint_timestamp_seconds",
            "Unix time of the newest signed checkpoint in the ledger (0: none).",
            registry=r,
        )
        self.erasure_pending = Gauge(
            "retentiond_erasure_requests_pending", "Queued erasure requests not yet done.", registry=r
        )
        self.erasure_overdue = Gauge(
            "retentiond_erasure_requests_overdue",
            "Queued erasure requests past their deadline (daemon.erasure_deadline).",
            registry=r,
        )
        for result in ("accepted", "rejected"):
            self.reloads.labels(result)
        self.backlog = Gauge(
            "retentiond_backlog_records",
            "Records eligible (expired, not held) when the target's batches began at the category's last run.",
            ["category", "target"],
            registry=r,
        )
        self.backlog_age = Gauge(
            "retentiond_backlog_oldest_age_seconds",
            "Age of the oldest eligible record when the target's batches began at the category's last run"
            " (0: none eligible).",
            ["category", "target"],
            registry=r,
        )
        self.failed_records = Gauge(
            "retentiond_failed_records",
            "Records (S3: object versions) the category's last run could not act on.",
            ["category", "target"],
            registry=r,
        )
        self.guard_trips = Counter(
            "retentiond_guard_trips",
            "Runs of a category the blast-radius guard stopped (one per run, whichever targets tripped it).",
            ["category"],
            registry=r,
        )
        self.pending = Gauge(
            "retentiond_outbox_pending",
            "Batch outcomes still in a store's outbox or intent journal after the last run (not yet in the ledger).",
            ["store"],
            registry=r,
        )
        self.unsigned = Gauge(
            "retentiond_ledger_unsigned_entries",
            "Ledger entries after the newest signed checkpoint (the unsigned tail).",
            registry=r,
        )

    def init_config(self, loaded: LoadedConfig) -> None:
        """Create every label set of ``loaded``'s categories, targets and stores (at zero)."""
        for name, category in loaded.settings.categories.items():
            self.last_success.labels(name)
            self.run_duration.labels(name)
            self.missed.labels(name)
            self.job_errors.labels(name)
            for result in RUN_RESULTS:
                self.runs.labels(name, result)
            self.guard_trips.labels(name)
            for target in registry.targets(loaded.settings, name):
                self.held.labels(name, f"{target.store}/{target.target}")
                for outcome in registry.kind(target.kind).outcomes(category.action):
                    if outcome != "held":  # a gauge of its own: retentiond_records_held
                        self.records.labels(name, f"{target.store}/{target.target}", outcome)
                self._target(name, f"{target.store}/{target.target}" + (f"/{target.prefix}" if target.prefix else ""))
        for store in loaded.settings.stores:
            self.store_up.labels(store)
            self.pending.labels(store)

    def _target(self, category: str, target: str) -> None:
        self.backlog.labels(category, target)
        self.backlog_age.labels(category, target)
        self.failed_records.labels(category, target)

    def observe_run(self, category: str, report: Any) -> None:
        """Set the last-run gauges of ``category`` from a run's ``RunReport`` (names and counts only)."""
        stopped = False
        for t in report.targets:
            if t.category != category:
                continue
            self.backlog.labels(category, t.name).set(t.eligible)
            age = (report.run_start - t.oldest).total_seconds() if t.oldest is not None and t.eligible else 0.0
            self.backlog_age.labels(category, t.name).set(max(age, 0.0))
            self.failed_records.labels(category, t.name).set(t.failed)
            stopped = stopped or t.guard == "tripped"
        if stopped:
            self.guard_trips.labels(category).inc()
        for store, count in report.pending.items():
            self.pending.labels(store).set(count)

    def observe_ledger(self, ledger: Any) -> None:
        """Set the ledger's health: the unsigned tail's length and the newest checkpoint's time.

        Raises:
            TemporaryFailure: the ledger is unreachable.
        """
        head = ledger.head()
        last = ledger.latest_checkpoint()
        self.unsigned.set(head.seq - (last.seq if last is not None else 0))
        self.checkpoint_time.set(parse_time(last.time).timestamp() if last is not None else 0)

    def forget_categories(self, names: list[str]) -> None:
        """Drop the gauges of categories a reload removed (counters keep their history)."""
        for name in names:
            for gauge in (self.last_success, self.next_run):
                with contextlib.suppress(KeyError):
                    gauge.remove(name)
            for labelled in (self.backlog, self.backlog_age, self.failed_records):
                for labels in [k for k in labelled._metrics if k[0] == name]:  # noqa: SLF001 - no public listing
                    labelled.remove(*labels)

    def render(self) -> bytes:
        """Return the text exposition of the registry."""
        return generate_latest(self.registry)


class MetricsServer:
    """``/metrics``, ``/healthz`` (scheduler alive) and ``/readyz`` (config loaded, stores probed recently)."""

    def __init__(self, listen: str, metrics: Metrics, health: Probe, ready: Probe) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        metrics_ref, health_ref, ready_ref = metrics, health, ready

        class Handler(BaseHTTPRequestHandler):
            server_version = "retentiond"

            def do_GET(self) -> None:
                """Serve /metrics, /healthz, /readyz; 404 otherwise."""
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, metrics_ref.render(), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, body = (health_ref if path == "/healthz" else ready_ref)()
                    self._send(
                        200 if ok else 503,
                        json.dumps({"ok": ok, **body}, sort_keys=True, default=str).encode(),
                        "application/json",
                    )
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                """Write one complete response."""
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Drop access logs: scrapes every few seconds would flood the journal."""

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer((host, int(port)), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 1.0}, name="metrics-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """Return the bound (host, port)."""
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a background thread."""
        self.thread.start()
        log.info("metrics listening", host=self.address[0], port=self.address[1])

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
