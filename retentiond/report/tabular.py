"""The report as data: JSON (one document) and CSV (one tidy table), the same figures as the HTML.

JSON: ``{"format": "retentiond-report-v1", "verification": {...}, "figures": {...} | null}`` —
``figures`` is null when the ledger failed verification. CSV: one row per figure with the
columns ``section, month, category, item, metric, value`` (pivot it in a spreadsheet or BI
tool); over a ledger that failed verification it holds the verification rows only.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from retentiond.report.model import OUTCOME_FIGURES, Report
from retentiond.report.periods import month_of

FORMAT = "retentiond-report-v1"
CSV_COLUMNS = ("section", "month", "category", "item", "metric", "value")


def report_data(report: Report) -> dict[str, Any]:
    """Return the report as JSON-ready data."""
    return {
        "format": FORMAT,
        "ledger_id": report.ledger_id,
        "generated_at": report.generated_at,
        "period": {
            "since": report.period.since,
            "until": report.period.until,
            "categories": list(report.period.categories),
            "first_entry": report.first_entry,
            "last_entry": report.last_entry,
        },
        "verification": report.verification.as_dict() | {"last_checkpoint_key": report.last_checkpoint_key},
        "figures": _figures(report) if report.clean else None,
    }


def _figures(report: Report) -> dict[str, Any]:
    return {
        "totals": report.totals.as_dict(),
        "failure_entries": report.failure_entries,
        "months": report.months,
        "by_month": [
            {"month": month, "category": category, **figures.as_dict()}
            for month, row in report.by_month.items()
            for category, figures in row.items()
        ],
        "categories": [
            {
                "name": c.name,
                "totals": c.totals.as_dict(),
                "actions": c.actions,
                "retention_applied": [asdict(a) for a in c.applied],
                "configured": None if c.configured is None else asdict(c.configured),
                "targets": c.targets,
                "held_latest": c.held_latest,
                "blocked_latest": c.blocked_latest,
                "latest_run": c.latest_run,
                "failure_entries": c.failure_entries,
            }
            for c in report.categories.values()
        ],
        "runs": [asdict(r) | {"figures": r.figures.as_dict(), "failed": r.failed} for r in report.runs],
        "run_months": [asdict(m) for m in report.run_months],
        "guard_trips": [asdict(g) for g in report.guard_trips],
        "holds": [asdict(h) for h in report.holds],
        "backlog": [asdict(b) for b in report.backlog],
        "configs": [asdict(c) for c in report.configs],
        "config_rejections": report.config_rejections,
        "given_config": None
        if report.given_config_sha256 is None
        else {"sha256": report.given_config_sha256, "in_force": report.given_config_in_force},
        "reconciliations": report.reconciliations,
        "extras": {e.key: {"title": e.title, "headers": e.headers, "rows": e.rows} for e in report.extras},
        "unsummarized_events": report.unsummarized,
    }


def render_json(report: Report) -> str:
    """Return the report as one JSON document (sorted keys, indented)."""
    return json.dumps(report_data(report), indent=2, sort_keys=True) + "\n"


Row = tuple[str, str, str, str, str, "str | int | None"]


def csv_rows(report: Report) -> Iterator[Row]:
    """Yield the CSV rows (without the header) in the order of the HTML report."""
    for key, value in report_data(report)["verification"].items():
        yield ("verification", "", "", "", key, _cell(value))
    if not report.clean:
        return
    for f in OUTCOME_FIGURES:
        yield ("totals", "", "", "", f, getattr(report.totals, f))
    yield ("totals", "", "", "", "failure_entries", report.failure_entries)
    for month, row in report.by_month.items():
        for category, figures in row.items():
            for f, n in figures.as_dict().items():
                yield ("month", month, category, "", f, n)
    yield from _category_rows(report)
    yield from _run_rows(report)
    yield from _hold_and_config_rows(report)
    for extra in report.extras:
        for i, cells in enumerate(extra.rows):
            for header, cell in zip(extra.headers, cells, strict=False):
                yield (f"extra:{extra.key}", "", "", str(i + 1), header, cell)
    for event, count in report.unsummarized.items():
        yield ("unsummarized", "", "", event, "entries", count)


def _hold_and_config_rows(report: Report) -> Iterator[Row]:
    for h in report.holds:
        for key, value in asdict(h).items():
            if key != "hold_id":
                yield ("hold", "", "", h.hold_id, key, _cell(value))
    for b in report.backlog:
        yield ("backlog", month_of(b.time), b.category, b.run_id, "eligible", b.eligible)
    for cfg in report.configs:
        for key in ("first_seen", "last_seen", "loads", "runs"):
            yield ("config", "", "", cfg.sha256, key, getattr(cfg, key))


def _category_rows(report: Report) -> Iterator[Row]:
    for c in report.categories.values():
        for f, n in c.totals.as_dict().items():
            yield ("category", "", c.name, "", f, n)
        yield ("category", "", c.name, "", "held_latest", c.held_latest)
        yield ("category", "", c.name, "", "blocked_latest", c.blocked_latest)
        yield ("category", "", c.name, "", "failure_entries", c.failure_entries)
        for applied in c.applied:
            yield ("category", "", c.name, applied.period, "retention_applied_runs", applied.runs)
        if c.configured is not None:
            yield ("category", "", c.name, "", "configured_retain", c.configured.retain)
            yield ("category", "", c.name, "", "configured_action", c.configured.action)


def _run_rows(report: Report) -> Iterator[Row]:
    for r in report.runs:
        month = month_of(r.started)
        for key in ("started", "status", "finished", "duration_ms", "interrupted_reason", "guard_trips", "actor"):
            yield ("run", month, "", r.run_id, key, _cell(getattr(r, key)))
        yield ("run", month, "", r.run_id, "categories", " ".join(r.categories))
        yield ("run", month, "", r.run_id, "failed_categories", " ".join(r.failed_categories))
        for f, n in r.figures.as_dict().items():
            yield ("run", month, "", r.run_id, f, n)
    for m in report.run_months:
        for key, value in asdict(m).items():
            if key != "month":
                yield ("run_month", m.month, "", "", key, _cell(value))
    for g in report.guard_trips:
        for key in ("time", "run_id", "would_act", "total", "limit", "decision", "allowed_by", "reference"):
            yield ("guard_trip", month_of(g.time), g.category, g.target, key, _cell(getattr(g, key)))


def _cell(value: Any) -> str | int | None:
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def render_csv(report: Report) -> str:
    """Return the report as CSV text (header row first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()
