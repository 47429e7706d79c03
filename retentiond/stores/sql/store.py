"""A SQL store opened for one run: its engine, outbox and reflected tables, and its workers.

One worker per (category, target), with the claims of other categories on the same table
("longest retention wins"), bound to reflected tables and checked against the live schema
before any write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.config.models import SqlStore
from retentiond.config.secrets import read_secret_text
from retentiond.errors import ConfigError, ConfigIssue, RetentiondError, TemporaryFailure
from retentiond.stores.base import (
    BatchResult,
    Counts,
    Cursor,
    ErasureSelection,
    OutcomeJournal,
    Phase,
    RunContext,
    Selection,
    Worker,
)
from retentiond.stores.sql import retry
from retentiond.stores.sql.anonymize import Pseudonymizer
from retentiond.stores.sql.binding import BoundTarget, bind_target, split_table_name
from retentiond.stores.sql.engine import make_engine, statement_engine
from retentiond.stores.sql.errors import connection_error
from retentiond.stores.sql.outbox import Outbox
from retentiond.stores.sql.partitions import WholePartitions
from retentiond.stores.sql.predicates import Claim, covers
from retentiond.stores.sql.retry import RetryPolicy
from retentiond.stores.sql.worker import TargetWorker

T = TypeVar("T")


def store_engine(loaded: LoadedConfig, name: str, **kwargs: Any) -> sa.Engine:
    """Return an engine for SQL store ``name``.

    Raises:
        ConfigError: the URL is missing or unusable.
    """
    store = loaded.settings.stores[name]
    assert isinstance(store, SqlStore)
    url = read_secret_text(store, "url", f"stores.{name}", base_dir=loaded.directory)
    if not url:
        raise ConfigError([ConfigIssue(f"stores.{name}.url_env", "the store's URL is empty")])
    try:
        return make_engine(url, **kwargs)
    except sa.exc.NoSuchModuleError:
        raise ConfigError(
            [ConfigIssue(f"stores.{name}.url", "the URL names a database driver that is not installed")]
        ) from None
    except (sa.exc.ArgumentError, ValueError):
        # ValueError: a port that is not a number. The URL itself is never echoed (it may hold secrets).
        raise ConfigError(
            [ConfigIssue(f"stores.{name}.url", "not a valid database URL (driver://user@host:port/database)")]
        ) from None


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def check_clock(
    engine: sa.Engine, max_skew: timedelta, store: str, clock: Callable[[], datetime] = _wall_clock
) -> None:
    """Refuse to compute cutoffs when the database clock differs from ``clock`` by more than ``max_skew``.

    ``clock`` is the run's clock (``run_start`` plus the time elapsed since): cutoffs come
    from ``run_start``, so that is the instant the database must agree with.

    Raises:
        TemporaryFailure: the skew is too large, or the database is unreachable.
    """
    if engine.dialect.name != "postgresql":
        return  # SQLite has no clock of its own: it is this host's
    try:
        with engine.connect() as conn:
            before = clock()
            db_now = conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
            after = clock()
    except sa.exc.DBAPIError as exc:
        raise connection_error(store, exc) from None
    ours = before + (after - before) / 2
    skew = abs(db_now - ours)
    if skew > max_skew:
        raise TemporaryFailure(
            f"store {store!r}: database clock differs from this host's by {skew.total_seconds():.0f}s "
            f"(max_clock_skew {max_skew.total_seconds():.0f}s); refusing to compute cutoffs"
        )


def unreachable(name: str, exc: sa.exc.DBAPIError) -> RetentiondError:
    """Return the failure of store ``name`` being unusable: ConfigError (no such database, role refused) or
    TemporaryFailure, with the SQLSTATE and the server's primary message, never the URL."""
    return connection_error(name, exc)


