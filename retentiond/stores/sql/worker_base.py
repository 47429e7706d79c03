"""The shared part of an SQL target worker: its claim and settings, the acting condition, key lists.

:class:`~retentiond.stores.sql.worker.TargetWorker` is assembled from this base, the plan
counts (:mod:`retentiond.stores.sql.counting`), the prior versions
(:mod:`retentiond.stores.sql.history`) and the batches of records (:mod:`retentiond.stores.sql.worker`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from retentiond.config.holds import Hold
from retentiond.stores.sql.anonymize import Pseudonymizer
from retentiond.stores.sql.binding import BoundTarget
from retentiond.stores.sql.engine import CUSTOM_PLANS
from retentiond.stores.sql.keyed import row_key_text_sql
from retentiond.stores.sql.outbox import Outbox
from retentiond.stores.sql.predicates import Claim, eligible, erasable, not_anonymized

# The canonical key text of a row's key values (``audit.refs.canonical_key``, handed in).
KeyText = Callable[[Sequence[Any]], str]


def _pg_batch_settings(conn: sa.Connection, lock_timeout: timedelta, statement_timeout: timedelta) -> None:
    # set_config(..., true) is SET LOCAL with bound values: scoped to this batch's transaction.
    conn.execute(
        sa.select(
            sa.func.set_config("lock_timeout", f"{int(lock_timeout.total_seconds() * 1000)}ms", True),
            sa.func.set_config("statement_timeout", f"{int(statement_timeout.total_seconds() * 1000)}ms", True),
            sa.func.set_config("plan_cache_mode", CUSTOM_PLANS, True),
        )
    )


def _canonical_keys(key_text: KeyText | None, keys: list[tuple[Any, ...]]) -> str:
    """Return the canonical key texts of ``keys`` as a JSON array (what record refs are made of)."""
    assert key_text is not None, "a worker that writes needs key_text (the canonical key text of a row)"
    return json.dumps([key_text(k) for k in keys], separators=(",", ":"), ensure_ascii=False)


class WorkerBase:
    """What every part of a target worker shares: the claim, the settings, the conditions."""

    def __init__(
        self,
        engine: sa.Engine,
        acting: Claim,
        others: Sequence[Claim],
        *,
        batch_size: int,
        lock_timeout: timedelta,
        statement_timeout: timedelta,
        pseudonym: Pseudonymizer,
        outbox: Outbox,
        prior_versions_cutoff: datetime | None,
        key_text: KeyText | None = None,
        subjects: Sequence[str] | None = None,
        never: frozenset[str] = frozenset(),
        statements: sa.Engine | None = None,
    ) -> None:
        self.engine = engine
        # One-statement batches run here (stores.sql.engine.statement_engine); None: on ``engine``.
        self.statements = statements
        self.acting = acting
        self.others = list(others)
        self.target: BoundTarget = acting.target
        self.batch_size = batch_size
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.pseudonym = pseudonym
        self.outbox = outbox
        self.prior_cutoff = prior_versions_cutoff
        self.anonymize = acting.action == "anonymize"
        self.key_text = key_text  # canonical key text of a row's key (handed in: stores do not import audit)
        # Rows a statement refused in this run (stores.sql.poison): not tried again until the next run.
        self.failed_keys: list[tuple[Any, ...]] = []
        # An erasure request's subjects (None: a retention run) and the erasure = "never" categories.
        self.subjects = list(subjects) if subjects is not None else None
        self.never = never
        # Conditions a dry run's batches add: rows the whole-partition step already counted (stores.sql.partitions).
        self.excluded: list[ColumnElement[bool]] = []
        # The canonical key text as an SQL expression (PostgreSQL, key columns of types whose
        # text SQL produces exactly): batches then describe their rows in one value.
        self.key_text_sql: ColumnElement[Any] | None = None
        self._relkind: str | None = None  # pg_class.relkind of the target, read once
        self._temp: bool | None = None  # whether the role may create temporary tables, read once
        # The share of the table this run acts on and the table's rows (set by the plan counts):
        # a dense target's batches walk page ranges (stores.sql.pages); None once walked.
        self.density: float | None = None
        self.table_rows = 0
        if self.target.dialect == "postgresql":
            self.key_text_sql = row_key_text_sql(self.target.key)

    # -- what the run driver reads (the S3 worker offers the same) -----------------------------

    @property
    def category(self) -> str:
        """Return the acting category."""
        return self.acting.category

    @property
    def action(self) -> str:
        """Return "delete" or "anonymize"."""
        return self.acting.action

    @property
    def cutoff(self) -> datetime:
        """Return the acting category's cutoff for this run."""
        return self.acting.cutoff

    @property
    def store(self) -> str:
        """Return the store name."""
        return self.target.store

    @property
    def target_name(self) -> str:
        """Return the target's name in reports and the ledger (the table as configured)."""
        return self.target.table_name

    @property
    def has_history(self) -> bool:
        """Return True when prior versions expire on their own (history table and prior_versions)."""
        return self.target.history is not None and self.prior_cutoff is not None

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, holds: Sequence[Hold], run_start: datetime) -> ColumnElement[bool]:
        """Return the full condition under which this worker may touch a row now."""
        cond = self._base(holds, run_start, ignore_holds=False)
        if self.anonymize:
            cond = sa.and_(cond, not_anonymized(self.target))
        return cond

    def _base(self, holds: Sequence[Hold], run_start: datetime, *, ignore_holds: bool) -> ColumnElement[bool]:
        """Return the selection's condition: expiry (a run) or the subjects' records (an erasure)."""
        if self.subjects is not None:
            return erasable(
                self.acting, self.others, holds, run_start, self.subjects, self.never, ignore_holds=ignore_holds
            )
        return eligible(self.acting, self.others, holds, run_start, ignore_holds=ignore_holds)

    def keyset_order(self) -> list[sa.Column[Any]]:
        """Return the keyset order of batches: (age, key) for a run; the key alone for an erasure (NULL ages go too).

        The key columns are always the last ``len(target.key)`` of the order.
        """
        t = self.target
        if self.subjects is not None:
            return list(t.key)
        return [t.table.c[t.age.name], *t.key]

    def _key_in(
        self, keys: list[tuple[Any, ...]], columns: Sequence[sa.Column[Any]] | None = None
    ) -> ColumnElement[bool]:
        cols = list(columns or self.target.key)
        if len(cols) == 1:
            values = [k[0] for k in keys]
            if self.target.dialect == "postgresql":
                return cols[0] == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(cols[0].type)))
            return cols[0].in_(values)
        if self.target.dialect == "postgresql":
            # One array per key column, zipped by unnest(): a semi-join the planner hashes. A
            # literal list of row constructors costs a comparison per listed key for every row
            # scanned (seconds per batch of 5,000 on a partitioned table, whose key has two columns).
            arrays = [
                sa.bindparam(None, [k[i] for k in keys], type_=postgresql.ARRAY(c.type)) for i, c in enumerate(cols)
            ]
            listed = sa.func.unnest(*arrays).table_valued(*[f"k{i}" for i in range(len(cols))]).render_derived()
            return sa.tuple_(*cols).in_(sa.select(*listed.c))
        return sa.tuple_(*cols).in_(keys)

    # -- the target relation (PostgreSQL catalog facts, read once) ------------------------------

    def _may_use_temp(self) -> bool:
        """Return True when the role may create temporary tables (pseudonyms made in the statement); cached.

        Without TEMPORARY on the database, ``hmac`` pseudonyms are made in Python, row by row.
        """
        if self._temp is None:
            with self.engine.connect() as conn:
                allowed = sa.func.has_database_privilege(sa.func.current_database(), "TEMPORARY")
                self._temp = bool(conn.execute(sa.select(allowed)).scalar_one())
        return self._temp

    def _plain_table(self) -> bool:
        """Return True when batches may name rows by tuple id; cached.

        That is an ordinary PostgreSQL table (a tuple id names one row; a partitioned table's
        repeat across partitions) whose ``ctid`` the role may read: a role granted column by
        column before tuple ids were used lacks ``SELECT (ctid)`` (``print-grants`` prints it now)
        and keeps batches named by key.
        """
        if self._relkind is None:
            t = self.target
            pg_class = sa.table("pg_class", sa.column("oid"), sa.column("relkind"), schema="pg_catalog")
            name = self.engine.dialect.identifier_preparer.format_table(t.table)
            readable = sa.func.has_column_privilege(pg_class.c.oid, "ctid", "SELECT")
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(sa.cast(pg_class.c.relkind, sa.Text), readable).where(
                        pg_class.c.oid == sa.func.to_regclass(name)
                    )
                ).one_or_none()
            self._relkind = row[0] if row is not None and row[1] else "?"
        return self._relkind == "r"

    def needs_keys(self, assignments: dict[str, Any] | None) -> bool:
        """Return True when ``assignments`` make pseudonyms in the statement (its keys must be loaded)."""
        return assignments is not None and "hmac" in (self.target.config.anonymize or {}).values()

    def walks_pages(self) -> bool:
        """Return True when batches may be page ranges: an ordinary table, PostgreSQL ≥ 14, keys as SQL text."""
        version = self.engine.dialect.server_version_info or (0,)
        return (
            self.key_text_sql is not None and self.target.history is None and version >= (14,) and self._plain_table()
        )

    def pages_expression(self) -> ColumnElement[int]:
        """Return the SQL expression of the target table's size in pages (now)."""
        name = self.engine.dialect.identifier_preparer.format_table(self.target.table)
        block = sa.cast(sa.func.current_setting("block_size"), sa.BigInteger)
        return sa.cast(sa.func.pg_relation_size(sa.func.to_regclass(name)) / block, sa.BigInteger)

    def relation_pages(self) -> int:
        """Return the target table's size in pages."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(self.pages_expression())).scalar_one() or 0)
