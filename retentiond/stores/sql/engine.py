"""Create SQLAlchemy engines for SQL stores: one place that picks drivers and pool settings.

PostgreSQL is always reached through psycopg 3: ``postgresql://`` and ``postgres://`` URLs
(whose SQLAlchemy default would be psycopg2) are rewritten to ``postgresql+psycopg://``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

#: Seconds psycopg waits for a TCP connection before giving up (unless the URL sets one).
CONNECT_TIMEOUT = 10


def normalize_url(url: str | sa.URL) -> sa.URL:
    """Return ``url`` parsed, with bare PostgreSQL driver names mapped to psycopg 3.

    Raises:
        sqlalchemy.exc.ArgumentError: ``url`` is not a database URL.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """Return an Engine for a store URL (``pool_pre_ping`` on; psycopg 3 for PostgreSQL).

    ``kwargs`` go to :func:`sqlalchemy.create_engine` and override the defaults. No
    connection is made here.

    Raises:
        sqlalchemy.exc.ArgumentError: ``url`` is not a database URL.
        sqlalchemy.exc.NoSuchModuleError: the URL names a driver that is not installed.
    """
    parsed = normalize_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT
        if "options" not in parsed.query:
            # UTC sessions: date truncation (year/month strategies) and extract() in the
            # statements work on the UTC calendar, as every cutoff does.
            connect_args["options"] = "-c timezone=UTC"
        options["connect_args"] = connect_args
    options.update(kwargs)
    return sa.create_engine(parsed, **options)
