"""Read, validate and cross-check ``retention.toml`` and the holds file(s).

Every section is validated on its own and every problem is collected, so one run of
``config validate`` lists all of a file's errors, each with its dotted path and line.
"""

from __future__ import annotations

import difflib
import hashlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from retentiond.config.holds import Hold, HoldsFile
from retentiond.config.issues import Issues, issues_from, read_toml
from retentiond.config.locate import find_line, line_index
from retentiond.config.models import (
    AuditSettings,
    Category,
    DaemonSettings,
    S3Store,
    Settings,
    SqlStore,
    Store,
)
from retentiond.config.types import check_name
from retentiond.errors import ConfigError, ConfigIssue

_STORE_ADAPTER: TypeAdapter[SqlStore | S3Store] = TypeAdapter(Store)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where it came from."""

    path: Path
    settings: Settings
    sha256: str

    @property
    def directory(self) -> Path:
        """Return the folder of the config file; relative paths in it are resolved from here."""
        return self.path.parent

    @property
    def holds_path(self) -> Path:
        """Return the holds file or directory, resolved against the config file's folder."""
        return (self.directory / self.settings.daemon.holds_file).resolve()

    @property
    def state_dir(self) -> Path:
        """Return ``daemon.state_dir`` resolved against the config file's folder."""
        return (self.directory / self.settings.daemon.state_dir).resolve()


