"""SQL form of ``retentiond.policy.decide``: which rows a category may act on right now.

The expressions are rebuilt from the current holds before every batch and are part of the
DELETE/UPDATE statement itself (SPEC §4 rule 5), so a row that changed between selection
and action — got younger, left the filter, came under a hold — is not touched. Every
expression is two-valued (no SQL NULL leaks into a ``NOT``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from retentiond.config.holds import Hold
from retentiond.stores.sql import ages
from retentiond.stores.sql.binding import BoundTarget

REDACTED = "[redacted]"
PSEUDONYM_PREFIX = "anon:"
PSEUDONYM_HEX = 32  # characters of HMAC-SHA256 hex after the prefix (128 bits)
PSEUDONYM_LENGTH = len(PSEUDONYM_PREFIX) + PSEUDONYM_HEX


@dataclass(frozen=True)
class Claim:
    """A category's claim on a bound target for this run: its action and cutoff."""

    target: BoundTarget
    action: str
    cutoff: datetime

    @property
    def category(self) -> str:
        """Return the category name."""
        return self.target.category


def covers(claim: Claim) -> ColumnElement[bool]:
    """Return "the claim's match filters hold" (NULL never matches)."""
    t = claim.target
    conditions = [
        t.table.c[col].is_not_distinct_from(sa.literal(value, t.table.c[col].type))
        for col, value in (t.config.match or {}).items()
    ]
    return sa.and_(sa.true(), *conditions)


def expired(claim: Claim) -> ColumnElement[bool]:
    """Return "age is not NULL and strictly before the cutoff"."""
    t = claim.target
    return ages.before(t.table.c[t.age.name], claim.cutoff, t.dialect, t.age_zone)


def in_subjects(target: BoundTarget, subjects: Sequence[str]) -> ColumnElement[bool]:
    """Return "the row's subject is one of ``subjects``" (NULL subject: false)."""
    assert target.subject is not None
    return column_in_subjects(target.table.c[target.subject.name], target.dialect, subjects)


def column_in_subjects(subject: sa.Column[Any], dialect: str, subjects: Sequence[str]) -> ColumnElement[bool]:
    """Return "``subject`` is one of ``subjects``" (NULL: false)."""
    if dialect == "postgresql":
        # One bound array parameter, however many subjects a hold names.
        array = sa.bindparam(None, list(subjects), type_=postgresql.ARRAY(sa.Text))
        return sa.and_(subject.is_not(None), sa.cast(subject, sa.Text) == sa.any_(array))
    return sa.and_(subject.is_not(None), sa.cast(subject, sa.Text).in_(list(subjects)))


@dataclass(frozen=True)
class HoldScope:
    """What a hold reads of a row through one covering category: the SQL twin of a policy ``Coverage``.

    ``covered`` is "the category's filters hold for the row" (``sa.true()`` where they do not
    apply, as for prior versions); ``age`` is the clock a ``keep_younger_than`` floor reads;
    ``subject_in(subjects)`` is "the row's subject is one of ``subjects``", None when the target
    has no subject column (a subject-scoped hold then protects every row: fails closed).
    """

    category: str
    covered: ColumnElement[bool]
    age: sa.Column[Any]
    subject_in: Callable[[Sequence[str]], ColumnElement[bool]] | None
    dialect: str
    zone: ZoneInfo | None


def claim_scope(claim: Claim) -> HoldScope:
    """Return how a hold reads a row of ``claim``'s table: its filters, its age column, its subject column."""
    t = claim.target
    subject_in = None if t.subject is None else partial(in_subjects, t)
    return HoldScope(claim.category, covers(claim), t.table.c[t.age.name], subject_in, t.dialect, t.age_zone)


