"""``retentiond report`` over a ledger made by real runs (tests/report/scenario.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import getpass
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from retentiond.audit.ledger import Entry
from tests.report.conftest import Result, tampered_copy
from tests.report.scenario import BASE, MONTHS, RUN_TIMES, Scenario, ledger_time

# The scenario fixtures are chosen at run time (getfixturevalue), out of the conftest hook's sight.
pytestmark = [pytest.mark.pg, pytest.mark.s3, pytest.mark.slow]

Cli = Callable[..., Result]


def ledger_sums(
    entries: Iterable[Entry],
    *,
    since: str | None = None,
    until: str | None = None,
    category: str | None = None,
    month: str | None = None,
) -> dict[str, int]:
    """Sum the ledger's outcome entries directly (independently of retentiond.report)."""
    sums: Counter[str] = Counter()
    for e in entries:
        if e.event != "batch" or (since and e.time < since) or (until and e.time >= until):
            continue
        if (category and e.category != category) or (month and not e.time.startswith(month)):
            continue
        f = e.fields
        if f["outcome"] in ("deleted", "anonymized"):
            sums[f["outcome"]] += f["count"] - f["prior_versions"]
            sums["prior_versions"] += f["prior_versions"]
        else:
            sums[f["outcome"]] += f["count"]
    return {k: sums[k] for k in ("deleted", "anonymized", "prior_versions", "held", "blocked", "failed", "skipped")}


def figures(result: Result) -> dict[str, Any]:
    """Return the ``figures`` of a JSON report, which must have verified."""
    assert 0 == result.code, result.err
    data = result.json()
    assert data["verification"]["ok"] is True  # type: ignore[index]
    found: dict[str, Any] = data["figures"]  # type: ignore[assignment]
    return found


class TestTotalsEqualTheLedger:
    """Acceptance: report totals equal the sums of the ledger's outcome entries for the period."""

    def test_whole_ledger(self, scenario: Scenario, report_cli: Cli) -> None:
        """Every total equals the sum over the ledger's batch entries."""
        entries = scenario.entries()
        assert ledger_sums(entries) == figures(report_cli(scenario.config_path))["totals"]

    def test_the_scenario_exercises_every_outcome(self, scenario: Scenario, report_cli: Cli) -> None:
        """Deleted, anonymized, prior versions, held and blocked records, and a failure, are all there."""
        totals = figures(report_cli(scenario.config_path))["totals"]
        assert all(totals[k] > 0 for k in ("deleted", "anonymized", "prior_versions", "held", "blocked"))
        failures = [e for e in scenario.entries() if e.event == "batch" and e.fields["outcome"] == "failed"]
        assert ["notes"] == sorted({e.category for e in failures})

    def test_per_category_and_month(self, scenario: Scenario, report_cli: Cli) -> None:
        """Each (month, category) row equals the entries of that month and category."""
        entries = scenario.entries()
        data = figures(report_cli(scenario.config_path))
        assert list(MONTHS) == data["months"]
        rows = data["by_month"]
        assert rows
        for row in rows:
            expected = ledger_sums(entries, category=row["category"], month=row["month"])
            assert expected == {k: row[k] for k in expected}
        per_category = {c["name"]: c["totals"] for c in data["categories"]}
        for name, totals in per_category.items():
            assert ledger_sums(entries, category=name) == totals

    def test_a_window(self, scenario: Scenario, report_cli: Cli) -> None:
        """--since/--until keep the entries of the second and third months only."""
        entries = scenario.entries()
        since, until = f"{MONTHS[1]}-01", f"{MONTHS[3]}-01"
        data = figures(report_cli(scenario.config_path, "--since", since, "--until", until))
        expected = ledger_sums(entries, since=ledger_time(since), until=ledger_time(until))
        assert expected == data["totals"]
        assert list(MONTHS[1:3]) == data["months"]
        assert 2 == len(data["runs"])

    def test_one_category(self, scenario: Scenario, report_cli: Cli) -> None:
        """--category support shows that category's figures, runs and holds only."""
        entries = scenario.entries()
        data = figures(report_cli(scenario.config_path, "--category", "support"))
        assert ledger_sums(entries, category="support") == data["totals"]
        assert ["support"] == [c["name"] for c in data["categories"]]
        assert ["H1"] == [h["hold_id"] for h in data["holds"]]

    def test_sql_figures_equal_the_engines_own(self, scenario: Scenario, report_cli: Cli) -> None:
        """For SQL targets the report agrees with what each run said it did (records and prior versions)."""
        data = figures(report_cli(scenario.config_path, "--category", "support"))
        acted = sum(t.acted for r in scenario.reports for t in r.targets if t.category == "support")
        prior = sum(t.prior_versions_deleted for r in scenario.reports for t in r.targets if t.category == "support")
        assert (acted, prior) == (data["totals"]["deleted"], data["totals"]["prior_versions"])
        assert prior > 0


