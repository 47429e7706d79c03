"""Exactly one runner per category: the daemon and a one-shot ``run`` on the same large PostgreSQL target."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from retentiond.audit.refs import REF_SIZE
from tests.daemon.conftest import Site, StartDaemon, child_env

ROWS = 30_000


def seed_pg(site: Site, rows: int) -> None:
    """Create ``clicks`` in the site's PostgreSQL app database: ``rows`` expired rows and one fresh row."""
    engine = sa.create_engine(site.app_url or "", poolclass=sa.pool.NullPool)
    with engine.begin() as pg:
        pg.execute(sa.text("CREATE TABLE clicks (id BIGSERIAL PRIMARY KEY, created_at TIMESTAMP, account_id TEXT)"))
        pg.execute(
            sa.text(
                "INSERT INTO clicks (created_at, account_id) SELECT now() AT TIME ZONE 'UTC' - interval '40 days', "
                "'acct_' || (g % 7) FROM generate_series(1, :n) AS g"
            ),
            {"n": rows},
        )
        pg.execute(sa.text("INSERT INTO clicks (created_at, account_id) VALUES (now() AT TIME ZONE 'UTC', 'fresh')"))
    engine.dispose()


def deleted_refs(url: str) -> list[bytes]:
    """Return every ref the ledger's ``deleted`` batch entries claim (repeats kept)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as pg:
        blobs = pg.execute(
            sa.text("SELECT refs FROM audit_entries WHERE event = 'batch' AND fields LIKE '%\"deleted\"%'")
        ).scalars()
        out = [bytes(b[i : i + REF_SIZE]) for b in blobs if b for i in range(0, len(b), REF_SIZE)]
    engine.dispose()
    return out


def daemon_run_ids(log: str) -> set[str]:
    """Return the run ids of the category runs the daemon logged."""
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return {e["run_id"] for e in lines if e.get("event") == "category run" and e.get("run_id")}


def start_cli(site: Site) -> subprocess.Popen[str]:
    """Start ``retentiond run`` on the site's config."""
    return subprocess.Popen(
        [sys.executable, "-m", "retentiond", "-c", str(site.config), "run"],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class TestDaemonAndCli:
    """The daemon and ``retentiond run`` started together: rows deleted exactly once, both truthful."""

    def test_cli_while_the_daemon_runs(self, site: Site, start_daemon: StartDaemon, pg_url: str) -> None:
        """The daemon's catch-up holds the lease: the CLI reports ``skipped: running elsewhere`` and exits 75."""
        site.write(ledger_url=pg_url, app_url=pg_url, batch_size=100)
        seed_pg(site, ROWS)
        started = time.monotonic()
        daemon = start_daemon(site, ready=False)
        daemon.wait_ledger(lambda es: any(e["event"] == "batch" for e in es), timeout=60)
        cli = start_cli(site)
        out, err = cli.communicate(timeout=120)
        entries = daemon.wait_ledger(lambda es: any(e["event"] == "run_finished" for e in es), timeout=120)
        elapsed = time.monotonic() - started
        daemon.signal(signal.SIGTERM)
        assert 0 == daemon.wait(30)
        assert (75, True) == (cli.returncode, "clicks: skipped: running elsewhere" in out), out + err[-2000:]
        refs = deleted_refs(pg_url)
        finished = [e for e in entries if e["event"] == "run_finished"]
        assert (ROWS, ROWS, 1) == (len(refs), len(set(refs)), site.count("clicks"))
        assert ROWS == sum(e["fields"]["counts"].get("deleted", 0) for e in finished)
        assert daemon_run_ids(daemon.log()) == {e["run_id"] for e in site.events("run_started")}
        print(f"overlap: daemon first, {ROWS} rows deleted once in {elapsed:.1f}s; cli exit {cli.returncode}")

    def test_daemon_while_the_cli_runs(self, site: Site, start_daemon: StartDaemon, pg_url: str) -> None:
        """The CLI holds the lease: the daemon's catch-up and its ticks during the run are skipped, never doubled."""
        site.write(ledger_url=pg_url, app_url=pg_url, batch_size=100)
        seed_pg(site, ROWS)
        cli = start_cli(site)
        deadline = time.monotonic() + 60
        while not any(e["event"] == "batch" for e in site.entries()):
            assert time.monotonic() < deadline and cli.poll() is None, "the CLI run did not start"
            time.sleep(0.05)
        daemon = start_daemon(site, tick=3600.0)  # only the catch-up tick: the one the CLI is doing
        out, err = cli.communicate(timeout=120)
        daemon.wait_ledger(lambda es: "run skipped" in daemon.log(), timeout=30)
        daemon.signal(signal.SIGTERM)
        assert 0 == daemon.wait(30)
        assert (0, f"deleted {ROWS}") == (cli.returncode, f"deleted {ROWS}" if f"deleted {ROWS}" in out else out)
        refs = deleted_refs(pg_url)
        assert (ROWS, ROWS, 1) == (len(refs), len(set(refs)), site.count("clicks"))
        finished = site.events("run_finished")
        assert ROWS == sum(e["fields"]["counts"].get("deleted", 0) for e in finished)
        assert "another runner holds the category" in daemon.log() or "tick already done" in daemon.log()
