"""The SQL kind of store (``kind = "sql"``): PostgreSQL and SQLite tables, registered with the registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.config.models import Settings
from retentiond.config.secrets import read_secret_text
from retentiond.errors import ConfigError, ConfigIssue, RetentiondError, TemporaryFailure
from retentiond.logs import get_logger
from retentiond.stores import registry
from retentiond.stores.base import AccessPolicy, Explanation, Findings, RunContext, Store, TargetRef
from retentiond.stores.sql import privileges
from retentiond.stores.sql.errors import connection_error, describe

log = get_logger("retentiond.daemon")  # the probe speaks for the daemon, as it always has


# What ``holds check`` says of a table without a subject column (a subject hold covers all of it).
_NO_SUBJECT = "has no subject_column: the hold protects every record of that table, whoever's"


class SqlKind:
    """Tables in PostgreSQL or SQLite databases (the :class:`~retentiond.stores.base.StoreKind` protocol)."""

    kind = "sql"
    record_fields: tuple[str, ...] = ("table", "key")
    errors: tuple[type[Exception], ...] = (sa.exc.SQLAlchemyError,)
    probed = True

    def targets(self, settings: Settings, category: str) -> list[TargetRef]:
        """Return the category's ``[[categories.NAME.sql]]`` targets."""
        return [
            TargetRef(
                "sql",
                category,
                i,
                t.store,
                t.table,
                f"categories.{category}.sql[{i}]",
                no_subject=None if t.subject_column is not None else _NO_SUBJECT,
                key_columns=len(t.key),
            )
            for i, t in enumerate(settings.categories[category].sql)
        ]

    def outcomes(self, action: str) -> tuple[str, ...]:
        """Return the record outcomes a table of ``action`` reports."""
        return ("deleted" if action == "delete" else "anonymized", "held", "prior_versions_deleted")

    def open(self, name: str, ctx: RunContext) -> Store:
        """Return SQL store ``name`` opened for ``ctx`` (an engine; no connection yet).

        Raises:
            ConfigError: the URL is missing or unusable.
        """
        from retentiond.stores.sql.store import SqlRunStore

        return SqlRunStore(name, ctx)

    def inspect(self, loaded: LoadedConfig, name: str, targets: Sequence[TargetRef]) -> Iterator[Findings]:
        """Connect to store ``name`` and check each target against the live schema.

        Raises:
            ConfigError: the URL, the database file or the credentials are refused.
            TemporaryFailure: the database is unreachable (or the connection was lost).
        """
        from retentiond.stores.sql.engine import make_engine

        path = f"stores.{name}"
        store = loaded.settings.stores[name]
        url = read_secret_text(store, "url", path, base_dir=loaded.directory)
        if not url:
            raise ConfigError([ConfigIssue(path, "the store's URL is empty")])
        try:
            engine = make_engine(url)
        except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ConfigError(
                [ConfigIssue(path, "the store's URL is not a valid database URL (driver://user@host/db)")]
            ) from None
        except sa.exc.NoSuchModuleError:
            raise ConfigError(
                [ConfigIssue(path, "the store's URL names a database driver that is not installed")]
            ) from None
        try:
            _refuse_missing_sqlite_file(engine, path)
            yield from _inspect_targets(engine, loaded, name, targets)
        finally:
            engine.dispose()

    def probe(self, loaded: LoadedConfig, name: str) -> bool | None:
        """Return True when ``SELECT 1`` answers on store ``name`` (a fresh connection, not pooled)."""
        from retentiond.stores.sql.store import store_engine

        try:
            engine = store_engine(loaded, name, poolclass=sa.pool.NullPool)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            finally:
                engine.dispose()
        except sa.exc.DBAPIError as exc:
            log.warning("store probe failed", store=name, error=describe(exc).render())
            return False
        except (sa.exc.SQLAlchemyError, RetentiondError) as exc:
            log.warning("store probe failed", store=name, error=str(exc) or type(exc).__name__)
            return False
        return True

    def explain(
        self,
        loaded: LoadedConfig,
        name: str,
        record: Mapping[str, Any],
        holds_at: Callable[[datetime], Sequence[Hold]],
    ) -> Explanation:
        """Return why row ``record["key"]`` of ``record["table"]`` is kept or would be acted on.

        Raises:
            UsageError: no category names that table, or the key has the wrong number of parts.
            TemporaryFailure: the store is unreachable.
        """
        from retentiond.stores.sql.explain import explain_row

        return explain_row(loaded, name, record["table"], list(record["key"]), holds_at)

    def access_policy(self, settings: Settings, name: str, role: str) -> AccessPolicy:
        """Return the least privileges of store ``name`` (``retentiond print-grants`` / ``print-iam-policy``)."""
        policy: AccessPolicy = privileges.access_policy(settings, name, role)
        return policy

    def anchor_client(self, loaded: LoadedConfig, name: str) -> Any:  # Any: the anchor's client type
        """Refuse: a SQL store cannot hold the ledger's WORM anchor.

        Raises:
            ConfigError: always.
        """
        raise ConfigError([ConfigIssue("audit.anchor.store", f"{name!r} is not an S3 store of [stores]")])


def _refuse_missing_sqlite_file(engine: sa.Engine, path: str) -> None:
    if engine.dialect.name != "sqlite":
        return
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:") and not Path(database).is_file():
        raise ConfigError([ConfigIssue(path, "SQLite database file does not exist")])


def _inspect_targets(
    engine: sa.Engine, loaded: LoadedConfig, name: str, targets: Sequence[TargetRef]
) -> Iterator[Findings]:
    from retentiond.stores.sql.inspect import SchemaCatalog, inspect_sql_target

    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        raise connection_error(name, exc) from None
    with conn:
        catalog = SchemaCatalog(conn)
        for ref in targets:
            try:
                yield inspect_sql_target(conn, loaded.settings, ref.category, ref.index, catalog=catalog)
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    raise TemporaryFailure(f"store {name!r}: connection lost while reading the schema") from None
                message = f"reading the schema of store {name!r} failed ({describe(exc).render()})"
                yield Findings(issues=[ConfigIssue(ref.path, message)])
                conn.rollback()
        conn.rollback()


registry.register(SqlKind())
