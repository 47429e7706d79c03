"""The pure aggregation of retentiond.report: properties over random ledgers, and the rules one by one."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentiond.audit.canonical import canonical_dumps, format_time
from retentiond.audit.ledger import Entry
from retentiond.config.durations import RetentionPeriod
from retentiond.report.aggregate import aggregate
from retentiond.report.model import ExtraTable, Figures, Report
from retentiond.report.periods import applied_period, months_between
from tests.report.entries import NOW, VERIFIED, Builder

CATEGORIES = ("alpha", "beta", "gamma")
OUTCOMES = ("deleted", "anonymized", "held", "blocked", "failed", "skipped")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def report_of(entries: list[Entry], **kwargs: object) -> Report:
    """Aggregate ``entries`` with the test verification and time."""
    return aggregate(entries, ledger_id="retentiond", verification=VERIFIED, generated_at=NOW, **kwargs)  # type: ignore[arg-type]


@st.composite
def batch_ledgers(draw: st.DrawFn) -> list[Entry]:
    """Random ledgers of batch entries over a year, in time order."""
    builder = Builder()
    offsets = sorted(draw(st.lists(st.integers(0, 365 * 24 * 60), min_size=0, max_size=40)))
    for minutes in offsets:
        outcome = draw(st.sampled_from(OUTCOMES))
        count = draw(st.integers(0, 5000))
        prior = draw(st.integers(0, count)) if outcome in ("deleted", "anonymized") else 0
        builder.batch(T0 + timedelta(minutes=minutes), draw(st.sampled_from(CATEGORIES)), outcome, count, prior=prior)
    return builder.entries


def direct_sums(entries: list[Entry]) -> dict[str, int]:
    """Sum outcome entries without the report code."""
    sums: Counter[str] = Counter()
    for e in entries:
        f = e.fields
        if f["outcome"] in ("deleted", "anonymized"):
            sums[f["outcome"]] += f["count"] - f["prior_versions"]
            sums["prior_versions"] += f["prior_versions"]
        else:
            sums[f["outcome"]] += f["count"]
    return {k: sums[k] for k in Figures().as_dict()}


class TestTotalsProperties:
    """Totals are sums of entries, however the ledger is cut."""

    @settings(max_examples=200, deadline=None)
    @given(batch_ledgers())
    def test_totals_are_sums_of_entries(self, entries: list[Entry]) -> None:
        """Totals equal the direct sums; categories and months each partition them."""
        report = report_of(entries)
        assert direct_sums(entries) == report.totals.as_dict()
        by_category, by_month = Figures(), Figures()
        for summary in report.categories.values():
            by_category.add(summary.totals)
        for row in report.by_month.values():
            for figures in row.values():
                by_month.add(figures)
        assert report.totals == by_category == by_month
        acted_counts = sum(e.fields["count"] for e in entries if e.fields["outcome"] in ("deleted", "anonymized"))
        assert acted_counts == report.totals.acted + report.totals.prior_versions

    @settings(max_examples=100, deadline=None)
    @given(batch_ledgers(), st.integers(0, 365 * 24 * 60))
    def test_periods_add_up(self, entries: list[Entry], cut_minutes: int) -> None:
        """Before a cut plus from the cut equals the whole."""
        cut = T0 + timedelta(minutes=cut_minutes)
        before, after = report_of(entries, until=cut).totals, report_of(entries, since=cut).totals
        before.add(after)
        assert report_of(entries).totals == before

    @settings(max_examples=100, deadline=None)
    @given(batch_ledgers(), st.sampled_from(CATEGORIES))
    def test_category_filter(self, entries: list[Entry], category: str) -> None:
        """--category C gives C's totals of the unfiltered report, and nothing of the others."""
        whole = report_of(entries)
        only = report_of(entries, categories=[category])
        expected = whole.categories[category].totals if category in whole.categories else Figures()
        assert expected == only.totals
        assert set(only.categories) <= {category}

    @settings(max_examples=50, deadline=None)
    @given(batch_ledgers())
    def test_months_have_no_gaps(self, entries: list[Entry]) -> None:
        """Months run from the first entry's to the last's, one each, in order."""
        months = report_of(entries).months
        if not entries:
            assert [] == months
            return
        assert months == months_between(entries[0].time[:7], entries[-1].time[:7])
        assert set(report_of(entries).by_month) <= set(months)


