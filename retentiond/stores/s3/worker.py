"""Plan and act on one S3 target (a bucket prefix of a category) for the run driver.

Flow, per target:

1. ``counts()`` (the plan, and the guard before a run) lists the prefix once, page by page
   (see :mod:`.listing`); reads the age tag / metadata of current versions and, in an Object
   Lock bucket, the lock of candidate versions (:mod:`.ages`), concurrently in the store's
   thread pool; and writes the key groups that something could happen to into a *spool*
   (:mod:`.spool`), so memory stays flat and the run does not list twice.
2. ``run_batch()`` reads the next groups from the spool, decides again with the holds the
   driver has just re-read (:mod:`.decide`), and sends up to ``max_workers`` DeleteObjects
   requests of at most ``min(batch_size, 1000)`` versions concurrently — versions of expired
   objects and expired prior versions alike, in one pass over the spool. Each
   request is announced in the intent journal first; its truth is the response's ``Deleted``
   and ``Errors`` (see :class:`~.requests.Requester`); its outcome rows go back to the driver,
   which audits them and then acknowledges them in the journal. The held counts the driver asks
   for after the batches are those the batches found (no second pass).
3. Delete markers in front of versions are removed in a second request, once every version of
   the key is confirmed gone.

The spool is a snapshot: a version written after the listing is not in it and is not touched
(requests name VersionIds); a version deleted meanwhile by someone else comes back as deleted
(S3 reports deleting a missing version as success) and is audited as deleted, which it is.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from retentiond.config.holds import Hold
from retentiond.errors import TemporaryFailure
from retentiond.logs import get_logger
from retentiond.stores.base import BatchResult, Counts, Cursor, OutcomeJournal, Phase
from retentiond.stores.s3 import impact, retry
from retentiond.stores.s3.ages import is_locked, read_ages
from retentiond.stores.s3.decide import Claim, GroupPlan, plan_group
from retentiond.stores.s3.journal import Intent, IntentJournal
from retentiond.stores.s3.listing import KeyGroup, list_groups
from retentiond.stores.s3.requests import MAX_KEYS_PER_REQUEST, Item, Requester, RequestOutcome
from retentiond.stores.s3.spool import Spool, SpoolRow
from retentiond.stores.s3.tally import Tally

log = get_logger("retentiond.s3")


@dataclass
class _Batch:
    """The versions one batch acts on, gathered from the spool."""

    after: int  # the last spool group read
    first: list[Item] = field(default_factory=list)  # versions (and orphan markers) sent in the first requests
    # (versions that must be gone, the markers in front of them removed once they are)
    markers: list[tuple[list[Item], list[Item]]] = field(default_factory=list)
    main: set[Item] = field(default_factory=set)  # versions and markers of expired objects
    current: set[Item] = field(default_factory=set)  # the current versions of expired objects
    locked: set[Item] = field(default_factory=set)
    exhausted: bool = True

    def add(self, group: KeyGroup, plan: GroupPlan, locked: set[int]) -> None:
        """Add what ``plan`` deletes of ``group``; ``locked`` are the indexes of its locked versions."""
        key, entries = group.key, group.entries
        first = [*plan.main, *plan.history]
        later = [*plan.main_markers, *plan.history_markers]
        self.main.update((key, entries[i].version_id) for i in (*plan.main, *plan.main_markers))
        self.locked.update((key, entries[i].version_id) for i in first if i in locked)
        self.first += [(key, entries[i].version_id) for i in first]
        if plan.main:
            self.current.add((key, entries[0].version_id))
        if later:
            versions = [(key, entries[i].version_id) for i in first if not entries[i].is_marker]
            self.markers.append((versions, [(key, entries[i].version_id) for i in later]))

    def selected(self) -> int:
        """Return the number of versions and markers in the batch."""
        return len(self.first) + sum(len(m) for _, m in self.markers)

    def dry_run(self) -> BatchResult:
        """Return what the requests would delete: all but locked versions and the markers in front of them."""
        would = [i for i in self.first if i not in self.locked]
        would += [m for versions, ms in self.markers if not set(versions) & self.locked for m in ms]
        main = sum(1 for i in would if i in self.main)
        return BatchResult(
            selected=self.selected(),
            touched=main,
            history=len(would) - main,
            blocked=len(self.locked),
            exhausted=self.exhausted,
        )


@dataclass
class BucketInfo:
    """What the engine needs to know about a bucket."""

    versioned: bool
    object_lock: bool


class S3Worker:
    """Plans and executes one category's claim on one bucket prefix for one run
    (:class:`~retentiond.stores.base.Worker`)."""

    action = "delete"

    def __init__(
        self,
        *,
        client: Any,
        pool: ThreadPoolExecutor,
        journal: IntentJournal,
        store_name: str,
        bucket: str,
        acting: Claim,
        others: Sequence[Claim],
        subject_pattern: str | None,
        info: BucketInfo,
        batch_size: int,
        max_workers: int,
        verify_deletes: bool,
        spool_dir: Path | None,
        refs_of: Callable[[str, Sequence[Item]], bytes],
        run_start: datetime,
        run_id: str,
    ) -> None:
        self.client = client
        self.pool = pool
        self._journal = journal
        self.run_start = run_start
        self.run_id = run_id
        self._store = store_name
        self.bucket = bucket
        self.acting = acting
        self.others = list(others)
        self.pattern = re.compile(subject_pattern) if subject_pattern else None
        self.info = info
        self.per_request = max(1, min(batch_size, MAX_KEYS_PER_REQUEST))
        self.max_workers = max_workers
        self.spool_dir = spool_dir
        self.refs_of = refs_of
        self.requester = Requester(
            client,
            journal,
            bucket,
            versioned=info.versioned,
            object_lock=info.object_lock,
            verify_deletes=verify_deletes,
        )
        self.sources = sorted(
            {acting.coverage.age_column, *(o.coverage.age_column for o in self.others)} - {"last_modified"}
        )
        self._spool: Spool | None = None
        self._total = 0
        self._batches_tally = Tally()
        self._drained: Tally | None = None
        self.failed_versions = 0

    # -- what the run driver reads -------------------------------------------------------------

    @property
    def category(self) -> str:
        """Return the acting category."""
        return self.acting.coverage.category

    @property
    def cutoff(self) -> datetime:
        """Return the acting category's cutoff for this run."""
        return self.acting.coverage.cutoff

    @property
    def store(self) -> str:
        """Return the store name."""
        return self._store

    @property
    def target_name(self) -> str:
        """Return the target's name in reports and the ledger: the bucket."""
        return self.bucket

    @property
    def prefix(self) -> str | None:
        """Return the prefix (None for a whole bucket)."""
        return self.acting.prefix or None

    @property
    def journal(self) -> OutcomeJournal:
        """Return the store's intent journal (the outcome rows of :meth:`run_batch` are acknowledged there)."""
        return self._journal

    def phases(self) -> Sequence[Phase]:
        """Return one pass: prior versions are deleted in the same batches as current ones."""
        return (Phase.RECORDS,)

    def close(self) -> None:
        """Delete the spool."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    # -- listing into the spool ----------------------------------------------------------------

    def _ages(self, groups: list[KeyGroup]) -> list[dict[str, datetime | None]]:
        """Return the age sources (tags, metadata) of each group's current version, read concurrently."""
        if not self.sources:
            return [{} for _ in groups]
        return list(self.pool.map(lambda g: read_ages(self.client, self.bucket, g.entries[0], self.sources), groups))

    def _locks(self, candidates: list[tuple[KeyGroup, list[int]]]) -> list[list[int]]:
        """Return, per group, the indexes of versions under a legal hold or unexpired retention."""
        if not self.info.object_lock:
            return [[] for _ in candidates]
        now = datetime.now(UTC)

        def read(arg: tuple[KeyGroup, list[int]]) -> list[int]:
            group, indexes = arg
            entries = group.entries
            return [i for i in indexes if is_locked(self.client, self.bucket, group.key, entries[i].version_id, now)]

        return list(self.pool.map(read, candidates))

    def _build(self, holds: Sequence[Hold]) -> tuple[Spool, Counts]:
        """List the prefix into a new spool; return it with the plan's figures under ``holds``."""
        spool = Spool(self.spool_dir)
        gid = 0
        total = 0
        tally = Tally()
        try:
            for groups in list_groups(self.client, self.bucket, self.acting.prefix, versioned=self.info.versioned):
                total += sum(len(g.entries) for g in groups)
                ages = self._ages(groups)
                candidates: list[tuple[int, KeyGroup, dict[str, datetime | None], list[int]]] = []
                for group, age in zip(groups, ages, strict=True):
                    plan = plan_group(group, age, self.acting, self.others, (), self.run_start, self.pattern)
                    if plan.empty():
                        continue
                    gid += 1
                    versions = [i for i in (*plan.main, *plan.history) if not group.entries[i].is_marker]
                    candidates.append((gid, group, age, versions))
                locks = self._locks([(g, v) for _, g, _, v in candidates])
                rows = [(gid_, g, a, lk) for (gid_, g, a, _), lk in zip(candidates, locks, strict=True)]
                spool.add(rows)
                for _, group, age, locked in rows:
                    tally.add(self._plan(group, age, holds), set(locked))
        except (BotoCoreError, ClientError) as exc:
            spool.close()
            raise _temporary(self._store, self.bucket, "listing", exc) from None
        self._total = total
        return spool, tally.counts(total)

    # -- plan -----------------------------------------------------------------------------------

    def _plan(self, group: KeyGroup, ages: dict[str, datetime | None], holds: Sequence[Hold]) -> GroupPlan:
        return plan_group(group, ages, self.acting, self.others, holds, self.run_start, self.pattern)

    def remaining(self, holds: Sequence[Hold]) -> int:
        """Return 0: the batches went through the whole listing (the spool); what a request could
        not delete is counted as failed or blocked, and a version written after the listing is
        the next run's (a re-listing here would double the cost of every run)."""
        return 0

    def held_counts(self, holds: Sequence[Hold]) -> dict[str, int]:
        """Return, per hold, the versions kept by it (see :meth:`counts`)."""
        return self.counts(holds).held

    def released(self, before: Sequence[Hold], after: Sequence[Hold]) -> int:
        """Return the versions deleted under ``after`` but not ``before`` (see :mod:`.impact`)."""
        return impact.released(self, before, after)

    def subject_counts(self, subjects: Sequence[str]) -> dict[str, tuple[int, int]] | None:
        """Return per subject the keys carrying it, exactly and ignoring case (see :mod:`.impact`)."""
        return impact.subject_counts(self, subjects)

    def plan(self, group: KeyGroup, ages: dict[str, datetime | None], holds: Sequence[Hold]) -> GroupPlan:
        """Return what this worker would do with ``group`` under ``holds``."""
        return self._plan(group, ages, holds)

    def spool(self, holds: Sequence[Hold]) -> Spool:
        """Return the listing of the prefix (listed on first use)."""
        return self._ensure(holds)

    def counts(self, holds: Sequence[Hold]) -> Counts:
        """Return versions listed, versions this run would delete (of expired objects), held per hold,
        expired prior versions, and versions Object Lock would block.

        The first call lists the prefix (into the spool); later calls re-decide from the spool with
        ``holds``, except after the run's batches went through the whole spool: then the figures are
        what the batches found (the holds of each batch, re-read just before it), without a re-read.

        Raises:
            TemporaryFailure: the bucket could not be listed (after retries).
        """
        if self._spool is None:
            self._spool, figures = self._build(holds)
            return figures
        if self._drained is not None:
            return self._drained.counts(self._total)
        tally = Tally()
        after = 0
        while True:
            rows = list(self._spool.read(after, 5000))
            if not rows:
                break
            for gid, group, ages, locked in rows:
                after = gid
                tally.add(self._plan(group, ages, holds), locked)
        return tally.counts(self._total)

    def _ensure(self, holds: Sequence[Hold]) -> Spool:
        if self._spool is None:
            self.counts(holds)
        assert self._spool is not None
        return self._spool

    # -- act ------------------------------------------------------------------------------------

    def run_batch(self, phase: Phase, cursor: Cursor, holds: Sequence[Hold], *, dry_run: bool) -> BatchResult:
        """Delete what is due in the next key groups after ``cursor`` (advanced in place): every version
        of expired objects, and expired noncurrent versions and orphaned delete markers of the others.

        Both kinds go in the same requests (one pass over the spool): ``touched`` counts versions of
        expired objects, ``history`` the prior versions expired on their own. ``phase`` is always
        :attr:`Phase.RECORDS` (see :meth:`phases`); any other is an empty, exhausted pass.

        Raises:
            TemporaryFailure: the bucket could not be listed, or a request failed beyond its retries.
        """
        if phase is not Phase.RECORDS:
            return BatchResult(selected=0, touched=0, history=0, exhausted=True)
        spool = self._ensure(holds)
        after = int(cursor.after[0]) if cursor.after else 0
        if after == 0:
            self._batches_tally = Tally()
        tally = self._batches_tally
        batch = self._collect(spool, after, holds, tally)
        cursor.after = (batch.after,)
        if batch.exhausted and not dry_run:
            self._drained = tally
        if not batch.first and not batch.markers:
            return BatchResult(selected=0, touched=0, history=0, exhausted=batch.exhausted)
        if dry_run:
            return batch.dry_run()
        return self._execute(batch)

    def _collect(self, spool: Spool, after: int, holds: Sequence[Hold], tally: Tally) -> _Batch:
        """Return the next batch after spool group ``after``; each group is decided with ``holds`` and
        counted in ``tally``."""
        cap = self.per_request * self.max_workers
        batch = _Batch(after)
        while True:
            # Held or out-of-scope groups add nothing to the batch: read on until it is full or the spool ends.
            rows: list[SpoolRow] = list(spool.read(batch.after, cap + 1))
            if not rows:
                return batch
            for gid, group, ages, locked in rows:
                if len(batch.first) >= cap:
                    batch.exhausted = False
                    return batch
                batch.after = gid
                if self.prefix and not group.key.startswith(self.prefix):
                    continue  # never act outside the prefix
                plan = self._plan(group, ages, holds)
                tally.add(plan, locked)
                batch.add(group, plan, locked)

    def _execute(self, batch: _Batch) -> BatchResult:
        """Send the batch's requests (markers last, once every version behind them is gone); return the result."""
        outcome = self._send_all(batch.first, batch.current)
        gone = set(outcome.deleted)
        followers = [m for versions, ms in batch.markers if all(v in gone for v in versions) for m in ms]
        if followers:
            outcome.extend(self._send_all(followers, set()))
        self.failed_versions += len(outcome.failed)
        main = sum(1 for i in outcome.deleted if i in batch.main)
        log.info(
            "s3 batch",
            category=self.category,
            bucket=self.bucket,
            deleted=main,
            prior_versions=len(outcome.deleted) - main,
            blocked=len(outcome.blocked),
            failed=len(outcome.failed),
        )
        return BatchResult(
            selected=batch.selected(),
            touched=main,
            history=len(outcome.deleted) - main,
            outbox=list(outcome.rows),
            blocked=len(outcome.blocked),
            failed=len(outcome.failed),
            exhausted=batch.exhausted,
        )

    def _send_all(self, items: list[Item], current: set[Item]) -> RequestOutcome:
        chunks = [items[i : i + self.per_request] for i in range(0, len(items), self.per_request)]
        intents = [
            Intent(
                str(uuid.uuid4()),
                self.run_id,
                self.category,
                self._store,
                self.bucket,
                self.prefix or None,
                self.info.versioned,
                tuple(chunk),
            )
            for chunk in chunks
        ]
        total = RequestOutcome()
        try:
            for result in self.pool.map(lambda intent: self.requester.delete(intent, current), intents):
                total.extend(result)
        except (BotoCoreError, ClientError) as exc:
            raise _temporary(self._store, self.bucket, "delete", exc) from None
        return total


def _temporary(store: str, bucket: str, what: str, exc: BaseException) -> TemporaryFailure:
    code = retry.error_code(exc)
    detail = f"{type(exc).__name__}" + (f" {code}" if code else "")
    log.error(f"s3 {what} failed", store=store, bucket=bucket, error=detail)
    return TemporaryFailure(f"store {store!r}: S3 {what} of bucket {bucket!r} failed ({detail})")


__all__ = ["BucketInfo", "S3Worker"]
