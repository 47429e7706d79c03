"""The report as one self-contained HTML page (inline CSS and SVG; no script, font or link).

The page opens with what verification found. Over a ledger that failed verification it shows
that failure and no figures: numbers read from a damaged ledger are not evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from retentiond.audit.canonical import parse_time
from retentiond.report import charts
from retentiond.report.model import FIGURE_LABELS, OUTCOME_FIGURES, Figures, HoldHistory, Report

_MAX_SERIES = len(charts.PALETTE)
_TILE_LABELS = {
    "deleted": "records deleted",
    "anonymized": "records anonymized",
    "prior_versions": "prior versions removed",
    "held": "held (counted at every run)",
    "blocked": "blocked by Object Lock (counted at every run)",
    "failed": "records failed",
    "skipped": "skipped",
}


@dataclass(frozen=True)
class LegendItem:
    """A colour swatch and its label under a chart."""

    label: str
    colour: str
    total: int


@dataclass(frozen=True)
class BacklogRow:
    """One category's backlog over the period's runs."""

    category: str
    runs: int
    first: int
    latest: int
    highest: int
    sparkline: Markup


def _number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _duration(ms: int | None) -> str:
    if ms is None:
        return "–"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _when(text: str | None) -> str:
    if not text:
        return "–"
    try:
        return f"{parse_time(text):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return text  # already words ("before the period")


def _day(text: str | None) -> str:
    return "–" if not text else text[:10]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("retentiond.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_number, duration=_duration, when=_when, day=_day)
    return env


def _deletion_chart(report: Report) -> tuple[Markup, list[LegendItem]]:
    per_category = {name: s.totals.acted for name, s in report.categories.items() if s.totals.acted}
    ranked = sorted(per_category, key=lambda n: (-per_category[n], n))
    shown, rest = ranked[: _MAX_SERIES - 1], ranked[_MAX_SERIES - 1 :]
    if len(rest) == 1:
        shown, rest = ranked, []

    def acted(month: str, names: Sequence[str]) -> int:
        row = report.by_month.get(month, {})
        return sum(row[n].acted for n in names if n in row)

    series = [
        charts.Series(name, charts.PALETTE[i], [acted(m, [name]) for m in report.months])
        for i, name in enumerate(shown)
    ]
    if rest:
        series.append(
            charts.Series(f"{len(rest)} other categories", "#7f7f7f", [acted(m, rest) for m in report.months])
        )
    peak = max(report.months, key=lambda m: sum(f.acted for f in report.by_month.get(m, {}).values()), default=None)
    peak_text = ""
    if peak is not None:
        peak_total = sum(f.acted for f in report.by_month.get(peak, {}).values())
        peak_text = f" The busiest month is {peak} with {peak_total:,} records."
    desc = (
        f"Stacked bars, one per month from {report.months[0] if report.months else '–'} to "
        f"{report.months[-1] if report.months else '–'}, each split by category; {report.totals.acted:,} records "
        f"in all.{peak_text} The table below gives every figure."
    )
    svg = charts.stacked_bars(
        "chart-deletions",
        report.months,
        series,
        title="Records deleted or anonymized per month, by category",
        desc=desc,
    )
    legend = [LegendItem(s.label, s.colour, sum(s.values)) for s in series]
    return Markup(svg), legend


def _hold_row(hold: HoldHistory, colour: str) -> charts.Row:
    placed = parse_time(hold.placed_at)
    active_end = hold.released_at or hold.expires_at
    spans = [
        charts.Span(
            placed,
            None if active_end is None else parse_time(active_end),
            "active",
            f"{hold.hold_id} ({hold.kind}) in force from {hold.placed_at[:10]}"
            + (f" until {active_end[:10]}" if active_end else ", no end date"),
        )
    ]
    if hold.released_at and hold.protects_until:
        spans.append(
            charts.Span(
                parse_time(hold.released_at),
                parse_time(hold.protects_until),
                "grace",
                f"{hold.hold_id} released {hold.released_at[:10]}; still protecting until {hold.protects_until[:10]}",
            )
        )
    marks = [
        charts.Mark(placed, "placed", f"{hold.hold_id} placed {hold.placed_at[:10]} (recorded {hold.recorded[:10]})")
    ]
    marks += [charts.Mark(parse_time(t), "changed", f"{hold.hold_id} changed {t[:10]}") for t in hold.changes]
    if hold.released_at:
        marks.append(
            charts.Mark(parse_time(hold.released_at), "released", f"{hold.hold_id} released {hold.released_at[:10]}")
        )
    return charts.Row(f"{hold.hold_id} ({hold.kind})", colour, spans, marks)


def _timeline_range(report: Report) -> tuple[datetime, datetime]:
    start_text = report.period.since or report.first_entry or min((h.placed_at for h in report.holds), default=None)
    end = parse_time(report.period.until or report.generated_at)
    start = parse_time(start_text) if start_text else end
    if start >= end:
        start = end.replace(year=end.year - 1)
    return start, end


def _hold_chart(report: Report) -> Markup:
    start, end = _timeline_range(report)
    rows = [_hold_row(h, charts.HOLD_COLOURS.get(h.kind, "#555")) for h in report.holds]
    in_force = sum(1 for h in report.holds if h.in_force)
    desc = (
        f"One row per hold from {start:%Y-%m-%d} to {end:%Y-%m-%d}: a bar while it is in force, a hatched bar "
        f"while a released hold still protects (release grace), a circle where it was placed, a diamond where "
        f"it changed, a dark tick where it was released. {in_force} holds were in force in the period; the table "
        f"below lists each."
    )
    return Markup(charts.timeline("chart-holds", start, end, rows, title="Holds in force during the period", desc=desc))


def _backlog(report: Report) -> list[BacklogRow]:
    by_category: dict[str, list[int]] = {}
    for point in report.backlog:
        by_category.setdefault(point.category, []).append(point.eligible)
    rows = []
    for i, (category, values) in enumerate(sorted(by_category.items())):
        svg = charts.sparkline(
            f"chart-backlog-{i}",
            values,
            title=f"Eligible records of {category} at the start of each run: from {values[0]:,} to {values[-1]:,}",
        )
        rows.append(BacklogRow(category, len(values), values[0], values[-1], max(values), Markup(svg)))
    return rows


def render_html(report: Report) -> str:
    """Return the report as one self-contained HTML document."""
    template = _environment().get_template("report.html.j2")
    context: dict[str, object] = {
        "report": report,
        "v": report.verification,
        "figures": OUTCOME_FIGURES,
        "labels": FIGURE_LABELS,
        "tile_labels": _TILE_LABELS,
        "month_totals": _month_totals(report),
        "shown_figures": _shown_figures(report),
    }
    if report.clean:
        chart, legend = _deletion_chart(report)
        context.update(
            deletion_chart=chart,
            legend=legend,
            hold_chart=_hold_chart(report),
            backlog=_backlog(report),
            problem_runs=[r for r in report.runs if r.failed or r.guard_trips],
        )
    return template.render(**context)


def _month_totals(report: Report) -> dict[str, Figures]:
    """Return every month's figures summed over the categories (months without entries: zeros)."""
    out: dict[str, Figures] = {}
    for month in report.months:
        total = out[month] = Figures()
        for figures in report.by_month.get(month, {}).values():
            total.add(figures)
    return out


def _shown_figures(report: Report) -> Sequence[str]:
    """Return the figures with a column in the tables (``skipped`` only when it occurs)."""
    return [f for f in OUTCOME_FIGURES if f != "skipped" or report.totals.skipped]
