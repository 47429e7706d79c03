"""The spool: a private on-disk list of the key groups a run may act on.

``counts()`` lists a prefix once and writes the groups something could happen to (with their
ages and the indexes of their locked versions) into a private SQLite file; the batches then
read it in order, so memory stays flat and a run does not list twice. The file is a scratch
file, deleted at the end of the run; spools a crashed process left are removed by the next run
(:func:`remove_stale_spools`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from retentiond.stores.s3.listing import KeyGroup, Version

SpoolRow = tuple[int, KeyGroup, dict[str, datetime | None], set[int]]


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

    def read(self, after: int, limit: int) -> Iterator[SpoolRow]:
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


__all__ = ["Spool", "SpoolRow", "remove_stale_spools"]
