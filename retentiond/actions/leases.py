"""One active runner per category, across processes and hosts.

With the ledger in PostgreSQL every daemon writing to it shares the database, so a
session-level advisory lock (``pg_try_advisory_lock``) keyed by ledger id and category
excludes runners on every host. Otherwise (SQLite ledger: one host) an ``fcntl.flock`` on
``state_dir/locks/<category>.lock`` excludes runners of every process on this host; the
kernel drops both kinds of lock when their holder dies, so a crash never leaves one behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

from retentiond.config.loader import LoadedConfig


def advisory_key(ledger_id: str, category: str) -> int:
    """Return the signed 64-bit advisory-lock key of ``category`` in ledger ``ledger_id``."""
    digest = hashlib.sha256(f"retentiond-runner\0{ledger_id}\0{category}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class HeldLock(Protocol):
    """A lock held until :meth:`release`."""

    def release(self) -> None:
        """Release the lock (idempotent)."""


class RunnerLocks(Protocol):
    """Where the per-category locks live."""

    kind: str

    def try_acquire(self, category: str) -> HeldLock | None:
        """Return the held lock, or None when another runner holds it.

        Raises:
            TemporaryFailure: the lock's database is unreachable (PostgreSQL).
        """

    def close(self) -> None:
        """Release resources (the engine)."""


class _HeldFile:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock and close the lock file (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class FileLocks:
    """``flock`` files in ``state_dir/locks``."""

    kind = "file"

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "locks"

    def try_acquire(self, category: str) -> HeldLock | None:
        """Return the held lock of ``category``, or None when another process holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{category}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return _HeldFile(fd)

    def close(self) -> None:
        """Nothing to release: each held lock closes its own file."""


class _HeldAdvisory:
    def __init__(self, conn: sa.Connection, key: int) -> None:
        self._conn: sa.Connection | None = conn
        self._key = key

    def release(self) -> None:
        """Unlock and drop the session (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        except sa.exc.SQLAlchemyError:
            pass  # closing the session below releases it too
        finally:
            conn.invalidate()  # never hand a session that may still hold the lock back to a pool
            conn.close()


CONNECT_TIMEOUT = 10  # seconds, as for every database connection of retentiond


class AdvisoryLocks:
    """Session-level PostgreSQL advisory locks in the ledger's database."""

    kind = "postgresql"

    def __init__(self, url: str, ledger_id: str) -> None:
        parsed = sa.engine.make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, as the ledger's own engine
        # Not pooled: a session that may still hold a lock is never handed back to a pool.
        self.engine = sa.create_engine(
            parsed, poolclass=sa.pool.NullPool, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT}
        )
        self.ledger_id = ledger_id

    def try_acquire(self, category: str) -> HeldLock | None:
        """Return the held lock of ``category``, or None when another session holds it.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        from retentiond.errors import TemporaryFailure

        key = advisory_key(self.ledger_id, category)
        try:
            conn = self.engine.connect()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
            conn.commit()  # keep no transaction open while the run goes on: the lock is per session
        except sa.exc.OperationalError as exc:
            raise TemporaryFailure(
                f"ledger database unreachable for the runner lock: {type(exc.orig).__name__}"
            ) from None
        if not got:
            conn.close()
            return None
        return _HeldAdvisory(conn, key)

    def close(self) -> None:
        """Dispose of the engine."""
        self.engine.dispose()


def runner_locks(ledger_url: str, ledger_id: str, state_dir: Path) -> RunnerLocks:
    """Return advisory locks when the ledger is PostgreSQL, file locks in ``state_dir`` otherwise."""
    if sa.engine.make_url(ledger_url).get_backend_name() == "postgresql":
        return AdvisoryLocks(ledger_url, ledger_id)
    return FileLocks(state_dir)


class CategoryLeases:
    """The leases a one-shot run holds for its whole duration (the daemon takes one per job)."""

    def __init__(self, loaded: LoadedConfig) -> None:
        from retentiond.actions.setup import ledger_url

        self._locks = runner_locks(ledger_url(loaded), loaded.settings.audit.ledger_id, loaded.state_dir)
        self._held: list[HeldLock] = []

    def take(self, categories: Sequence[str]) -> list[str]:
        """Take the lease of each of ``categories``; return those another runner holds (not taken).

        Raises:
            TemporaryFailure: the lease's database is unreachable.
        """
        elsewhere: list[str] = []
        for category in categories:
            held = self._locks.try_acquire(category)
            if held is None:
                elsewhere.append(category)
            else:
                self._held.append(held)
        return elsewhere

    def release(self) -> None:
        """Release every lease taken and the locks' engine (idempotent)."""
        while self._held:
            self._held.pop().release()
        self._locks.close()
