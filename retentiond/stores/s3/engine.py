"""Plan and act on one S3 target (a bucket prefix of a category) for the run driver.

Flow, per target:

1. ``counts()`` (the plan, and the guard before a run) lists the prefix once, page by page
   (see :mod:`.listing`); reads the age tag / metadata of current versions and, in an Object
   Lock bucket, the lock of candidate versions, concurrently in the store's thread pool; and
   writes the key groups that something could happen to into a *spool* (a private SQLite file,
   deleted at the end of the run), so memory stays flat and the run does not list twice.
2. ``run_batch()`` reads the next groups from the spool, decides again with the holds the
   driver has just re-read (:mod:`.decide`), and sends up to ``max_workers`` DeleteObjects
   requests of at most ``min(batch_size, 1000)`` versions concurrently — versions of expired
   objects and expired prior versions alike, in one pass over the spool. Each
   request is announced in the intent journal first; its truth is the response's ``Deleted``
   and ``Errors`` (see :class:`Requester`); its outcome rows go back to the driver, which audits
   them and then acknowledges them in the journal. The held counts the driver asks for after
   the batches are those the batches found (no second pass).
3. Delete markers in front of versions are removed in a second request, once every version of
   the key is confirmed gone.

The spool is a snapshot: a version written after the listing is not in it and is not touched
(requests name VersionIds); a version deleted meanwhile by someone else comes back as deleted
(S3 reports deleting a missing version as success) and is audited as deleted, which it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from retentiond.config.holds import Hold
from retentiond.errors import TemporaryFailure
from retentiond.logs import get_logger
from retentiond.stores.s3 import retry
from retentiond.stores.s3.decide import Claim, GroupPlan, plan_group
from retentiond.stores.s3.journal import (
    Intent,
    IntentJournal,
    S3OutboxRow,
    existing_versions,
)
from retentiond.stores.s3.listing import KeyGroup, Version, list_groups
from retentiond.stores.sql.worker import BatchResult, Counts, Cursor
from retentiond.testing.crashpoints import crash_point

log = get_logger("retentiond.s3")

MAX_KEYS_PER_REQUEST = 1000

Item = tuple[str, str | None]


@dataclass
class S3Counts(Counts):
    """Plan figures of one S3 target, in object versions (delete markers included)."""

    blocked: int = 0


@dataclass
class S3BatchResult(BatchResult):
    """What one S3 batch did, with the versions Object Lock kept and those that failed."""

    blocked: int = 0
    failed: int = 0


@dataclass
class RequestOutcome:
    """The truth about one DeleteObjects request, from its response (and listings where unknown)."""

    deleted: list[Item] = field(default_factory=list)
    blocked: list[Item] = field(default_factory=list)
    failed: list[Item] = field(default_factory=list)
    rows: list[S3OutboxRow] = field(default_factory=list)


def parse_time(value: str | None) -> datetime | None:
    """Return the aware instant of an RFC 3339 tag / metadata value.

    None when absent, invalid or naive: the clock has not started.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a naive time could be any zone: never guess, keep the object
    return parsed.astimezone(UTC)


def _locked(head: dict[str, Any], now: datetime) -> bool:
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        return True
    until = head.get("ObjectLockRetainUntilDate")
    if isinstance(until, datetime):
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        return until > now
    return False


