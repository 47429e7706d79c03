"""``config validate --connect``: connect to every store and check each target against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retentiond.config.loader import LoadedConfig
from retentiond.config.models import S3Store, SqlStore
from retentiond.config.secrets import read_secret_text
from retentiond.errors import ConfigError, ConfigIssue, TemporaryFailure
from retentiond.stores.sql.inspect import TargetFindings

# SQLSTATEs of a connection refused for a reason the configuration must fix.
_CONFIG_SQLSTATES = {
    "3D000": "database does not exist",
    "28000": "role not allowed to connect",
    "28P01": "password authentication failed",
}


@dataclass
class InspectReport:
    """Every refusal (``issues``) and every piece of information (``notes``: where, message, extra keys)."""

    issues: list[ConfigIssue] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, findings: TargetFindings, extra: dict[str, Any] | None = None) -> None:
        """Append a target's findings; ``extra`` is merged into each of its notes."""
        self.issues.extend(findings.issues)
        for note in findings.notes:
            self.notes.append({"where": note.path, "message": note.message, **(extra or {})})


def inspect_stores(loaded: LoadedConfig) -> InspectReport:
    """Connect to every store the categories use and return what is wrong (and worth knowing).

    Stores no target uses are not contacted.

    Raises:
        TemporaryFailure: a store cannot be reached (the message names the store, never its URL);
            raised after every other store was checked.
    """
    settings = loaded.settings
    report = InspectReport()
    unreachable: list[str] = []
    sql_targets: dict[str, list[tuple[str, int]]] = {}
    s3_targets: dict[str, list[tuple[str, int]]] = {}
    for cname, category in settings.categories.items():
        for i, sql_target in enumerate(category.sql):
            sql_targets.setdefault(sql_target.store, []).append((cname, i))
        for i, s3_target in enumerate(category.s3):
            s3_targets.setdefault(s3_target.store, []).append((cname, i))

    for name, targets in sql_targets.items():
        store = settings.stores[name]
        assert isinstance(store, SqlStore)
        try:
            _inspect_sql_store(loaded, name, store, targets, report)
        except TemporaryFailure as exc:
            unreachable.append(str(exc))
        except ConfigError as exc:
            report.issues.extend(exc.issues)

    for name, targets in s3_targets.items():
        s3_store = settings.stores[name]
        assert isinstance(s3_store, S3Store)
        try:
            _inspect_s3_store(loaded, name, s3_store, targets, report)
        except TemporaryFailure as exc:
            unreachable.append(str(exc))
        except ConfigError as exc:
            report.issues.extend(exc.issues)

    if unreachable:
        found = f" ({len(report.issues)} other problem(s) found in reachable stores)" if report.issues else ""
        raise TemporaryFailure("; ".join(unreachable) + found)
    report.issues = _located(loaded, report.issues)
    return report


def _located(loaded: LoadedConfig, issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """Return ``issues`` with the config file and, where found, the line of each path filled in."""
    from dataclasses import replace

    from retentiond.config.locate import find_line, line_index

    try:
        index = line_index(loaded.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return issues
    return [
        issue
        if issue.file
        else replace(issue, file=str(loaded.path), line=find_line(index, issue.path) if issue.path else None)
        for issue in issues
    ]


def _inspect_sql_store(
    loaded: LoadedConfig, name: str, store: SqlStore, targets: list[tuple[str, int]], report: InspectReport
) -> None:
    import sqlalchemy as sa

    from retentiond.stores.sql.engine import make_engine
    from retentiond.stores.sql.inspect import SchemaCatalog, inspect_sql_target

    path = f"stores.{name}"
    url = read_secret_text(store, "url", path, base_dir=loaded.directory)
    if not url:
        raise ConfigError([ConfigIssue(path, "the store's URL is empty")])
    try:
        engine = make_engine(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            [ConfigIssue(path, "the store's URL is not a valid database URL (driver://user@host/db)")]
        ) from None
    except sa.exc.NoSuchModuleError:
        raise ConfigError(
            [ConfigIssue(path, "the store's URL names a database driver that is not installed")]
        ) from None
    try:
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if (
                database
                and database != ":memory:"
                and not database.startswith("file:")
                and not Path(database).is_file()
            ):
                raise ConfigError([ConfigIssue(path, "SQLite database file does not exist")])
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate in _CONFIG_SQLSTATES:
                raise ConfigError([ConfigIssue(path, f"cannot connect: {_CONFIG_SQLSTATES[sqlstate]}")]) from None
            reason = f"SQLSTATE {sqlstate}" if sqlstate else type(exc.orig).__name__
            raise TemporaryFailure(f"store {name!r} is unreachable ({reason})") from None
        with conn:
            catalog = SchemaCatalog(conn)
            for cname, index in targets:
                try:
                    report.add(inspect_sql_target(conn, loaded.settings, cname, index, catalog=catalog))
                except sa.exc.DBAPIError as exc:
                    if exc.connection_invalidated:
                        raise TemporaryFailure(f"store {name!r}: connection lost while reading the schema") from None
                    sqlstate = getattr(exc.orig, "sqlstate", None) or type(exc.orig).__name__
                    report.issues.append(
                        ConfigIssue(
                            f"categories.{cname}.sql[{index}]",
                            f"reading the schema of store {name!r} failed ({sqlstate})",
                        )
                    )
                    conn.rollback()
            conn.rollback()
    finally:
        engine.dispose()


def _inspect_s3_store(
    loaded: LoadedConfig, name: str, store: S3Store, targets: list[tuple[str, int]], report: InspectReport
) -> None:
    from retentiond.stores.s3.inspect import inspect_store

    for findings in inspect_store(loaded.settings, name, store, targets):
        report.add(findings, findings.extra)
