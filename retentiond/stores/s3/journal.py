"""The S3 intent journal: crash consistency for deletions that no transaction can cover.

An S3 DeleteObjects request and a ledger append cannot commit together, so each request is
preceded by an *intent* (the batch's (key, version) list) made durable in a local SQLite file
(``state_dir/s3-intents.db``, WAL, ``synchronous = FULL``). After the response, the request's
outcome rows (deleted / blocked / failed, with refs) replace the intent in one transaction and
go to the run driver, which appends them to the ledger and then calls :meth:`remove`.

After a crash the next run calls :meth:`pending` before anything else:

* an intent without outcome (killed before or during the request, or before its outcome was
  written) is resolved by listing: versions that are gone become one ``deleted`` row, versions
  still there are dropped (the run will decide about them again);
* outcome rows not yet removed are returned as they are.

Outcome rows carry batch ids derived from the intent id (``uuid5``), so relaying one twice is
caught by the ledger (``DuplicateBatch``): every deleted version gets exactly one outcome
entry, and no entry claims a version that still exists.

The journal holds object keys (it must, to resolve intents); it lives in ``state_dir``
(mode 0600), never in the ledger or the logs, and each entry is removed once relayed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retentiond.stores.base import OutcomeRow
from retentiond.stores.s3 import retry
from retentiond.testing.crashpoints import crash_point

JOURNAL_FILE = "s3-intents.db"
_NS = uuid.UUID("0b8e6a4e-5a0c-4d59-9a55-0c3c6f4a8f11")

RefsOf = Callable[[str, Sequence[tuple[str, str | None]]], bytes]


@dataclass(frozen=True)
class Intent:
    """What one DeleteObjects request is about to do."""

    id: str
    run_id: str
    category: str
    store: str
    bucket: str
    prefix: str | None
    versioned: bool
    items: tuple[tuple[str, str | None], ...]


def outcome_id(intent_id: str, outcome: str) -> str:
    """Return the batch id of ``intent_id``'s ``outcome`` row (stable across a crash and a recovery)."""
    return str(uuid.uuid5(_NS, f"{intent_id}|{outcome}"))