class Requester:
    """Sends DeleteObjects requests for one bucket and works out what really happened.

    * Only ``Deleted`` entries count as deleted (and, with ``verify_deletes``, only if a listing
      then shows them gone).
    * ``AccessDenied`` in an Object Lock bucket, confirmed by the version's lock (or by S3's
      message), is ``blocked``: never retried, never bypassed (no
      ``x-amz-bypass-governance-retention`` is ever sent).
    * Other per-key errors are retried with backoff, then ``failed``.
    * Throttling, 500s and connection failures of the whole request are retried by tenacity; a
      connection failure after the request may have been sent, or an entry missing from the
      response, is an unknown outcome: a listing decides before anything is audited.
    """

    def __init__(
        self,
        client: Any,
        journal: IntentJournal,
        bucket: str,
        *,
        versioned: bool,
        object_lock: bool,
        verify_deletes: bool,
    ) -> None:
        self.client = client
        self.journal = journal
        self.bucket = bucket
        self.versioned = versioned
        self.object_lock = object_lock
        self.verify_deletes = verify_deletes

    def _send(self, items: Sequence[Item]) -> dict[str, Any]:
        objects = [{"Key": k, "VersionId": v} if v is not None else {"Key": k} for k, v in items]
        return dict(self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": False}))

    def _is_lock(self, item: Item, message: str) -> bool:
        if not self.object_lock:
            return False
        key, version = item
        try:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if version is not None:
                kwargs["VersionId"] = version
            head = retry.call(self.client.head_object, **kwargs)
        except Exception:  # noqa: BLE001 - the message is the fallback evidence
            return "object lock" in message.lower()
        return _locked(head, datetime.now(UTC)) or "object lock" in message.lower()

    def delete(self, intent: Intent, current: set[Item]) -> RequestOutcome:
        """Delete ``intent.items`` (announced in the journal first); return the outcome, also written to the journal."""
        self.journal.begin(intent)
        crash_point("s3_after_intent")
        out = RequestOutcome()
        remaining = list(intent.items)
        attempt = 0
        while remaining:
            attempt += 1
            if attempt > 1:
                retry.sleep(retry.backoff(attempt - 1))
            try:
                response = retry.retrying(retry_on=lambda e: retry.is_transient(e) and not retry.is_unknown_outcome(e))(
                    self._send, remaining
                )
            except Exception as exc:  # noqa: BLE001 - classified below; nothing is audited on a guess
                if retry.is_unknown_outcome(exc) and attempt < retry.ATTEMPTS:
                    gone = set(self.journal.resolve(self.bucket, remaining, versioned=self.versioned))
                    out.deleted += [i for i in remaining if i in gone]
                    remaining = [i for i in remaining if i not in gone]
                    continue
                log.error(
                    "delete request failed",
                    bucket=self.bucket,
                    error=type(exc).__name__,
                    code=retry.error_code(exc),
                    versions=len(remaining),
                )
                if retry.is_unknown_outcome(exc):
                    gone = set(self.journal.resolve(self.bucket, remaining, versioned=self.versioned))
                    out.deleted += [i for i in remaining if i in gone]
                    remaining = [i for i in remaining if i not in gone]
                out.failed += remaining
                remaining = []
                break
            remaining = self._sort(response, remaining, out, last=attempt >= retry.ATTEMPTS)
        if self.verify_deletes and out.deleted:
            still = set(out.deleted) - set(self.journal.resolve(self.bucket, out.deleted, versioned=self.versioned))
            if still:
                log.error(
                    "verify_deletes: versions reported deleted are still listed",
                    bucket=self.bucket,
                    versions=len(still),
                )
                out.deleted = [i for i in out.deleted if i not in still]
                out.failed += sorted(still, key=str)
        prior = sum(1 for i in out.deleted if i not in current)
        if out.deleted:
            out.rows.append(self.journal.row(intent, "deleted", out.deleted, prior=prior))
        if out.blocked:
            out.rows.append(self.journal.row(intent, "blocked", out.blocked))
        if out.failed:
            out.rows.append(self.journal.row(intent, "failed", out.failed))
        self.journal.finish(intent.id, out.rows)
        return out

    def _sort(self, response: dict[str, Any], sent: list[Item], out: RequestOutcome, *, last: bool) -> list[Item]:
        """File each sent item as deleted / blocked / failed from ``response``; return those to send again."""
        deleted_exact: set[Item] = set()
        deleted_keys: set[str] = set()
        for d in response.get("Deleted", []) or []:
            if self.versioned and d.get("VersionId") is not None:
                deleted_exact.add((d["Key"], d["VersionId"]))
            else:
                deleted_keys.add(d["Key"])
        errors_exact: dict[Item, tuple[str, str]] = {}
        errors_key: dict[str, tuple[str, str]] = {}
        for e in response.get("Errors", []) or []:
            info = (str(e.get("Code", "")), str(e.get("Message", "")))
            if e.get("VersionId") is not None:
                errors_exact[(e["Key"], e["VersionId"])] = info
            else:
                errors_key[e["Key"]] = info  # some servers omit the VersionId of an error
        again: list[Item] = []
        unknown: list[Item] = []
        for item in sent:
            key, version = item
            if item in deleted_exact or (
                key in deleted_keys and (not self.versioned or version is None or item not in errors_exact)
            ):
                if key in deleted_keys and self.versioned and version is not None and item not in deleted_exact:
                    # A versioned request answered by key only: cannot tell which version; ask a listing.
                    unknown.append(item)
                    continue
                out.deleted.append(item)
                continue
            error = errors_exact.get(item) or errors_key.get(key)
            if error is None:
                unknown.append(item)  # neither deleted nor refused: find out
                continue
            code, message = error
            if code == "AccessDenied" and self._is_lock(item, message):
                out.blocked.append(item)
            elif code == "AccessDenied" or last:
                out.failed.append(item)
            else:
                again.append(item)
        if unknown:
            gone = set(self.journal.resolve(self.bucket, unknown, versioned=self.versioned))
            out.deleted += [i for i in unknown if i in gone]
            again += [i for i in unknown if i not in gone]
        if again and not last:
            log.warning("per-key errors; retrying", bucket=self.bucket, versions=len(again))
        elif again:
            out.failed += again
            again = []
        return again


class Spool:
    """A private on-disk list of the key groups a run may act on (never the whole listing in memory)."""

    def __init__(self, directory: Path | None) -> None:
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError:
                directory = None
        fd, name = tempfile.mkstemp(
            prefix=f"s3-spool-{os.getpid()}-", suffix=".db", dir=str(directory) if directory else None
        )
        os.close(fd)
        self.path = name
        self.db = sqlite3.connect(name, check_same_thread=False)
        # A scratch file: rebuilt by the next run if lost, so no journal and no fsync.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE groups (gid INTEGER PRIMARY KEY, key TEXT NOT NULL, entries TEXT NOT NULL, "
            "ages TEXT NOT NULL, locked TEXT NOT NULL)"
        )

    def add(self, rows: list[tuple[int, KeyGroup, dict[str, datetime | None], list[int]]]) -> None:
        """Append groups with their ages and the indexes of their locked versions."""
        self.db.executemany(
            "INSERT INTO groups VALUES (?, ?, ?, ?, ?)",
            [
                (
                    gid,
                    g.key,
                    json.dumps(
                        [[e.version_id, e.last_modified.isoformat(), e.is_latest, e.is_marker] for e in g.entries]
                    ),
                    json.dumps({k: v.isoformat() if v else None for k, v in ages.items()}),
                    json.dumps(locked),
                )
                for gid, g, ages, locked in rows
            ],
        )
        self.db.commit()

    def read(self, after: int, limit: int) -> Iterator[tuple[int, KeyGroup, dict[str, datetime | None], set[int]]]:
        """Yield up to ``limit`` groups with ``gid > after``, in order."""
        rows = self.db.execute(
            "SELECT gid, key, entries, ages, locked FROM groups WHERE gid > ? ORDER BY gid LIMIT ?", (after, limit)
        ).fetchall()
        for gid, key, entries, ages, locked in rows:
            group = KeyGroup(
                key,
                [
                    Version(key, v, datetime.fromisoformat(lm), latest, marker)
                    for v, lm, latest, marker in json.loads(entries)
                ],
            )
            yield (
                gid,
                group,
                {k: datetime.fromisoformat(v) if v else None for k, v in json.loads(ages).items()},
                set(json.loads(locked)),
            )

    def close(self) -> None:
        """Close and delete the file."""
        self.db.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _Tally:
    """Sums the plans of key groups into plan figures."""

    def __init__(self) -> None:
        self.eligible = self.history = self.blocked = 0
        self.held: dict[str, int] = {}

    def add(self, plan: GroupPlan, locked: set[int] | list[int]) -> None:
        """Count one group's plan; ``locked`` are the indexes of its versions under Object Lock."""
        for hold_id, n in plan.held.items():
            self.held[hold_id] = self.held.get(hold_id, 0) + n
        main_locked = [i for i in plan.main if i in locked]
        hist_locked = [i for i in plan.history if i in locked]
        # Markers in front of a locked version stay: they are not counted as eligible.
        self.eligible += len(plan.main) + (0 if main_locked else len(plan.main_markers))
        self.history += len(plan.history) + (0 if hist_locked else len(plan.history_markers))
        self.blocked += len(main_locked) + len(hist_locked)

    def counts(self, total: int) -> S3Counts:
        """Return the figures."""
        return S3Counts(
            total=total,
            eligible=self.eligible,
            held=dict(self.held),
            history_expired=self.history,
            blocked=self.blocked,
        )


