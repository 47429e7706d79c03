"""Send DeleteObjects requests for one bucket and work out from the responses what really happened.

Every request is announced in the intent journal (:mod:`.journal`) before it is sent, and its
outcome rows replace the intent once the truth is known; see :class:`Requester`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from retentiond.logs import get_logger
from retentiond.stores.base import OutcomeRow
from retentiond.stores.s3 import retry
from retentiond.stores.s3.ages import is_locked
from retentiond.stores.s3.journal import Intent, IntentJournal
from retentiond.testing.crashpoints import crash_point

log = get_logger("retentiond.s3")

MAX_KEYS_PER_REQUEST = 1000

Item = tuple[str, str | None]


@dataclass
class RequestOutcome:
    """The truth about one DeleteObjects request, from its response (and listings where unknown)."""

    deleted: list[Item] = field(default_factory=list)
    blocked: list[Item] = field(default_factory=list)
    failed: list[Item] = field(default_factory=list)
    rows: list[OutcomeRow] = field(default_factory=list)

    def extend(self, other: RequestOutcome) -> None:
        """Add ``other``'s items and rows to this outcome."""
        self.deleted += other.deleted
        self.blocked += other.blocked
        self.failed += other.failed
        self.rows += other.rows


class _Said(Enum):
    DELETED = "deleted"
    UNKNOWN = "unknown"  # neither reported deleted nor refused (or deleted by key only): a listing decides
    REFUSED = "refused"


@dataclass
class _Answer:
    """One DeleteObjects response, indexed by (key, version) and by key."""

    deleted_exact: set[Item] = field(default_factory=set)
    deleted_keys: set[str] = field(default_factory=set)
    errors_exact: dict[Item, tuple[str, str]] = field(default_factory=dict)
    errors_key: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, response: dict[str, Any], *, versioned: bool) -> _Answer:
        """Return the index of ``response``'s ``Deleted`` and ``Errors`` entries."""
        answer = cls()
        for d in response.get("Deleted", []) or []:
            if versioned and d.get("VersionId") is not None:
                answer.deleted_exact.add((d["Key"], d["VersionId"]))
            else:
                answer.deleted_keys.add(d["Key"])
        for e in response.get("Errors", []) or []:
            info = (str(e.get("Code", "")), str(e.get("Message", "")))
            if e.get("VersionId") is not None:
                answer.errors_exact[(e["Key"], e["VersionId"])] = info
            else:
                answer.errors_key[e["Key"]] = info  # some servers omit the VersionId of an error
        return answer

    def said(self, item: Item, *, versioned: bool) -> _Said:
        """Return what the response says about ``item``."""
        key, version = item
        if item in self.deleted_exact:
            return _Said.DELETED
        if key in self.deleted_keys and (not versioned or version is None or item not in self.errors_exact):
            # A versioned request answered by key only cannot tell which version went: ask a listing.
            return _Said.UNKNOWN if versioned and version is not None else _Said.DELETED
        return _Said.REFUSED if self.error(item) is not None else _Said.UNKNOWN

    def error(self, item: Item) -> tuple[str, str] | None:
        """Return the (code, message) of the error reported for ``item``, if any."""
        return self.errors_exact.get(item) or self.errors_key.get(item[0])