@dataclass(frozen=True)
class HoldsSnapshot:
    """The holds as read at one moment, with the hashes that identify that reading."""

    holds: tuple[Hold, ...]
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256

    @property
    def digest(self) -> str:
        """Return one SHA-256 over every file's path and hash: changes when any file changes."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}\0{self.files[name]}\n".encode())
        return h.hexdigest()


def load_config(path: str | Path, *, audit_only: bool = False) -> LoadedConfig:
    """Return the validated configuration at ``path``.

    ``audit_only`` accepts a file without categories (an auditor's or the ledger owner's
    config: ``[audit]`` alone is enough for the ``audit`` commands); every section present is
    still validated in full.

    Raises:
        ConfigError: with every issue found in the file (not the holds file; see ``load_holds``).
    """
    config_path = Path(path).resolve() if Path(path).exists() else Path(path)
    read_issues: list[ConfigIssue] = []
    read = read_toml(config_path, read_issues)
    if read is None:
        raise ConfigError(read_issues)
    data, text, digest = read
    issues = Issues(str(path), text)

    sections = {"daemon", "audit", "stores", "categories"}
    for key in data:
        if key not in sections:
            close = difflib.get_close_matches(key, sorted(sections), n=1, cutoff=0.6)
            issues.add(
                key,
                f"unknown key; did you mean {close[0]!r}?"
                if close
                else f"unknown key; known keys: {', '.join(sorted(sections))}",
            )

    daemon = issues.validate(DaemonSettings, data.get("daemon", {}), ("daemon",), [DaemonSettings])
    audit = issues.validate(AuditSettings, data.get("audit", {}), ("audit",), [AuditSettings])
    raw_stores, stores = _stores(data, issues)
    categories = _categories(data, issues, audit_only=audit_only)

    invalid_store_names = set(raw_stores) - set(stores)
    _cross_check(daemon, audit, stores, categories, invalid_store_names, issues.add)
    if issues.found:
        issues.found.sort(key=lambda i: (i.line is None, i.line or 0))
        raise ConfigError(issues.found)
    settings = Settings(daemon=daemon, audit=audit, stores=stores, categories=categories)
    return LoadedConfig(path=config_path, settings=settings, sha256=digest)


def _stores(data: dict[str, Any], issues: Issues) -> tuple[dict[str, Any], dict[str, SqlStore | S3Store]]:
    """Return the ``[stores]`` table as read and its valid stores; records the invalid ones."""
    stores: dict[str, SqlStore | S3Store] = {}
    raw_stores = data.get("stores", {})
    if not isinstance(raw_stores, dict):
        issues.add("stores", "must be a table of named stores")
        raw_stores = {}
    for name, raw in raw_stores.items():
        if not _valid_name(name):
            issues.add(
                f"stores.{name}", "invalid store name: use ASCII letters, digits, '_' or '-', starting with a letter"
            )
            continue
        if not isinstance(raw, dict) or raw.get("kind") not in ("sql", "s3"):
            issues.add(f"stores.{name}.kind", "required: 'sql' or 's3'")
            continue
        store = issues.validate(_STORE_ADAPTER, raw, ("stores", name), [SqlStore if raw["kind"] == "sql" else S3Store])
        if store is not None:
            stores[name] = store
    return raw_stores, stores


def _categories(data: dict[str, Any], issues: Issues, *, audit_only: bool) -> dict[str, Category]:
    """Return the valid categories of ``[categories]``; records the invalid ones (and none at all)."""
    categories: dict[str, Category] = {}
    raw_categories = data.get("categories", {})
    if not isinstance(raw_categories, dict):
        issues.add("categories", "must be a table of named categories")
        raw_categories = {}
    for name, raw in raw_categories.items():
        if not _valid_name(name):
            issues.add(
                f"categories.{name}",
                "invalid category name: use ASCII letters, digits, '_' or '-', starting with a letter",
            )
            continue
        category = issues.validate(Category, raw, ("categories", name), [Category])
        if category is not None:
            categories[name] = category
    if not raw_categories and not audit_only:
        issues.add(
            "categories",
            "no categories defined: there is nothing to enforce (a config with only [audit] serves the "
            "audit commands only)",
        )
    return categories


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def _cross_check(
    daemon: DaemonSettings | None,
    audit: AuditSettings | None,
    stores: dict[str, SqlStore | S3Store],
    categories: dict[str, Category],
    invalid_store_names: set[str],
    add: typing.Callable[[str, str], None],
) -> None:
    """Check relations between sections; reports through ``add(path, message)``."""

    def check_store(path: str, name: str, kind: type) -> None:
        if name in invalid_store_names:
            return  # already reported where the store is defined
        store = stores.get(name)
        if store is None:
            close = difflib.get_close_matches(name, sorted(stores), n=1, cutoff=0.6)
            add(path, f"unknown store {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        elif not isinstance(store, kind):
            add(path, f"store {name!r} is of kind {store.kind!r}, not {'sql' if kind is SqlStore else 's3'!r}")

    if audit is not None and audit.anchor is not None:
        check_store("audit.anchor.store", audit.anchor.store, S3Store)

    seen_tables: dict[tuple[str, str], str] = {}
    for cname, cat in categories.items():
        base = f"categories.{cname}"
        if not cat.sql and not cat.s3:
            add(base, "declares no target: add [[" + base + ".sql]] or [[" + base + ".s3]]")
        if daemon is not None and cat.retain.approximate_days() < daemon.min_retention.approximate_days():
            add(f"{base}.retain", f"{cat.retain} is below daemon.min_retention ({daemon.min_retention})")
        if cat.prior_versions is not None and cat.sql and not cat.s3 and not any(t.history for t in cat.sql):
            add(f"{base}.prior_versions", "no target of this category has a history table or versions")
        _check_sql_targets(cname, cat, check_store, seen_tables, add)
        _check_s3_targets(cname, cat, check_store, add)


def _check_sql_targets(
    cname: str,
    cat: Category,
    check_store: typing.Callable[[str, str, type], None],
    seen_tables: dict[tuple[str, str], str],
    add: typing.Callable[[str, str], None],
) -> None:
    """Check a category's SQL targets against its action, the stores and each other."""
    for i, target in enumerate(cat.sql):
        tpath = f"categories.{cname}.sql[{i}]"
        check_store(f"{tpath}.store", target.store, SqlStore)
        if cat.action == "anonymize" and not target.anonymize:
            add(f"{tpath}.anonymize", "required when the category's action is 'anonymize'")
        if cat.action == "delete" and target.anonymize:
            add(f"{tpath}.anonymize", "only allowed when the category's action is 'anonymize'")
        table_key = (target.store, target.table)
        other = seen_tables.get(table_key)
        if other == cname:
            add(f"{tpath}.table", f"table {target.table!r} is listed twice in this category")
        seen_tables.setdefault(table_key, cname)


