"""The daemon's probe of S3 stores (``store_up``, what /readyz reads) against a moto server that stops."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from retentiond.config.loader import load_config
from retentiond.daemon.service import Daemon
from retentiond.stores import registry
from tests.stores.s3.conftest import S3Env, s3_category


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_moto(moto_server: str) -> Iterator[tuple[Any, str]]:
    """A second moto server of this test alone (it is stopped by the test); yields (server, endpoint)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _store_up(daemon: Daemon, store: str) -> float | None:
    return daemon.metrics.registry.get_sample_value("retentiond_store_up", {"store": store})


class TestS3Probe:
    """An S3 store is probed like an SQL one: up while its buckets answer, down once the endpoint is gone."""

    def test_up_then_down(self, own_moto: tuple[Any, str], tmp_path: Path) -> None:
        """GetBucketVersioning answers: store_up 1 and probe ok; moto stopped: store_up 0 and probe not ok."""
        server, endpoint = own_moto
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        env = S3Env(endpoint, client, tmp_path, datetime.now(UTC).replace(microsecond=0))
        env.bucket("probe-media")
        env.configure({"media": s3_category(bucket="probe-media")})
        loaded = load_config(env.config_path)
        assert registry.kind("s3").probed
        daemon = Daemon(loaded)

        daemon._probe_stores()
        assert (1.0, True) == (_store_up(daemon, "files"), daemon.status.probe_ok)

        server.stop()
        daemon._probe_stores()
        assert (0.0, False) == (_store_up(daemon, "files"), daemon.status.probe_ok)

    def test_missing_bucket_is_down(self, own_moto: tuple[Any, str], tmp_path: Path) -> None:
        """A configured bucket that does not exist makes the store down (no listing, one cheap call)."""
        _, endpoint = own_moto
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        env = S3Env(endpoint, client, tmp_path, datetime.now(UTC).replace(microsecond=0))
        env.configure({"media": s3_category(bucket="probe-nowhere")})
        assert registry.kind("s3").probe(load_config(env.config_path), "files") is False
