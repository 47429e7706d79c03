"""Property: every cutoff of a run comes from ``policy.cutoffs``, with one default for prior versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from retentiond.config.models import Category
from retentiond.policy.cutoffs import cutoffs, prior_versions_cutoff, prior_versions_cutoffs, retain_cutoff

#: Up to the 200-year limit of a retention period in every unit.
MAX = {"d": 73_000, "w": 10_000, "mo": 2_400, "y": 200}
periods = st.sampled_from(sorted(MAX)).flatmap(lambda unit: st.integers(1, MAX[unit]).map(lambda n: f"{n}{unit}"))
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


def _category(retain: str, prior: str | None) -> Category:
    data: dict[str, Any] = {"retain": retain, "action": "delete"}
    if prior is not None:
        data["prior_versions"] = prior
    return Category.model_validate(data)


class TestCutoffs:
    """Retain and prior-versions cutoffs: run_start minus a period on the UTC calendar, never after run_start."""

    @given(retain=periods, prior=st.one_of(st.none(), periods), run_start=instants)
    def test_cutoffs_precede_run_start(self, retain: str, prior: str | None, run_start: datetime) -> None:
        """Both cutoffs are strictly before run_start (every period is greater than zero)."""
        category = _category(retain, prior)
        assert (True, True) == (
            retain_cutoff(category, run_start) < run_start,
            prior_versions_cutoff(category, run_start) < run_start,
        )

    @given(retain=periods, run_start=instants)
    def test_default_prior_versions_is_the_retain_cutoff(self, retain: str, run_start: datetime) -> None:
        """Without prior_versions, a prior version expires with the category's own retain (the one default)."""
        category = _category(retain, None)
        assert retain_cutoff(category, run_start) == prior_versions_cutoff(category, run_start)

    @given(retain=periods, prior=periods, run_start=instants)
    def test_prior_versions_is_its_own_period(self, retain: str, prior: str, run_start: datetime) -> None:
        """With prior_versions, the prior-versions cutoff is run_start minus that period, whatever retain is."""
        category = _category(retain, prior)
        assert category.prior_versions is not None
        assert category.prior_versions.before(run_start) == prior_versions_cutoff(category, run_start)

    @given(unit=st.sampled_from(sorted(MAX)), data=st.data(), run_start=instants)
    def test_longer_period_earlier_cutoff(self, unit: str, data: st.DataObject, run_start: datetime) -> None:
        """In one unit, a longer retention never gives a later cutoff (calendar months differ in length)."""
        a, b = sorted(data.draw(st.lists(st.integers(1, MAX[unit]), min_size=2, max_size=2)))
        shorter, longer = _category(f"{a}{unit}", None), _category(f"{b}{unit}", None)
        assert retain_cutoff(longer, run_start) <= retain_cutoff(shorter, run_start)

    def test_month_end_is_calendar_arithmetic(self) -> None:
        """One month before 31 March is the last day of February (UTC calendar)."""
        run_start = datetime(2026, 3, 31, 12, tzinfo=UTC)
        assert datetime(2026, 2, 28, 12, tzinfo=UTC) == retain_cutoff(_category("1mo", None), run_start)

    @given(retains=st.dictionaries(st.sampled_from(["a", "b", "c"]), periods, max_size=3), run_start=instants)
    def test_per_category_maps(self, retains: dict[str, str], run_start: datetime) -> None:
        """The per-category maps hold exactly the single-category values."""
        categories = {name: _category(r, None) for name, r in retains.items()}
        expected = {name: retain_cutoff(c, run_start) for name, c in categories.items()}
        assert (expected, expected) == (cutoffs(categories, run_start), prior_versions_cutoffs(categories, run_start))
