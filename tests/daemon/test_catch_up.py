"""Catch-up and ``last_success`` tell the truth: another runner's tick, a category that failed."""

from __future__ import annotations

import re
import signal
import time
import urllib.request

from tests.daemon.conftest import Site, StartDaemon


def last_success(port: int, category: str) -> float:
    """Return ``retentiond_last_success_timestamp_seconds`` of ``category`` from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf'retentiond_last_success_timestamp_seconds{{category="{category}"}} (\S+)', text)
    assert found is not None, "metric missing"
    return float(found.group(1))


class TestTickDoneElsewhere:
    """A daemon started after a manual run: the tick is done, and its success is the category's last."""

    def test_last_success_from_the_ledger(self, site: Site, start_daemon: StartDaemon, pg_url: str) -> None:
        """The catch-up is skipped (the manual run did the tick) and last_success is the manual run's end."""
        site.write(ledger_url=pg_url, app_url=pg_url)
        site.seed("clicks", expired=30)
        before = time.time()
        manual = site.cli("run")
        assert 0 == manual.returncode, manual.stderr[-2000:]
        daemon = start_daemon(site, tick=3600.0)
        deadline = time.monotonic() + 20
        while "tick already done by another runner" not in daemon.log():
            assert time.monotonic() < deadline, daemon.log()[-3000:]
            time.sleep(0.1)
        seen = last_success(site.port, "clicks")
        daemon.signal(signal.SIGTERM)
        assert 0 == daemon.wait(20)
        assert before <= seen <= time.time()
        assert 1 == len(site.events("run_started"))


class TestFailedCaughtUp:
    """A category that failed in the last run is caught up at the next start."""

    def test_failed_category_runs_at_start(self, site: Site, start_daemon: StartDaemon, pg_url: str) -> None:
        """The guard fails the catch-up run; after the fix and a restart the category runs at once."""
        site.write(ledger_url=pg_url, app_url=pg_url)
        site.seed("clicks", expired=30)
        strict = site.config.read_text(encoding="utf-8").replace(
            "max_fraction_per_run = 1.0", "max_fraction_per_run = 0.5"
        )
        relaxed = site.config.read_text(encoding="utf-8")
        site.config.write_text(strict, encoding="utf-8")
        first = start_daemon(site, tick=3600.0)
        first.wait_ledger(lambda es: any(e["event"] == "run_finished" for e in es))
        first.signal(signal.SIGTERM)
        assert 0 == first.wait(20)
        assert (["clicks"], 31) == (site.events("run_finished")[0]["fields"]["failed_categories"], site.count("clicks"))
        site.config.write_text(relaxed, encoding="utf-8")
        second = start_daemon(site, tick=3600.0)
        second.wait_ledger(lambda es: sum(e["event"] == "run_finished" for e in es) >= 2)
        second.signal(signal.SIGTERM)
        assert 0 == second.wait(20)
        assert ([], 1) == (site.events("run_finished")[1]["fields"]["failed_categories"], site.count("clicks"))