@dataclass
class StoreHandle:
    """An open SQL store: its engine, its outbox and the tables reflected so far."""

    name: str
    engine: sa.Engine
    outbox: Outbox
    metadata: sa.MetaData = field(default_factory=sa.MetaData)
    bound: dict[tuple[str, int], BoundTarget] = field(default_factory=dict)
    checked: set[tuple[str, int]] = field(default_factory=set)
    catalog: Any = None  # SchemaCatalog, built on first check: reflects foreign keys once per store

    def check(self, category: str, index: int, loaded: LoadedConfig) -> None:
        """Refuse the target before any write when the live schema makes it unsafe (docs/architecture.md).

        The checks of ``config validate --connect``: ON DELETE CASCADE into tables outside the
        category, age/superseded columns that are not timestamps, strategies that do not fit
        their columns, missing privileges. Run once per target and run.

        Raises:
            ConfigError: the target is refused.
            TemporaryFailure: the database is unreachable.
        """
        key = (category, index)
        if key in self.checked:
            return
        from retentiond.stores.sql.inspect import SchemaCatalog, check_sql_target

        try:
            if self.catalog is None:
                self.catalog = SchemaCatalog(self.engine)
            issues = check_sql_target(self.engine, loaded.settings, category, index, catalog=self.catalog)
        except sa.exc.OperationalError as exc:
            raise unreachable(self.name, exc) from None
        if issues:
            raise ConfigError(issues)
        self.checked.add(key)

    def bind(self, category: str, index: int, loaded: LoadedConfig) -> BoundTarget:
        """Return the category's target ``index`` bound to its reflected table (cached).

        Raises:
            ConfigError: a table or column is missing or unusable.
            TemporaryFailure: the database is unreachable.
        """
        key = (category, index)
        if key not in self.bound:
            target = loaded.settings.categories[category].sql[index]
            try:
                with self.engine.connect() as conn:
                    self.bound[key] = bind_target(conn, category, index, target, self.metadata)
            except sa.exc.OperationalError as exc:
                raise unreachable(self.name, exc) from None
        return self.bound[key]

    def same_table(self, a: str, b: str) -> bool:
        """Return True when table names ``a`` and ``b`` name the same table ("tickets" = "public.tickets").

        Longest retention wins must see every category on a table, however its name is spelled;
        an unqualified name is in the database's default schema.
        """
        default = self.engine.dialect.default_schema_name  # known: binding has connected
        schema_a, table_a = split_table_name(a)
        schema_b, table_b = split_table_name(b)
        return (schema_a or default, table_a) == (schema_b or default, table_b)


