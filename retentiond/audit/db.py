"""Database plumbing of the ledger: transactions (SQLite write lock at BEGIN, PostgreSQL
snapshots for reads), SQLite pragmas, the error mapping, and the refs-index digest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, event
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from retentiond.errors import TemporaryFailure

#: How long a connection keeps trying to switch a new ledger file to WAL while another opener holds it.
WAL_SWITCH_SECONDS = 60.0


def temporary(exc: Exception) -> TemporaryFailure:
    orig = getattr(exc, "orig", None) or exc
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else orig.__class__.__name__
    return TemporaryFailure(f"audit ledger unreachable: {first_line}")


def multiset_digest(pairs: Iterable[tuple[int, bytes]]) -> int:
    """Return an order-independent digest of ``(seq, ref)`` pairs (sum of 128-bit hashes)."""
    total = 0
    sha = hashlib.sha256
    for seq, ref in pairs:
        total += int.from_bytes(sha(seq.to_bytes(8, "big") + ref).digest()[:16], "big")
    return total & ((1 << 128) - 1)


def _locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc)


def _switch_to_wal(cursor: Any) -> None:
    # SQLite skips the busy handler when waiting could deadlock (this connection holds a shared
    # lock while another opener holds the reserved one, creating the schema), so the switch is
    # retried here instead of failing the run with "database is locked".
    retrying = Retrying(
        retry=retry_if_exception(_locked),
        stop=stop_after_delay(WAL_SWITCH_SECONDS),
        wait=wait_random(0.005, 0.05),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")


class Tx:
    """A transaction on a fresh connection: writes take SQLite's lock at BEGIN (IMMEDIATE);
    reads in PostgreSQL use REPEATABLE READ so that verify sees one snapshot."""

    def __init__(self, engine: Engine, *, write: bool) -> None:
        self._engine = engine
        self._write = write

    def __enter__(self) -> Connection:
        conn = self._engine.connect()
        if self._engine.dialect.name == "sqlite":
            conn = conn.execution_options(rtd_immediate=self._write)
        elif not self._write:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        self._conn = conn
        self._tx = conn.begin()
        return conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        finally:
            self._conn.close()


def sqlite_setup(engine: Engine) -> None:
    """Make pysqlite leave transactions to us (BEGIN IMMEDIATE / DEFERRED), WAL, synchronous=FULL."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not emit its own BEGIN
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching a new file to WAL waits for a second process or
        # thread opening it at the same moment instead of failing with "database is locked".
        cursor.execute("PRAGMA busy_timeout=60000")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so the seq read and the insert are atomic.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("rtd_immediate") else "BEGIN")
