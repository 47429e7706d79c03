"""The least privileges of configured stores, whatever their kind (``print-grants``, ``print-iam-policy``).

Each kind offers ``StoreKind.access_policy`` (:mod:`retentiond.stores.base`). Until the kinds
register themselves in :mod:`retentiond.stores.registry` (issue 9), the functions are found
here by kind name; the registry's answer wins as soon as it has one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from retentiond.config.models import Settings
from retentiond.errors import ConfigError, ConfigIssue
from retentiond.stores.base import AccessPolicy

# Kind → module with ``access_policy(settings, name, role)``; transitional (see the module doc).
_LOCAL = {"sql": "retentiond.stores.sql.privileges", "s3": "retentiond.stores.s3.iam"}


def _function(kind: str) -> Callable[[Settings, str, str], Any] | None:
    try:
        from retentiond.stores import registry

        found = getattr(registry.kind(kind), "access_policy", None)
        if found is not None:
            return found  # type: ignore[no-any-return]
    except (KeyError, ModuleNotFoundError):
        pass
    module = _LOCAL.get(kind)
    return None if module is None else importlib.import_module(module).access_policy  # type: ignore[no-any-return]


def access_policies(settings: Settings, store: str | None = None, role: str = "retentiond") -> list[AccessPolicy]:
    """Return the access policy of every configured store (or only of ``store``), in config order.

    Raises:
        ConfigError: ``store`` is not a store of ``[stores]``.
    """
    if store is not None and store not in settings.stores:
        raise ConfigError([ConfigIssue("stores", f"{store!r} is not a store of [stores]")])
    out: list[AccessPolicy] = []
    for name, config in settings.stores.items():
        if store is not None and name != store:
            continue
        function = _function(config.kind)
        if function is not None:
            out.append(function(settings, name, role))
    return out
