"""What retentiond remembers of Legal's holds, in ``state_dir/holds/`` (readable by Legal).

``state.json`` keeps the definitions in force, the former definitions in their release grace
and the refused changes (:class:`~retentiond.policy.hold_changes.HoldsMemory`), so the grace
survives restarts. ``events.jsonl`` is a copy of the ledger's hold entries (with their seq and
hash) plus who did what according to the file, for ``holds history`` by people who cannot open
the ledger. Both are written group-readable (mode 0640): the deployment makes the folder belong
to the ``retentiond-legal`` group (setgid), see docs/legal-holds.md. Writers take ``.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from retentiond.config.holds import Hold
from retentiond.errors import HoldsUnavailable
from retentiond.policy.hold_changes import HoldsMemory, Remnant, RemnantKind

FOLDER = "holds"
STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"
LEGACY_STATE_FILE = "holds-state.json"  # state_dir/holds-state.json before 0.2: read once, then moved
SHARED_MODE = 0o640
_FOLDER_MODE = 0o2750


def folder(state_dir: Path) -> Path:
    """Return the holds folder of ``state_dir``."""
    return state_dir / FOLDER


def state_path(state_dir: Path) -> Path:
    """Return the path of the holds state file."""
    return folder(state_dir) / STATE_FILE


def events_path(state_dir: Path) -> Path:
    """Return the path of the hold events copy."""
    return folder(state_dir) / EVENTS_FILE


def dump_hold(hold: Hold) -> dict[str, Any]:
    """Return a hold as JSON-able data (its instants already resolved to UTC)."""
    return hold.model_dump(mode="json")


def load_hold(dumped: dict[str, Any]) -> Hold:
    """Return a hold remembered in the state file.

    Raises:
        ValueError: the data is not a valid hold.
    """
    data = dict(dumped)
    for key in ("placed_at", "expires_at", "changed_at", "lifted_at"):
        if isinstance(data.get(key), str):
            data[key] = datetime.fromisoformat(data[key])
    return Hold.model_validate(data)


def memory_to_json(memory: HoldsMemory) -> dict[str, Any]:
    """Return the JSON document of ``memory``."""
    return {
        "version": 2,
        "recorded_at": memory.recorded_at.isoformat() if memory.recorded_at else None,
        "in_force": {hold_id: dump_hold(h) for hold_id, h in memory.in_force.items()},
        "remnants": [
            {"hold": dump_hold(r.hold), "since": r.since.isoformat(), "kind": r.kind.value} for r in memory.remnants
        ],
        "refused": dict(memory.refused),
    }


def memory_from_json(data: dict[str, Any]) -> HoldsMemory:
    """Return the memory of a state document (version 2, or the version 1 of ``holds-state.json``).

    Raises:
        ValueError, KeyError, TypeError: the document is damaged.
    """
    if data.get("version") != 2:
        # Version 1: "seen" (id -> hold) and "released" (id -> {hold, released_at}).
        return HoldsMemory(
            in_force={i: load_hold(d) for i, d in data.get("seen", {}).items()},
            remnants=tuple(
                Remnant(load_hold(e["hold"]), datetime.fromisoformat(e["released_at"]), RemnantKind.REMOVED)
                for e in data.get("released", {}).values()
            ),
        )
    recorded = data.get("recorded_at")
    return HoldsMemory(
        in_force={i: load_hold(d) for i, d in data["in_force"].items()},
        remnants=tuple(
            Remnant(load_hold(e["hold"]), datetime.fromisoformat(e["since"]), RemnantKind(e["kind"]))
            for e in data["remnants"]
        ),
        refused={str(k): str(v) for k, v in data["refused"].items()},
        recorded_at=datetime.fromisoformat(recorded) if recorded else None,
    )


def read_memory(state_dir: Path) -> HoldsMemory:
    """Return the remembered holds (empty before the first recording).

    Raises:
        HoldsUnavailable: the file exists but cannot be read or is damaged: a lost grace must
            never silently release records (fail closed). ``PermissionError`` is the cause
            when the reader may not read it (``holds list`` reports that and goes on).
    """
    for path in (state_path(state_dir), state_dir / LEGACY_STATE_FILE):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HoldsUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            return memory_from_json(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise HoldsUnavailable(f"cannot read {path}: damaged ({type(exc).__name__})") from None
    return HoldsMemory()


def state_stamp(state_dir: Path) -> tuple[int, int, int] | None:
    """Return (inode, mtime, size) of the state file, None when absent: changes when it is rewritten."""
    for path in (state_path(state_dir), state_dir / LEGACY_STATE_FILE):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size
    return None


def _ensure_folder(state_dir: Path) -> Path:
    path = folder(state_dir)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(path, _FOLDER_MODE)
    return path


def write_memory(state_dir: Path, memory: HoldsMemory) -> None:
    """Replace the state file atomically (temp file, fsync, rename) with mode 0640."""
    _ensure_folder(state_dir)
    path = state_path(state_dir)
    # One temp file per process and thread: writers sharing state_dir never rename each other's half file.
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SHARED_MODE)
    try:
        os.fchmod(fd, SHARED_MODE)  # the service's umask would hide it from Legal
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(memory_to_json(memory), fh, sort_keys=True, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.replace(tmp, path)
    legacy = state_dir / LEGACY_STATE_FILE
    with contextlib.suppress(FileNotFoundError):
        legacy.unlink()


def append_events(state_dir: Path, lines: list[dict[str, Any]]) -> None:
    """Append hold events to the copy Legal reads (one JSON object per line)."""
    if not lines:
        return
    _ensure_folder(state_dir)
    path = events_path(state_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, SHARED_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_events(state_dir: Path) -> list[dict[str, Any]]:
    """Return the hold events of the copy, oldest first (empty when there is none).

    Raises:
        OSError: the copy exists but cannot be read.
    """
    try:
        text = events_path(state_dir).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the writers' lock of the holds state (one recording at a time, across processes)."""
    path = _ensure_folder(state_dir) / ".lock"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, SHARED_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
