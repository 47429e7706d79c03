"""Five-field cron expressions with standard (Vixie) cron semantics.

croniter is the parser: APScheduler 3's ``CronTrigger.from_crontab`` numbers weekdays from
Monday and ANDs day-of-month with day-of-week, so "0 4 * * 0" would fire on Mondays there.
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter


def validate_cron(expression: str) -> str:
    """Return the expression normalised to single spaces.

    Raises:
        ValueError: not exactly five fields, or a field croniter rejects.
    """
    if not isinstance(expression, str):
        raise ValueError("must be a string with five cron fields, e.g. '15 3 * * *'")
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expression!r} has {len(fields)} fields; five are required "
            "(minute hour day-of-month month day-of-week)"
        )
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise ValueError(f"invalid cron expression {expression!r}")
    try:
        croniter(normalised, datetime(2000, 1, 1)).get_next(datetime)
    except ValueError:
        raise ValueError(f"cron expression {expression!r} never fires") from None
    return normalised


def next_fire_time(expression: str, after: datetime) -> datetime:
    """Return the first time strictly after ``after`` (aware, in the zone of ``after``) that matches."""
    return croniter(expression, after).get_next(datetime)


def previous_fire_time(expression: str, before: datetime) -> datetime:
    """Return the last time strictly before ``before`` that matches."""
    return croniter(expression, before).get_prev(datetime)