def held_through(hold: Hold, scopes: Sequence[HoldScope], run_start: datetime) -> ColumnElement[bool]:
    """Return "``hold`` covers the row through one of ``scopes``": ``policy.holds.holding`` in SQL.

    The one SQL expression of hold matching, for records and for their prior versions alike.
    """
    alternatives: list[ColumnElement[bool]] = []
    for scope in scopes:
        if not hold.covers_category(scope.category):
            continue
        parts: list[ColumnElement[bool]] = [scope.covered]
        if hold.subjects is not None and scope.subject_in is not None:
            parts.append(scope.subject_in(hold.subjects))
        if hold.keep_younger_than is not None:
            # Held unless the age is a time at or before the floor (NULL or unreadable: held).
            floor = hold.keep_younger_than.before(run_start)
            parts.append(
                sa.or_(
                    sa.not_(ages.is_time(scope.age, scope.dialect)),
                    ages.after(scope.age, floor, scope.dialect, scope.zone),
                )
            )
        alternatives.append(sa.and_(*parts))
    return sa.or_(sa.false(), *alternatives)


def held_by(hold: Hold, covering: Sequence[Claim], run_start: datetime) -> ColumnElement[bool]:
    """Return "``hold`` covers the row through one of the ``covering`` claims"."""
    return held_through(hold, [claim_scope(c) for c in covering], run_start)


def any_held_through(holds: Sequence[Hold], scopes: Sequence[HoldScope], run_start: datetime) -> ColumnElement[bool]:
    """Return "any of ``holds`` covers the row through one of ``scopes``"."""
    return sa.or_(sa.false(), *(held_through(h, scopes, run_start) for h in holds))


def any_held(holds: Sequence[Hold], covering: Sequence[Claim], run_start: datetime) -> ColumnElement[bool]:
    """Return "any of ``holds`` covers the row"."""
    return any_held_through(holds, [claim_scope(c) for c in covering], run_start)


def eligible(
    acting: Claim,
    others: Sequence[Claim],
    holds: Sequence[Hold],
    run_start: datetime,
    *,
    ignore_holds: bool = False,
) -> ColumnElement[bool]:
    """Return the condition under which ``acting`` acts on a row (SPEC §4 rules 1, 3, 4).

    ``others`` are the claims of other categories on the same table. With ``ignore_holds``,
    the condition of "would act if no hold existed" (used to count held rows).
    """
    parts: list[ColumnElement[bool]] = [covers(acting), expired(acting)]
    if not ignore_holds:
        parts.append(sa.not_(any_held(holds, [acting, *others], run_start)))
    if acting.action == "delete":
        for other in others:
            parts.append(sa.or_(sa.not_(covers(other)), expired(other)))
    return sa.and_(*parts)


def erasable(
    acting: Claim,
    others: Sequence[Claim],
    holds: Sequence[Hold],
    run_start: datetime,
    subjects: Sequence[str],
    never: Collection[str],
    *,
    ignore_holds: bool = False,
    kept_by_rule: bool = False,
) -> ColumnElement[bool]:
    """Return the condition under which ``acting`` erases a row of ``subjects`` (``policy.erasure``).

    Age does not matter. With ``ignore_holds``, "would erase if no hold existed" (held counts);
    with ``kept_by_rule``, "a subject's row ``erasure = "never"`` keeps" instead (kept counts).
    """
    t = acting.target
    if t.subject is None or not subjects:
        return sa.false()  # whose the rows are is unknown: an erasure never guesses
    mine = sa.and_(covers(acting), in_subjects(t, subjects))
    held = any_held(holds, [acting, *others], run_start)
    never_others = [covers(o) for o in others if o.category in never]
    if kept_by_rule:
        if acting.category in never:
            return mine
        return sa.and_(mine, sa.not_(held), sa.or_(sa.false(), *never_others))
    if acting.category in never:
        return sa.false()
    if ignore_holds:
        return mine  # a held row is held before another category's "never" keeps it (policy order)
    return sa.and_(mine, sa.not_(held), *(sa.not_(c) for c in never_others))