class TestAppliedRetention:
    """The retention a run applied, read back from run_start and its cutoff."""

    @pytest.mark.parametrize("text", ["30d", "1w", "13mo", "18mo", "2y", "7y", "90d"])
    def test_calendar_periods(self, text: str) -> None:
        """A cutoff made by a period is named by that period (or an equal one)."""
        run_start = datetime(2026, 3, 31, 4, 0, tzinfo=UTC)
        cutoff = RetentionPeriod.parse(text).before(run_start)
        named = applied_period(run_start, cutoff)
        assert cutoff == RetentionPeriod.parse(named).before(run_start)

    def test_configured_words_preferred(self) -> None:
        """7d and 1w give the same cutoff: the config's own words win."""
        run_start = datetime(2026, 3, 31, tzinfo=UTC)
        cutoff = run_start - timedelta(days=7)
        assert ("1w", "7d") == (applied_period(run_start, cutoff), applied_period(run_start, cutoff, "7d"))

    def test_a_cutoff_no_period_explains(self) -> None:
        """An odd cutoff is given in days, not forced into a period."""
        run_start = datetime(2026, 3, 31, tzinfo=UTC)
        assert "1.5 days" == applied_period(run_start, run_start - timedelta(hours=36))

    @settings(max_examples=200, deadline=None)
    @given(
        st.integers(1, 120),
        st.sampled_from(["d", "w", "mo", "y"]),
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    )
    def test_round_trip(self, amount: int, unit: str, run_start: datetime) -> None:
        """Whatever period made the cutoff, the name found makes the same cutoff."""
        cutoff = RetentionPeriod(amount, unit).before(run_start)
        assert cutoff == RetentionPeriod.parse(applied_period(run_start, cutoff)).before(run_start)

    def test_changes_over_time_are_listed(self) -> None:
        """A category whose retention changed shows both periods with their runs."""
        b = Builder()
        for i, days in enumerate((30, 30, 60)):
            at = T0 + timedelta(days=31 * i)
            b.run_started(at, {"alpha": at - timedelta(days=days)}, run_id=f"run-{i}")
        applied = report_of(b.entries).categories["alpha"].applied
        assert [("30d", 2), ("60d", 1)] == [(a.period, a.runs) for a in applied]


class TestRuns:
    """Runs: status, durations, failures, guard trips and who allowed them."""

    def test_status_and_durations(self) -> None:
        """Finished, interrupted and never-closed runs; durations per month."""
        b = Builder()
        for i in range(3):
            b.run_started(T0 + timedelta(days=i), {"alpha": T0}, run_id=f"r{i}")
        b.run_finished(T0 + timedelta(days=0, minutes=5), run_id="r0", duration_ms=300)
        b.add("run_interrupted", T0 + timedelta(days=1, minutes=5), {"reason": "sigterm", "counts": {}}, run_id="r1")
        report = report_of(b.entries)
        assert ["finished", "interrupted", "incomplete"] == [r.status for r in report.runs]
        (month,) = report.run_months
        assert (3, 1, 1, 1, 2, 300, 300) == (
            month.runs,
            month.finished,
            month.interrupted,
            month.incomplete,
            month.with_failures,
            month.total_ms,
            month.max_ms,
        )

    def test_guard_allowed_by_the_recorded_actor(self) -> None:
        """When run_started records an actor (a later ledger version), an allowed trip names it."""
        b = Builder()
        b.run_started(T0, {"alpha": T0}, run_id="r1", actor="ops-oncall", reference="CHG-42")
        guard = {"store": "app", "target": "t", "would_act": 9, "total": 10, "limit": 2}
        b.add("guard_tripped", T0, {**guard, "decision": "allowed"}, run_id="r1", category="alpha")
        b.add("guard_tripped", T0, {**guard, "decision": "stopped"}, category="alpha")
        allowed, stopped = report_of(b.entries).guard_trips
        assert ("ops-oncall", "CHG-42") == (allowed.allowed_by, allowed.reference)
        assert (None, "stopped") == (stopped.allowed_by, stopped.decision)

    def test_backlog_from_run_finished(self) -> None:
        """Eligible counts come from run_finished, per run and category, filtered like the rest."""
        b = Builder()
        b.run_started(T0, {"alpha": T0, "beta": T0}, run_id="r1")
        b.run_finished(T0, run_id="r1", eligible={"alpha": 5, "beta": 7})
        assert [("alpha", 5)] == [(p.category, p.eligible) for p in report_of(b.entries, categories=["alpha"]).backlog]


