"""Retention periods and operational durations (SPEC §3, "Durations")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retentiond.config.durations import RetentionPeriod, format_operational, parse_operational

UTC = UTC
UNITS = ("d", "w", "mo", "y")
instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC))
_MAX_AMOUNT = {"d": 73_000, "w": 10_400, "mo": 2_400, "y": 200}  # all within the 200-year limit
periods = st.sampled_from(UNITS).flatmap(
    lambda unit: st.integers(1, _MAX_AMOUNT[unit]).map(lambda n: RetentionPeriod.parse(f"{n}{unit}"))
)


class TestRetentionGrammar:
    """Nd, Nw, Nmo and Ny only; zero, negative, fractional, spaced and huge periods are refused."""

    @pytest.mark.parametrize(
        ("text", "amount", "unit"),
        [("30d", 30, "d"), ("6w", 6, "w"), ("13mo", 13, "mo"), ("7y", 7, "y"), ("1d", 1, "d"), ("200y", 200, "y")],
    )
    def test_accepts(self, text: str, amount: int, unit: str) -> None:
        """Each unit of the retention grammar parses to its amount and unit."""
        assert RetentionPeriod(amount, unit) == RetentionPeriod.parse(text)

    @pytest.mark.parametrize(
        "text",
        [
            "6m",
            "0d",
            "0mo",
            "-1d",
            "1.5y",
            "7 y",
            "y",
            "",
            "1",
            "1h",
            "1s",
            "1Y",
            "1 mo",
            "+1d",
            "1yr",
            "999999y",
            "201y",
            "2401mo",
        ],
    )
    def test_refuses(self, text: str) -> None:
        """Anything outside the grammar, zero, or longer than 200 years is a ValueError."""
        with pytest.raises(ValueError, match="invalid retention period"):
            RetentionPeriod.parse(text)

    def test_bare_m_hints_at_months(self) -> None:
        """'6m' is refused with a hint to write 'mo', never read as six minutes."""
        with pytest.raises(ValueError) as caught:
            RetentionPeriod.parse("6m")
        assert "write 'mo' for months" in str(caught.value)

    def test_zero_names_the_reason(self) -> None:
        """A zero period says it must be greater than zero."""
        with pytest.raises(ValueError) as caught:
            RetentionPeriod.parse("0d")
        assert "greater than zero" in str(caught.value)

    def test_non_string_refused(self) -> None:
        """An integer is not a period (TOML `retain = 30`)."""
        with pytest.raises(ValueError):
            RetentionPeriod.parse(30)  # type: ignore[arg-type]

    @pytest.mark.parametrize("text", ["30d", "6w", "13mo", "7y"])
    def test_str_round_trips(self, text: str) -> None:
        """str() gives back the text the period was parsed from."""
        assert text == str(RetentionPeriod.parse(text))


class TestCalendarArithmetic:
    """Months and years are calendar arithmetic on the UTC calendar, clamped to the month's end."""

    @pytest.mark.parametrize(
        ("period", "instant", "expected"),
        [
            ("1mo", datetime(2026, 3, 31, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
            ("1y", datetime(2028, 2, 29, tzinfo=UTC), datetime(2027, 2, 28, tzinfo=UTC)),
            ("1mo", datetime(2028, 3, 31, 12, 30, tzinfo=UTC), datetime(2028, 2, 29, 12, 30, tzinfo=UTC)),
            ("13mo", datetime(2027, 1, 15, tzinfo=UTC), datetime(2025, 12, 15, tzinfo=UTC)),
            ("2w", datetime(2026, 1, 10, tzinfo=UTC), datetime(2025, 12, 27, tzinfo=UTC)),
            ("30d", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 1, 30, tzinfo=UTC)),
            ("7y", datetime(2033, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ],
    )
    def test_before(self, period: str, instant: datetime, expected: datetime) -> None:
        """before() subtracts the period on the calendar."""
        assert expected == RetentionPeriod.parse(period).before(instant)

    def test_before_converts_to_utc(self) -> None:
        """An instant in another zone is converted to UTC first, and the result is in UTC."""
        berlin = timezone(timedelta(hours=2))
        actual = RetentionPeriod.parse("1mo").before(datetime(2026, 4, 1, 1, 0, tzinfo=berlin))
        assert (datetime(2026, 2, 28, 23, 0, tzinfo=UTC), UTC) == (actual, actual.tzinfo)

    def test_naive_instant_refused(self) -> None:
        """A naive instant has no place on the UTC calendar."""
        with pytest.raises(ValueError, match="timezone-aware"):
            RetentionPeriod.parse("1d").before(datetime(2026, 1, 1))

    def test_approximate_days_orders_units(self) -> None:
        """approximate_days() orders periods of different units sensibly."""
        ordered = ["6d", "1w", "30d", "1mo", "52w", "1y", "13mo"]
        days = [RetentionPeriod.parse(p).approximate_days() for p in ordered]
        assert sorted(days) == days

    @given(instants, instants, periods)
    def test_monotonic_in_instant(self, a: datetime, b: datetime, period: RetentionPeriod) -> None:
        """A later instant never gives an earlier cutoff."""
        early, late = sorted((a, b))
        assert period.before(early) <= period.before(late)

    @given(instants, st.sampled_from(UNITS), st.integers(1, 200), st.integers(1, 200))
    def test_monotonic_in_amount(self, instant: datetime, unit: str, m: int, n: int) -> None:
        """A longer period never gives a later cutoff."""
        small, large = (RetentionPeriod.parse(f"{k}{unit}") for k in sorted((m, n)))
        assert large.before(instant) <= small.before(instant)

    @given(instants, periods)
    def test_cutoff_strictly_earlier(self, instant: datetime, period: RetentionPeriod) -> None:
        """A positive period always moves the cutoff into the past."""
        assert period.before(instant) < instant


class TestOperationalGrammar:
    """Ns, Nm, Nh, Nd for pauses, timeouts and intervals; no months or years."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("0s", timedelta(0)),
            ("30s", timedelta(seconds=30)),
            ("5m", timedelta(minutes=5)),
            ("1h", timedelta(hours=1)),
            ("2d", timedelta(days=2)),
            ("366d", timedelta(days=366)),
        ],
    )
    def test_accepts(self, text: str, expected: timedelta) -> None:
        """Each unit parses to its time span; here 'm' means minutes."""
        assert expected == parse_operational(text)

    @pytest.mark.parametrize("text", ["1mo", "1y", "1w", "-1s", "1.5h", "5 m", "", "m", "367d", "10"])
    def test_refuses(self, text: str) -> None:
        """Months, years, weeks, signs, fractions, spaces and more than a year are refused."""
        with pytest.raises(ValueError, match="invalid duration"):
            parse_operational(text)

    def test_zero_refused_when_not_allowed(self) -> None:
        """allow_zero=False turns '0s' into an error."""
        with pytest.raises(ValueError, match="greater than zero"):
            parse_operational("0s", allow_zero=False)

    @pytest.mark.parametrize(
        ("seconds", "expected"), [(0, "0s"), (90, "90s"), (120, "2m"), (3600, "1h"), (86400, "1d"), (5400, "90m")]
    )
    def test_format(self, seconds: int, expected: str) -> None:
        """format_operational() uses the largest whole unit."""
        assert expected == format_operational(timedelta(seconds=seconds))

    @given(st.integers(0, 366 * 86400))
    def test_format_round_trips(self, seconds: int) -> None:
        """Formatting then parsing gives back the same span."""
        span = timedelta(seconds=seconds)
        assert span == parse_operational(format_operational(span))
