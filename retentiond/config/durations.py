"""Durations of the configuration (SPEC §3).

Two grammars on purpose: retention periods (``Nd``, ``Nw``, ``Nmo``, ``Ny``) never accept a
bare ``m``, so "6m" cannot silently mean six minutes where six months was meant; operational
settings (``Ns``, ``Nm``, ``Nh``, ``Nd``) are plain time spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

_RETENTION_RE = re.compile(r"^([0-9]{1,6})(d|w|mo|y)$")
_OPERATIONAL_RE = re.compile(r"^([0-9]{1,9})(s|m|h|d)$")
_MAX_YEARS = 200  # a retention longer than this is a typo, not a policy

# Average lengths, used only to order periods (min_retention checks), never to compute cutoffs.
_AVERAGE_DAYS = {"d": 1.0, "w": 7.0, "mo": 30.436875, "y": 365.2425}


@dataclass(frozen=True, order=False)
class RetentionPeriod:
    """A calendar period such as ``13mo``; months and years are calendar arithmetic in UTC."""

    amount: int
    unit: str  # "d" | "w" | "mo" | "y"

    @classmethod
    def parse(cls, text: str) -> RetentionPeriod:
        """Return the period written as ``text``.

        Raises:
            ValueError: the text is not ``N`` followed by d, w, mo or y, or N is zero.
        """
        if not isinstance(text, str):
            raise ValueError("must be a string such as '30d', '6w', '13mo' or '7y'")
        match = _RETENTION_RE.match(text.strip())
        if not match:
            hint = ""
            if re.match(r"^[0-9]+m$", text.strip()):
                hint = " (a bare 'm' is ambiguous here: write 'mo' for months)"
            raise ValueError(
                f"invalid retention period {text!r}: use Nd, Nw, Nmo or Ny, e.g. '30d', '13mo', '7y'{hint}"
            )
        amount, unit = int(match.group(1)), match.group(2)
        if amount == 0:
            raise ValueError(f"invalid retention period {text!r}: must be greater than zero")
        period = cls(amount, unit)
        if period.approximate_days() > _MAX_YEARS * 365.2425:
            raise ValueError(f"invalid retention period {text!r}: longer than {_MAX_YEARS} years")
        return period

    @property
    def delta(self) -> relativedelta:
        """Return the calendar offset (``relativedelta``) this period stands for."""
        if self.unit == "d":
            return relativedelta(days=self.amount)
        if self.unit == "w":
            return relativedelta(weeks=self.amount)
        if self.unit == "mo":
            return relativedelta(months=self.amount)
        return relativedelta(years=self.amount)

    def before(self, instant: datetime) -> datetime:
        """Return ``instant - period`` computed on the UTC calendar.

        Raises:
            ValueError: ``instant`` is naive.
        """
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        return instant.astimezone(UTC) - self.delta

    def approximate_days(self) -> float:
        """Return the average length in days; for ordering periods only."""
        return self.amount * _AVERAGE_DAYS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_operational(text: str, *, allow_zero: bool = True) -> timedelta:
    """Return the time span written as ``Ns``, ``Nm``, ``Nh`` or ``Nd``.

    Raises:
        ValueError: the text does not follow that grammar, or is zero where zero is not allowed.
    """
    if not isinstance(text, str):
        raise ValueError("must be a string such as '30s', '5m', '1h' or '1d'")
    match = _OPERATIONAL_RE.match(text.strip())
    if not match:
        raise ValueError(f"invalid duration {text!r}: use Ns, Nm, Nh or Nd, e.g. '30s', '5m', '1h'")
    amount, unit = int(match.group(1)), match.group(2)
    if amount == 0 and not allow_zero:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] * amount
    if seconds > 366 * 86400:
        raise ValueError(f"invalid duration {text!r}: longer than a year")
    return timedelta(seconds=seconds)


def format_operational(span: timedelta) -> str:
    """Return ``span`` in the largest whole unit of the operational grammar (``90s`` → ``90s``)."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
