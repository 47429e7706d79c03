"""Logging: structlog for our own events, with stdlib logging (apscheduler, sqlalchemy,
botocore, tenacity) routed through the same renderer, always to stderr.

JSON lines by default, native journald fields when stderr is the journal, a readable
console renderer on a TTY. Log events carry counts and refs, never a record's values.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import structlog

P = ParamSpec("P")
T = TypeVar("T")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _stderr_is_journal() -> bool:
    """Return True when systemd connected stderr to the journal (``JOURNAL_STREAM`` matches)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    dev, _, ino = stream.partition(":")
    return f"{st.st_dev}:{st.st_ino}" == f"{dev}:{ino}"


_PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def _journald_renderer(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    """Render ``<N>`` + JSON: the stderr fallback when the journal socket refuses a message."""
    import json

    priority = _PRIORITIES.get(event_dict.get("level", "info"), 6)
    return f"<{priority}>" + json.dumps(event_dict, default=str, sort_keys=True)


def journal_fields(event_dict: dict[str, Any]) -> bytes:
    """Return ``event_dict`` as a journald native datagram (``KEY=value`` lines, binary-safe).

    ``MESSAGE`` is the event, ``PRIORITY`` the syslog level; every other key becomes an
    upper-case field (``CATEGORY=``, ``RUN_ID=``) that ``journalctl -o verbose`` shows and
    ``journalctl RUN_ID=...`` filters on.
    """
    import re
    import struct

    fields: dict[str, str] = {
        "MESSAGE": str(event_dict.get("event", "")),
        "PRIORITY": str(_PRIORITIES.get(str(event_dict.get("level", "info")), 6)),
        "SYSLOG_IDENTIFIER": "retentiond",
    }
    for key, value in event_dict.items():
        if key in ("event", "level"):
            continue
        name = re.sub(r"[^A-Z0-9_]", "_", str(key).upper()).lstrip("_") or "FIELD"
        if name[0].isdigit():
            name = "F_" + name
        fields.setdefault(name, str(value))
    out = bytearray()
    for name, value in fields.items():
        raw = value.encode("utf-8", "replace")
        if b"\n" in raw:
            out += name.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
        else:
            out += name.encode() + b"=" + raw + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Send each record to journald's native socket; fall back to stderr when that fails."""

    def __init__(self, fallback: logging.Handler, socket_path: str = JOURNAL_SOCKET) -> None:
        import socket

        super().__init__()
        self.fallback = fallback
        self.socket_path = socket_path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record`` (rendered to an event dict by the structlog formatter)."""
        try:
            event = self.format(record)
            import json

            self.sock.sendto(journal_fields(json.loads(event)), self.socket_path)
        except (OSError, ValueError):
            self.fallback.emit(record)


def configure_logging(level: str = "info", *, renderer: str | None = None) -> None:
    """Configure structlog and stdlib logging once per process.

    ``renderer`` is "json", "console" or "journald"; None picks journald when stderr is the
    journal, console on a TTY, JSON otherwise.
    """
    if renderer is None:
        if _stderr_is_journal():
            renderer = "journald"
        elif sys.stderr.isatty():
            renderer = "console"
        else:
            renderer = "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    final: Any
    if renderer == "console":
        final = structlog.dev.ConsoleRenderer(colors=False)
    else:
        # journald: JSON is handed to JournalHandler, which turns it into native fields.
        final = structlog.processors.JSONRenderer(sort_keys=True, default=str)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, final]
    )
    stream = logging.StreamHandler(sys.stderr)
    handler: logging.Handler = stream
    if renderer == "journald":
        fallback = logging.StreamHandler(sys.stderr)
        fallback.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _journald_renderer],
            )
        )
        handler = JournalHandler(fallback)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, JournalHandler):
            old.sock.close()
    # Every stdlib logger (apscheduler, sqlalchemy, botocore, tenacity, ...) propagates to the
    # root, so this one handler renders them with the same processors as our own events.
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # Libraries are chatty at INFO: sqlalchemy echoes statements with parameters (values), and
    # apscheduler logs two lines per job; our own events already cover each run and batch.
    for noisy in ("sqlalchemy", "botocore", "boto3", "urllib3", "s3transfer", "apscheduler", "tenacity"):
        logger = logging.getLogger(noisy)
        logger.setLevel(max(logging.WARNING, root.level))
        logger.propagate = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger named ``name``."""
    return structlog.stdlib.get_logger(name)


#: The keys :func:`log_context` binds: every line of a run carries them (journald: ``RUN_ID=`` ...).
CONTEXT_KEYS = ("run_id", "category", "target", "request")


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Bind ``fields`` (``run_id``, ``category``, ``target``, ``request``) to every log line in this block.

    Bound with structlog's contextvars, so stdlib loggers routed through structlog carry them
    too; fields that are None are left out; the previous values come back on exit (nesting).
    ``request`` is for erasure requests: the id of the request a pass works on.

    Raises:
        ValueError: a key is not one of :data:`CONTEXT_KEYS`.
    """
    unknown = sorted(set(fields) - set(CONTEXT_KEYS))
    if unknown:
        raise ValueError(f"not a log context key: {', '.join(unknown)}")
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in fields.items() if v is not None}):
        yield


def carry_context(fn: Callable[P, T]) -> Callable[P, T]:
    """Return ``fn`` bound to the caller's log context, to run on another thread.

    A new thread starts with an empty context, so its lines would lack ``run_id``, ``category``
    and ``target``. Each call runs in its own copy of the context taken now (one context
    cannot be entered by two threads at once).
    """
    captured = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return captured.copy().run(fn, *args, **kwargs)

    return run


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in the log context of the code that submitted them."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in the submitter's log context; return its future."""
        return super().submit(carry_context(fn), *args, **kwargs)
