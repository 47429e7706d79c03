"""The daemon's health probe of an S3 store: does every bucket its categories name answer?

``GetBucketVersioning`` is the cheapest call that proves the endpoint, the credentials and the
bucket (one small response, no listing). The store's client is used (endpoint, profile,
timeouts) with the engine's retry policy, cut to :data:`PROBE_ATTEMPTS`: the probe runs on the
daemon's service thread, which also pings the watchdog, and is repeated every few minutes.
"""

from __future__ import annotations

from retentiond.config.loader import LoadedConfig
from retentiond.config.models import S3Store
from retentiond.errors import RetentiondError
from retentiond.logs import get_logger
from retentiond.stores.s3 import retry
from retentiond.stores.s3.client import make_client

log = get_logger("retentiond.daemon")  # the probe speaks for the daemon, as the SQL probe does

PROBE_ATTEMPTS = 3


def buckets_of(loaded: LoadedConfig, name: str) -> list[str]:
    """Return the buckets of store ``name`` that some category names, sorted."""
    return sorted({t.bucket for c in loaded.settings.categories.values() for t in c.s3 if t.store == name})


def probe_store(loaded: LoadedConfig, name: str) -> bool:
    """Return True when ``GetBucketVersioning`` answers for every bucket of store ``name`` (none: True).

    Every failure (unreachable endpoint, refused credentials, a missing bucket) is False and
    logged by its error type only: a bucket name is configuration, the message may hold more.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    store = loaded.settings.stores[name]
    assert isinstance(store, S3Store)
    try:
        client = make_client(store, f"stores.{name}", botocore_retries=False)
        for bucket in buckets_of(loaded, name):
            retry.retrying(PROBE_ATTEMPTS)(client.get_bucket_versioning, Bucket=bucket)
    except (BotoCoreError, ClientError, RetentiondError) as exc:
        log.warning("store probe failed", store=name, error=type(exc).__name__)
        return False
    return True