class TestContent:
    """Item 2: retention as applied and configured, runs, guard trips, holds, backlog."""

    def test_retention_applied_and_configured(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """Each category's retention as the runs applied it (from cutoffs) and as the config says."""
        data = figures(report_cli(scenario_sqlite.config_path))
        by_name = {c["name"]: c for c in data["categories"]}
        assert [("30d", 5)] == [(a["period"], a["runs"]) for a in by_name["support"]["retention_applied"]]
        assert [("60d", 5)] == [(a["period"], a["runs"]) for a in by_name["contacts"]["retention_applied"]]
        assert {"retain": "60d", "action": "anonymize", "prior_versions": None, "targets": 1} == by_name["contacts"][
            "configured"
        ]
        assert ["anonymize"] == by_name["contacts"]["actions"]
        assert data["given_config"]["in_force"] is True
        assert 2 == len(data["configs"])  # the guard limit was raised after January

    def test_runs_and_guard_trips(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """Five runs: the first stopped by the guard, the second allowed; the fourth's notes failed."""
        data = figures(report_cli(scenario_sqlite.config_path))
        runs = data["runs"]
        assert ["finished"] * 5 == [r["status"] for r in runs]
        guarded = ["support", "contacts", "notes", "media"]
        assert [guarded, [], [], ["notes"], []] == [r["failed_categories"] for r in runs]
        assert all(r["duration_ms"] is not None for r in runs)
        # run_started records who ran it (issue 11): here the OS user of the test process.
        assert {getpass.getuser()} == {r["actor"] for r in runs}
        decisions = Counter(g["decision"] for g in data["guard_trips"])
        assert decisions["stopped"] == decisions["allowed"] == 4  # every category, once each
        assert {MONTHS[0]} == {g["time"][:7] for g in data["guard_trips"]}
        months = {m["month"]: m for m in data["run_months"]}
        assert (2, 1) == (months[MONTHS[0]]["runs"], months[MONTHS[0]]["with_failures"])
        assert 1 == months[MONTHS[2]]["with_failures"]

    def test_holds_placed_changed_released(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """H1 placed in month 1, changed in month 2, released in month 3 (with grace); H2 placed in month 2."""
        data = figures(report_cli(scenario_sqlite.config_path))
        holds = {h["hold_id"]: h for h in data["holds"]}
        h1, h2 = holds["H1"], holds["H2"]
        assert ("legal", 1, f"{BASE:%Y-%m-%d}") == (h1["kind"], h1["subjects"], h1["placed_at"][:10])
        assert [MONTHS[1]] == [t[:7] for t in h1["changes"]]
        assert f"{RUN_TIMES[2]:%Y-%m-%d}" == h1["released_at"][:10]
        assert f"{RUN_TIMES[2] + timedelta(days=7):%Y-%m-%d}" == h1["protects_until"][:10]
        assert ("released", True) == (h1["state"], h1["in_force"])
        assert ("tax", None, "in force") == (h2["kind"], h2["subjects"], h2["state"])
        assert h2["held_latest"] > 0

    def test_backlog_trend(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """Eligible records at the start of each run: high before the first purge, low after."""
        data = figures(report_cli(scenario_sqlite.config_path, "--category", "support"))
        support = [p["eligible"] for p in data["backlog"] if p["category"] == "support"]
        assert 5 == len(support)
        assert support[0] == support[1] > 0  # the guard stopped the first run: nothing cleared
        assert max(support[2:]) < support[0]


class TestFormats:
    """Item 3: HTML, JSON and CSV carry the same figures."""

    def test_csv_and_html_match_json(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """The CSV totals rows and the HTML tiles equal the JSON totals."""
        totals = figures(report_cli(scenario_sqlite.config_path))["totals"]
        rows = list(csv.DictReader(io.StringIO(report_cli(scenario_sqlite.config_path, fmt="csv").text)))
        csv_totals = {r["metric"]: int(r["value"]) for r in rows if r["section"] == "totals"}
        assert totals == {k: v for k, v in csv_totals.items() if k != "failure_entries"}
        month_rows = [r for r in rows if r["section"] == "month" and r["metric"] == "deleted"]
        assert totals["deleted"] == sum(int(r["value"]) for r in month_rows)
        html = report_cli(scenario_sqlite.config_path, fmt="html").text
        tiles = dict(re.findall(r'data-total="(\w+)">([\d,]+)<', html))
        assert {k: v for k, v in totals.items() if k != "skipped"} == {
            k: int(v.replace(",", "")) for k, v in tiles.items() if k in totals
        }


class TestVerification:
    """Item 1: verified first; a tampered ledger gives a report that says so, and exit 65."""

    def test_the_top_states_the_verification(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """Result, head hash, last checkpoint and key fingerprint are stated; signatures were checked."""
        result = report_cli(scenario_sqlite.config_path)
        v = result.json()["verification"]
        assert isinstance(v, dict)
        last = [e for e in scenario_sqlite.entries() if e.event == "checkpoint"][-1]
        assert (True, True) == (v["ok"], v["signatures_checked"])
        assert (last.seq, last.hash.hex()) == (v["head_seq"], v["head_hash"])
        assert last.seq == v["last_checkpoint_seq"]
        assert [last.fields["key_fingerprint"]] == v["key_fingerprints"] == [v["last_checkpoint_key"]]

    @pytest.mark.parametrize("fmt", ["html", "json", "csv"])
    def test_tampered_ledger(self, scenario_sqlite: Scenario, report_cli: Cli, tmp_path: Path, fmt: str) -> None:
        """One changed count: exit 65, the failure first, and no figures in any format."""
        config = tampered_copy(scenario_sqlite, tmp_path)
        result = report_cli(config, "--pubkey", str(scenario_sqlite.pubkey_path), fmt=fmt)
        assert 65 == result.code
        assert "LEDGER VERIFICATION FAILED" in result.err
        if fmt == "html":
            first = result.text.split('<section id="verification"', 1)[1].split("</section>", 1)[0]
            assert "Ledger verification FAILED" in first and 'role="alert"' in first and "modified" in first
            assert "data-total" not in result.text and "<svg" not in result.text
        elif fmt == "json":
            data = result.json()
            assert data["figures"] is None
            assert False is data["verification"]["ok"]  # type: ignore[index]
        else:
            sections = {r["section"] for r in csv.DictReader(io.StringIO(result.text))}
            assert {"verification"} == sections

    def test_auditor_only_config(self, scenario: Scenario, report_cli: Cli) -> None:
        """[audit] with the ledger URL and --pubkey are enough; the figures are the same."""
        operator = figures(report_cli(scenario.config_path))
        result = report_cli(scenario.auditor_config(), "--pubkey", str(scenario.pubkey_path))
        auditor = figures(result)
        assert operator["totals"] == auditor["totals"]
        assert all(c["configured"] is None for c in auditor["categories"])
        assert auditor["given_config"] is None
        assert "NOT checked" not in result.err

    def test_without_a_public_key(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """No key at all: refused as ``audit verify`` refuses (exit 2, asks for --pubkey), nothing written."""
        result = report_cli(scenario_sqlite.auditor_config(), fmt="html")
        assert 2 == result.code
        assert "--pubkey" in result.err
        assert not result.path.exists()


class TestUsage:
    """Bad input gets the documented exit code and writes nothing."""

    def test_unknown_category(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """A --category neither the ledger nor the config knows is a usage error (2)."""
        result = report_cli(scenario_sqlite.config_path, "--category", "suport")
        assert (2, False) == (result.code, result.path.exists())
        assert "unknown category: suport" in result.err

    def test_empty_period(self, scenario_sqlite: Scenario, report_cli: Cli) -> None:
        """--since after --until is a usage error (2)."""
        result = report_cli(scenario_sqlite.config_path, "--since", f"{MONTHS[2]}-01", "--until", f"{MONTHS[1]}-01")
        assert (2, False) == (result.code, result.path.exists())

    def test_no_ledger_there(self, tmp_path: Path, report_cli: Cli) -> None:
        """An auditor config naming a missing SQLite file: exit 78, and no empty ledger file created."""
        missing = tmp_path / "nowhere.db"
        config = tmp_path / "auditor.toml"
        config.write_text(f'[audit]\nurl = "sqlite:///{missing}"\n', encoding="utf-8")
        result = report_cli(config)
        assert 78 == result.code
        assert not missing.exists()

    def test_auditor_config_without_url(self, tmp_path: Path, report_cli: Cli) -> None:
        """An auditor config must say where the ledger is (78, naming audit.url)."""
        config = tmp_path / "auditor.toml"
        config.write_text('[audit]\nledger_id = "retentiond"\n', encoding="utf-8")
        result = report_cli(config)
        assert 78 == result.code
        assert "audit.url" in result.err
