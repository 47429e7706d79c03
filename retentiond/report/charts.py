"""Inline SVG charts for the HTML report, drawn server-side: no script, no font, no network.

Hand-made on purpose (three small chart kinds): each chart is an ``<svg role="img">`` with a
``<title>`` and a ``<desc>`` that say what it shows, each mark carries a ``<title>`` (the
browser's tooltip, no JavaScript), and the figures are always also in a table next to it.
Every text that reaches the SVG is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

#: Categorical colours (Tableau 10 and two more), distinguishable and legible when printed.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#2f4b7c",
    "#8c564b",
)
#: Hold kinds in the timeline.
HOLD_COLOURS = {"legal": "#c0392b", "tax": "#2f6db5", "regulatory": "#2e8b57", "investigation": "#7d3c98"}
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


@dataclass(frozen=True)
class Series:
    """One stacked series: a label, a colour and one value per month."""

    label: str
    colour: str
    values: Sequence[int]


@dataclass(frozen=True)
class Span:
    """A stretch of a timeline row: ``style`` is ``active`` or ``grace``; ``end`` None = open."""

    start: datetime
    end: datetime | None
    style: str
    tooltip: str


@dataclass(frozen=True)
class Mark:
    """A point on a timeline row: ``shape`` is ``placed``, ``changed`` or ``released``."""

    at: datetime
    shape: str
    tooltip: str


@dataclass(frozen=True)
class Row:
    """One timeline row (a hold)."""

    label: str
    colour: str
    spans: Sequence[Span] = field(default_factory=tuple)
    marks: Sequence[Mark] = field(default_factory=tuple)


def nice_ceiling(value: int) -> int:
    """Return the smallest of 1, 2, 2.5, 5 × 10^k that is at least ``value`` (1 for 0)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return int(math.ceil(step * power))
    return 10 * power  # pragma: no cover - the loop always returns


def _open(chart_id: str, width: int, height: int, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" {_FONT} font-size="12">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
    ]


def _label_every(count: int, room: float, per_label: float) -> int:
    return max(1, math.ceil(count * per_label / max(room, 1.0)))


def stacked_bars(chart_id: str, months: Sequence[str], series: Sequence[Series], *, title: str, desc: str) -> str:
    """Return an SVG stacked bar chart: one bar per month, one stack segment per series."""
    width, height = 1000, 320
    left, right, top, bottom = 64, 12, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    out = _open(chart_id, width, height, title, desc)
    totals = [sum(s.values[i] for s in series) for i in range(len(months))]
    if not months or not any(totals):
        out.append(
            f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="#555">'
            "No record was deleted or anonymized in this period.</text></svg>"
        )
        return "".join(out)
    top_value = nice_ceiling(max(totals))
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{value:,.0f}</text>')
    band = plot_w / len(months)
    bar = max(2.0, band * 0.7)
    every = _label_every(len(months), plot_w, 56)
    for i, month in enumerate(months):
        x = left + band * i + (band - bar) / 2
        y = top + plot_h
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top_value
            y -= h
            out.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{s.colour}"><title>{escape(s.label)}, {escape(month)}: {value:,}</title></rect>'
            )
        if i % every == 0:
            out.append(
                f'<text x="{left + band * (i + 0.5):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'fill="#444">{escape(month)}</text>'
            )
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#888"/>')
    out.append("</svg>")
    return "".join(out)


def _months_from(start: datetime, end: datetime) -> list[datetime]:
    year, month = start.year, start.month
    out: list[datetime] = []
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        tick = datetime(year, month, 1, tzinfo=UTC)
        if tick >= end:
            return out
        out.append(tick)