def remove_stale_spools(directory: Path) -> int:
    """Delete spools left by processes that no longer run (a crashed run); return how many."""
    removed = 0
    for path in directory.glob("s3-spool-*-*.db"):
        try:
            pid = int(path.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # someone else's live process
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


@dataclass
class BucketInfo:
    """What the engine needs to know about a bucket."""

    versioned: bool
    object_lock: bool


class S3Worker:
    """Plans and executes one category's claim on one bucket prefix (the run driver's worker protocol)."""

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
    ) -> None:
        self.client = client
        self.pool = pool
        self.outbox = journal
        self.journal = journal
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
        self._batches_tally = _Tally()
        self._drained: _Tally | None = None
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
    def prefix(self) -> str:
        """Return the prefix (empty for a whole bucket)."""
        return self.acting.prefix

    @property
    def has_history(self) -> bool:
        """Return False: prior versions are deleted in the same batches as current ones (one pass)."""
        return False

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

        def read(group: KeyGroup) -> dict[str, datetime | None]:
            current = group.entries[0]
            if current.is_marker or not current.is_latest:
                return {}
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": group.key}
            if current.version_id is not None:
                kwargs["VersionId"] = current.version_id
            out: dict[str, datetime | None] = {}
            tags: dict[str, str] | None = None
            meta: dict[str, str] | None = None
            for source in self.sources:
                kind, _, name = source.partition(":")
                if kind == "tag":
                    if tags is None:
                        tags = {
                            t["Key"]: t["Value"]
                            for t in retry.call(self.client.get_object_tagging, **kwargs).get("TagSet", [])
                        }
                    out[source] = parse_time(tags.get(name))
                else:
                    if meta is None:
                        meta = {
                            k.lower(): v
                            for k, v in retry.call(self.client.head_object, **kwargs).get("Metadata", {}).items()
                        }
                    out[source] = parse_time(meta.get(name.lower()))
            return out

        return list(self.pool.map(read, groups))

    def _locks(self, candidates: list[tuple[KeyGroup, list[int]]]) -> list[list[int]]:
        """Return, per group, the indexes of versions under a legal hold or unexpired retention."""
        if not self.info.object_lock:
            return [[] for _ in candidates]
        now = datetime.now(UTC)

        def read(arg: tuple[KeyGroup, list[int]]) -> list[int]:
            group, indexes = arg
            locked: list[int] = []
            for i in indexes:
                entry = group.entries[i]
                kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": group.key}
                if entry.version_id is not None:
                    kwargs["VersionId"] = entry.version_id
                if _locked(retry.call(self.client.head_object, **kwargs), now):
                    locked.append(i)
            return locked

        return list(self.pool.map(read, candidates))

    def _build(self, holds: Sequence[Hold], run_start: datetime) -> tuple[Spool, S3Counts]:
        """List the prefix into a new spool; return it with the plan's figures under ``holds``."""
        spool = Spool(self.spool_dir)
        gid = 0
        total = 0
        tally = _Tally()
        try:
            for groups in list_groups(self.client, self.bucket, self.prefix, versioned=self.info.versioned):
                total += sum(len(g.entries) for g in groups)
                ages = self._ages(groups)
                candidates: list[tuple[int, KeyGroup, dict[str, datetime | None], list[int]]] = []
                for group, age in zip(groups, ages, strict=True):
                    plan = plan_group(group, age, self.acting, self.others, (), run_start, self.pattern)
                    if plan.empty():
                        continue
                    gid += 1
                    versions = [i for i in (*plan.main, *plan.history) if not group.entries[i].is_marker]
                    candidates.append((gid, group, age, versions))
                locks = self._locks([(g, v) for _, g, _, v in candidates])
                rows = [(gid_, g, a, lk) for (gid_, g, a, _), lk in zip(candidates, locks, strict=True)]
                spool.add(rows)
                for _, group, age, locked in rows:
                    tally.add(self._plan(group, age, holds, run_start), set(locked))
        except (BotoCoreError, ClientError) as exc:
            spool.close()
            raise _temporary(self._store, self.bucket, "listing", exc) from None
        self._total = total
        return spool, tally.counts(total)

    # -- plan -----------------------------------------------------------------------------------

    def _plan(
        self, group: KeyGroup, ages: dict[str, datetime | None], holds: Sequence[Hold], run_start: datetime
    ) -> GroupPlan:
        return plan_group(group, ages, self.acting, self.others, holds, run_start, self.pattern)

    def remaining(self, holds: Sequence[Hold], run_start: datetime) -> int:
        """Return 0: the batches went through the whole listing (the spool); what a request could
        not delete is counted as failed or blocked, and a version written after the listing is
        the next run's (a re-listing here would double the cost of every run)."""
        return 0

    def held_counts(self, holds: Sequence[Hold], run_start: datetime) -> dict[str, int]:
        """Return, per hold, the versions kept by it (see :meth:`counts`)."""
        return self.counts(holds, run_start).held

    def counts(self, holds: Sequence[Hold], run_start: datetime) -> S3Counts:
        """Return versions listed, versions this run would delete (of expired objects), held per hold,
        expired prior versions, and versions Object Lock would block.

        The first call lists the prefix (into the spool); later calls re-decide from the spool with
        ``holds``, except after the run's batches went through the whole spool: then the figures are
        what the batches found (the holds of each batch, re-read just before it), without a re-read.

        Raises:
            TemporaryFailure: the bucket could not be listed (after retries).
        """
        if self._spool is None:
            self._spool, figures = self._build(holds, run_start)
            return figures
        if self._drained is not None:
            return self._drained.counts(self._total)
        tally = _Tally()
        after = 0
        while True:
            rows = list(self._spool.read(after, 5000))
            if not rows:
                break
            for gid, group, ages, locked in rows:
                after = gid
                tally.add(self._plan(group, ages, holds, run_start), locked)
        return tally.counts(self._total)

    def _ensure(self, holds: Sequence[Hold], run_start: datetime) -> Spool:
        if self._spool is None:
            self.counts(holds, run_start)
        assert self._spool is not None
        return self._spool

    # -- act ------------------------------------------------------------------------------------

    def run_batch(
        self, cursor: Cursor, holds: Sequence[Hold], run_start: datetime, run_id: str, *, dry_run: bool
    ) -> S3BatchResult:
        """Delete what is due in the next key groups after ``cursor`` (advanced in place): every version
        of expired objects, and expired noncurrent versions and orphaned delete markers of the others.

        Both kinds go in the same requests (one pass over the spool): ``touched`` counts versions of
        expired objects, ``history`` the prior versions expired on their own.

        Raises:
            TemporaryFailure: the bucket could not be listed, or a request failed beyond its retries.
        """
        spool = self._ensure(holds, run_start)
        cap = self.per_request * self.max_workers
        after = int(cursor.after[0]) if cursor.after else 0
        if after == 0:
            self._batches_tally = _Tally()
        tally = self._batches_tally
        phase1: list[Item] = []
        main_items: set[Item] = set()
        current: set[Item] = set()
        markers: list[tuple[list[Item], list[Item]]] = []  # (versions that must be gone, markers then removed)
        locked_items: set[Item] = set()
        exhausted = True
        full = False
        while not full:
            # Held or out-of-scope groups add nothing to the batch: read on until it is full or the spool ends.
            rows = list(spool.read(after, cap + 1))
            if not rows:
                break
            for gid, group, ages, locked in rows:
                if len(phase1) >= cap:
                    exhausted = False
                    full = True
                    break
                after = gid
                if self.prefix and not group.key.startswith(self.prefix):
                    continue  # never act outside the prefix
                plan = self._plan(group, ages, holds, run_start)
                tally.add(plan, locked)
                entries = group.entries
                first = [*plan.main, *plan.history]
                later = [*plan.main_markers, *plan.history_markers]
                items = [(group.key, entries[i].version_id) for i in first]
                main_items.update((group.key, entries[i].version_id) for i in (*plan.main, *plan.main_markers))
                locked_items.update((group.key, entries[i].version_id) for i in first if i in locked)
                phase1 += items
                if plan.main:
                    current.add((group.key, entries[0].version_id))
                if later:
                    versions = [(group.key, entries[i].version_id) for i in first if not entries[i].is_marker]
                    markers.append((versions, [(group.key, entries[i].version_id) for i in later]))
        cursor.after = (after,)
        if exhausted and not dry_run:
            self._drained = tally
        selected = len(phase1) + sum(len(m) for _, m in markers)
        if not phase1 and not markers:
            return S3BatchResult(selected=0, touched=0, history=0, exhausted=exhausted)
        if dry_run:
            # What the requests would delete: all but locked versions and the markers in front of them.
            would = [i for i in phase1 if i not in locked_items]
            would += [m for v, ms in markers if not set(v) & locked_items for m in ms]
            main = sum(1 for i in would if i in main_items)
            return S3BatchResult(
                selected=selected,
                touched=main,
                history=len(would) - main,
                blocked=len(locked_items),
                exhausted=exhausted,
            )
        outcome = self._send_all(phase1, current, run_id)
        gone = set(outcome.deleted)
        followers = [m for versions, ms in markers if all(v in gone for v in versions) for m in ms]
        if followers:
            second = self._send_all(followers, set(), run_id)
            outcome.deleted += second.deleted
            outcome.blocked += second.blocked
            outcome.failed += second.failed
            outcome.rows += second.rows
        self.failed_versions += len(outcome.failed)
        main = sum(1 for i in outcome.deleted if i in main_items)
        log.info(
            "s3 batch",
            category=self.category,
            bucket=self.bucket,
            deleted=main,
            prior_versions=len(outcome.deleted) - main,
            blocked=len(outcome.blocked),
            failed=len(outcome.failed),
        )
        return S3BatchResult(
            selected=selected,
            touched=main,
            history=len(outcome.deleted) - main,
            outbox=list(outcome.rows),
            blocked=len(outcome.blocked),
            failed=len(outcome.failed),
            exhausted=exhausted,
        )

    def run_history_batch(
        self, cursor: Cursor, holds: Sequence[Hold], run_start: datetime, run_id: str, *, dry_run: bool
    ) -> S3BatchResult:
        """Return an exhausted, empty batch: :meth:`run_batch` deletes expired prior versions in the same pass."""
        return S3BatchResult(selected=0, touched=0, history=0, exhausted=True)

    def _send_all(self, items: list[Item], current: set[Item], run_id: str) -> RequestOutcome:
        chunks = [items[i : i + self.per_request] for i in range(0, len(items), self.per_request)]
        intents = [
            Intent(
                str(uuid.uuid4()),
                run_id,
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
                total.deleted += result.deleted
                total.blocked += result.blocked
                total.failed += result.failed
                total.rows += result.rows
        except (BotoCoreError, ClientError) as exc:
            raise _temporary(self._store, self.bucket, "delete", exc) from None
        return total


def _temporary(store: str, bucket: str, what: str, exc: BaseException) -> TemporaryFailure:
    code = retry.error_code(exc)
    detail = f"{type(exc).__name__}" + (f" {code}" if code else "")
    log.error(f"s3 {what} failed", store=store, bucket=bucket, error=detail)
    return TemporaryFailure(f"store {store!r}: S3 {what} of bucket {bucket!r} failed ({detail})")


__all__ = [
    "BucketInfo",
    "RequestOutcome",
    "Requester",
    "S3BatchResult",
    "S3Counts",
    "S3Worker",
    "existing_versions",
    "parse_time",
]