def _check_s3_targets(
    cname: str,
    cat: Category,
    check_store: typing.Callable[[str, str, type], None],
    add: typing.Callable[[str, str], None],
) -> None:
    """Check a category's S3 targets against its action and the stores."""
    for i, s3_target in enumerate(cat.s3):
        tpath = f"categories.{cname}.s3[{i}]"
        check_store(f"{tpath}.store", s3_target.store, S3Store)
        if cat.action == "anonymize":
            add(tpath, "S3 targets support action 'delete' only; objects cannot be anonymized in place")
        if not s3_target.prefix and not s3_target.whole_bucket:
            add(f"{tpath}.prefix", "must be non-empty (or set whole_bucket = true to cover the whole bucket)")
        if s3_target.prefix and s3_target.whole_bucket:
            add(f"{tpath}.whole_bucket", "contradicts a non-empty prefix")


def holds_files(path: Path) -> list[Path]:
    """Return the holds files at ``path``: the file itself, or a directory's ``*.toml`` sorted by name."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.toml") if p.is_file())
    return [path]


def load_holds(path: str | Path, known_categories: typing.Iterable[str]) -> HoldsSnapshot:
    """Return the holds of a file or directory, validated against the configured categories.

    Raises:
        ConfigError: with every issue found; the caller decides whether that is fatal
        for a command (exit 78) or fails closed for a run.
    """
    base = Path(path)
    if not base.exists():
        raise ConfigError([ConfigIssue("", "holds file not found", file=str(base))])
    return validate_holds({file: None for file in holds_files(base)}, known_categories)


def validate_holds(
    contents: typing.Mapping[Path, bytes | None], known_categories: typing.Iterable[str]
) -> HoldsSnapshot:
    """Return the holds of the files ``contents`` names (a content of None: read the file).

    The one validator of holds: the daemon's reading and ``holds add/edit/lift`` (which checks
    the files it is about to write) both go through it.

    Raises:
        ConfigError: with every issue found.
    """
    known = set(known_categories)
    issues: list[ConfigIssue] = []
    holds: list[Hold] = []
    where: dict[str, str] = {}
    files: dict[str, str] = {}
    for file, raw in contents.items():
        read = read_toml(file, issues, raw)
        if read is None:
            continue
        data, text, digest = read
        files[str(file)] = digest
        index = line_index(text)
        label = str(file)
        try:
            parsed = HoldsFile.model_validate(data)
        except ValidationError as exc:
            issues.extend(issues_from(exc, (), [HoldsFile], label, index))
            continue
        for i, hold in enumerate(parsed.hold):
            hpath = f"hold[{i}]"
            if hold.id in where:
                issues.append(
                    ConfigIssue(
                        f"{hpath}.id",
                        f"duplicate hold id {hold.id!r} (also in {where[hold.id]})",
                        file=label,
                        line=find_line(index, f"{hpath}.id"),
                    )
                )
                continue
            where[hold.id] = f"{label}"
            for j, name in enumerate(hold.categories):
                if name != "*" and name not in known:
                    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                    cpath = f"{hpath}.categories[{j}]"
                    issues.append(
                        ConfigIssue(
                            cpath,
                            f"unknown category {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                            file=label,
                            line=find_line(index, f"{hpath}.categories"),
                        )
                    )
            holds.append(hold)
    if issues:
        raise ConfigError(issues)
    return HoldsSnapshot(holds=tuple(holds), files=files)
