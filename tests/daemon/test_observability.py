"""Metrics that alert on what matters: promtool on the shipped rules and on a live /metrics, the
dashboard's queries, the last-run gauges, and STATUS= while a run works.

promtool comes from Debian's ``prometheus`` package (.ci/run installs it). Skipped, with the
reason, only where it is missing; with ``RETENTIOND_REQUIRE_PROMTOOL=1`` or ``CI`` set (both in
CI) a missing promtool fails these tests instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retentiond.actions.run import RunReport, TargetReport
from retentiond.daemon.metrics import Metrics
from tests.daemon.conftest import Site, StartDaemon
from tests.daemon.test_daemon_e2e import http_get

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "retentiond-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "retentiond.json"
OPERATIONS = REPO / "docs" / "operations.md"


def promtool() -> str:
    """Return promtool's path; skip where it is missing, fail when it is required."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("RETENTIOND_REQUIRE_PROMTOOL") == "1" or os.environ.get("CI"):
        pytest.fail("promtool is required here (RETENTIOND_REQUIRE_PROMTOOL=1 or CI) but not installed", pytrace=False)
    pytest.skip("promtool not installed (Debian: apt-get install --no-install-recommends prometheus)")


def metric_lines(text: str, name: str) -> dict[str, float]:
    """Return ``{labels: value}`` of the samples of ``name`` in an exposition."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


class TestShippedRules:
    """The alert rules ship as a file that promtool accepts, and docs/operations.md shows the same rules."""

    def test_promtool_check_rules(self) -> None:
        """`promtool check rules` on deploy/prometheus/retentiond-rules.yml succeeds."""
        done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
        assert (0, "SUCCESS: 14 rules found") == (done.returncode, done.stdout.strip().splitlines()[-1].strip())

    def test_docs_show_the_shipped_rules(self) -> None:
        """The YAML block of docs/operations.md's "Alerting" is the file, byte for byte."""
        docs = OPERATIONS.read_text(encoding="utf-8")
        block = docs.split("## Alerting", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
        assert RULES.read_text(encoding="utf-8") == block

    def test_every_exported_alert_metric_exists(self) -> None:
        """Each retentiond_* series the rules and the dashboard query is one the daemon exports."""
        exported = Metrics().render().decode()
        names = set(re.findall(r"^# TYPE (\w+) (\w+)", exported, re.M))
        known = {n for n, _ in names} | {f"{n}_total" for n, t in names if t == "counter"}
        known |= {f"{n}_bucket" for n, t in names if t == "histogram"}
        queried = set(re.findall(r"retentiond_\w+", RULES.read_text() + DASHBOARD.read_text()))
        assert set() == queried - known


class TestLastRunGauges:
    """observe_run sets backlog and failed per target, counts guard trips per category, pending per store."""

    def test_observe_run(self) -> None:
        """A run whose guard stopped one target: one trip; backlog and failed from the report; pending per store."""
        metrics = Metrics()
        report = RunReport("r", datetime.now(UTC), "run", pending={"app": 0, "files": 2})
        cutoff = datetime.now(UTC)
        oldest = report.run_start - timedelta(days=40, seconds=5)
        report.targets = [
            TargetReport("c", "app", "t1", "delete", cutoff, total=10, eligible=7, failed=1, guard="tripped"),
            TargetReport("c", "files", "b", "delete", cutoff, total=5, eligible=3, prefix="p/", oldest=oldest),
            TargetReport("other", "app", "t2", "delete", cutoff, eligible=99),
        ]
        metrics.observe_run("c", report)
        text = metrics.render().decode()
        assert {'{category="c",target="app/t1"}': 7.0, '{category="c",target="files/b/p/"}': 3.0} == metric_lines(
            text, "retentiond_backlog_records"
        )
        assert {'{category="c",target="app/t1"}': 0.0, '{category="c",target="files/b/p/"}': 40 * 86400 + 5.0} == (
            metric_lines(text, "retentiond_backlog_oldest_age_seconds")
        )
        assert 1.0 == metric_lines(text, "retentiond_failed_records")['{category="c",target="app/t1"}']
        assert {'{category="c"}': 1.0} == metric_lines(text, "retentiond_guard_trips_total")
        assert {'{store="app"}': 0.0, '{store="files"}': 2.0} == metric_lines(text, "retentiond_outbox_pending")


class TestLiveDaemon:
    """A running daemon's /metrics passes promtool; STATUS= shows the run's category, target and percentage."""

    def test_live_metrics_and_status(self, site: Site, start_daemon: StartDaemon) -> None:
        """After a run: promtool check metrics is clean, the new series exist, STATUS= reached 100 %."""
        tool = promtool()
        daemon = start_daemon(site)
        daemon.wait_ledger(lambda es: any(e["event"] == "run_finished" for e in es))
        daemon.notify.wait_for(lambda m: m.get("STATUS", "").startswith("running clicks app/clicks 0% (0/50); "))
        daemon.notify.wait_for(lambda m: m.get("STATUS", "").startswith("running clicks app/clicks 100% (50/50); "))
        deadline = time.monotonic() + 20  # the gauges are set once the run (and its checkpoint) returned
        while True:
            status, text = http_get(site.port, "/metrics")
            if metric_lines(text, "retentiond_last_checkpoint_timestamp_seconds")[""] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert 200 == status
        done = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert (0, "") == (done.returncode, done.stdout + done.stderr)
        label = '{category="clicks",target="app/clicks"}'
        backlog = metric_lines(text, "retentiond_backlog_records")[label]
        assert backlog in (50.0, 0.0)  # first run, or a later one
        # The site's expired rows are 40 to 44 days old: the oldest is 44 days (and seconds) at the run.
        oldest = metric_lines(text, "retentiond_backlog_oldest_age_seconds")[label]
        assert (44 * 86400 <= oldest < 44 * 86400 + 600) if backlog else (0.0 == oldest)
        assert {label: 0.0} == metric_lines(text, "retentiond_failed_records")
        assert {'{category="clicks"}': 0.0} == metric_lines(text, "retentiond_guard_trips_total")
        assert {'{store="app"}': 0.0} == metric_lines(text, "retentiond_outbox_pending")
        assert 0 <= metric_lines(text, "retentiond_ledger_unsigned_entries")[""] < 20
        age = datetime.now(UTC).timestamp() - metric_lines(text, "retentiond_last_checkpoint_timestamp_seconds")[""]
        assert 0 <= age < 60
        batches = [json.loads(line) for line in daemon.log().splitlines() if '"event": "batch"' in line]
        assert batches and all(b["run_id"] and b["category"] == "clicks" for b in batches)


class TestStatusProgress:
    """Progress in STATUS= never holds up a batch, even when nobody reads the notify socket."""

    def test_full_queue_drops_instead_of_blocking(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """100 notifications to a socket nobody reads return at once; the queue holds the first ones."""
        import socket

        from retentiond.actions.observe import TargetProgress
        from retentiond.daemon.progress import StatusProgress

        path = tmp_path / "notify.sock"
        unread = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        unread.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        status = StatusProgress(lambda: "base", min_interval=0.0)
        started = time.monotonic()
        try:
            for n in range(100):
                status.batch_done(TargetProgress("c", "app/t", "delete", False, planned=100, batch=n, acted=n))
            assert time.monotonic() - started < 5
            assert "STATUS=running c app/t 0% (0/100); base" == unread.recv(65536).decode()
        finally:
            unread.close()
