"""Logging: structlog for our own events, with stdlib logging (apscheduler, sqlalchemy,
botocore, tenacity) routed through the same renderer, always to stderr.

JSON lines by default, native journald fields when stderr is the journal, a readable
console renderer on a TTY. Log events carry counts and refs, never a record's values.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

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


def _journald_renderer(_: Any, __: str, event_dict: dict[str, Any]) -> str:
    """Render ``PRIORITY`` prefixed JSON: journald reads ``<N>`` as the syslog priority."""
    import json

    priority = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}.get(event_dict.get("level", "info"), 6)
    return f"<{priority}>" + json.dumps(event_dict, default=str, sort_keys=True)


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
    elif renderer == "journald":
        final = _journald_renderer
    else:
        final = structlog.processors.JSONRenderer(sort_keys=True, default=str)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, final])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # Libraries are chatty at INFO (sqlalchemy echoes statements with parameters: values).
    for noisy in ("sqlalchemy", "botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger named ``name``."""
    return structlog.stdlib.get_logger(name)
