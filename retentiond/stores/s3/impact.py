"""What a change of the holds would release on one S3 target, and which subjects its keys carry.

Both answer ``holds impact`` / ``holds check --connect`` through the worker (the
:class:`~retentiond.stores.base.Worker` protocol): counts only, never a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from retentiond.config.holds import Hold
from retentiond.errors import TemporaryFailure
from retentiond.stores.s3.decide import GroupPlan, subject_of
from retentiond.stores.s3.listing import list_groups

if TYPE_CHECKING:
    from retentiond.stores.s3.worker import S3Worker


def acted(plan: GroupPlan, locked: set[int] | list[int]) -> set[int]:
    """Return the versions of a group the plan's ``eligible`` figure counts (as :class:`Tally` does)."""
    main = set(plan.main)
    if not any(i in locked for i in plan.main):
        main |= set(plan.main_markers)
    return main


def released(worker: S3Worker, before: Sequence[Hold], after: Sequence[Hold]) -> int:
    """Return the versions the worker would delete under ``after`` but not under ``before``.

    Raises:
        TemporaryFailure: the bucket could not be listed.
    """
    spool = worker.spool(after)
    n = 0
    position = 0
    while True:
        rows = list(spool.read(position, 5000))
        if not rows:
            return n
        for gid, group, ages, locked in rows:
            position = gid
            was = acted(worker.plan(group, ages, before), locked)
            n += len(acted(worker.plan(group, ages, after), locked) - was)


def subject_counts(worker: S3Worker, subjects: Sequence[str]) -> dict[str, tuple[int, int]] | None:
    """Return per subject the keys under the prefix whose ``subject_pattern`` group is it, exactly and
    ignoring case; None without ``subject_pattern``.

    Raises:
        TemporaryFailure: the bucket could not be listed.
    """
    if worker.pattern is None:
        return None
    exact: dict[str, int] = {}
    folded: dict[str, int] = {}
    try:
        for groups in list_groups(worker.client, worker.bucket, worker.acting.prefix, versioned=worker.info.versioned):
            for group in groups:
                subject, known = subject_of(worker.pattern, group.key)
                if known and subject is not None:
                    exact[subject] = exact.get(subject, 0) + 1
                    folded[subject.casefold()] = folded.get(subject.casefold(), 0) + 1
    except (BotoCoreError, ClientError) as exc:
        raise TemporaryFailure(
            f"store {worker.store!r}: S3 listing of bucket {worker.bucket!r} failed ({type(exc).__name__})"
        ) from None
    return {s: (exact.get(s, 0), folded.get(s.casefold(), 0)) for s in subjects}


__all__ = ["acted", "released", "subject_counts"]
