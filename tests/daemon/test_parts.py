"""The daemon's parts on their own: triggers, catch-up, state, runner locks, sd_notify, journald fields."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from retentiond.actions.leases import AdvisoryLocks, FileLocks, advisory_key, runner_locks
from retentiond.config.loader import load_config
from retentiond.daemon import sdnotify
from retentiond.daemon.scheduler import CroniterTrigger, TickTrigger, missed_since
from retentiond.daemon.service import Daemon
from retentiond.daemon.state import ScheduleState
from retentiond.logs import journal_fields


class TestCroniterTrigger:
    """Standard cron semantics in the configured zone."""

    def test_sunday_is_zero(self) -> None:
        """'0 4 * * 0' fires on Sunday 04:00 (APScheduler's from_crontab would pick Monday)."""
        trigger = CroniterTrigger("0 4 * * 0", ZoneInfo("UTC"))
        fire = trigger.get_next_fire_time(None, datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # a Wednesday
        assert (datetime(2026, 11, 29, 4, 0, tzinfo=UTC), 6) == (fire, fire.weekday())

    def test_next_after_previous(self) -> None:
        """After a fire time, the next one is a week later."""
        trigger = CroniterTrigger("0 4 * * 0", ZoneInfo("UTC"))
        first = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
        assert first + timedelta(days=7) == trigger.get_next_fire_time(first, first)

    def test_zone_is_honoured_across_dst(self) -> None:
        """'15 3 * * *' in Europe/Berlin is 01:15 UTC in summer (UTC+2) and 02:15 UTC in winter (UTC+1)."""
        zone = ZoneInfo("Europe/Berlin")
        trigger = CroniterTrigger("15 3 * * *", zone)
        summer = trigger.get_next_fire_time(None, datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
        winter = trigger.get_next_fire_time(None, datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
        assert (datetime(2026, 7, 2, 1, 15, tzinfo=UTC), datetime(2026, 12, 2, 2, 15, tzinfo=UTC)) == (
            summer.astimezone(UTC),
            winter.astimezone(UTC),
        )

    def test_previous_fire_time_includes_now(self) -> None:
        """At exactly a fire time, that fire time is the latest one."""
        trigger = CroniterTrigger("15 3 * * *", ZoneInfo("UTC"))
        at = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
        assert at == trigger.previous_fire_time(at).astimezone(UTC)


class TestTickTrigger:
    """The test-only tick is aligned to the epoch so several daemons share ticks."""

    def test_alignment(self) -> None:
        """Next and previous fire times are multiples of the tick."""
        trigger = TickTrigger(5)
        now = datetime.fromtimestamp(1_000_003.2, UTC)
        assert (1_000_005.0, 1_000_000.0) == (
            trigger.get_next_fire_time(None, now).timestamp(),
            trigger.previous_fire_time(now).timestamp(),
        )


class TestCatchUp:
    """A run missed while the daemon was down is caught up at start."""

    def test_never_succeeded_is_overdue(self) -> None:
        """No last success: the latest fire time is returned."""
        trigger = CroniterTrigger("15 3 * * *", ZoneInfo("UTC"))
        now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
        assert datetime(2026, 11, 29, 3, 15, tzinfo=UTC) == missed_since(trigger, None, now)

    def test_success_after_latest_fire_is_not_missed(self) -> None:
        """A success after the latest fire time means nothing was missed."""
        trigger = CroniterTrigger("15 3 * * *", ZoneInfo("UTC"))
        now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
        assert None is missed_since(trigger, datetime(2026, 11, 29, 3, 20, tzinfo=UTC), now)

    def test_success_before_latest_fire_is_missed(self) -> None:
        """Down over a fire time: that fire time is caught up."""
        trigger = CroniterTrigger("15 3 * * *", ZoneInfo("UTC"))
        now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
        assert datetime(2026, 11, 29, 3, 15, tzinfo=UTC) == missed_since(
            trigger, datetime(2026, 11, 28, 3, 16, tzinfo=UTC), now
        )


class TestScheduleState:
    """Last success and completed tick per category, shared by processes through state_dir."""

    def test_success_completes_tick_and_moves_last_success(self, tmp_path: Path) -> None:
        """After a success the tick is done and last_success is set."""
        state = ScheduleState(tmp_path)
        tick = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
        finished = tick + timedelta(minutes=2)
        state.record("clicks", tick, "success", "run-1", finished)
        assert (True, finished, "success") == (
            state.tick_done("clicks", tick),
            state.get("clicks").last_success,
            state.get("clicks").last_result,
        )

    def test_interrupted_leaves_tick_open(self, tmp_path: Path) -> None:
        """An interrupted run does not complete its tick: the next runner takes it again."""
        state = ScheduleState(tmp_path)
        tick = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
        state.record("clicks", tick, "interrupted", "run-1", tick)
        assert (False, None) == (state.tick_done("clicks", tick), state.get("clicks").last_success)

    def test_failure_completes_tick_without_success(self, tmp_path: Path) -> None:
        """A failed run completes its tick (retried at the next one), last_success stays."""
        state = ScheduleState(tmp_path)
        tick = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
        state.record("clicks", tick, "failed", "run-1", tick)
        assert (True, None) == (state.tick_done("clicks", tick), state.get("clicks").last_success)

    def test_damaged_file_reads_as_empty(self, tmp_path: Path) -> None:
        """A damaged state file costs a catch-up run, never a crash."""
        (tmp_path / "schedule-state.json").write_text("{not json")
        assert None is ScheduleState(tmp_path).get("clicks").last_success


class TestFileLocks:
    """flock-based runner locks exclude other processes and free themselves when the holder dies."""

    def test_second_process_cannot_take_a_held_lock(self, tmp_path: Path) -> None:
        """While held here, another process finds the category locked; after release it gets it."""
        locks = FileLocks(tmp_path)
        held = locks.try_acquire("clicks")
        assert held is not None
        code = (
            "import sys; from pathlib import Path; from retentiond.actions.leases import FileLocks; "
            "sys.exit(0 if FileLocks(Path(sys.argv[1])).try_acquire(sys.argv[2]) is None else 3)"
        )
        probe = [sys.executable, "-c", code, str(tmp_path)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        assert (0, 3) == (
            subprocess.run([*probe, "clicks"], env=env, check=False).returncode,
            subprocess.run([*probe, "views"], env=env, check=False).returncode,
        )
        held.release()
        assert 3 == subprocess.run([*probe, "clicks"], env=env, check=False).returncode

    def test_sqlite_ledger_uses_file_locks(self, tmp_path: Path) -> None:
        """A SQLite ledger URL selects file locks in state_dir."""
        assert "file" == runner_locks(f"sqlite:///{tmp_path / 'audit.db'}", "retentiond", tmp_path).kind


class TestAdvisoryLocks:
    """PostgreSQL advisory locks when the ledger is in PostgreSQL."""

    def test_two_sessions_exclude_each_other(self, pg_url: str, tmp_path: Path) -> None:
        """The second session is refused while the first holds; a different category is free."""
        first = runner_locks(pg_url, "retentiond", tmp_path)
        second = AdvisoryLocks(pg_url, "retentiond")
        try:
            held = first.try_acquire("clicks")
            assert ("postgresql", True, True, True) == (
                first.kind,
                held is not None,
                second.try_acquire("clicks") is None,
                second.try_acquire("views") is not None,
            )
            assert held is not None
            held.release()
            again = second.try_acquire("clicks")
            assert again is not None
            again.release()
        finally:
            first.close()
            second.close()

    def test_key_depends_on_ledger_and_category(self) -> None:
        """Keys are stable signed 64-bit integers that differ per ledger and category."""
        keys = {advisory_key("retentiond", "a"), advisory_key("retentiond", "b"), advisory_key("other", "a")}
        assert (3, True) == (len(keys), all(-(2**63) <= k < 2**63 for k in keys))


class TestSdNotify:
    """The sd_notify datagrams systemd expects."""

    def test_notify_sends_fields(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Fields arrive newline-separated in one datagram."""
        path = tmp_path / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(str(path))
            monkeypatch.setenv("NOTIFY_SOCKET", str(path))
            sent = sdnotify.notify("READY=1", "STATUS=ok")
            assert (True, b"READY=1\nSTATUS=ok") == (sent, server.recv(1024))

    def test_without_systemd_nothing_is_sent(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No NOTIFY_SOCKET: notify returns False."""
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        assert False is sdnotify.notify("READY=1")

    def test_reloading_carries_monotonic_usec(self) -> None:
        """RELOADING=1 comes with MONOTONIC_USEC (required by Type=notify-reload)."""
        reloading, monotonic = sdnotify.reloading_fields()
        assert ("RELOADING=1", True) == (
            reloading,
            monotonic.startswith("MONOTONIC_USEC=") and monotonic[15:].isdigit(),
        )

    def test_watchdog_interval_is_half(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """WATCHDOG_USEC=120 s gives a ping every 60 s; another process's watchdog is ignored."""
        monkeypatch.setenv("WATCHDOG_USEC", "120000000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        half = sdnotify.watchdog_interval()
        monkeypatch.setenv("WATCHDOG_PID", "1")
        assert (60.0, None) == (half, sdnotify.watchdog_interval())


class TestJournalFields:
    """journald native fields: MESSAGE, PRIORITY and one upper-case field per key."""

    def test_fields(self) -> None:
        """Keys become fields; multi-line values use the binary form."""
        data = journal_fields({"event": "run finished", "level": "warning", "run_id": "r1", "note": "a\nb"})
        assert (
            b"MESSAGE=run finished\nPRIORITY=4\nSYSLOG_IDENTIFIER=retentiond\nRUN_ID=r1\nNOTE\n"
            b"\x03\x00\x00\x00\x00\x00\x00\x00a\nb\n"
        ) == data


class TestWatchdogPath:
    """The watchdog ping depends on the scheduler's heartbeat job, so a wedged scheduler stops it."""

    def test_stale_heartbeat_means_not_alive(self, tmp_path: Path) -> None:
        """A running scheduler whose heartbeat job stopped is reported dead (no ping, /healthz 503)."""
        from tests.daemon.conftest import Site

        site = Site(tmp_path, 9)
        site.write()
        daemon = Daemon(load_config(site.config))
        daemon.scheduler = SimpleNamespace(running=True)  # type: ignore[assignment]
        daemon.status.heartbeat = time.monotonic()
        fresh = daemon.scheduler_alive()
        daemon.status.heartbeat = time.monotonic() - 3 * daemon.heartbeat_every - 10
        assert (True, False, False) == (fresh, daemon.scheduler_alive(), daemon.health()[0])


class TestJournalHandler:
    """Under systemd the records go to journald's socket as native fields, stdlib loggers too."""

    def test_records_arrive_as_native_fields(self, tmp_path: Path) -> None:
        """A structlog event and an apscheduler warning both arrive with MESSAGE, PRIORITY and their keys."""
        import logging

        from retentiond.logs import JournalHandler, configure_logging, get_logger

        path = tmp_path / "journal.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
            journal.bind(str(path))
            journal.settimeout(5)
            try:
                configure_logging("info", renderer="journald")
                handler = logging.getLogger().handlers[0]
                assert isinstance(handler, JournalHandler)
                handler.socket_path = str(path)
                get_logger("retentiond.test").info("run finished", run_id="r1", deleted=3)
                logging.getLogger("apscheduler.scheduler").warning("job missed")
                first, second = journal.recv(65536), journal.recv(65536)
            finally:
                configure_logging("info", renderer="json")
        assert (True, True, True, True) == (
            b"MESSAGE=run finished\nPRIORITY=6\n" in first,
            b"\nRUN_ID=r1\n" in first,
            b"\nDELETED=3\n" in first,
            b"MESSAGE=job missed\nPRIORITY=4\n" in second,
        )
