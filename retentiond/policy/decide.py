"""What to do with one record, and with a prior version of one: SPEC §4 rules 1, 3 and 4 as pure functions.

Which holds cover a record is :func:`retentiond.policy.holds.holding` (re-exported here). The
SQL statements of ``retentiond.stores.sql.predicates`` implement exactly these functions in
SQL; a hypothesis property test checks that both agree on random rows, holds and clocks, for
records and for their prior versions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from retentiond.config.holds import Hold
from retentiond.policy.holds import holding

Scalar = str | int | bool

__all__ = [
    "Coverage",
    "Decision",
    "Row",
    "Scalar",
    "Verdict",
    "covers",
    "decide",
    "decide_prior_version",
    "expired",
    "holding",
]


@dataclass(frozen=True)
class Coverage:
    """One category's claim on a table: its clock, its filters and its cutoff for this run."""

    category: str
    action: str  # "delete" | "anonymize"
    cutoff: datetime
    age_column: str
    match: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """The facts of one row that decisions depend on (never logged: they may be personal)."""

    values: Mapping[str, Scalar | datetime | None]
    subject: str | None = None

    def get(self, column: str) -> Scalar | datetime | None:
        """Return the value of ``column`` (None when absent or NULL)."""
        return self.values.get(column)


class Verdict(enum.StrEnum):
    """The decision for a row under one acting category."""

    ACT = "act"  # delete or anonymize now
    NOT_COVERED = "not_covered"  # the category's match filters exclude it
    NOT_EXPIRED = "not_expired"  # age NULL, or not strictly older than the cutoff
    HELD = "held"  # an active hold covers it
    LONGER_RETENTION = "longer_retention"  # another covering category still keeps it (delete only)


@dataclass(frozen=True)
class Decision:
    """A verdict with the holds or categories that caused it."""

    verdict: Verdict
    holds: tuple[str, ...] = ()
    kept_for: tuple[str, ...] = ()


def covers(coverage: Coverage, row: Row) -> bool:
    """Return True when every match filter of ``coverage`` equals the row's value (NULL never matches)."""
    return all(
        row.get(col) is not None and row.get(col) == value and type(row.get(col)) is type(value)
        for col, value in coverage.match.items()
    )


def expired(coverage: Coverage, row: Row) -> bool:
    """Return True when the row's age is strictly earlier than the cutoff; NULL age never expires."""
    age = row.get(coverage.age_column)
    return isinstance(age, datetime) and age < coverage.cutoff


def decide(
    row: Row,
    acting: Coverage,
    others: Sequence[Coverage],
    holds: Sequence[Hold],
    run_start: datetime,
    *,
    has_subject: bool,
) -> Decision:
    """Return what ``acting`` may do with ``row`` now.

    ``others`` are the other categories that name the same table; ``holds`` the holds that
    protect now (see ``retentiond.policy.holds.protecting``).
    """
    if not covers(acting, row):
        return Decision(Verdict.NOT_COVERED)
    if not expired(acting, row):
        return Decision(Verdict.NOT_EXPIRED)
    covering_others = [o for o in others if covers(o, row)]
    held = holding(row, [acting, *covering_others], holds, run_start, has_subject=has_subject)
    if held:
        return Decision(Verdict.HELD, holds=held)
    if acting.action == "delete":
        keeping = tuple(o.category for o in covering_others if not expired(o, row))
        if keeping:
            return Decision(Verdict.LONGER_RETENTION, kept_for=keeping)
    return Decision(Verdict.ACT)


def decide_prior_version(
    version: Row,
    coverage: Coverage,
    holds: Sequence[Hold],
    run_start: datetime,
    *,
    has_subject: bool,
    others: Sequence[str] = (),
) -> Decision:
    """Return whether a prior version of a record (a history row) expires now.

    ``coverage`` is the record's category with its *prior-versions* cutoff
    (``policy.cutoffs.prior_versions_cutoff``) and, as ``age_column``, when the version was
    superseded; its match filters do not apply (versions of every record expire). The version's
    ``subject`` is its record's; ``has_subject`` is False when that is unknown (no subject
    column, or the record is gone), so a subject-scoped hold protects the version (fails closed).
    ``others`` names the other categories claiming the record's table: a hold on one of them
    protects the version too, their filters unread (fails closed).
    Returns ``NOT_EXPIRED``, ``HELD`` (with the holds) or ``ACT``.
    """
    if not expired(coverage, version):
        return Decision(Verdict.NOT_EXPIRED)
    covering = [coverage, *(replace(coverage, category=name, match={}) for name in others)]
    held = holding(version, covering, holds, run_start, has_subject=has_subject)
    if held:
        return Decision(Verdict.HELD, holds=held)
    return Decision(Verdict.ACT)
