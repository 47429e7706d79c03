"""Kind → implementation: the one place that knows which kinds of store exist.

A kind registers a :class:`~retentiond.stores.base.StoreKind` when its module is imported; the
built-in kinds are imported on first use. Everything above ``stores/`` looks a kind up by the
``kind`` string of a ``[stores.NAME]`` table, or iterates :func:`kinds` (in registration order,
which is the order of plans, runs and reports: SQL, then S3).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from retentiond.errors import ConfigError, ConfigIssue, UsageError

if TYPE_CHECKING:
    from retentiond.config.models import Settings
    from retentiond.stores.base import StoreKind, TargetRef

# Module names so that nothing here imports a kind's dependencies (boto3, a driver) eagerly.
_BUILTIN = ("retentiond.stores.sql.kind", "retentiond.stores.s3.kind")

_KINDS: dict[str, StoreKind] = {}
_loaded = False


def register(kind: StoreKind) -> None:
    """Register ``kind`` under ``kind.kind`` (a later registration of the same name replaces it)."""
    _KINDS[kind.kind] = kind


_LOADING = threading.Lock()


def _ensure() -> None:
    global _loaded
    if _loaded:
        return
    # Two runners of one process (threads) may ask first at the same moment: the second waits
    # until every kind is registered instead of seeing a partial registry.
    with _LOADING:
        if not _loaded:
            for module in _BUILTIN:
                importlib.import_module(module)
            _loaded = True


def kinds() -> list[StoreKind]:
    """Return every registered kind, in registration order."""
    _ensure()
    return list(_KINDS.values())


def kind(name: str) -> StoreKind:
    """Return the kind registered as ``name``.

    Raises:
        KeyError: no such kind is registered.
    """
    _ensure()
    return _KINDS[name]


def kind_of(settings: Settings, store: str, path: str = "stores") -> StoreKind:
    """Return the kind of configured store ``store``.

    Raises:
        ConfigError: ``store`` is not a store of ``[stores]`` (``path`` names the offending key).
    """
    config = settings.stores.get(store)
    if config is None:
        raise ConfigError([ConfigIssue(path, f"{store!r} is not a store of [stores]")])
    return kind(config.kind)


def targets(settings: Settings, category: str) -> list[TargetRef]:
    """Return every target of ``category``, kind by kind (registration order), in config order."""
    return [t for k in kinds() for t in k.targets(settings, category)]


def for_record(record: Mapping[str, Any]) -> StoreKind:
    """Return the kind whose ``record_fields`` locate ``record`` (for ``explain``).

    Raises:
        UsageError: no kind takes exactly these fields.
    """
    given = {k for k, v in record.items() if v is not None}
    for k in kinds():
        if given == set(k.record_fields):
            return k
    raise UsageError("the record locator matches no kind of store: " + ", ".join(sorted(given)))


__all__ = ["for_record", "kind", "kind_of", "kinds", "register", "targets"]
