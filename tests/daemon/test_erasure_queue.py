"""A queued erasure request (`erase --queue`) is run by the daemon, audited and reported."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from tests.daemon.conftest import Site, StartDaemon


class TestQueuedErasure:
    """The daemon picks a queued request up, erases only that subject and leaves the request done."""

    def test_daemon_runs_a_queued_request(self, site: Site, start_daemon: StartDaemon) -> None:
        """acct_fresh's young row goes (regardless of age), acct_keep's stays; the ledger verifies."""
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        with sqlite3.connect(site.app_db) as conn:
            conn.execute("INSERT INTO clicks (created_at, account_id) VALUES (?, 'acct_keep')", (now,))
        queued = site.cli("erase", "--queue", "--subject", "acct_fresh", "--request", "DSR-TEST-1")
        assert 0 == queued.returncode, queued.stderr
        assert "acct_fresh" not in json.dumps(site.entries())  # not in the ledger, even queued
        daemon = start_daemon(site)
        entries = daemon.wait_ledger(lambda es: any(e["event"] == "erasure_finished" for e in es))
        finished = next(e for e in entries if e["event"] == "erasure_finished")
        assert (0, 1) == (
            site.count("clicks", "account_id = 'acct_fresh'"),
            site.count("clicks", "account_id = 'acct_keep'"),
        )
        assert "DSR-TEST-1" == finished["fields"]["request"]
        assert "acct_fresh" not in json.dumps(entries)
        listed = site.cli("requests", "list")
        assert 0 == listed.returncode, listed.stderr
        assert "DSR-TEST-1" in listed.stdout and "done" in listed.stdout
        assert 0 == site.cli("audit", "verify").returncode
