"""One bad record never blocks the rest: split a batch a record refused, down to single rows.

When a batch's statement fails because of its rows (SQLSTATE classes 23, 22, P0: a foreign
key ``ON DELETE RESTRICT`` from a table outside the category, a unique or check constraint an
anonymization hits, a trigger's ``RAISE``), the batch's transaction is rolled back and the same
selection is made again in a new one. Its rows are then acted on in halves, each in a
savepoint (PostgreSQL; SQLite undoes just the failed statement), a refused half halved again,
until every row is either acted on or refused alone. A refused row is written to the outbox as
a ``failed`` outcome — its ref, the SQLSTATE and the constraint and table the error named,
never the error's message or DETAIL (they carry values) — in the same transaction as the rows
acted on, so crash consistency holds for failures as for deletions. The row is not acted on
again in this run (the worker excludes it) and is retried at the next one.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from retentiond.stores.base import BatchResult, Cursor
from retentiond.stores.sql import ages
from retentiond.stores.sql.errors import DatabaseError, describe
from retentiond.stores.sql.outbox import OutboxRow, now_utc
from retentiond.testing.crashpoints import crash_point

if TYPE_CHECKING:
    from retentiond.stores.sql.worker import TargetWorker

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Refused:
    """A row a statement refused, with what the error named (no values)."""

    key: Key
    error: DatabaseError


def refused_by_records(exc: BaseException) -> DatabaseError | None:
    """Return the described error when rows of the statement caused ``exc`` (classes 23, 22, P0), else None."""
    if not isinstance(exc, sa.exc.DBAPIError) or exc.connection_invalidated:
        return None
    described = describe(exc)
    return described if described.caused_by_records else None


def bisect(
    rows: Sequence[sa.Row[Any]],
    act: Callable[[Sequence[sa.Row[Any]]], None],
    guard: Callable[[], contextlib.AbstractContextManager[Any]],
    key_of: Callable[[sa.Row[Any]], Key],
) -> list[Refused]:
    """Call ``act`` on ``rows`` in groups under ``guard`` (a savepoint), halving refused groups.

    Returns the rows refused alone, in selection order.

    Raises:
        sqlalchemy.exc.DBAPIError: a failure not caused by records (lock timeout, lost connection).
    """
    refused: list[Refused] = []
    pending: list[Sequence[sa.Row[Any]]] = [rows]
    while pending:
        group = pending.pop()
        try:
            with guard():
                act(group)
        except sa.exc.DBAPIError as exc:
            error = refused_by_records(exc)
            if error is None:
                raise
            if len(group) == 1:
                refused.append(Refused(key_of(group[0]), error))
                continue
            middle = len(group) // 2
            pending.extend((group[middle:], group[:middle]))  # the first half next: selection order
    return refused


def split_batch(worker: TargetWorker, cursor: Cursor, cond: ColumnElement[bool], run_id: str) -> BatchResult:
    """Select the batch after ``cursor`` again and act on it row group by row group (see module doc).

    The cursor moves past the whole selection, refused rows included, exactly as the unsplit
    batch would have: the keyset order is the selection's, not the outcome's.

    Raises:
        sqlalchemy.exc.DBAPIError: a failure not caused by records.
    """
    t = worker.target
    order = worker.keyset_order()
    key_end = len(order)
    key_start = key_end - len(t.key)
    anonymized_cols = [t.table.c[c] for c in (t.config.anonymize or {})]
    select = ages.keyset_page(order, cond, cursor.after, t.dialect, worker.batch_size, *anonymized_cols)
    touched: list[Key] = []
    history: list[Key] = []
    with worker.engine.begin() as conn:
        if t.dialect == "postgresql":
            worker.set_timeouts(conn)
        rows = conn.execute(select).all()
        if not rows:
            return BatchResult(selected=0, touched=0, history=0, exhausted=True)
        after = tuple(rows[-1][:key_end])

        def act(group: Sequence[sa.Row[Any]]) -> None:
            keys = [tuple(r[key_start:key_end]) for r in group]
            done, gone = worker.act_on(conn, group, keys, cond, key_end)
            touched.extend(done)
            history.extend(gone)

        def guard() -> contextlib.AbstractContextManager[Any]:
            # SQLite undoes a failed statement by itself and keeps the transaction; pysqlite's
            # SAVEPOINT would commit it early, so none is taken there.
            return conn.begin_nested() if t.dialect == "postgresql" else contextlib.nullcontext()

        refused = bisect(rows, act, guard, lambda r: tuple(r[key_start:key_end]))
        out = worker.outbox_rows(run_id, touched, history) + list(failed_rows(worker, run_id, refused))
        worker.outbox.insert(conn, out)
        crash_point("sql_after_outbox_insert")
    crash_point("sql_after_commit")
    cursor.after = after
    worker.failed_keys.extend(r.key for r in refused)
    return BatchResult(
        selected=len(rows),
        touched=len(touched),
        history=len(history),
        outbox=out,
        exhausted=len(rows) < worker.batch_size,
        failed=len(refused),
    )


def failed_rows(worker: TargetWorker, run_id: str, refused: Sequence[Refused]) -> Iterator[OutboxRow]:
    """Yield one ``failed`` outbox row per distinct (SQLSTATE, constraint, table) of ``refused``."""
    t = worker.target
    groups: dict[tuple[str | None, str | None, str | None], list[Key]] = {}
    for r in refused:
        groups.setdefault((r.error.sqlstate, r.error.constraint, r.error.table), []).append(r.key)
    now = now_utc()
    for (sqlstate, constraint, table), keys in groups.items():
        assert worker.key_text is not None
        yield OutboxRow(
            batch_id=str(uuid.uuid4()),
            run_id=run_id,
            category=t.category,
            store=t.store,
            target=t.table_name,
            action=worker.action,
            outcome="failed",
            count=len(keys),
            prior_versions=0,
            refs=b"",
            keys=json.dumps([worker.key_text(k) for k in keys], separators=(",", ":"), ensure_ascii=False),
            created_at=now,
            failure=json.dumps({"sqlstate": sqlstate, "constraint": constraint, "relation": table}),
        )
