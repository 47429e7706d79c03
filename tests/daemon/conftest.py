"""End-to-end harness: a temp config on SQLite, a fake systemd notify socket, daemon subprocesses."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.audit.refs import REF_SIZE
from retentiond.audit.signing import generate_key_pair

ROOT = Path(__file__).resolve().parents[2]
TICK = 2.0  # seconds between scheduled runs in these tests (hidden --tick-seconds)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    """A temp deployment: config, holds, keys, an SQLite app database and the state dir."""

    root: Path
    port: int
    categories: tuple[str, ...] = ("clicks",)
    batch_size: int = 10
    pause: str = "0s"
    holds: str = ""
    ledger_url: str | None = None  # None: SQLite audit.db in state_dir
    app_url: str | None = None  # None: SQLite app.db beside the config

    @property
    def config(self) -> Path:
        """Return the config file's path."""
        return self.root / "retention.toml"

    @property
    def app_db(self) -> Path:
        """Return the app database's path."""
        return self.root / "app.db"

    @property
    def ledger_db(self) -> Path:
        """Return the ledger's path (default: audit.db in state_dir)."""
        return self.root / "state" / "audit.db"

    def write(self, **changes: Any) -> str:
        """Write the config (with ``changes`` to the fields) and return its text."""
        for key, value in changes.items():
            setattr(self, key, value)
        cats = ""
        for name in self.categories:
            cats += f'''
[categories.{name}]
retain = "30d"
action = "delete"
  [[categories.{name}.sql]]
  store = "app"
  table = "{name}"
  key = ["id"]
  age_column = "created_at"
  age_timezone = "UTC"
  subject_column = "account_id"
'''
        text = f'''[daemon]
schedule = "15 3 * * *"
state_dir = "state"
holds_file = "holds.toml"
metrics_listen = "127.0.0.1:{self.port}"
batch_size = {self.batch_size}
max_fraction_per_run = 1.0
pause_between_batches = "{self.pause}"

[audit]
{f'url = "{self.ledger_url}"' if self.ledger_url else ""}
hmac_key_file = "keys/hmac.key"
signing_key_file = "keys/signing.pem"
checkpoint_interval = "1h"

[stores.app]
kind = "sql"
url = "{self.app_url or f"sqlite:///{self.app_db}"}"
{cats}'''
        self.config.write_text(text, encoding="utf-8")
        return text

    def config_copy(self, name: str) -> Path:
        """Return a copy of the config beside it that differs only in its metrics port.

        Several daemons on one host cannot share a listening port; everything else (state_dir,
        ledger, stores: relative to the same folder) is the same deployment.
        """
        path = self.root / name
        path.write_text(
            self.config.read_text(encoding="utf-8").replace(f':{self.port}"', f':{free_port()}"'), encoding="utf-8"
        )
        return path

    def write_holds(self, text: str) -> None:
        """Replace the holds file atomically (as an editor saving it would, at worst)."""
        tmp = self.root / "holds.toml.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.root / "holds.toml")

    def seed(self, table: str, expired: int, fresh: int = 1, account: str = "acct_{i}") -> None:
        """Insert ``expired`` rows aged 40+ days and ``fresh`` new rows into ``table`` (created if needed)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = [
            ((now - timedelta(days=40 + i % 5)).isoformat(sep=" "), account.format(i=i % 7)) for i in range(expired)
        ]
        rows += [(now.isoformat(sep=" "), "acct_fresh") for _ in range(fresh)]
        if self.app_url is not None:
            engine = sa.create_engine(self.app_url, poolclass=sa.pool.NullPool)
            with engine.begin() as pg:
                pg.execute(
                    sa.text(
                        f"CREATE TABLE IF NOT EXISTS {table} "
                        "(id BIGSERIAL PRIMARY KEY, created_at TIMESTAMP, account_id TEXT)"
                    )
                )
                pg.execute(
                    sa.text(f"INSERT INTO {table} (created_at, account_id) VALUES (CAST(:c AS timestamp), :a)"),
                    [{"c": c, "a": a} for c, a in rows],
                )
            engine.dispose()
            return
        with sqlite3.connect(self.app_db) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, created_at TIMESTAMP, account_id TEXT)"
            )
            conn.executemany(f"INSERT INTO {table} (created_at, account_id) VALUES (?, ?)", rows)

    def count(self, table: str, where: str = "1=1") -> int:
        """Return the number of rows of ``table`` matching ``where``."""
        if self.app_url is not None:
            engine = sa.create_engine(self.app_url, poolclass=sa.pool.NullPool)
            with engine.connect() as pg:
                found = int(pg.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())
            engine.dispose()
            return found
        with sqlite3.connect(self.app_db) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])

    def entries(self) -> list[dict[str, Any]]:
        """Return the ledger's entries (seq, event, run_id, fields, number of refs) in order; [] before it exists."""
        if self.ledger_url is not None:
            engine = sa.create_engine(self.ledger_url, poolclass=sa.pool.NullPool)
            try:
                with engine.connect() as pg:
                    rows = pg.execute(
                        sa.text("SELECT seq, event, run_id, fields, length(refs) FROM audit_entries ORDER BY seq")
                    ).all()
            except sa.exc.ProgrammingError:
                return []  # the daemon has not created the schema yet
            finally:
                engine.dispose()
            return [
                {"seq": s, "event": e, "run_id": r, "fields": json.loads(f), "refs": (n or 0) // REF_SIZE}
                for s, e, r, f, n in rows
            ]
        if not self.ledger_db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.ledger_db}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute(
                "SELECT seq, event, run_id, fields, length(refs) FROM audit_entries ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()
        return [
            {"seq": s, "event": e, "run_id": r, "fields": json.loads(f), "refs": (n or 0) // REF_SIZE}
            for s, e, r, f, n in rows
        ]

    def events(self, name: str) -> list[dict[str, Any]]:
        """Return the ledger entries of event ``name``."""
        return [e for e in self.entries() if e["event"] == name]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``retentiond -c CONFIG ARGS`` and return the finished process."""
        return subprocess.run(
            [sys.executable, "-m", "retentiond", "-c", str(self.config), *args],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def child_env(**extra: str) -> dict[str, str]:
    """Return the environment of a child retentiond (PYTHONPATH on this checkout)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")
    }
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONFAULTHANDLER"] = (
        "1"  # a daemon still running at teardown gets SIGABRT: its threads' stacks land in its log
    )
    env.update(extra)
    return env