class TestHolds:
    """Holds in force during the period, with placement, changes and release."""

    def test_life_of_a_hold(self) -> None:
        """Placed, changed twice, released with grace: one history, state at the period's end."""
        b = Builder()
        b.hold("hold_placed", T0, "H", subjects=2, categories=("alpha",))
        b.hold("hold_changed", T0 + timedelta(days=10), "H", subjects=3, placed_at=T0, categories=("alpha",))
        b.hold("hold_changed", T0 + timedelta(days=20), "H", subjects=3, placed_at=T0, categories=("alpha", "beta"))
        b.hold("hold_released", T0 + timedelta(days=30), "H", protects_until=T0 + timedelta(days=37))
        (hold,) = report_of(b.entries).holds
        assert (3, ["alpha", "beta"], 2, "released", True) == (
            hold.subjects,
            hold.categories,
            len(hold.changes),
            hold.state,
            hold.in_force,
        )
        (in_grace,) = report_of(b.entries, until=T0 + timedelta(days=33)).holds
        assert "in release grace" == in_grace.state

    def test_who_placed_it_when_recorded(self) -> None:
        """placed_by and reference, which a later ledger version records, are shown when present."""
        b = Builder()
        placed = b.hold("hold_placed", T0, "H")
        fields = {**placed.fields, "placed_by": "j.doe-legal", "reference": "Matter-2026-014"}
        b.entries[-1] = Entry(*placed.as_row()[:6], canonical_dumps(fields), *placed.as_row()[7:])
        (hold,) = report_of(b.entries).holds
        assert ("j.doe-legal", "Matter-2026-014") == (hold.placed_by, hold.reference)

    def test_which_holds_a_period_shows(self) -> None:
        """Placed before and in force: shown; released long before, or placed after: not."""
        b = Builder()
        b.hold("hold_placed", T0, "OLD")
        b.hold("hold_released", T0 + timedelta(days=5), "OLD", protects_until=T0 + timedelta(days=12))
        b.hold("hold_placed", T0, "LONG")
        b.hold("hold_placed", T0 + timedelta(days=300), "LATER")
        since, until = T0 + timedelta(days=100), T0 + timedelta(days=200)
        assert ["LONG"] == [h.hold_id for h in report_of(b.entries, since=since, until=until).holds]

    def test_expired_and_category_filter(self) -> None:
        """An expiry date past the period's end reads 'expired'; --category keeps covering holds and '*'."""
        b = Builder()
        b.hold("hold_placed", T0, "TAX", categories=("beta",), expires_at=T0 + timedelta(days=3))
        b.hold("hold_placed", T0, "ALL", categories=("*",))
        report = report_of(b.entries, until=T0 + timedelta(days=10))
        assert {"TAX": "expired", "ALL": "in force"} == {h.hold_id: h.state for h in report.holds}
        assert ["ALL"] == [h.hold_id for h in report_of(b.entries, categories=["alpha"]).holds]

    def test_records_kept_at_the_latest_run(self) -> None:
        """'held' entries of the latest run give each hold's and category's current figure."""
        b = Builder()
        b.hold("hold_placed", T0, "H")
        b.batch(T0, "alpha", "held", 10, run_id="r1", holds=("H",))
        b.batch(T0 + timedelta(days=1), "alpha", "held", 4, run_id="r2", holds=("H",))
        b.batch(T0 + timedelta(days=1), "alpha", "held", 2, run_id="r2", holds=("H",))
        report = report_of(b.entries)
        assert (6, 6, 16) == (report.holds[0].held_latest, report.categories["alpha"].held_latest, report.totals.held)


class TestConfigurationAndExtensions:
    """Configuration digests, and events the core does not read."""

    def test_digest_in_force_before_the_period(self) -> None:
        """The configuration recorded before the period is listed as in force when it began."""
        b = Builder()
        b.add("config_loaded", T0, {"config_sha256": "a" * 64, "holds_sha256": None, "categories": [], "holds": []})
        b.add("config_loaded", T0 + timedelta(days=50), {"config_sha256": "b" * 64, "holds_sha256": None})
        report = aggregate(
            b.entries,
            ledger_id="retentiond",
            verification=VERIFIED,
            generated_at=NOW,
            since=T0 + timedelta(days=10),
            given_config_sha256="b" * 64,
        )
        assert [("a" * 64, "before the period"), ("b" * 64, format_time(T0 + timedelta(days=50)))] == [
            (c.sha256, c.first_seen) for c in report.configs
        ]
        assert report.given_config_in_force is True

    def test_extension_claims_its_events(self) -> None:
        """An extension (erasure requests, later) gets its events; others are counted, not dropped."""

        class Requests:
            events = frozenset({"erasure_requested"})

            def __init__(self) -> None:
                self.seen: list[bool] = []

            def feed(self, entry: Entry, in_period: bool) -> None:
                self.seen.append(in_period)

            def table(self) -> ExtraTable | None:
                return ExtraTable("erasure", "Erasure requests", "s", ["requests"], [[len(self.seen)]])

        b = Builder()
        b.add("erasure_requested", T0, {"request": "R1"})
        b.add("erasure_requested", T0 + timedelta(days=40), {"request": "R2"})
        b.add("something_new", T0 + timedelta(days=40), {})
        report = aggregate(
            b.entries,
            ledger_id="retentiond",
            verification=VERIFIED,
            generated_at=NOW,
            since=T0 + timedelta(days=30),
            extensions=[Requests],
        )
        assert [[2]] == [t.rows for t in report.extras][0]
        assert {"something_new": 1} == report.unsummarized
