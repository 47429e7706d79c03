"""Pending erasure requests: queued in ``state_dir/requests``, run by the daemon before their deadline.

``erase --queue`` writes ``<request>.json`` (mode 0600: it names the subjects, which are personal
data; nothing else retentiond writes does). The daemon runs every queued request at its next
check (:func:`run_pending`); once a request ran to the end its subjects are removed from disk
and only its figures stay (``<request>.done.json``, no identifiers). A request that failed stays
queued and is tried again; one older than ``daemon.erasure_deadline`` is overdue (a metric and an
alert rule, docs/operations.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retentiond.config.loader import LoadedConfig
from retentiond.errors import RetentiondError, UsageError
from retentiond.logs import get_logger

log = get_logger("retentiond.requests")

DIRECTORY = "requests"


def requests_dir(loaded: LoadedConfig) -> Path:
    """Return the directory of queued requests (``state_dir/requests``)."""
    return loaded.state_dir / DIRECTORY


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def enqueue(
    loaded: LoadedConfig,
    request: str,
    subjects: frozenset[str],
    categories: tuple[str, ...] = (),
    *,
    now: datetime | None = None,
) -> Path:
    """Queue request ``request`` (validated reference) for ``subjects``; return its file.

    Raises:
        UsageError: the request is already queued, or the state directory cannot be written.
    """
    unknown = [c for c in categories if c not in loaded.settings.categories]
    if unknown:
        raise UsageError(f"unknown category: {', '.join(unknown)}")
    queued_at = (now or datetime.now(UTC)).astimezone(UTC)
    deadline = queued_at + loaded.settings.daemon.erasure_deadline.delta
    directory = requests_dir(loaded)
    path = directory / f"{request.replace('/', '_').replace(' ', '_')}.json"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists():
            raise UsageError(f"request {request} is already queued")
        data = {
            "request": request,
            "subjects": sorted(subjects),
            "categories": list(categories),
            "queued_at": queued_at.isoformat(),
            "deadline": deadline.isoformat(),
        }
        _write(path, data)
    except OSError as exc:
        raise UsageError(f"cannot queue in {directory} ({type(exc).__name__})") from None
    return path


@dataclass
class RequestState:
    """One request as ``requests list`` shows it (never its subjects)."""

    request: str
    state: str  # pending | overdue | done | failed
    queued_at: str
    deadline: str
    subjects: int
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return dict(self.__dict__)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("unreadable request file skipped", file=path.name)
        return None
    return data if isinstance(data, dict) else None


def states(loaded: LoadedConfig, *, now: datetime | None = None) -> list[RequestState]:
    """Return every request, queued or done, oldest first."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    directory = requests_dir(loaded)
    out: list[RequestState] = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.json")):
        data = _read(path)
        if data is None:
            continue
        done = path.name.endswith(".done.json")
        if done:
            state = "done"
        else:
            state = "overdue" if datetime.fromisoformat(data["deadline"]) < at else "pending"
            if data.get("error"):
                state = "failed" if state == "pending" else state
        subjects = data.get("subjects")
        out.append(
            RequestState(
                request=data["request"],
                state=state,
                queued_at=data["queued_at"],
                deadline=data["deadline"],
                subjects=len(subjects) if isinstance(subjects, list) else int(data.get("subject_count", 0)),
                summary=data.get("summary") or {},
                error=data.get("error"),
            )
        )
    return sorted(out, key=lambda s: s.queued_at)


def overdue(loaded: LoadedConfig, *, now: datetime | None = None) -> int:
    """Return how many queued requests are past their deadline."""
    return sum(1 for s in states(loaded, now=now) if s.state == "overdue")


def run_pending(loaded: LoadedConfig, *, stop: threading.Event | None = None) -> int:
    """Run every queued request (oldest first); return how many finished.

    A request that finished leaves ``<request>.done.json`` (figures only) and its subjects are
    removed from disk; one that failed stays queued with the error's sentence, tried again later.
    """
    from retentiond.actions.erase import erase

    directory = requests_dir(loaded)
    if not directory.is_dir():
        return 0
    finished = 0
    for path in sorted(directory.glob("*.json")):
        if path.name.endswith(".done.json") or (stop is not None and stop.is_set()):
            continue
        data = _read(path)
        if data is None:
            continue
        try:
            report, summary = erase(
                loaded,
                subjects=data["subjects"],
                request=data["request"],
                categories=tuple(data.get("categories") or ()),
                stop=stop,
            )
        except RetentiondError as exc:
            data["error"] = str(exc)
            _write(path, data)
            log.error("queued erasure request failed", request=data["request"], error=type(exc).__name__)
            continue
        if report.failed or report.interrupted:
            data["error"] = "; ".join(f"{c}: {r}" for c, r in sorted(report.failed.items())) or "interrupted"
            data["summary"] = summary
            _write(path, data)
            continue
        done = {k: v for k, v in data.items() if k not in ("subjects", "error")}
        done.update(subject_count=len(data["subjects"]), summary=summary, run_id=report.run_id)
        _write(path.with_name(path.name.removesuffix(".json") + ".done.json"), done)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        finished += 1
        log.info("queued erasure request done", request=data["request"], acted=sum(summary["acted"].values()))
    return finished


__all__ = ["RequestState", "enqueue", "overdue", "requests_dir", "run_pending", "states"]
