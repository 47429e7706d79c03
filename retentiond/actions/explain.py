"""``retentiond explain`` (and ``audit find``'s present state): why one record is kept or would be acted on.

The store kind that locates the record (a table and key, a bucket and object key) explains it with
the pure decision function a run uses; this module only picks the kind and supplies the live holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.config.loader import LoadedConfig
from retentiond.stores import registry
from retentiond.stores.base import Explanation


def explain(loaded: LoadedConfig, store: str, record: Mapping[str, Any]) -> Explanation:
    """Return the explanation for the record of ``store`` that ``record`` locates.

    ``record`` holds one kind's locator fields (``table`` and ``key``; ``bucket`` and ``object_key``).

    Raises:
        UsageError: no category names the record's target, or the locator is malformed.
        HoldsUnavailable: the holds file is invalid.
        TemporaryFailure: the store is unreachable.
    """
    kind = registry.for_record(record)
    return kind.explain(loaded, store, record, lambda now: HoldWatcher(loaded, record_changes=False).protecting(now))
