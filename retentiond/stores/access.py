"""The least privileges of configured stores, whatever their kind (``print-grants``, ``print-iam-policy``).

Each kind answers through ``StoreKind.access_policy`` (:mod:`retentiond.stores.base`), found in
:mod:`retentiond.stores.registry`.
"""

from __future__ import annotations

from retentiond.config.models import Settings
from retentiond.errors import ConfigError, ConfigIssue
from retentiond.stores import registry
from retentiond.stores.base import AccessPolicy


def access_policies(settings: Settings, store: str | None = None, role: str = "retentiond") -> list[AccessPolicy]:
    """Return the access policy of every configured store (or only of ``store``), in config order.

    Raises:
        ConfigError: ``store`` is not a store of ``[stores]``.
    """
    if store is not None and store not in settings.stores:
        raise ConfigError([ConfigIssue("stores", f"{store!r} is not a store of [stores]")])
    return [
        registry.kind(config.kind).access_policy(settings, name, role)
        for name, config in settings.stores.items()
        if store is None or name == store
    ]