def timeline(chart_id: str, start: datetime, end: datetime, rows: Sequence[Row], *, title: str, desc: str) -> str:
    """Return an SVG timeline from ``start`` to ``end``: one row per hold, spans and marks on it."""
    width, label_w, right, top, row_h = 1000, 210, 16, 24, 30
    height = top + row_h * max(len(rows), 1) + 26
    plot_w = width - label_w - right
    out = _open(chart_id, width, height, title, desc)
    span_s = max((end - start).total_seconds(), 1.0)

    def x_of(at: datetime | None) -> float:
        if at is None:
            return float(label_w + plot_w)
        fraction = (min(max(at, start), end) - start).total_seconds() / span_s
        return label_w + plot_w * fraction

    out.append(
        '<defs><pattern id="grace" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#eee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="3"/>'
        "</pattern></defs>"
    )
    ticks = _months_from(start, end)
    years_only = len(ticks) > 18
    shown = [t for t in ticks if not years_only or t.month == 1]
    every = _label_every(len(shown), plot_w, 64)
    for i, tick in enumerate(shown):
        x = x_of(tick)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{height - 22}" stroke="#e4e4e4"/>')
        if i % every == 0 and x < width - right - 28:
            text = f"{tick.year}" if years_only else f"{tick:%Y-%m}"
            out.append(f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill="#444">{text}</text>')
    if not rows:
        out.append(f'<text x="{label_w}" y="{top + 18}" fill="#555">No hold was in force in this period.</text>')
    for i, row in enumerate(rows):
        y = top + row_h * i
        out.append(
            f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end" fill="#222">'
            f"{escape(row.label)}</text>"
        )
        for span in row.spans:
            if span.end is not None and span.end <= start or span.start >= end:
                continue
            x1, x2 = x_of(span.start), x_of(span.end)
            fill = row.colour if span.style == "active" else "url(#grace)"
            out.append(
                f'<rect class="span" x="{x1:.1f}" y="{y + 7}" width="{max(x2 - x1, 2):.1f}" height="{row_h - 14}" '
                f'fill="{fill}" rx="3"><title>{escape(span.tooltip)}</title></rect>'
            )
        for mark in row.marks:
            if not start <= mark.at <= end:
                continue
            out.append(_mark(x_of(mark.at), y + row_h / 2, mark))
    out.append(
        f'<line x1="{label_w}" x2="{label_w}" y1="{top - 4}" y2="{height - 22}" stroke="#888"/>'
        f'<text x="{label_w}" y="{height - 8}" fill="#444">{start:%Y-%m-%d}</text>'
        f'<text x="{width - right}" y="{height - 8}" text-anchor="end" fill="#444">{end:%Y-%m-%d}</text></svg>'
    )
    return "".join(out)


def _mark(x: float, y: float, mark: Mark) -> str:
    tip = f"<title>{escape(mark.tooltip)}</title>"
    if mark.shape == "placed":
        return (
            f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#fff" stroke="#222" stroke-width="2">'
            f"{tip}</circle>"
        )
    if mark.shape == "changed":
        points = f"{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 6:.1f} {x - 6:.1f},{y:.1f}"
        return (
            f'<polygon class="mark" points="{points}" fill="#f5c542" stroke="#222" stroke-width="1.5">{tip}</polygon>'
        )
    return (
        f'<rect class="mark" x="{x - 2:.1f}" y="{y - 9:.1f}" width="4" height="18" fill="#222">{tip}</rect>'  # released
    )


def sparkline(chart_id: str, values: Sequence[int], *, title: str) -> str:
    """Return a small SVG line of ``values`` (oldest first), scaled to its own maximum."""
    width, height, pad = 160, 30, 3
    out = _open(chart_id, width, height, title, f"{len(values)} runs; highest {max(values, default=0):,}.")
    top_value = max(max(values, default=0), 1)
    if len(values) == 1:
        y = height - pad - (height - 2 * pad) * values[0] / top_value
        out.append(f'<circle cx="{width / 2:.1f}" cy="{y:.1f}" r="2.5" fill="#4e79a7"/>')
    elif values:
        step = (width - 2 * pad) / (len(values) - 1)
        points = " ".join(
            f"{pad + step * i:.1f},{height - pad - (height - 2 * pad) * v / top_value:.1f}"
            for i, v in enumerate(values)
        )
        out.append(f'<polyline points="{points}" fill="none" stroke="#4e79a7" stroke-width="1.5"/>')
    out.append(f'<line x1="{pad}" x2="{width - pad}" y1="{height - pad}" y2="{height - pad}" stroke="#ccc"/></svg>')
    return "".join(out)
