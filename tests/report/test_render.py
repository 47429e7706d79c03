"""Rendering without a browser: self-contained, accessible HTML; JSON and CSV with the same figures."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from retentiond.report import charts
from retentiond.report.aggregate import aggregate
from retentiond.report.html import render_html
from retentiond.report.model import Report
from retentiond.report.tabular import render_csv, render_json
from tests.report.entries import NOW, VERIFIED, Builder

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def sample() -> Report:
    """A small report: two categories over three months, a hold, a guard trip, a failure."""
    b = Builder()
    b.hold("hold_placed", T0, "LIT-1", categories=("support",), subjects=2)
    for i in range(3):
        at = T0 + timedelta(days=31 * i)
        run = f"run-{i}"
        b.run_started(at, {"support": at - timedelta(days=730), "clicks": at - timedelta(days=395)}, run_id=run)
        b.batch(at, "support", "deleted", 10 + i, prior=2, run_id=run)
        b.batch(at, "clicks", "anonymized", 100 * (i + 1), run_id=run, action="anonymize")
        b.batch(at, "support", "held", 3, run_id=run, holds=("LIT-1",))
        b.run_finished(at + timedelta(minutes=2), run_id=run, eligible={"support": 10 + i, "clicks": 100 * (i + 1)})
    b.batch(T0 + timedelta(days=62), "support", "failed", 0, run_id="run-2")
    guard = {"store": "app", "target": "t", "would_act": 9, "total": 10, "limit": 2, "decision": "stopped"}
    b.add("guard_tripped", T0, guard, run_id="run-0", category="support")
    return aggregate(b.entries, ledger_id="retentiond", verification=VERIFIED, generated_at=NOW)


def failed_sample() -> Report:
    """The sample as it would be over a ledger that failed verification."""
    damaged = dataclasses.replace(
        VERIFIED, ok=False, damage="seq 7: modified: the entry's fields no longer match its hash", damage_seq=7
    )
    return dataclasses.replace(sample(), verification=damaged)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Return every start tag with its attributes."""
    parser = _Tags()
    parser.feed(html)
    return parser.tags


class TestHtml:
    """One file, nothing fetched, readable by assistive technology."""

    def test_self_contained(self) -> None:
        """No script, stylesheet link, image, font or external URL."""
        html = render_html(sample())
        names = {tag for tag, _ in tags(html)}
        assert not names & {"script", "link", "img", "iframe", "object", "embed"}
        assert not re.search(r"@import|@font-face|url\((?!#)", html)
        urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
        assert {"http://www.w3.org/2000/svg"} == urls  # the SVG namespace, never fetched

    def test_charts_have_text_alternatives(self) -> None:
        """Each chart is an image labelled by its non-empty title and description."""
        html = render_html(sample())
        svgs = [a for tag, a in tags(html) if tag == "svg"]
        assert len(svgs) >= 2
        for attrs in svgs:
            assert "img" == attrs["role"]
            for ref in str(attrs["aria-labelledby"]).split():
                assert re.search(rf'id="{ref}">[^<]+<', html), ref

    def test_tables_are_semantic(self) -> None:
        """Every table has a caption and header cells with a scope."""
        html = render_html(sample())
        assert html.count("<table") == html.count("<caption>")
        header_cells = [a for tag, a in tags(html) if tag == "th"]
        assert header_cells and all(a.get("scope") in ("col", "row", "rowgroup") for a in header_cells)

    def test_figures_shown(self) -> None:
        """Tiles carry the totals; the failure is counted; the hold and the guard trip are listed."""
        report = sample()
        html = render_html(report)
        assert f'data-total="deleted">{report.totals.deleted}<' in html
        assert '" data-total="failure_entries">1<' in html
        assert "LIT-1" in html and "run stopped" in html
        assert report.totals.anonymized == 600

    def test_failed_verification_shows_no_figures(self) -> None:
        """Over a damaged ledger: the failure as an alert, and neither tiles, tables of figures nor charts."""
        html = render_html(failed_sample())
        first = html.split("<section", 2)[1]
        assert 'role="alert"' in first and "seq 7: modified" in first
        assert "data-total" not in html and "<svg" not in html and "table-monthly" not in html


class TestData:
    """JSON and CSV carry the HTML's figures."""

    def test_json_and_csv_agree(self) -> None:
        """Totals and per-month rows are the same in both."""
        report = sample()
        data = json.loads(render_json(report))
        rows = list(csv.DictReader(io.StringIO(render_csv(report))))
        assert data["figures"]["totals"] == {
            r["metric"]: int(r["value"]) for r in rows if r["section"] == "totals" and r["metric"] != "failure_entries"
        }
        csv_months = {
            (r["month"], r["category"], r["metric"]): int(r["value"]) for r in rows if r["section"] == "month"
        }
        for row in data["figures"]["by_month"]:
            for metric in ("deleted", "anonymized", "prior_versions", "held", "failed"):
                assert row[metric] == csv_months[(row["month"], row["category"], metric)]

    def test_failed_verification(self) -> None:
        """No figures: JSON says null, CSV has the verification rows only."""
        report = failed_sample()
        assert json.loads(render_json(report))["figures"] is None
        rows = list(csv.DictReader(io.StringIO(render_csv(report))))
        assert {"verification"} == {r["section"] for r in rows}
        assert "False" == next(r["value"] for r in rows if r["metric"] == "ok")


class TestCharts:
    """The SVG helpers."""

    @pytest.mark.parametrize(("value", "expected"), [(0, 1), (1, 1), (7, 10), (12, 20), (240, 250), (3001, 5000)])
    def test_nice_ceiling(self, value: int, expected: int) -> None:
        """Axis tops are 1, 2, 2.5 or 5 times a power of ten, at least the value."""
        assert expected == charts.nice_ceiling(value)

    def test_text_is_escaped(self) -> None:
        """Labels reach the SVG escaped."""
        svg = charts.stacked_bars("c", ["2026-01"], [charts.Series("<b>&", "#000", [3])], title="t<", desc="d&")
        assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and "t&lt;" in svg

    def test_empty_period_still_draws(self) -> None:
        """No data: a chart with a sentence, not an empty box."""
        svg = charts.stacked_bars("c", [], [], title="t", desc="d")
        assert "No record was deleted" in svg
