"""What a database error means for a run, and how to name it without the values it may carry.

PostgreSQL puts values in an error's DETAIL and sometimes in its primary message (``invalid input
syntax for type integer: "…"``, or whatever a trigger's RAISE says). What retentiond shows,
logs and audits is built from the SQLSTATE and the object names of the error's diagnostics
(constraint, table, column), plus the primary message only for the classes whose messages
name servers, databases and roles (connection, authentication, missing database).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from retentiond.errors import ConfigError, ConfigIssue, RetentiondError, TemporaryFailure

#: libpq reports a connection the server refused at start-up as text only, without a SQLSTATE
#: (there is no result to read it from): the server's FATAL line, in English unless the server's
#: lc_messages says otherwise, is matched to the SQLSTATE the server logged.
_STARTUP_REFUSALS = (
    (re.compile(r'database ".*" does not exist'), "3D000", "InvalidCatalogName"),
    (re.compile(r'role ".*" does not exist'), "28000", "InvalidAuthorizationSpecification"),
    (re.compile(r"no pg_hba\.conf entry"), "28000", "InvalidAuthorizationSpecification"),
    (re.compile(r"authentication failed"), "28P01", "InvalidPassword"),
    (re.compile(r"permission denied for database"), "42501", "InsufficientPrivilege"),
)
_FATAL = re.compile(r"FATAL:\s+(.+)")

#: SQLSTATE classes whose primary message names no record value.
_NAMING_CLASSES = frozenset({"08", "28", "3D", "53", "57"})
#: ... and single states whose fixed message says what happened ("canceling statement due to lock
#: timeout", "deadlock detected", "could not serialize access due to concurrent update").
_NAMING_STATES = frozenset({"55P03", "40001", "40P01"})
#: A database that does not exist, a role refused: the configuration is wrong; retrying will not help.
_CONFIGURATION_CLASSES = frozenset({"28", "3D"})
#: Refused at connection start-up: CONNECT privilege missing on the database (42501 otherwise
#: is a statement's missing privilege, which the --connect checks name column by column).
_CONFIGURATION_STATES = frozenset({"42501"})
#: Retried per batch (bounded): lock and statement timeouts, serialization failures and
#: deadlocks, connections that dropped, a server shutting down or out of resources.
_TRANSIENT_STATES = frozenset({"55P03", "57014", "40001", "40P01", "57P01", "57P02", "57P03"})
_TRANSIENT_CLASSES = frozenset({"08", "53"})
#: The statement failed because of one or more rows (integrity, data, a trigger's RAISE): the
#: batch is split so every other row is still acted on.
_RECORD_CLASSES = frozenset({"23", "22", "P0"})


@dataclass(frozen=True)
class DatabaseError:
    """A database error reduced to what may be shown: SQLSTATE, condition and object names."""

    sqlstate: str | None
    condition: str
    constraint: str | None = None
    table: str | None = None
    column: str | None = None
    message: str | None = None
    #: Set for drivers without SQLSTATEs (SQLite): whether a retry may help ("database is locked").
    retry: bool | None = None

    @property
    def transient(self) -> bool:
        """True when the same statement may succeed if retried (see ``_TRANSIENT_STATES``)."""
        if self.retry is not None:
            return self.retry
        if self.sqlstate is None:
            return True  # no SQLSTATE: the connection itself failed (refused, reset, timed out)
        return self.sqlstate in _TRANSIENT_STATES or self.sqlstate[:2] in _TRANSIENT_CLASSES

    @property
    def configuration(self) -> bool:
        """True when the store's configuration is wrong (no such database, role refused)."""
        if self.sqlstate is None:
            return False
        return self.sqlstate[:2] in _CONFIGURATION_CLASSES or self.sqlstate in _CONFIGURATION_STATES

    @property
    def caused_by_records(self) -> bool:
        """True when rows of the statement caused it (classes 23, 22, P0)."""
        return self.sqlstate is not None and self.sqlstate[:2] in _RECORD_CLASSES

    def render(self) -> str:
        """Return ``SQLSTATE 23503 ForeignKeyViolation (constraint …, table …): message`` without values."""
        head = f"SQLSTATE {self.sqlstate} {self.condition}" if self.sqlstate else self.condition
        names = [f"{label} {value}" for label, value in (("constraint", self.constraint), ("table", self.table),
                                                         ("column", self.column)) if value]  # fmt: skip
        if names:
            head += f" ({', '.join(names)})"
        return f"{head}: {self.message}" if self.message else head


def describe(exc: BaseException) -> DatabaseError:
    """Return what may be shown of ``exc`` (a SQLAlchemy ``DBAPIError`` or a driver error)."""
    orig: Any = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    diag: Any = getattr(orig, "diag", None)
    condition = type(orig).__name__
    message = None
    if isinstance(orig, sqlite3.Error):
        return _describe_sqlite(orig)
    if diag is not None and (sqlstate is None or sqlstate[:2] in _NAMING_CLASSES or sqlstate in _NAMING_STATES):
        message = diag.message_primary
    if message is None and sqlstate is None:
        # libpq's own text for a connection that never opened: host, port and the reason.
        text = str(orig).strip()
        fatal = _FATAL.search(text)
        if fatal is not None:
            message = fatal.group(1).strip()
            for pattern, state, name in _STARTUP_REFUSALS:
                if pattern.search(message):
                    sqlstate, condition = state, name
                    break
        elif text:
            message = text.splitlines()[0]
    return DatabaseError(
        sqlstate=sqlstate,
        condition=condition,
        constraint=getattr(diag, "constraint_name", None),
        table=getattr(diag, "table_name", None),
        column=getattr(diag, "column_name", None),
        message=message,
    )


def _describe_sqlite(orig: sqlite3.Error) -> DatabaseError:
    """Return a SQLite error classified as PostgreSQL's would be (SQLite has no SQLSTATE).

    A constraint, foreign key or trigger ``RAISE(ABORT)`` is ``IntegrityError``: class 23, caused
    by records. A locked or busy database may be retried. SQLite's messages may quote a trigger's
    text, so none is kept.
    """
    if isinstance(orig, sqlite3.IntegrityError):
        return DatabaseError(sqlstate="23000", condition=type(orig).__name__, retry=False)
    if isinstance(orig, sqlite3.DataError):
        return DatabaseError(sqlstate="22000", condition=type(orig).__name__, retry=False)
    if isinstance(orig, sqlite3.OperationalError):
        # "database is locked", "no such table: t": objects and states, not values.
        text = (str(orig).splitlines() or [""])[0]
        busy = any(w in text for w in ("locked", "busy"))
        return DatabaseError(sqlstate=None, condition=type(orig).__name__, message=text or None, retry=busy)
    return DatabaseError(sqlstate=None, condition=type(orig).__name__, retry=False)


def connection_error(store: str, exc: BaseException) -> RetentiondError:
    """Return the error to raise when store ``store`` cannot be used at all.

    A database that does not exist or a role the server refuses is a ``ConfigError`` naming
    ``stores.<store>.url`` (exit 78: systemd must not restart-loop on it); anything else is a
    ``TemporaryFailure`` (exit 75). Both carry the SQLSTATE and the server's primary message.
    """
    described = describe(exc)
    if described.configuration:
        return ConfigError([ConfigIssue(f"stores.{store}.url", f"the database refused it: {described.render()}")])
    return TemporaryFailure(f"store {store!r} unreachable: {described.render()}")
