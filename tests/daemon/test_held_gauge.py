"""``retentiond_records_held`` is a gauge of distinct records held at the last run (not a growing counter)."""

from __future__ import annotations

import re
import signal
import urllib.request

from tests.daemon.conftest import Site, StartDaemon

HOLDS = """
[[hold]]
id = "LIT"
kind = "legal"
reason = "test"
placed_by = "legal@test"
placed_at = 2020-01-01
categories = ["clicks"]
subjects = ["acct_1"]

[[hold]]
id = "TAX"
kind = "legal"
reason = "test"
placed_by = "legal@test"
placed_at = 2020-01-01
categories = ["clicks"]
subjects = ["acct_1", "acct_2"]
"""


def scrape(port: int) -> str:
    """Return the /metrics text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


class TestHeldGauge:
    """Two holds over overlapping subjects, several runs: the gauge stays at the distinct count."""

    def test_gauge_after_runs(self, site: Site, start_daemon: StartDaemon, pg_url: str) -> None:
        """acct_1 (10 rows, both holds) and acct_2 (10 rows): 20 held, after every run, never 30 or 40."""
        site.write(ledger_url=pg_url, app_url=pg_url)
        site.seed("clicks", expired=70)
        site.write_holds(HOLDS)
        daemon = start_daemon(site)
        daemon.wait_ledger(lambda es: sum(e["event"] == "run_finished" for e in es) >= 3, timeout=40)
        text = scrape(site.port)
        daemon.signal(signal.SIGTERM)
        assert 0 == daemon.wait(20)
        held = re.search(r'retentiond_records_held\{category="clicks",target="app/clicks"\} (\S+)', text)
        assert (True, 20.0) == (held is not None, float(held.group(1)) if held else None)
        assert 'outcome="held"' not in text
        assert [20, 20, 20] == [e["fields"]["counts"]["held"] for e in site.events("run_finished")][:3]
