"""The operator's view of a run: the live view on a terminal, one log line per batch without one,
the run's context on every line, and a dry run that speaks in the conditional."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from retentiond.actions.observe import BatchLog, TargetProgress
from retentiond.logs import JournalHandler, configure_logging, get_logger, log_context
from tests.stores.sql.conftest import ROOT, Env, tickets

#: A category deleting closed tickets after 30 days (no history table: one kind of batch).
TICKETS: dict[str, Any] = {
    "retain": "30d",
    "action": "delete",
    "sql": [
        {
            "store": "app",
            "table": "tickets",
            "key": ["id"],
            "age_column": "closed_at",
            "subject_column": "account_id",
            "match": {"status": "closed"},
        }
    ],
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def fill(env: Env, rows: int, *, age_days: int = 60) -> None:
    """Insert ``rows`` closed tickets ``age_days`` old in one statement (generate_series on PostgreSQL)."""
    g = sa.func.generate_series(1, rows).table_valued("g").render_derived()
    closed = sa.literal(env.now - timedelta(days=age_days), sa.DateTime(timezone=True))
    select = sa.select(g.c.g, sa.literal("acct_1"), sa.literal("closed"), closed)
    with env.engine.begin() as conn:
        conn.execute(tickets.insert().from_select(["id", "account_id", "status", "closed_at"], select))


def run_in_pty(env: Env, *args: str, timeout: float = 300) -> tuple[int, str]:
    """Run ``retentiond -c CONFIG ARGS`` with a pseudo-terminal as stdin, stdout and stderr; return (rc, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "retentiond", "-c", str(env.config_path), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environ,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    rc = proc.wait(timeout=30)
    return rc, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Return stderr's JSON log lines (every line must be one)."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


@pytest.mark.pg
@pytest.mark.slow
class TestTerminalView:
    """On a terminal, `retentiond run` shows a live view with the planned total that reaches 100 %."""

    def test_200k_rows_planned_total_and_100_percent(self, pg_env: Env) -> None:
        """A 200,000-row target: the view shows n/200000 from the start and ends at 200000/200000 100%."""
        fill(pg_env, 200_000)
        pg_env.configure({"tickets": TICKETS}, batch_size=10_000)
        rc, out = run_in_pty(pg_env, "run")
        assert 0 == rc, out[-3000:]
        frames = re.findall(r"tickets app/tickets \(delete\)\s.*?(\d+)/(\d+)\s+(\d+)%", out)
        assert frames, out[-3000:]
        assert {"200000"} == {planned for _, planned, _ in frames}
        assert ("200000", "200000", "100") == frames[-1]
        assert any(int(done) < 200_000 for done, _, _ in frames)  # it moved while the run ran
        assert "held 0 failed 0" in out
        assert "deleted 200000" in out  # the report follows the view
        with pg_env.engine.connect() as conn:
            assert 0 == conn.execute(sa.select(sa.func.count()).select_from(tickets)).scalar_one()

    def test_log_lines_go_above_the_view(self, pg_env: Env) -> None:
        """Log lines during the run are printed on lines of their own, never into the view's line."""
        fill(pg_env, 3000)
        pg_env.configure({"tickets": TICKETS}, batch_size=1000, max_fraction_per_run=0.5)
        rc, out = run_in_pty(pg_env, "run", "--dry-run")
        assert 0 == rc, out
        # The guard's warning comes before the view has a line, "category done" while it shows one.
        for event in ("blast-radius guard", "category done"):
            logged = [line for line in out.splitlines() if event in line]
            assert logged, out
            assert all("%" not in line and "app/tickets (would delete)" not in line for line in logged), out


@pytest.mark.pg
class TestBatchLines:
    """Without a terminal, a run logs one line per batch, and every line of the run carries its run_id."""

    def test_one_line_per_batch_with_run_id_everywhere(self, pg_env: Env) -> None:
        """5,000 rows in batches of about 1,000 (page ranges): a `batch` line each, totals so far; run_id everywhere."""
        fill(pg_env, 5000)
        pg_env.configure({"tickets": TICKETS}, batch_size=1000, progress_log_interval="0s")
        done = pg_env.cli("run", "--format", "json")
        assert 0 == done.returncode, done.stderr
        run_id = json.loads(done.stdout)["run_id"]
        lines = json_lines(done.stderr)
        batches = [line for line in lines if line["event"] == "batch"]
        acted = [b["acted"] for b in batches]
        assert list(range(1, len(batches) + 1)) == [b["batch"] for b in batches]
        assert (True, 5000, True) == (len(batches) >= 5, acted[-1], acted == sorted(acted))
        assert {5000} == {b["planned"] for b in batches}
        assert {("tickets", "app/tickets", 0, False)} == {
            (b["category"], b["target"], b["held"], b["dry_run"]) for b in batches
        }
        assert all(b["rate"] > 0 and b["elapsed_s"] > 0 for b in batches)
        expected = ["run started", *["batch"] * len(batches), "category done", "run finished"]
        assert expected == [line["event"] for line in lines]
        assert [run_id] * len(lines) == [line.get("run_id") for line in lines]
        assert all(line.get("category") == "tickets" for line in lines[1:-1])

    def test_lines_are_throttled_per_target(self, pg_env: Env) -> None:
        """With the default interval (5 s) a fast run logs its first and its last batch only."""
        fill(pg_env, 5000)
        pg_env.configure({"tickets": TICKETS}, batch_size=1000)
        done = pg_env.cli("run")
        assert 0 == done.returncode, done.stderr
        batches = [line for line in json_lines(done.stderr) if line["event"] == "batch"]
        assert (2, 1, 5000, True) == (
            len(batches),
            batches[0]["batch"],
            batches[-1]["acted"],
            batches[-1]["batch"] >= 5,
        )


class TestBatchLog:
    """BatchLog logs at most one line per target and interval, never losing the last batch."""

    def test_throttle_keeps_the_last_batch(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Batches 1..4 within 5 s of each other: lines for 1 and 4 (at the target's end)."""
        configure_logging("info", renderer="json")
        now = [0.0]
        observer = BatchLog(5.0, clock=lambda: now[0])
        base = TargetProgress("c", "s/t", "delete", False, planned=40)
        observer.target_started(base)
        for n in range(1, 5):
            now[0] += 1.0
            observer.batch_done(TargetProgress("c", "s/t", "delete", False, 40, batch=n, acted=10 * n))
        observer.target_finished(TargetProgress("c", "s/t", "delete", False, 40, batch=4, acted=40))
        lines = json_lines(capsys.readouterr().err)
        assert [(1, 10), (4, 40)] == [(line["batch"], line["acted"]) for line in lines]
        assert [10.0, 10.0] == [line["rate"] for line in lines]


class TestLogContext:
    """run_id, category, target and request reach every line: structlog's, stdlib's, and journald's fields."""

    def test_stdlib_lines_carry_the_context(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A stdlib logger's warning inside the context has the bound fields; outside, none."""
        configure_logging("info", renderer="json")
        with log_context(run_id="r1", category="c"), log_context(target="s/t", request=None):
            logging.getLogger("sqlalchemy.pool").warning("pool trouble")
            get_logger("retentiond.x").error("ours")
        logging.getLogger("sqlalchemy.pool").warning("after")
        lines = json_lines(capsys.readouterr().err)
        assert [("r1", "c", "s/t")] * 2 == [(x["run_id"], x["category"], x["target"]) for x in lines[:2]]
        assert "request" not in lines[0]
        assert "run_id" not in lines[2]

    def test_unknown_key_refused(self) -> None:
        """Only the documented keys can be bound (no record value by accident)."""
        with pytest.raises(ValueError, match="email"), log_context(email="x"):
            pass

    def test_journald_gets_fields(self, tmp_path: Path) -> None:
        """Through the journal handler, the context becomes RUN_ID=, CATEGORY=, TARGET=, REQUEST= fields."""
        path = str(tmp_path / "journal.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(path)
        try:
            configure_logging("info", renderer="json")
            root = logging.getLogger()
            stream = root.handlers[0]
            handler = JournalHandler(stream, socket_path=path)
            handler.setFormatter(stream.formatter)
            root.handlers[:] = [handler]
            with log_context(run_id="r2", category="c", target="s/t", request="req-1"):
                logging.getLogger("apscheduler").warning("late")
            fields = dict(line.split("=", 1) for line in server.recv(65536).decode().splitlines())
        finally:
            server.close()
            handler.sock.close()
            structlog.contextvars.clear_contextvars()
        assert ("late", "r2", "c", "s/t", "req-1") == (
            fields["MESSAGE"],
            fields["RUN_ID"],
            fields["CATEGORY"],
            fields["TARGET"],
            fields["REQUEST"],
        )


@pytest.mark.pg
class TestDryRun:
    """`run --dry-run` speaks in the conditional and walks on past the blast-radius guard."""

    def test_would_delete_and_guard_would_trip(self, pg_env: Env) -> None:
        """Every row eligible, guard at 50 %: exit 0, "would delete 3000", the guard named, nothing deleted."""
        fill(pg_env, 3000)
        pg_env.configure({"tickets": TICKETS}, batch_size=1000, max_fraction_per_run=0.5)
        done = pg_env.cli("run", "--dry-run")
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "would delete 3000" in done.stdout
        assert "deleted 3000" not in done.stdout.replace("would delete 3000", "")
        assert "GUARD tickets app/tickets: a real run would stop here (would act on 3000 of 3000" in done.stdout
        assert "FAILED" not in done.stdout
        assert pg_env.ids() == set(range(1, 3001))

    def test_real_run_still_stopped(self, pg_env: Env) -> None:
        """The same target on a real run: the guard stops it (exit 1), nothing deleted."""
        fill(pg_env, 3000)
        pg_env.configure({"tickets": TICKETS}, batch_size=1000, max_fraction_per_run=0.5)
        done = pg_env.cli("run")
        assert 1 == done.returncode
        assert "FAILED tickets: guard_tripped" in done.stdout
        assert 3000 == len(pg_env.ids())
