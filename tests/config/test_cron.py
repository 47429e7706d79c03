"""Five-field cron with standard (Vixie) semantics (SPEC §3)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from retentiond.config.cron import next_fire_time, previous_fire_time, validate_cron

UTC = UTC


class TestValidateCron:
    """Exactly five fields, each valid, and the expression must fire at some point."""

    @pytest.mark.parametrize(
        ("expression", "expected"),
        [
            ("15 3 * * *", "15 3 * * *"),
            ("  0   4 * *   0 ", "0 4 * * 0"),
            ("*/5 * * * 1-5", "*/5 * * * 1-5"),
            ("30 3 1 * *", "30 3 1 * *"),
            ("0 0 29 2 *", "0 0 29 2 *"),
        ],
    )
    def test_accepts_and_normalises(self, expression: str, expected: str) -> None:
        """Valid expressions come back with single spaces."""
        assert expected == validate_cron(expression)

    @pytest.mark.parametrize("expression", ["15 3 * *", "0 15 3 * * *", "", "@daily", "* * * * * *"])
    def test_refuses_wrong_field_count(self, expression: str) -> None:
        """Four, six or zero fields (and macros) are refused, naming the count."""
        with pytest.raises(ValueError, match="five are required"):
            validate_cron(expression)

    @pytest.mark.parametrize(
        "expression", ["61 3 * * *", "0 25 * * *", "0 3 32 * *", "0 3 * 13 *", "0 3 * * 8", "x 3 * * *", "0 3 * * mon-"]
    )
    def test_refuses_bad_field(self, expression: str) -> None:
        """An out-of-range or malformed field is refused."""
        with pytest.raises(ValueError, match="cron expression"):
            validate_cron(expression)

    @pytest.mark.parametrize("expression", ["0 4 31 2 *", "0 4 30 2 *", "0 0 31 4 *"])
    def test_refuses_never_firing(self, expression: str) -> None:
        """A date that never exists (Feb 30/31, Apr 31) is refused as never firing."""
        with pytest.raises(ValueError, match="never fires"):
            validate_cron(expression)

    def test_refuses_non_string(self) -> None:
        """An integer is not a cron expression."""
        with pytest.raises(ValueError, match="five cron fields"):
            validate_cron(5)  # type: ignore[arg-type]


class TestFireTimes:
    """Sunday is 0 (and 7), as in crontab(5); day-of-month OR day-of-week when both are set."""

    def test_sunday_is_zero(self) -> None:
        """'0 4 * * 0' fires on a Sunday at 04:00, not on a Monday (APScheduler's numbering)."""
        fired = next_fire_time("0 4 * * 0", datetime(2026, 3, 4, 12, 0, tzinfo=UTC))  # a Wednesday
        assert (datetime(2026, 3, 8, 4, 0, tzinfo=UTC), 6) == (fired, fired.weekday())

    def test_seven_is_sunday_too(self) -> None:
        """'0 4 * * 7' also fires on Sunday."""
        fired = next_fire_time("0 4 * * 7", datetime(2026, 3, 4, 12, 0, tzinfo=UTC))
        assert 6 == fired.weekday()

    def test_monday_is_one(self) -> None:
        """'45 3 * * 1' fires on a Monday."""
        fired = next_fire_time("45 3 * * 1", datetime(2026, 3, 4, 12, 0, tzinfo=UTC))
        assert (datetime(2026, 3, 9, 3, 45, tzinfo=UTC), 0) == (fired, fired.weekday())

    def test_strictly_after(self) -> None:
        """An instant that matches is not its own next fire time."""
        at = datetime(2026, 3, 8, 4, 0, tzinfo=UTC)
        assert datetime(2026, 3, 15, 4, 0, tzinfo=UTC) == next_fire_time("0 4 * * 0", at)

    def test_previous(self) -> None:
        """previous_fire_time() gives the last match strictly before."""
        assert datetime(2026, 3, 1, 3, 30, tzinfo=UTC) == previous_fire_time(
            "30 3 1 * *", datetime(2026, 3, 31, tzinfo=UTC)
        )

    def test_dom_or_dow(self) -> None:
        """With both day fields restricted, Vixie cron fires on either (the 1st, or a Sunday)."""
        fired = next_fire_time("0 4 1 * 0", datetime(2026, 3, 2, tzinfo=UTC))  # Monday the 2nd
        assert datetime(2026, 3, 8, 4, 0, tzinfo=UTC) == fired

    def test_keeps_zone(self) -> None:
        """Fire times are computed in the zone of the reference instant (daemon.timezone)."""
        zone = ZoneInfo("Europe/Berlin")
        fired = next_fire_time("15 3 * * *", datetime(2026, 7, 1, 12, 0, tzinfo=zone))
        assert (datetime(2026, 7, 2, 1, 15, tzinfo=UTC)) == fired.astimezone(UTC)
