"""Batches bounded by a range of heap pages (PostgreSQL ≥ 14, ordinary tables): the dense case.

When a large share of a table is due (a first run, a backlog), walking the age index row by
row costs more than the rows themselves: each batch sorts its keyset page and fetches every
row through the index. A batch bounded by a range of the table's pages instead reads those
pages once, in physical order (a TID range scan, like the raw ``DELETE``'s sequential scan
cut into pieces), and acts on the rows of them that the full condition — expiry, filters,
overlaps, holds — selects right there, in the statement that acts::

    WITH gone AS (DELETE FROM t WHERE ctid >= '(lo,0)' AND ctid < '(hi,0)' AND <cond> RETURNING <key text>),
         recorded AS (INSERT INTO retentiond_outbox … SELECT …, count(*), json_agg(<key text>) FROM gone …)
    SELECT (SELECT count FROM recorded), (SELECT keys FROM recorded), pg_relation_size(t) / block_size

The range grows or shrinks after each batch so that a batch touches about ``batch_size`` rows
and takes about ``BATCH_SECONDS`` at most (a region with nothing due is crossed in few
statements; a dense or slow one in short batches, which bounds how long a conflicting writer
waits for a row lock). The walk ends at the table's size read by the
last batch, so pages appended meanwhile are walked too. A row updated meanwhile into a page
already walked is left for the run's next sweep, which walks the index (few rows remain).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from retentiond.stores.base import BatchResult, Cursor
from retentiond.stores.sql.keyed import json_texts

if TYPE_CHECKING:
    from retentiond.stores.sql.worker import TargetWorker

#: Walk pages only when at least this share of the table is due (else the index is cheaper).
MIN_DENSITY = 0.2
#: A range never spans more pages than this (a statement's scan stays short).
MAX_PAGES = 65_536
#: A batch aims to hold its row locks at most about this long: a writer waiting on one of its rows
#: waits about one batch (anonymizing writes new row versions and is several times slower per
#: row than deleting, so its ranges get shorter than ``batch_size`` rows).
BATCH_SECONDS = 0.025


class Tid(sa.types.UserDefinedType[str]):
    """PostgreSQL's ``tid`` (a tuple id, ``(page,item)``)."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        """Return the type's name in DDL and casts."""
        return "TID"


@dataclass(frozen=True)
class Pages:
    """A cursor position of the page walk: the next page and the range's current length."""

    next_page: int
    span: int


def position(cursor: Cursor) -> Pages | None:
    """Return the page walk's position held by ``cursor``, or None when it walks the index."""
    after = cursor.after
    if after and isinstance(after[0], Pages):
        return after[0]
    return None


def start(worker: TargetWorker, density: float | None, rows: int, cursor: Cursor) -> bool:
    """Start a page walk at ``cursor`` when the target suits one; return whether it did.

    ``density`` is the share of the table's ``rows`` the run acts on (from its plan counts).
    """
    if density is None or density < MIN_DENSITY or rows <= 0 or not worker.walks_pages():
        return False
    pages = worker.relation_pages()
    per_page = max(rows / max(pages, 1), 1.0)
    span = max(1, min(MAX_PAGES, int(worker.batch_size / (per_page * density))))
    cursor.after = (Pages(0, span),)
    return True


def _tid(page: int) -> ColumnElement[Any]:
    # A bound text parameter cast to tid (the page number is an int of ours, not input).
    return sa.cast(sa.bindparam(None, f"({page},0)", sa.Text), Tid())


def act(worker: TargetWorker, cursor: Cursor, cond: ColumnElement[bool], run_id: str, assignments: Any) -> BatchResult:
    """Act on the due rows of the next page range; advance ``cursor`` once the batch committed."""
    at = position(cursor)
    assert at is not None
    t = worker.target
    key_text = worker.key_text_sql
    assert key_text is not None
    tid: ColumnElement[Any] = sa.literal_column("ctid")
    lo, hi = at.next_page, at.next_page + at.span
    action = sa.delete(t.table) if assignments is None else sa.update(t.table).values(assignments)
    in_range = sa.and_(tid >= _tid(lo), tid < _tid(hi))
    gone = action.where(in_range).where(cond).returning(key_text.label("k")).cte("gone")
    outcome = worker.outbox_rows(run_id, [], [], key_texts=("", 1))[0]
    recorded = worker.outbox.insert_aggregate(outcome, json_texts(gone.c.k, worker.target.key)).cte("recorded")
    stmt = sa.select(
        sa.select(recorded.c["count"]).scalar_subquery().label("touched"),
        sa.select(recorded.c["keys"]).scalar_subquery().label("keys"),
        worker.pages_expression().label("pages"),
    )
    started = time.monotonic()
    result, pages = worker.commit_range(stmt, outcome, keys=worker.needs_keys(assignments))
    elapsed = time.monotonic() - started
    touched = result.touched
    # Aim the next range at batch_size rows and BATCH_SECONDS, whichever is smaller: grow across
    # regions with nothing due, shrink in dense or slow ones.
    span = at.span * 2
    if touched:
        span = min(span, int(at.span * worker.batch_size / touched))
    if elapsed > BATCH_SECONDS:
        span = min(span, int(at.span * BATCH_SECONDS / elapsed))
    span = max(1, min(MAX_PAGES, span))
    cursor.after = (Pages(hi, span),)
    if hi >= pages:
        worker.density = None  # walked: a further sweep takes the few rows left through the index
    return BatchResult(
        selected=touched,
        touched=touched,
        history=0,
        outbox=result.outbox,
        exhausted=hi >= pages,
    )
