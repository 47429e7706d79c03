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
from retentiond.errors import ConfigError, ConfigIssue, TemporaryFailure
from retentiond.policy import cutoffs as policy_cutoffs
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
    """Return each category's cutoff: ``run_start - retain`` (SPEC §4 rule 3; ``policy.cutoffs``)."""
    return policy_cutoffs.cutoffs(loaded.settings.categories, run_start)


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
        prior = policy_cutoffs.prior_versions_cutoff(cat, run_start)
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


def open_s3_stores(runner: Any) -> list[Any]:
    """Open the S3 stores the run's categories use; return their intent journals for recovery.

    A journal offers ``store_name``, ``pending() -> list[OutboxRow]`` (intents resolved by
    listing: only versions really gone come back), ``remove(batch_ids)`` and ``close()``.
    """
    if not any(runner.settings.categories[c].s3 for c in runner.categories):
        return []
    try:
        from retentiond.actions.s3targets import open_s3_stores as open_stores
    except ModuleNotFoundError:
        return []  # s3_workers() reports the missing engine per category
    return list(open_stores(runner))


def s3_workers(runner: Any, category: str) -> list[Any]:
    """Return one worker per S3 target of ``category`` (none until the S3 engine provides them).

    The S3 engine's workers offer what ``TargetWorker`` offers to the run driver: ``category``,
    ``action``, ``cutoff``, ``store``, ``target_name``, ``has_history``, ``outbox`` (with
    ``remove``), ``counts()``, ``held_counts()``, ``run_batch()`` and ``run_history_batch()``.
    """
    cat = runner.settings.categories[category]
    if not cat.s3:
        return []
    try:
        from retentiond.actions.s3targets import s3_workers as build
    except ModuleNotFoundError:
        raise ConfigError(
            [ConfigIssue(f"categories.{category}.s3", "S3 targets are not supported by this build yet")]
        ) from None
    return list(build(runner, category))


__all__ = ["StoreHandle", "cutoffs", "open_s3_stores", "s3_workers", "sql_workers"]
