"""Item 4: the report of a ledger made by real runs, opened in headless Chromium.

Skipped, with the reason, only where Chromium cannot run; with ``RETENTIOND_REQUIRE_BROWSER=1``
(set by .ci/run, which installs Debian's chromium) a missing browser fails the test instead.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.report.browser import BrowserUnavailable, Page, open_page
from tests.report.conftest import Result, tampered_copy
from tests.report.scenario import Scenario
from tests.report.test_scenario import ledger_sums

pytestmark = pytest.mark.slow

Cli = Callable[..., Result]


@contextmanager
def browser(path: Path) -> Iterator[Page]:
    """Open ``path`` in Chromium, or skip (fail when the browser is required) where it cannot run."""
    try:
        with open_page(path) as page:
            yield page
    except BrowserUnavailable as exc:
        if os.environ.get("RETENTIOND_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RETENTIOND_REQUIRE_BROWSER=1 but {exc}", pytrace=False)
        pytest.skip(f"headless Chromium cannot run here: {exc}")


def _keep(screenshot: Path) -> None:
    """Copy a screenshot to $RETENTIOND_SCREENSHOT_DIR when set (CI artifacts)."""
    directory = os.environ.get("RETENTIOND_SCREENSHOT_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(directory) / screenshot.name)


CHART_BOXES = """els => els.map(e => {
  const r = e.getBoundingClientRect();
  const label = (e.getAttribute('aria-labelledby') || '').split(' ')
    .map(id => document.getElementById(id)).filter(n => n && n.textContent.trim()).length;
  return {id: e.id, width: r.width, height: r.height, role: e.getAttribute('role'), labels: label};
})"""
MARK_SIZES = "els => els.map(e => { const r = e.getBoundingClientRect(); return r.width * r.height; })"


class TestInChromium:
    """The page loads cleanly, its charts are drawn, its totals are the ledger's."""

    def test_demo_ledger_report(self, scenario_sqlite: Scenario, report_cli: Cli, tmp_path: Path) -> None:
        """Screenshot, no console error or request, charts of non-zero size, totals equal the ledger's."""
        result = report_cli(scenario_sqlite.config_path, fmt="html")
        assert 0 == result.code, result.err
        entries = scenario_sqlite.entries()
        expected = ledger_sums(entries)
        with browser(result.path) as loaded:
            page = loaded.page
            shot = tmp_path / "report-browser.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            _keep(shot)

            assert [] == loaded.console_errors
            assert [] == loaded.outside_requests

            charts = page.eval_on_selector_all("svg.chart", CHART_BOXES)
            ids = [c["id"] for c in charts]
            assert {"chart-deletions", "chart-holds"} <= set(ids)
            assert all(c["width"] > 0 and c["height"] > 0 for c in charts), charts
            assert all(c["role"] == "img" and c["labels"] == 2 for c in charts), charts
            bars = page.eval_on_selector_all("#chart-deletions rect.bar", MARK_SIZES)
            spans = page.eval_on_selector_all("#chart-holds rect.span", MARK_SIZES)
            assert bars and all(area > 0 for area in bars)
            assert len(spans) >= 2 and all(area > 0 for area in spans)

            tiles = {
                el.get_attribute("data-total"): int(el.inner_text().replace(",", ""))
                for el in page.query_selector_all("[data-total]")
            }
            events = Counter(e.event for e in entries)
            shown = {k: v for k, v in expected.items() if k != "skipped" or v}
            assert shown == {k: tiles[k] for k in shown}
            assert (events["run_started"], events["guard_tripped"]) == (tiles["runs"], tiles["guard_trips"])
            failures = sum(1 for e in entries if e.event == "batch" and e.fields["outcome"] == "failed")
            assert failures == tiles["failure_entries"] > 0
            table_totals = {
                el.get_attribute("data-table-total"): int(el.inner_text().replace(",", ""))
                for el in page.query_selector_all("#table-monthly [data-table-total]")
            }
            assert shown == table_totals

            verification = page.eval_on_selector("#verification", "e => e.getBoundingClientRect().bottom")
            assert verification <= page.viewport_size["height"]  # stated on the first screen
            assert "Ledger verified" in page.inner_text("#verification h2")

            page.emulate_media(media="print")
            printed = page.eval_on_selector_all("svg.chart", CHART_BOXES)
            assert all(c["width"] > 0 and c["height"] > 0 for c in printed)
            pdf = page.pdf(format="A4")
            assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 2
        print(
            f"\nbrowser: {len(charts)} charts ({len(bars)} bars, {len(spans)} hold spans); "
            f"totals {shown}; runs {tiles['runs']}; guard trips {tiles['guard_trips']}; "
            f"screenshot {shot} ({shot.stat().st_size} bytes); PDF {len(pdf)} bytes"
        )

    def test_tampered_ledger_first_screen(self, scenario_sqlite: Scenario, report_cli: Cli, tmp_path: Path) -> None:
        """A tampered ledger: the failure fills the first screen, no figure is shown, exit 65."""
        config = tampered_copy(scenario_sqlite, tmp_path)
        result = report_cli(config, "--pubkey", str(scenario_sqlite.pubkey_path), fmt="html")
        assert 65 == result.code
        with browser(result.path) as loaded:
            page = loaded.page
            shot = tmp_path / "report-tampered.png"
            page.screenshot(path=str(shot))
            _keep(shot)
            assert [] == loaded.console_errors
            box = page.eval_on_selector("#verification", "e => e.getBoundingClientRect().toJSON()")
            assert box["top"] < page.viewport_size["height"] and box["height"] > 0
            assert "Ledger verification FAILED" in page.inner_text("#verification h2")
            assert "modified" in page.inner_text("#verification")
            assert [] == page.query_selector_all("[data-total]")
            assert [] == page.query_selector_all("svg")
