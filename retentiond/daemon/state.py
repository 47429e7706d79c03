"""What the scheduler remembers between runs and restarts, in ``state_dir/schedule-state.json``.

Per category: the last tick (scheduled fire time) a runner completed, the last success, the
last result. The tick makes "exactly once per tick" hold when several daemons share a config:
a runner that gets the category's lock after another completed the same tick finds it done and
skips. A tick whose runner died (SIGKILL, power loss) or was stopped (SIGTERM) is not done, so
the next runner, or the catch-up at restart, takes it again. The last success drives the catch-up at
start. Every read-modify-write holds an ``flock`` on ``schedule-state.lock`` so processes never
lose each other's updates.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

STATE_FILE = "schedule-state.json"


@dataclass(frozen=True)
class CategoryState:
    """The remembered schedule of one category (all instants aware UTC, or None)."""

    done_tick: datetime | None = None
    last_success: datetime | None = None
    last_result: str | None = None  # success | failed | interrupted
    last_run_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CategoryState:
        """Return the state read back from :meth:`as_json` (unknown keys ignored)."""

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        return cls(when("done_tick"), when("last_success"), data.get("last_result"), data.get("last_run_id"))


class ScheduleState:
    """The state file of ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "schedule-state.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                data = {}
            except ValueError:
                # A damaged state file costs at most one extra catch-up run; never a crash loop.
                data = {}
            yield data
        finally:
            os.close(fd)

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, sort_keys=True, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def get(self, category: str) -> CategoryState:
        """Return the remembered state of ``category`` (empty when never run)."""
        with self._locked() as data:
            return CategoryState.from_json(data.get(category, {}))

    def all(self) -> dict[str, CategoryState]:
        """Return the state of every remembered category."""
        with self._locked() as data:
            return {name: CategoryState.from_json(value) for name, value in data.items()}

    def tick_done(self, category: str, tick: datetime) -> bool:
        """Return True when ``tick`` (or a later one) of ``category`` was completed already.

        Meaningful only while holding the category's runner lock.
        """
        state = self.get(category)
        return state.done_tick is not None and state.done_tick >= tick

    def record(self, category: str, tick: datetime, result: str, run_id: str, finished: datetime) -> None:
        """Record the result of the run of ``tick``.

        ``success`` and ``failed`` complete the tick (a failure is retried at the next tick,
        not in a loop); ``interrupted`` does not. A success also moves ``last_success``.
        """
        with self._locked() as data:
            current = CategoryState.from_json(data.get(category, {}))
            entry = {**current.as_json(), "last_result": result, "last_run_id": run_id}
            if result in ("success", "failed") and (current.done_tick is None or tick > current.done_tick):
                entry["done_tick"] = tick.isoformat()
            if result == "success":
                entry["last_success"] = finished.isoformat()
            data[category] = entry
            self._write(data)