class Requester:
    """Sends DeleteObjects requests for one bucket and works out what really happened.

    * Only ``Deleted`` entries count as deleted (and, with ``verify_deletes``, only if a listing
      then shows them gone).
    * ``AccessDenied`` in an Object Lock bucket, confirmed by the version's lock (or by S3's
      message), is ``blocked``: never retried, never bypassed (no
      ``x-amz-bypass-governance-retention`` is ever sent).
    * Other per-key errors are retried with backoff, then ``failed``.
    * Throttling, 500s and connection failures of the whole request are retried too, from the
      same budget (:class:`retry.Budget`: one growing backoff and ``ATTEMPTS`` sends per chunk,
      whatever the mix of causes); a connection failure after the request may have been sent,
      or an entry missing from the response, is an unknown outcome: a listing decides before
      anything is audited.
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
        try:
            lock = is_locked(self.client, self.bucket, item[0], item[1], datetime.now(UTC))
        except Exception:  # noqa: BLE001 - the message is the fallback evidence
            lock = False
        return lock or "object lock" in message.lower()

    def _settle_gone(self, items: list[Item], out: RequestOutcome) -> list[Item]:
        """File the ``items`` a listing shows gone as deleted; return the others.

        Raises:
            botocore errors: listing failed after the retries.
        """
        if not items:
            return []
        gone = set(self.journal.resolve(self.bucket, items, versioned=self.versioned))
        out.deleted += [i for i in items if i in gone]
        return [i for i in items if i not in gone]

    def delete(self, intent: Intent, current: set[Item]) -> RequestOutcome:
        """Delete ``intent.items`` (announced in the journal first); return the outcome, also written to the journal."""
        self.journal.begin(intent)
        crash_point("s3_after_intent")
        out = RequestOutcome()
        remaining = list(intent.items)
        budget = retry.Budget()  # throttling and per-key retries share one budget and one backoff
        while remaining:
            last = budget.next_send()
            try:
                response = self._send(remaining)
            except Exception as exc:  # noqa: BLE001 - classified below; nothing is audited on a guess
                if retry.is_transient(exc) and not retry.is_unknown_outcome(exc) and not last:
                    continue  # nothing happened on the server: the same items again, after a longer wait
                remaining = self._after_failure(exc, remaining, out, last=last)
                continue
            remaining = self._sort(response, remaining, out, last=last)
        if self.verify_deletes and out.deleted:
            self._verify(out)
        self._record(intent, current, out)
        return out

    def _after_failure(self, exc: Exception, remaining: list[Item], out: RequestOutcome, *, last: bool) -> list[Item]:
        """File ``remaining`` after a request that raised ``exc``; return those to send again."""
        unknown = retry.is_unknown_outcome(exc)
        if unknown and not last:
            return self._settle_gone(remaining, out)
        log.error(
            "delete request failed",
            bucket=self.bucket,
            error=type(exc).__name__,
            code=retry.error_code(exc),
            versions=len(remaining),
        )
        if unknown:
            remaining = self._settle_gone(remaining, out)
        out.failed += remaining
        return []

    def _verify(self, out: RequestOutcome) -> None:
        """Move versions reported deleted but still listed from ``deleted`` to ``failed`` (``verify_deletes``)."""
        still = set(out.deleted) - set(self.journal.resolve(self.bucket, out.deleted, versioned=self.versioned))
        if still:
            log.error(
                "verify_deletes: versions reported deleted are still listed",
                bucket=self.bucket,
                versions=len(still),
            )
            out.deleted = [i for i in out.deleted if i not in still]
            out.failed += sorted(still, key=str)

    def _record(self, intent: Intent, current: set[Item], out: RequestOutcome) -> None:
        """Write ``out``'s outcome rows in place of ``intent`` in the journal (and keep them in ``out.rows``)."""
        prior = sum(1 for i in out.deleted if i not in current)
        if out.deleted:
            out.rows.append(self.journal.row(intent, "deleted", out.deleted, prior=prior))
        if out.blocked:
            out.rows.append(self.journal.row(intent, "blocked", out.blocked))
        if out.failed:
            out.rows.append(self.journal.row(intent, "failed", out.failed))
        self.journal.finish(intent.id, out.rows)

    def _sort(self, response: dict[str, Any], sent: list[Item], out: RequestOutcome, *, last: bool) -> list[Item]:
        """File each sent item as deleted / blocked / failed from ``response``; return those to send again."""
        answer = _Answer.of(response, versioned=self.versioned)
        again: list[Item] = []
        unknown: list[Item] = []
        for item in sent:
            said = answer.said(item, versioned=self.versioned)
            if said is _Said.DELETED:
                out.deleted.append(item)
            elif said is _Said.UNKNOWN:
                unknown.append(item)
            else:
                self._refused(item, answer.error(item) or ("", ""), out, again, last=last)
        again += self._settle_gone(unknown, out)
        if again and not last:
            log.warning("per-key errors; retrying", bucket=self.bucket, versions=len(again))
            return again
        out.failed += again
        return []

    def _refused(
        self, item: Item, error: tuple[str, str], out: RequestOutcome, again: list[Item], *, last: bool
    ) -> None:
        """File an item the response refused: blocked by Object Lock, failed, or to send again."""
        code, message = error
        if code == "AccessDenied" and self._is_lock(item, message):
            out.blocked.append(item)
        elif code == "AccessDenied" or last:
            out.failed.append(item)
        else:
            again.append(item)


__all__ = ["MAX_KEYS_PER_REQUEST", "Item", "RequestOutcome", "Requester"]
