"""APScheduler 3 set-up: one job per category on a croniter trigger.

APScheduler's own ``CronTrigger.from_crontab`` numbers weekdays from Monday (``0`` = Monday),
so the standard crontab ``0 4 * * 0`` would fire on Mondays; :class:`CroniterTrigger` uses
croniter, which follows standard (Vixie) cron: ``0`` and ``7`` are Sunday, and day-of-month
and day-of-week are ORed when both are restricted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from croniter import croniter

from retentiond.config.loader import LoadedConfig

_EPSILON = timedelta(microseconds=1)


class ScheduleTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    """A trigger that can also name the latest fire time at or before an instant (the "tick")."""

    def previous_fire_time(self, now: datetime) -> datetime:
        """Return the latest fire time ``<= now`` (aware)."""
        raise NotImplementedError

    @property
    def spec(self) -> tuple[Any, ...]:
        """Return what identifies the schedule (to tell whether a reload changed it)."""
        raise NotImplementedError


class CroniterTrigger(ScheduleTrigger):
    """Fires on a five-field cron expression evaluated in ``zone`` (DST handled by croniter)."""

    def __init__(self, expression: str, zone: tzinfo) -> None:
        self.expression = expression
        self.zone = zone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """Return the first fire time strictly after the previous one, or at/after ``now`` for the first."""
        start = previous_fire_time if previous_fire_time is not None else now - _EPSILON
        result: datetime = croniter(self.expression, start.astimezone(self.zone)).get_next(datetime)
        return result

    def previous_fire_time(self, now: datetime) -> datetime:
        """Return the latest fire time ``<= now``."""
        result: datetime = croniter(self.expression, (now + _EPSILON).astimezone(self.zone)).get_prev(datetime)
        return result

    @property
    def spec(self) -> tuple[Any, ...]:
        """Return ``("cron", expression, zone name)``."""
        return ("cron", self.expression, str(self.zone))

    def __str__(self) -> str:
        return f"cron[{self.expression} {self.zone}]"


class TickTrigger(ScheduleTrigger):
    """Test-only: fires every ``seconds`` on multiples of ``seconds`` since the epoch.

    Aligned to the epoch so that several daemons started at different moments share ticks.
    """

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("tick seconds must be positive")
        self.seconds = seconds

    def _at(self, index: float) -> datetime:
        return datetime.fromtimestamp(index * self.seconds, UTC)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """Return the next multiple of ``seconds`` after the previous fire time (or at/after ``now``)."""
        if previous_fire_time is not None:
            return self._at(round(previous_fire_time.timestamp() / self.seconds) + 1)
        return self._at(math.ceil(now.timestamp() / self.seconds))

    def previous_fire_time(self, now: datetime) -> datetime:
        """Return the latest multiple of ``seconds`` ``<= now``."""
        return self._at(math.floor(now.timestamp() / self.seconds))

    @property
    def spec(self) -> tuple[Any, ...]:
        """Return ``("tick", seconds)``."""
        return ("tick", self.seconds)

    def __str__(self) -> str:
        return f"tick[{self.seconds}s]"


@dataclass(frozen=True)
class JobSpec:
    """What one category's job is scheduled by."""

    category: str
    trigger: ScheduleTrigger
    misfire_grace_seconds: int

    @property
    def key(self) -> tuple[Any, ...]:
        """Return what a reload compares to decide whether to reschedule."""
        return (*self.trigger.spec, self.misfire_grace_seconds)


def job_specs(loaded: LoadedConfig, tick_seconds: float | None = None) -> dict[str, JobSpec]:
    """Return the job of every category: its cron (or the category's override) in ``daemon.timezone``.

    ``tick_seconds`` (test-only) replaces every cron schedule with :class:`TickTrigger`.
    """
    daemon = loaded.settings.daemon
    zone = ZoneInfo(daemon.timezone)
    grace = max(1, int(daemon.misfire_grace_time.total_seconds()))
    specs: dict[str, JobSpec] = {}
    for name, category in loaded.settings.categories.items():
        trigger: ScheduleTrigger
        if tick_seconds is not None:
            trigger = TickTrigger(tick_seconds)
        else:
            trigger = CroniterTrigger(category.schedule or daemon.schedule, zone)
        specs[name] = JobSpec(name, trigger, grace)
    return specs


def missed_since(trigger: ScheduleTrigger, last_success: datetime | None, now: datetime) -> datetime | None:
    """Return the fire time to catch up (the latest one ``<= now``) when it is after ``last_success``.

    A category that never succeeded is overdue: retention promises apply from install on.
    Returns None when nothing was missed.
    """
    latest = trigger.previous_fire_time(now)
    if last_success is None or last_success < latest:
        return latest
    return None
