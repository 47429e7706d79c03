"""``retentiond explain`` for an S3 object: the driver's half (the clock and the live holds); the
reasoning is :func:`retentiond.stores.s3.explain.explain_object`."""

from __future__ import annotations

from datetime import UTC, datetime

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.config.loader import LoadedConfig
from retentiond.stores.s3.explain import S3Explanation
from retentiond.stores.s3.explain import explain_object as explain_in_store


def explain_object(loaded: LoadedConfig, store: str, bucket: str, key: str) -> S3Explanation:
    """Return, per covering category, the decision for each version of ``key`` now.

    Raises:
        UsageError: no category covers that bucket and key.
        TemporaryFailure: the endpoint is unreachable or the bucket unusable.
    """
    now = datetime.now(UTC)
    return explain_in_store(
        loaded.settings,
        store,
        bucket,
        key,
        now=now,
        holds_at=HoldWatcher(loaded, record_changes=False).protecting,
    )
