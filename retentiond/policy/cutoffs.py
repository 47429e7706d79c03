"""Every cutoff of a run, computed from its one ``run_start`` instant: pure, no I/O.

A record whose age is strictly before its category's *retain cutoff* (``run_start - retain``
on the UTC calendar) has expired (SPEC §4 rule 3). A prior version (a history-table row, a
noncurrent S3 version or delete marker) expires when it was superseded strictly before its
category's *prior-versions cutoff*: ``run_start - prior_versions``, and without
``prior_versions`` the retain cutoff itself. That default is the one rule for every store kind:
a superseded copy never outlives the rule that applies to the record itself
(docs/decision-rules.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from retentiond.config.models import Category


def retain_cutoff(category: Category, run_start: datetime) -> datetime:
    """Return the instant before which the category's records have expired: ``run_start - retain``."""
    return category.retain.before(run_start)


def prior_versions_cutoff(category: Category, run_start: datetime) -> datetime:
    """Return the instant before which a superseded version of the category's records has expired.

    ``run_start - prior_versions``; without ``prior_versions``, the retain cutoff (the documented
    default: prior versions never outlive the rule of their record).
    """
    if category.prior_versions is None:
        return retain_cutoff(category, run_start)
    return category.prior_versions.before(run_start)


def cutoffs(categories: Mapping[str, Category], run_start: datetime) -> dict[str, datetime]:
    """Return each category's retain cutoff, by category name (what ``run_started`` records)."""
    return {name: retain_cutoff(category, run_start) for name, category in categories.items()}


def prior_versions_cutoffs(categories: Mapping[str, Category], run_start: datetime) -> dict[str, datetime]:
    """Return each category's prior-versions cutoff, by category name."""
    return {name: prior_versions_cutoff(category, run_start) for name, category in categories.items()}
