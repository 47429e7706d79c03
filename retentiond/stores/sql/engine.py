"""Create SQLAlchemy engines for SQL stores: one place that picks drivers and pool settings.

PostgreSQL is always reached through psycopg 3: ``postgresql://`` and ``postgres://`` URLs
(whose SQLAlchemy default would be psycopg2) are rewritten to ``postgresql+psycopg://``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

#: Seconds psycopg waits for a TCP connection before giving up (unless the URL sets one).
CONNECT_TIMEOUT = 10
#: A batch statement is planned with its parameters' values: a generic plan (what PostgreSQL
#: switches a prepared statement to after five runs) tests ``subject = ANY(<held subjects>)``
#: by walking the array for every row, a custom plan by a hash lookup (measured: the whole
#: delete of bench/sql_bench.py's data 2.7 times slower with 100 held subjects).
CUSTOM_PLANS = "force_custom_plan"


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


def statement_engine(engine: sa.Engine, lock_timeout: timedelta, statement_timeout: timedelta) -> sa.Engine:
    """Return a second engine on ``engine``'s database for batches that are one statement each.

    Its connections are in autocommit mode (the statement is its own transaction: no BEGIN or
    COMMIT round trip), are not pinged at checkout (a dropped connection fails the statement,
    which the store's retries run again on a new one) and start with the store's lock and
    statement timeouts and custom plans (no per-batch ``SET LOCAL``): a batch costs the database one round trip.
    """
    settings = f"-c lock_timeout={_ms(lock_timeout)} -c statement_timeout={_ms(statement_timeout)}"
    settings += f" -c plan_cache_mode={CUSTOM_PLANS}"
    options = engine.url.query.get("options")
    if isinstance(options, tuple):
        options = " ".join(options)
    connect_args: dict[str, Any] = {"options": f"{options or '-c timezone=UTC'} {settings}"}
    if "connect_timeout" not in engine.url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    return sa.create_engine(
        engine.url, pool_pre_ping=False, isolation_level="AUTOCOMMIT", pool_size=1, connect_args=connect_args
    )


def _ms(duration: timedelta) -> int:
    """Return ``duration`` in whole milliseconds (at least 1: 0 would mean no timeout at all)."""
    return max(1, int(duration.total_seconds() * 1000))
