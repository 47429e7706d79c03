"""Build the workers of a run: one per (category, target), with the claims of other
categories on the same table, bound to reflected tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from retentiond.config.loader import LoadedConfig
from retentiond.config.models import SqlStore
from retentiond.errors import ConfigError, TemporaryFailure
from retentiond.stores.sql.anonymize import Pseudonymizer
from retentiond.stores.sql.binding import BoundTarget, bind_target, split_table_name
from retentiond.stores.sql.outbox import Outbox
from retentiond.stores.sql.predicates import Claim
from retentiond.stores.sql.worker import TargetWorker


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
        """Refuse the target before any write when the live schema makes it unsafe (SPEC §4 rule 7).

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
            raise TemporaryFailure(f"store {self.name!r} unreachable: {type(exc.orig).__name__}") from None
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
                raise TemporaryFailure(f"store {self.name!r} unreachable: {type(exc.orig).__name__}") from None
        return self.bound[key]


def cutoffs(loaded: LoadedConfig, run_start: datetime) -> dict[str, datetime]:
    """Return each category's cutoff: ``run_start - retain`` (SPEC §4 rule 3)."""
    return {name: c.retain.before(run_start) for name, c in loaded.settings.categories.items()}


def sql_workers(
    loaded: LoadedConfig,
    category: str,
    stores: dict[str, StoreHandle],
    run_start: datetime,
    pseudonym_key: bytes,
) -> list[TargetWorker]:
    """Return one worker per SQL target of ``category``.

    Raises:
        ConfigError: a target cannot be bound (missing table, column, wrong type).
        TemporaryFailure: a store is unreachable.
    """
    settings = loaded.settings
    cat = settings.categories[category]
    cuts = cutoffs(loaded, run_start)
    daemon = settings.daemon
    workers: list[TargetWorker] = []
    for index, target in enumerate(cat.sql):
        handle = stores[target.store]
        bound = handle.bind(category, index, loaded)
        handle.check(category, index, loaded)
        acting = Claim(bound, cat.action, cuts[category])
        others: list[Claim] = []
        for other_name, other in settings.categories.items():
            for j, other_target in enumerate(other.sql):
                if (
                    other_target.store == target.store
                    and (other_name, j) != (category, index)
                    and _same_table(handle, other_target.table, target.table)
                ):
                    others.append(Claim(handle.bind(other_name, j, loaded), other.action, cuts[other_name]))
        store = settings.stores[target.store]
        assert isinstance(store, SqlStore)
        prior = cat.prior_versions.before(run_start) if cat.prior_versions is not None else None
        workers.append(
            TargetWorker(
                handle.engine,
                acting,
                others,
                batch_size=daemon.batch_size,
                lock_timeout=store.lock_timeout,
                statement_timeout=store.statement_timeout,
                pseudonym=Pseudonymizer(pseudonym_key),
                outbox=handle.outbox,
                prior_versions_cutoff=prior,
            )
        )
    return workers


def _same_table(handle: StoreHandle, a: str, b: str) -> bool:
    """Return True when table names ``a`` and ``b`` name the same table ("tickets" = "public.tickets").

    Longest retention wins (SPEC §4 rule 4) must see every category on a table, however its
    name is spelled; an unqualified name is in the database's default schema.
    """
    default = handle.engine.dialect.default_schema_name  # known: binding has connected
    schema_a, table_a = split_table_name(a)
    schema_b, table_b = split_table_name(b)
    return (schema_a or default, table_a) == (schema_b or default, table_b)


class _LegacyS3Store:
    """TRANSITIONAL: the driver's recovery view of an S3 store, until the driver uses stores/base.py."""

    def __init__(self, store: Any) -> None:
        self.inner = store
        self.store_name = store.name

    def pending(self) -> list[Any]:
        """Return outcome rows a crashed run left unrelayed."""
        return list(self.inner.journal().pending())

    def remove(self, batch_ids: list[str]) -> None:
        """Acknowledge relayed outcome rows."""
        self.inner.journal().remove(batch_ids)

    def close(self) -> None:
        """Close the store."""
        self.inner.close()


class _LegacyS3Worker:
    """TRANSITIONAL: the driver's view of an S3 worker of the store protocol."""

    has_history = False

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.category, self.action, self.cutoff = inner.category, inner.action, inner.cutoff
        self.store, self.target_name, self.prefix = inner.store, inner.target_name, inner.prefix
        self.outbox = inner.journal

    @property
    def failed_versions(self) -> int:
        """Return the versions the batches could not delete."""
        return int(self.inner.failed_versions)

    def counts(self, holds: Any, run_start: datetime) -> Any:
        """Return the plan figures."""
        return self.inner.counts(holds)

    def held_counts(self, holds: Any, run_start: datetime) -> dict[str, int]:
        """Return the held counts."""
        return dict(self.inner.held_counts(holds))

    def remaining(self, holds: Any, run_start: datetime) -> int:
        """Return what is left."""
        return int(self.inner.remaining(holds))

    def run_batch(self, cursor: Any, holds: Any, run_start: datetime, run_id: str, *, dry_run: bool) -> Any:
        """Run one batch."""
        from retentiond.stores.base import Phase

        return self.inner.run_batch(Phase.RECORDS, cursor, holds, dry_run=dry_run)


def _s3_stores(runner: Any) -> dict[str, Any]:
    from retentiond.stores.base import RunContext
    from retentiond.stores.s3.store import S3RunStore

    stores: dict[str, Any] | None = getattr(runner, "_s3_stores", None)
    if stores is None:
        stores = {}
        runner._s3_stores = stores
    names = sorted({t.store for c in runner.categories for t in runner.settings.categories[c].s3})
    for name in names:
        if name not in stores:
            ctx = RunContext(
                loaded=runner.loaded,
                run_id=runner.run_id,
                run_start=runner.run_start,
                categories=tuple(runner.categories),
                writes=runner.writes,
                clock=lambda: runner.run_start,
                pseudonym_key=b"",
                key_text=lambda values: "",
                refs=runner.audit.refs if runner.audit is not None else None,
            )
            stores[name] = S3RunStore(name, ctx)
    return stores


def open_s3_stores(runner: Any) -> list[Any]:
    """TRANSITIONAL: open the S3 stores the run's categories use; return their recovery views."""
    if not any(runner.settings.categories[c].s3 for c in runner.categories):
        return []
    return [_LegacyS3Store(store) for _, store in sorted(_s3_stores(runner).items())]


def s3_workers(runner: Any, category: str) -> list[Any]:
    """TRANSITIONAL: return one worker per S3 target of ``category``."""
    from retentiond.stores.base import ExpirySelection

    cat = runner.settings.categories[category]
    if not cat.s3:
        return []
    settings = runner.settings
    selection = ExpirySelection(
        run_start=runner.run_start,
        cutoffs=cutoffs(runner.loaded, runner.run_start),
        prior_cutoffs={
            name: c.prior_versions.before(runner.run_start) if c.prior_versions is not None else None
            for name, c in settings.categories.items()
        },
    )
    stores = _s3_stores(runner)
    workers: list[Any] = []
    for name in dict.fromkeys(t.store for t in cat.s3):
        workers += [_LegacyS3Worker(w) for w in stores[name].workers(category, selection)]
    return workers


__all__ = ["StoreHandle", "cutoffs", "open_s3_stores", "s3_workers", "sql_workers"]