class SqlWorker:
    """The run driver's view of a :class:`TargetWorker` (the :class:`~retentiond.stores.base.Worker` protocol)."""

    prefix: str | None = None

    def __init__(
        self, inner: TargetWorker, selection: Selection, run_id: str, retry: RetryPolicy | None = None
    ) -> None:
        self.inner = inner
        self.run_start = selection.run_start
        self.run_id = run_id
        self.retry = retry or RetryPolicy()
        # Leaves of a range-partitioned target purged whole before the batches (stores.sql.partitions).
        self.whole = (
            WholePartitions(inner, run_id, self.run_start, inner.target.config.archive_schema)
            if WholePartitions.applies(inner)
            else None
        )
        # The figures the completeness check read, for the held audit that follows it: one scan
        # of the table instead of two. Any batch since makes them stale.
        self._counted: tuple[tuple[Hold, ...], Counts] | None = None

    def _call(self, fn: Callable[[], T]) -> T:
        """Return ``fn()``, retried on transient errors; any database error named (SQLSTATE, message)."""
        where = f"store {self.inner.store!r} table {self.inner.target_name}"
        return retry.call(self.retry, where, self.inner.target.path, fn)

    @property
    def category(self) -> str:
        """Return the acting category."""
        return self.inner.category

    @property
    def action(self) -> str:
        """Return "delete" or "anonymize"."""
        return self.inner.action

    @property
    def cutoff(self) -> datetime:
        """Return the acting category's cutoff."""
        return self.inner.cutoff

    @property
    def store(self) -> str:
        """Return the store name."""
        return self.inner.store

    @property
    def target_name(self) -> str:
        """Return the table as configured."""
        return self.inner.target_name

    @property
    def journal(self) -> OutcomeJournal:
        """Return the store's outbox."""
        return self.inner.outbox

    def phases(self) -> Sequence[Phase]:
        """Return the records pass, then expired prior versions when the target has a history of its own."""
        return (Phase.RECORDS, Phase.PRIOR_VERSIONS) if self.inner.has_history else (Phase.RECORDS,)

    def counts(self, holds: Sequence[Hold]) -> Counts:
        """Return the plan figures (see :meth:`TargetWorker.counts`)."""
        counted = self._counted
        if counted is not None and counted[0] == tuple(holds) and self.whole is None:
            return replace(counted[1])
        counts = self._call(lambda: self.inner.counts(holds, self.run_start))
        whole = self.whole
        if whole is not None:
            counts.whole = self._call(lambda: whole.preview(holds))
        return counts

    def run_batch(self, phase: Phase, cursor: Cursor, holds: Sequence[Hold], *, dry_run: bool) -> BatchResult:
        """Run the next batch of ``phase`` (see :meth:`TargetWorker.run_batch`, ``run_history_batch``)."""
        batch = self.inner.run_history_batch if phase is Phase.PRIOR_VERSIONS else self.inner.run_batch
        start = cursor.after
        self._counted = None
        if phase is Phase.RECORDS and self.whole is not None:
            whole = self.whole
            unit = self._call(lambda: whole.next(holds, dry_run=dry_run))
            if unit is not None:
                return unit
            self.whole = None  # every qualifying partition done (or left to the batches): batches from here

        def attempt() -> BatchResult:
            cursor.after = start  # a retried batch starts where the failed attempt did
            return batch(cursor, holds, self.run_start, self.run_id, dry_run=dry_run)

        return self._call(attempt)

    def remaining(self, holds: Sequence[Hold]) -> int:
        """Return what is still eligible (see :meth:`TargetWorker.remaining`).

        Without a history table that is the plan's ``eligible`` figure, read with the others in
        one scan and kept for :meth:`counts` until the next batch.
        """
        if self.inner.has_history or self.whole is not None:
            return self._call(lambda: self.inner.remaining(holds, self.run_start))
        counts = self._call(lambda: self.inner.counts(holds, self.run_start))
        self._counted = (tuple(holds), counts)
        return counts.eligible

    def held_counts(self, holds: Sequence[Hold]) -> dict[str, int]:
        """Return, per hold, the rows it kept."""
        return self._call(lambda: self.inner.held_counts(holds, self.run_start))

    def released(self, before: Sequence[Hold], after: Sequence[Hold]) -> int:
        """Return the rows the batches' condition selects under ``after`` and not under ``before``.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        inner = self.inner
        cond = sa.and_(inner.condition(after, self.run_start), sa.not_(inner.condition(before, self.run_start)))
        stmt = sa.select(sa.func.count()).select_from(inner.target.table).where(cond)
        try:
            with inner.engine.connect() as conn:
                return int(conn.execute(stmt).scalar_one())
        except sa.exc.OperationalError as exc:
            raise unreachable(inner.store, exc) from None

    def subject_counts(self, subjects: Sequence[str]) -> dict[str, tuple[int, int]] | None:
        """Return per subject the rows (of the category's filter) whose subject is it, exactly and
        ignoring case (``lower()`` in the database); None without ``subject_column``.

        Raises:
            TemporaryFailure: the database is unreachable.
        """
        t = self.inner.target
        if t.subject is None:
            return None
        value = sa.cast(t.table.c[t.subject.name], sa.Text)
        lowered = sorted({s.lower() for s in subjects})
        stmt = (
            sa.select(value, sa.func.count())
            .where(covers(self.inner.acting), sa.func.lower(value).in_(lowered))
            .group_by(value)
        )
        try:
            with self.inner.engine.connect() as conn:
                found = {str(v): int(n) for v, n in conn.execute(stmt).all()}
        except sa.exc.OperationalError as exc:
            raise unreachable(self.inner.store, exc) from None
        return {s: (found.get(s, 0), sum(n for v, n in found.items() if v.lower() == s.lower())) for s in subjects}


class SqlRunStore:
    """A SQL store opened for one run (the :class:`~retentiond.stores.base.Store` protocol)."""

    def __init__(self, name: str, ctx: RunContext) -> None:
        self.name = name
        self.ctx = ctx
        engine = store_engine(ctx.loaded, name)
        self.handle = StoreHandle(name, engine, Outbox(engine, name))
        self.statements: sa.Engine | None = None  # made with the first PostgreSQL worker

    def prepare(self) -> None:
        """Check the database clock; on a real run create the outbox when missing.

        Raises:
            TemporaryFailure: unreachable, or the clock is off by more than ``max_clock_skew``.
        """
        check_clock(self.handle.engine, self.ctx.settings.daemon.max_clock_skew, self.name, self.ctx.clock)
        if self.ctx.writes:
            try:
                self.handle.outbox.ensure()
            except sa.exc.OperationalError as exc:
                raise unreachable(self.name, exc) from None

    def journal(self) -> OutcomeJournal:
        """Return the outbox."""
        return self.handle.outbox

    def workers(self, category: str, selection: Selection) -> list[Worker]:
        """Return one worker per target of ``category`` in this store, in config order.

        Raises:
            ConfigError: a target cannot be bound or is refused by the schema checks.
            TemporaryFailure: the store is unreachable.
        """
        loaded, handle = self.ctx.loaded, self.handle
        settings = loaded.settings
        cat = settings.categories[category]
        store = settings.stores[self.name]
        assert isinstance(store, SqlStore)
        erasure = selection if isinstance(selection, ErasureSelection) else None
        if isinstance(selection, ErasureSelection):
            # An erasure acts whatever the age: its "cutoff" is the request's start, shown in reports only.
            cuts: Mapping[str, datetime] = {c: selection.run_start for c in settings.categories}
            prior_cutoffs: Mapping[str, datetime] = {}
        else:
            cuts, prior_cutoffs = selection.cutoffs, selection.prior_cutoffs
        if self.statements is None and handle.engine.dialect.name == "postgresql":
            self.statements = statement_engine(handle.engine, store.lock_timeout, store.statement_timeout)
        workers: list[Worker] = []
        for index, target in enumerate(cat.sql):
            if target.store != self.name:
                continue
            bound = handle.bind(category, index, loaded)
            handle.check(category, index, loaded)
            acting = Claim(bound, cat.action, cuts[category])
            others: list[Claim] = []
            for other_name, other in settings.categories.items():
                for j, other_target in enumerate(other.sql):
                    if (
                        other_target.store == target.store
                        and (other_name, j) != (category, index)
                        and handle.same_table(other_target.table, target.table)
                    ):
                        others.append(Claim(handle.bind(other_name, j, loaded), other.action, cuts[other_name]))
            inner = TargetWorker(
                handle.engine,
                acting,
                others,
                batch_size=settings.daemon.batch_size,
                lock_timeout=store.lock_timeout,
                statement_timeout=store.statement_timeout,
                pseudonym=Pseudonymizer(self.ctx.pseudonym_key),
                outbox=handle.outbox,
                prior_versions_cutoff=prior_cutoffs.get(category),
                key_text=self.ctx.key_text,
                subjects=sorted(erasure.subjects) if erasure else None,
                never=erasure.never if erasure else frozenset(),
                statements=self.statements,
            )
            workers.append(SqlWorker(inner, selection, self.ctx.run_id, RetryPolicy.of(store)))
        return workers

    def close(self) -> None:
        """Dispose of the engines' connections."""
        self.handle.engine.dispose()
        if self.statements is not None:
            self.statements.dispose()
