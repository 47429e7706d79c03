"""``config validate --connect``: connect to every store and check each target against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retentiond.config.loader import LoadedConfig
from retentiond.errors import ConfigError, ConfigIssue, TemporaryFailure
from retentiond.stores import registry
from retentiond.stores.base import Findings, TargetRef


@dataclass
class InspectReport:
    """Every refusal (``issues``) and every piece of information (``notes``: where, message, extra keys)."""

    issues: list[ConfigIssue] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, findings: Findings) -> None:
        """Append a target's findings; their ``extra`` is merged into each of their notes."""
        self.issues.extend(findings.issues)
        for note in findings.notes:
            self.notes.append({"where": note.path, "message": note.message, **findings.extra})


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
    for kind in registry.kinds():
        by_store: dict[str, list[TargetRef]] = {}
        for cname in settings.categories:
            for target in kind.targets(settings, cname):
                by_store.setdefault(target.store, []).append(target)
        for name, targets in by_store.items():
            try:
                for findings in kind.inspect(loaded, name, targets):
                    report.add(findings)
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