def not_anonymized(target: BoundTarget) -> ColumnElement[bool]:
    """Return "some anonymized column still holds an original value".

    Together with the strategies' outputs this makes anonymization idempotent: a rerun
    selects nothing it already rewrote.
    """
    parts: list[ColumnElement[bool]] = []
    for name, strategy in (target.config.anonymize or {}).items():
        col = target.table.c[name]
        present = col.is_not(None)
        if strategy == "null":
            parts.append(present)
        elif strategy == "redact":
            parts.append(sa.and_(present, col != REDACTED))
        elif strategy.startswith("fixed:"):
            parts.append(sa.and_(present, col != sa.literal(fixed_value(col, strategy), col.type)))
        elif strategy == "hmac":
            parts.append(sa.and_(present, sa.not_(col.like(PSEUDONYM_PREFIX + "%"))))
        elif strategy == "truncate_ip":
            if target.dialect == "postgresql" and isinstance(col.type, (postgresql.INET, postgresql.CIDR)):
                # inet::text carries the mask ("192.0.2.0/32"), which would never look truncated
                # and make every rerun rewrite the row again; host() is the bare address.
                text: ColumnElement[str] = sa.func.host(col)
            elif target.dialect == "postgresql":
                text = sa.cast(col, sa.Text)
            else:
                text = col
            v4_done = sa.and_(text.like("%.0"), sa.not_(text.like("%:%")))
            v6_done = sa.and_(text.like("%::"), sa.not_(text.like("%:%:%:%::")))
            parts.append(sa.and_(present, sa.not_(sa.or_(v4_done, v6_done))))
        elif strategy in ("year", "month"):
            fields = ["day"] if strategy == "month" else ["month", "day"]
            first = [sa.extract(f, col) != 1 for f in fields]
            if isinstance(col.type, sa.DateTime):
                first += [sa.extract(f, col) != 0 for f in ("hour", "minute", "second")]
            parts.append(sa.and_(present, sa.or_(*first)))
        else:  # pragma: no cover - validation refuses unknown strategies
            raise ValueError(f"unknown strategy {strategy!r}")
    return sa.or_(sa.false(), *parts)


def fixed_value(col: sa.Column[Any], strategy: str) -> object:
    """Return the value of a ``fixed:<value>`` strategy converted to the column's Python type."""
    raw = strategy.removeprefix("fixed:")
    try:
        python_type = col.type.python_type
    except NotImplementedError:
        return raw
    if python_type is int:
        return int(raw)
    if python_type is bool:
        return raw.lower() in ("1", "true", "yes")
    return raw


SQL_STRATEGIES = ("null", "redact")


#: Makes the SQL expression of a column's keyed pseudonym within a scope, or None when SQL cannot.
PseudonymSql = Callable[[str, sa.Column[Any]], ColumnElement[Any] | None]


def sql_assignments(
    target: BoundTarget, pseudonyms: PseudonymSql | None = None
) -> dict[str, ColumnElement[Any]] | None:
    """Return column → SQL expression when every strategy can run inside the UPDATE, else None.

    ``hmac`` runs in the statement when ``pseudonyms`` makes the keyed pseudonym of a text
    column in SQL (PostgreSQL); NULL stays NULL and a pseudonym is never pseudonymized again.
    """
    out: dict[str, ColumnElement[Any]] = {}
    for name, strategy in (target.config.anonymize or {}).items():
        col = target.table.c[name]
        if strategy == "null":
            out[name] = sa.null()
        elif strategy == "redact":
            out[name] = sa.literal(REDACTED, col.type)
        elif strategy.startswith("fixed:"):
            out[name] = sa.literal(fixed_value(col, strategy), col.type)
        elif strategy == "hmac" and pseudonyms is not None:
            made = pseudonyms(f"{target.store}/{target.table_name}/{name}", col)
            if made is None:
                return None
            out[name] = sa.case(
                (col.is_(None), sa.null()),
                (col.like(PSEUDONYM_PREFIX + "%"), col),
                else_=made,
            )
        else:
            return None
    return out