class NotifySocket:
    """A datagram socket playing systemd's side of sd_notify.

    Like systemd, it reads every message as it comes (a thread): the kernel queues only a few
    datagrams (``net.unix.max_dgram_qlen``), and a daemon whose notifications are not read
    would block in ``sendall``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def _drain(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.05))

    def wait_for(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float = 20.0, after: int = 0
    ) -> dict[str, str]:
        """Return the first message (index ``>= after``) matching ``predicate``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages[after:]:
                if predicate(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no matching sd_notify message in {timeout}s; got {self.messages[after:]}")
            self._drain(min(remaining, 0.5))

    def status_config(self) -> str:
        """Return the config hash of the newest STATUS= that names one."""
        for message in reversed(self.messages):
            status = message.get("STATUS", "")
            if "config_sha256=" in status:
                return status.split("config_sha256=", 1)[1].split(";", 1)[0]
        raise AssertionError("no STATUS with config_sha256 yet")

    def close(self) -> None:
        """Stop reading, close and remove the socket."""
        self._closed.set()
        self._reader.join(timeout=5)
        self.sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class Daemon:
    """A running ``retentiond daemon`` subprocess."""

    site: Site
    proc: subprocess.Popen[bytes]
    notify: NotifySocket
    log_path: Path
    extra: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """Return the process id."""
        return self.proc.pid

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the daemon."""
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Return the exit code, waiting up to ``timeout``."""
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        """Return what the daemon wrote to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ledger(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Return the ledger entries once ``predicate(entries)`` holds; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.site.entries()
            if predicate(entries):
                return entries
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"ledger condition not met in {timeout}s; events: {[e['event'] for e in entries][-30:]}\n"
                    f"{self.log()[-3000:]}"
                )
            time.sleep(0.1)


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A deployment with one category ``clicks``: 50 expired rows and one fresh row."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "hmac.key").write_text(secrets.token_hex(32))
    private_pem, public_pem, _ = generate_key_pair()
    (tmp_path / "keys" / "signing.pem").write_bytes(private_pem)
    (tmp_path / "keys" / "signing.pub").write_bytes(public_pem)
    (tmp_path / "holds.toml").write_text("# no holds\n")
    s = Site(tmp_path, free_port())
    s.write()
    s.seed("clicks", expired=50)
    return s


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """Return ``start(site, *extra_args, tick=TICK, ready=True, config=None)``; aborts what is left at teardown."""
    started: list[Daemon] = []

    def start(
        site: Site,
        *extra: str,
        tick: float = TICK,
        ready: bool = True,
        env: dict[str, str] | None = None,
        config: Path | None = None,
    ) -> Daemon:
        n = len(started)
        notify = NotifySocket(tmp_path / f"notify-{n}.sock")
        log_path = tmp_path / f"daemon-{n}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "retentiond",
                    "-c",
                    str(config or site.config),
                    "daemon",
                    "--tick-seconds",
                    str(tick),
                    *extra,
                ],
                env=child_env(NOTIFY_SOCKET=str(notify.path), **(env or {})),
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        daemon = Daemon(site, proc, notify, log_path, list(extra))
        started.append(daemon)
        if ready:
            daemon.notify.wait_for(lambda m: m.get("READY") == "1", timeout=30)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGABRT)
            try:
                daemon.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.proc.send_signal(signal.SIGKILL)
                daemon.proc.wait(timeout=10)
        daemon.notify.close()
