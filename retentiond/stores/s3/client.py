"""Create boto3 S3 clients for S3 stores: endpoint, region, profile, retries, pool size."""

from __future__ import annotations

import os
from typing import Any

from retentiond.config.models import S3Store
from retentiond.errors import ConfigError, ConfigIssue


def endpoint_of(store: S3Store, path: str) -> str | None:
    """Return the store's endpoint URL (``endpoint_url`` or the variable ``endpoint_url_env``), or None for AWS.

    ``path`` is the store's dotted path for messages (``stores.files``).

    Raises:
        ConfigError: ``endpoint_url_env`` names a variable that is unset or empty.
    """
    if store.endpoint_url is not None:
        return store.endpoint_url
    if store.endpoint_url_env is not None:
        value = os.environ.get(store.endpoint_url_env, "")
        if not value:
            raise ConfigError(
                [ConfigIssue(f"{path}.endpoint_url_env", f"environment variable {store.endpoint_url_env} is not set")]
            )
        return value
    return None


def make_client(store: S3Store, path: str = "stores", *, botocore_retries: bool = True) -> Any:
    """Return a boto3 S3 client for ``store``: standard retry mode, a pool sized for ``max_workers``.

    ``botocore_retries = False`` switches botocore's retries off (one attempt per call), for
    callers that retry themselves (the retention engine: see ``retentiond.stores.s3.retry``).

    Credentials come from boto3's standard chain, or from the shared-config ``profile``.

    Raises:
        ConfigError: the endpoint variable is unset or the profile does not exist.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ProfileNotFound

    endpoint = endpoint_of(store, path)
    try:
        session = boto3.session.Session(profile_name=store.profile) if store.profile else boto3.session.Session()
    except ProfileNotFound:
        raise ConfigError(
            [ConfigIssue(f"{path}.profile", f"AWS profile {store.profile!r} not found in the shared config")]
        ) from None
    config = Config(
        retries={"mode": "standard", "max_attempts": 5}
        if botocore_retries
        else {"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max(10, 2 * store.max_workers),
        connect_timeout=10,
        read_timeout=60,
    )
    return session.client("s3", region_name=store.region, endpoint_url=endpoint, config=config)
