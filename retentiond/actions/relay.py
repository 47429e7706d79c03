"""Relay batch outcomes from a store's outbox (or intent journal) to the audit ledger.

A batch's outcome is already durable in the outbox when its transaction commits; appending it
to the ledger can therefore overlap the next batch's statement. ``Relay`` does that on one
background thread with a short queue (so memory stays bounded and the ledger never falls
more than a couple of batches behind); ``flush()`` waits for it before anything that must
come after the batches in the ledger (held counts, ``run_finished``). A crash at any point
leaves the unrelayed rows in the outbox, and the next run relays them (exactly once).
"""

from __future__ import annotations

import contextvars
import json
import queue
import threading
from collections.abc import Mapping

from retentiond.audit.events import Action, Batch, Outcome
from retentiond.audit.ledger import DuplicateBatch, Ledger
from retentiond.audit.refs import RecordRef, RefBlock, RefMaker, split_refs
from retentiond.audit.values import Name, SqlState
from retentiond.stores.base import OutcomeJournal, OutcomeRow
from retentiond.testing.crashpoints import crash_point


def _refs(row: OutcomeRow, refs: RefMaker) -> tuple[tuple[RecordRef, ...], RefBlock | None]:
    """Return a row's refs: one by one (an S3 row's versions then objects), or in one block (key texts)."""
    if row.keys:
        block = refs.sql_text_block(row.store, row.target, json.loads(row.keys))
        return (), block if len(block) else None
    return split_refs(row.refs), None


def _failure(row: OutcomeRow) -> dict[str, str | None]:
    """Return the failure's fields of a ``failed`` row; a name that is not a ledger Name is left out."""
    if not row.failure:
        return {}
    data = json.loads(row.failure)
    out: dict[str, str | None] = {}
    for field, kind in (("sqlstate", SqlState), ("constraint", Name), ("relation", Name)):
        value = data.get(field)
        try:
            out[field] = kind(value) if isinstance(value, str) else None
        except ValueError:
            out[field] = None  # e.g. a quoted identifier with spaces: the SQLSTATE still says what failed
    return out


#: At most this many outbox rows go to the ledger in one transaction (their refs are made first).
APPEND_EVERY = 16


def _event(
    row: OutcomeRow, refs: RefMaker, requests: Mapping[str, str] | None
) -> tuple[Batch, str | None, RefBlock | None]:
    """Return the batch event of ``row``, its run id and its refs made in one block (if so)."""
    each, block = _refs(row, refs)
    versions, objects = Batch.split(each, row.count)
    failure = _failure(row)
    event = Batch(
        batch_id=row.batch_id,
        category=row.category,
        store=row.store,
        target=row.target,
        action=Action(row.action),
        outcome=Outcome(row.outcome),
        count=row.count,
        refs=versions,
        object_refs=objects,
        prior_versions=row.prior_versions,
        prefix=row.prefix,
        request=(requests or {}).get(row.run_id),
        sqlstate=failure.get("sqlstate"),
        constraint=failure.get("constraint"),
        relation=failure.get("relation"),
    )
    return event, row.run_id, block


def _append(ledger: Ledger, events: list[tuple[Batch, str | None, RefBlock | None]]) -> int:
    """Append ``events`` in one ledger transaction (one lock of the head, one commit); return how many were new.

    When some batch is in the ledger already (appended before a crash, only its outbox row was
    left), they are appended one at a time, skipping those.
    """
    try:
        appended = len(ledger.append_many(events))
        for _ in events:
            crash_point("relay_after_append")
        return appended
    except DuplicateBatch:
        pass
    appended = 0
    for event, run_id, block in events:
        try:
            ledger.append(event, run_id=run_id, refs=block)
            appended += 1
        except DuplicateBatch:
            pass
        crash_point("relay_after_append")
    return appended


def relay_rows(
    ledger: Ledger,
    refs: RefMaker,
    journal: OutcomeJournal,
    rows: list[OutcomeRow],
    requests: Mapping[str, str] | None = None,
    *,
    remove: bool = True,
) -> int:
    """Append each row to the ledger unless its batch is there already, then remove the rows.

    ``requests`` maps the run ids of erasure requests to their reference (carried by their entries).
    ``remove`` False leaves the removal to the caller (rows left behind are only removed again
    by the next run: the ledger already knows their batch ids).

    Returns the number of entries appended (rows already in the ledger are only removed).

    Raises:
        TemporaryFailure: the ledger is unreachable (the rows stay in the outbox).
    """
    appended = 0
    for first in range(0, len(rows), APPEND_EVERY):
        appended += _append(ledger, [_event(row, refs, requests) for row in rows[first : first + APPEND_EVERY]])
    if remove:
        journal.remove([r.batch_id for r in rows])
    return appended


#: Relayed outbox rows are removed in groups of this many (at most) batches.
REMOVE_EVERY = 16


class Relay:
    """Appends outbox rows to the ledger on a background thread (what queued up meanwhile in one transaction)."""

    def __init__(
        self, ledger: Ledger, refs: RefMaker, *, depth: int = 2, requests: Mapping[str, str] | None = None
    ) -> None:
        self.ledger = ledger
        self.refs = refs
        self.requests = dict(requests or {})
        # Each item carries the log context of the batch that submitted it (run_id, category, target).
        self._queue: queue.Queue[tuple[contextvars.Context, OutcomeJournal, list[OutcomeRow]] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        # Relayed rows not yet removed from their journal, by journal: removed together (one
        # statement per REMOVE_EVERY batches, and whenever the queue runs dry), not one by one.
        self._relayed: dict[int, tuple[OutcomeJournal, list[str]]] = {}
        self._thread = threading.Thread(target=self._loop, name="retentiond-relay", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            items = [self._queue.get()]
            # The batches that queued up while the last ones were written go to the ledger together.
            while items[-1] is not None:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                work = [i for i in items if i is not None]
                if work and self._error is None:
                    self._relay(work)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the driver's thread
                self._error = exc
            finally:
                for _ in items:
                    self._queue.task_done()
            if items[-1] is None:
                return

    def _relay(self, items: list[tuple[contextvars.Context, OutcomeJournal, list[OutcomeRow]]]) -> None:
        """Append the rows of ``items`` in submission order, one ledger transaction per run of one journal."""
        start = 0
        while start < len(items):
            context, journal, _ = items[start]
            end = start + 1
            while end < len(items) and items[end][1] is journal:
                end += 1
            rows = [row for _, _, batch in items[start:end] for row in batch]
            context.run(relay_rows, self.ledger, self.refs, journal, rows, self.requests, remove=False)
            held = self._relayed.setdefault(id(journal), (journal, []))[1]
            held.extend(r.batch_id for r in rows)
            if len(held) >= REMOVE_EVERY or self._queue.empty():
                self._remove()
            start = end

    def _remove(self) -> None:
        for journal, ids in self._relayed.values():
            journal.remove(ids)
        self._relayed.clear()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, journal: OutcomeJournal, rows: list[OutcomeRow]) -> None:
        """Queue ``rows`` for the ledger; blocks while two batches are already waiting.

        Raises:
            The error of an earlier relay (the rows it failed on stay in the outbox).
        """
        self._raise()
        if rows:
            self._queue.put((contextvars.copy_context(), journal, rows))

    def flush(self) -> None:
        """Wait until every queued row is in the ledger.

        Raises:
            The error of a relay that failed.
        """
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Stop the thread after the queued rows (errors are dropped: the outbox keeps those rows)."""
        self._queue.put(None)
        self._thread.join(timeout=60)