class IntentJournal:
    """The intents and unrelayed outcomes of one S3 store (thread-safe)."""

    def __init__(self, state_dir: Path | None, store_name: str, client: Any, refs_of: RefsOf) -> None:
        """Open (creating when needed) ``state_dir/s3-intents.db``; in memory when ``state_dir`` is None
        (plan, dry run).

        ``refs_of(bucket, items)`` returns the refs of object versions (empty on plan/dry-run).
        """
        self.store_name = store_name
        self.client = client
        self.refs_of = refs_of
        self._lock = threading.Lock()
        target = ":memory:"
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            path = state_dir / JOURNAL_FILE
            if not path.exists():
                path.touch(mode=0o600)
            target = str(path)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: an intent is on disk before the request that it announces is sent.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS intents (id TEXT PRIMARY KEY, store TEXT NOT NULL, run_id TEXT NOT NULL, "
            "category TEXT NOT NULL, bucket TEXT NOT NULL, prefix TEXT, versioned INTEGER NOT NULL, "
            "items TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outcomes (batch_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, "
            "store TEXT NOT NULL, row TEXT NOT NULL, created_at TEXT NOT NULL)"
        )

    # -- during a run ----------------------------------------------------------------------

    def begin(self, intent: Intent) -> None:
        """Make ``intent`` durable before its request is sent."""
        with self._lock:
            self._db.execute(
                "INSERT INTO intents (id, store, run_id, category, bucket, prefix, versioned, items, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    intent.id,
                    self.store_name,
                    intent.run_id,
                    intent.category,
                    intent.bucket,
                    intent.prefix,
                    int(intent.versioned),
                    json.dumps([list(i) for i in intent.items]),
                    _now(),
                ),
            )

    def finish(self, intent_id: str, rows: Iterable[OutcomeRow]) -> None:
        """Replace the intent by its outcome rows, in one transaction."""
        rows = list(rows)
        crash_point("s3_after_delete")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO outcomes (batch_id, intent_id, store, row, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(r.batch_id, intent_id, self.store_name, _encode(r), _now()) for r in rows],
                )
                self._db.execute("UPDATE intents SET done = 1 WHERE id = ?", (intent_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        crash_point("s3_after_outcome")

    def remove(self, batch_ids: list[str]) -> None:
        """Forget relayed outcome rows (and the intents they settled)."""
        if not batch_ids:
            return
        crash_point("s3_before_remove")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outcomes WHERE batch_id = ?", [(b,) for b in batch_ids])
            self._db.execute(
                "DELETE FROM intents WHERE store = ? AND done = 1 AND id NOT IN (SELECT intent_id FROM outcomes)",
                (self.store_name,),
            )
            self._db.execute("COMMIT")

    # -- recovery ---------------------------------------------------------------------------

    def pending(self) -> list[OutcomeRow]:
        """Resolve unfinished intents by listing; return every outcome row not yet relayed, oldest first.

        Raises:
            botocore errors: the bucket cannot be listed (the run stops before acting: exit 75).
        """
        with self._lock:
            open_intents = self._db.execute(
                "SELECT id, run_id, category, bucket, prefix, versioned, items FROM intents "
                "WHERE store = ? AND done = 0 ORDER BY created_at",
                (self.store_name,),
            ).fetchall()
        for row in open_intents:
            intent = Intent(
                row[0],
                row[1],
                row[2],
                self.store_name,
                row[3],
                row[4],
                bool(row[5]),
                tuple((k, v) for k, v in json.loads(row[6])),
            )
            gone = self.resolve(intent.bucket, intent.items, versioned=intent.versioned)
            rows: list[OutcomeRow] = []
            if gone:
                rows.append(self.row(intent, "deleted", gone))
            self.finish(intent.id, rows)
        with self._lock:
            stored = self._db.execute(
                "SELECT row FROM outcomes WHERE store = ? ORDER BY created_at, batch_id", (self.store_name,)
            ).fetchall()
            # Intents settled with no outcome (nothing was deleted) have nothing to relay.
            self._db.execute(
                "DELETE FROM intents WHERE store = ? AND done = 1 AND id NOT IN (SELECT intent_id FROM outcomes)",
                (self.store_name,),
            )
        return [_decode(r[0]) for r in stored]

    def resolve(
        self, bucket: str, items: Sequence[tuple[str, str | None]], *, versioned: bool
    ) -> list[tuple[str, str | None]]:
        """Return the ``items`` (key, version) that a listing shows gone.

        Raises:
            botocore errors: listing failed after the retries.
        """
        by_key: dict[str, list[str | None]] = {}
        for key, version in items:
            by_key.setdefault(key, []).append(version)
        gone: list[tuple[str, str | None]] = []
        for key, versions in by_key.items():
            present = existing_versions(self.client, bucket, key, versioned=versioned)
            gone += [(key, v) for v in versions if (v if versioned else None) not in present]
        return gone

    def row(
        self, intent: Intent, outcome: str, items: Sequence[tuple[str, str | None]], *, prior: int = 0
    ) -> OutcomeRow:
        """Return the outcome row ``outcome`` of ``intent`` for ``items`` (with their refs)."""
        return OutcomeRow(
            batch_id=outcome_id(intent.id, outcome),
            run_id=intent.run_id,
            category=intent.category,
            store=self.store_name,
            target=intent.bucket,
            action="delete",
            outcome=outcome,
            count=len(items),
            prior_versions=prior,
            refs=self.refs_of(intent.bucket, items),
            created_at=datetime.now(UTC),
            prefix=intent.prefix,
        )

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()


def existing_versions(client: Any, bucket: str, key: str, *, versioned: bool) -> set[str | None]:
    """Return the version ids (delete markers included) of exactly ``key`` that exist now ({None} when
    unversioned and present).

    Raises:
        botocore errors: listing failed after the retries.
    """
    found: set[str | None] = set()
    if not versioned:
        page = retry.call(client.list_objects_v2, Bucket=bucket, Prefix=key, MaxKeys=1)
        if any(o["Key"] == key for o in page.get("Contents", [])):
            found.add(None)
        return found
    markers: dict[str, str] = {}
    while True:
        page = retry.call(client.list_object_versions, Bucket=bucket, Prefix=key, MaxKeys=1000, **markers)
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if entry["Key"] == key:
                found.add(entry.get("VersionId"))
        if not page.get("IsTruncated"):
            return found
        # Keys longer than ``key`` sort after it: once past it, nothing more of it follows.
        if page.get("NextKeyMarker", "") > key:
            return found
        markers = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextVersionIdMarker"):
            markers["VersionIdMarker"] = page["NextVersionIdMarker"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _encode(row: OutcomeRow) -> str:
    data = dict(row.__dict__)
    data["refs"] = row.refs.hex()
    data["created_at"] = row.created_at.isoformat()
    return json.dumps(data)


def _decode(text: str) -> OutcomeRow:
    data = json.loads(text)
    data["refs"] = bytes.fromhex(data["refs"])
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    return OutcomeRow(**data)
