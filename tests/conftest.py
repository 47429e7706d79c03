"""Shared fixtures: a real PostgreSQL database per test and a real S3 endpoint (moto server).

PostgreSQL is 127.0.0.1:5432 unless ``RETENTIOND_TEST_DATABASE_URL`` names another admin
URL. When it does not answer, tests that need it fail (they are never skipped).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("RETENTIOND_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


#: A test that uses one of these fixtures gets the ``pg`` / ``s3`` marker (``-m "not pg"`` etc.).
PG_FIXTURES = frozenset({"pg_admin", "pg_url", "pg_engine", "pg_db_factory"})
S3_FIXTURES = frozenset({"moto_server", "s3_endpoint", "s3_client"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the servers its fixtures need, so no test has to say so itself.

    A fixture parametrized over ``"postgresql"`` requests the database at run time
    (``getfixturevalue``); its ``postgresql`` instances are marked ``pg`` too.
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        dynamic_pg = callspec is not None and any(v == "postgresql" for v in callspec.params.values())
        if names & PG_FIXTURES or dynamic_pg:
            item.add_marker(pytest.mark.pg)
        if names & S3_FIXTURES:
            item.add_marker(pytest.mark.s3)


def _admin_url() -> sa.URL:
    url = make_url(ADMIN_URL)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the admin database; fails loudly when PostgreSQL does not answer."""
    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL does not answer at {_admin_url().render_as_string(hide_password=True)}: {exc.orig}",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """The URL of a freshly created, empty PostgreSQL database, dropped after the test."""
    name = f"rtd_{uuid.uuid4().hex[:16]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # name is ours: hex only
    url = _admin_url().set(database=name)
    yield url.render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    """An engine on the fresh database of ``pg_url``."""
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto S3 server over HTTP on 127.0.0.1 for the whole session; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(moto_server: str) -> str:
    """The moto endpoint, reset to empty before the test."""
    import urllib.request

    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return moto_server


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 S3 client on the reset moto endpoint."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
