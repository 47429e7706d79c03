"""Calendar helpers of the report (pure): months, retention periods named from cutoffs, run and hold states."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime

from retentiond.config.durations import RetentionPeriod
from retentiond.report.model import HoldHistory, MonthRuns, RunSummary

_AVERAGE_DAYS = (("y", 365.2425), ("mo", 30.436875), ("w", 7.0), ("d", 1.0))


def applied_period(run_start: datetime, cutoff: datetime, configured: str | None = None) -> str:
    """Return the retention period a run applied (``run_start - cutoff``) in the config's words.

    ``configured`` is preferred when it gives exactly this cutoff; otherwise the first of years,
    months, weeks, days that does; otherwise ``"N days"`` (a cutoff no period explains).
    """
    if configured is not None:
        try:
            if RetentionPeriod.parse(configured).before(run_start) == cutoff:
                return configured
        except ValueError:
            pass
    days = (run_start - cutoff).total_seconds() / 86400
    for unit, average in _AVERAGE_DAYS:
        amount = round(days / average)
        if amount >= 1 and RetentionPeriod(amount, unit).before(run_start) == cutoff:
            return f"{amount}{unit}"
    return f"{days:g} days"


def month_of(time_text: str) -> str:
    """Return ``YYYY-MM`` of a ledger time (UTC text)."""
    return time_text[:7]


def months_between(first: str, last: str) -> list[str]:
    """Return every month from ``first`` to ``last`` (``YYYY-MM``, inclusive)."""
    year, month = int(first[:4]), int(first[5:7])
    out: list[str] = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def run_months(runs: Sequence[RunSummary]) -> list[MonthRuns]:
    """Return the runs started per month, with counts and durations."""
    months: dict[str, MonthRuns] = {}
    durations: dict[str, list[int]] = {}
    for run in runs:
        month = months.setdefault(month_of(run.started), MonthRuns(month=month_of(run.started)))
        month.runs += 1
        if run.status == "finished":
            month.finished += 1
        elif run.status == "interrupted":
            month.interrupted += 1
        else:
            month.incomplete += 1
        month.with_failures += run.failed
        month.guard_trips += run.guard_trips
        if run.duration_ms is not None:
            month.total_ms += run.duration_ms
            durations.setdefault(month.month, []).append(run.duration_ms)
    for name, values in durations.items():
        months[name].median_ms = int(statistics.median_low(values))
        months[name].max_ms = max(values)
    return [months[m] for m in sorted(months)]


def hold_state(hold: HoldHistory, end: str) -> str:
    """Return the hold's state at ``end`` (ledger time text)."""
    if hold.placed_at >= end:
        return "not yet in force"
    if hold.released_at is not None:
        return "in release grace" if hold.protects_until is not None and hold.protects_until > end else "released"
    if hold.expires_at is not None and hold.expires_at <= end:
        return "expired"
    return "in force"


def earliest(*times: str | None) -> str | None:
    """Return the earliest of the times given, ignoring None (None when none is given)."""
    present = [t for t in times if t is not None]
    return min(present) if present else None
