"""What an erasure request does with one record: the subject's records, whatever their age, pure.

An erasure request (``retentiond erase``) names subjects instead of a cutoff. For one record
under one acting category, in this order:

1. the category's match filters exclude it → not covered;
2. its subject is unknown (no subject column / pattern, NULL, a key the pattern does not match)
   or not one of the request's → not the request's;
3. the acting category declares ``erasure = "never"`` → kept by rule;
4. an active hold covers it through any covering category (a legal hold whatever its age, a tax
   hold's ``keep_younger_than`` only while the record is younger than the floor) → held;
5. another category covering the record declares ``erasure = "never"`` → kept by rule (the law
   that keeps the record keeps its values too, so this holds for ``anonymize`` as well);
6. otherwise the category's action (delete or anonymize) applies now — age does not matter.

The SQL statements (``retentiond.stores.sql.predicates.erasable``) and the S3 plan
(``retentiond.stores.s3.decide``) implement exactly this function; a hypothesis property test
checks the SQL form against it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from retentiond.config.holds import Hold
from retentiond.policy.decide import Coverage, Row, covers
from retentiond.policy.holds import holding

#: The rule name under which ``erasure = "never"`` keeps records (ledger, reports, certificates).
NEVER_RULE = "erasure_never"


class ErasureVerdict(enum.StrEnum):
    """The decision for one record under one acting category of an erasure request."""

    ERASE = "erase"  # delete or anonymize now, with the category's action
    NOT_COVERED = "not_covered"  # the category's match filters exclude it
    NOT_SUBJECT = "not_subject"  # not a record of the request's subjects (or whose it is is unknown)
    KEPT_BY_RULE = "kept_by_rule"  # a covering category declares erasure = "never"
    HELD = "held"  # an active hold covers it


@dataclass(frozen=True)
class ErasureDecision:
    """A verdict with the holds or the categories (``erasure = "never"``) that caused it."""

    verdict: ErasureVerdict
    holds: tuple[str, ...] = ()
    kept_for: tuple[str, ...] = ()


def decide_erasure(
    row: Row,
    acting: Coverage,
    others: Sequence[Coverage],
    holds: Sequence[Hold],
    run_start: datetime,
    subjects: Collection[str],
    never: Collection[str],
    *,
    has_subject: bool,
) -> ErasureDecision:
    """Return what ``acting`` does with ``row`` for a request naming ``subjects``.

    ``others`` are the other categories naming the same table or prefix; ``holds`` the holds
    protecting now; ``never`` the categories declaring ``erasure = "never"``; ``has_subject``
    whether the target says whose a record is (``subject_column`` / ``subject_pattern``).
    """
    if not covers(acting, row):
        return ErasureDecision(ErasureVerdict.NOT_COVERED)
    if not has_subject or row.subject is None or row.subject not in subjects:
        return ErasureDecision(ErasureVerdict.NOT_SUBJECT)
    if acting.category in never:
        return ErasureDecision(ErasureVerdict.KEPT_BY_RULE, kept_for=(acting.category,))
    covering = [o for o in others if covers(o, row)]
    held = holding(row, [acting, *covering], holds, run_start, has_subject=has_subject)
    if held:
        return ErasureDecision(ErasureVerdict.HELD, holds=held)
    keeping = tuple(o.category for o in covering if o.category in never)
    if keeping:
        return ErasureDecision(ErasureVerdict.KEPT_BY_RULE, kept_for=keeping)
    return ErasureDecision(ErasureVerdict.ERASE)


__all__ = ["NEVER_RULE", "ErasureDecision", "ErasureVerdict", "decide_erasure"]
