"""The S3 kind of store (``kind = "s3"``): object versions under bucket prefixes, registered with
:mod:`retentiond.stores.registry` (the :class:`~retentiond.stores.base.StoreKind` protocol)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.config.models import S3Store, Settings
from retentiond.errors import ConfigError, ConfigIssue
from retentiond.stores import registry
from retentiond.stores.base import AccessPolicy, Explanation, Findings, RunContext, Store, TargetRef
from retentiond.stores.s3 import iam
from retentiond.stores.s3.client import make_client
from retentiond.stores.s3.explain import explain_object
from retentiond.stores.s3.inspect import inspect_store
from retentiond.stores.s3.probe import probe_store
from retentiond.stores.s3.store import S3RunStore

# What ``holds check`` says of a prefix without a subject pattern (a subject hold covers all of it).
_NO_SUBJECT = "has no subject_pattern: the hold protects every object of that prefix, whoever's"


class S3Kind:
    """Object versions under bucket prefixes; every figure counts versions, delete markers included."""

    kind = "s3"
    record_fields: tuple[str, ...] = ("bucket", "object_key")
    errors: tuple[type[Exception], ...] = ()  # the worker turns client errors into TemporaryFailure
    probed = True

    def targets(self, settings: Settings, category: str) -> list[TargetRef]:
        """Return the category's ``[[categories.NAME.s3]]`` targets, in config order."""
        return [
            TargetRef(
                "s3",
                category,
                i,
                t.store,
                t.bucket,
                f"categories.{category}.s3[{i}]",
                t.prefix or None,
                no_subject=None if t.subject_pattern is not None else _NO_SUBJECT,
            )
            for i, t in enumerate(settings.categories[category].s3)
        ]

    def outcomes(self, action: str) -> tuple[str, ...]:
        """Return the version outcomes an S3 target reports."""
        return ("deleted", "held", "blocked", "prior_versions_deleted")

    def open(self, name: str, ctx: RunContext) -> Store:
        """Return S3 store ``name`` opened for ``ctx``.

        Raises:
            ConfigError: an endpoint variable is unset or a profile is missing.
        """
        return S3RunStore(name, ctx)

    def inspect(self, loaded: LoadedConfig, name: str, targets: Sequence[TargetRef]) -> Iterator[Findings]:
        """Check each target's bucket (exists, reachable; versioning and Object Lock as notes).

        Raises:
            ConfigError: the client cannot be made.
            TemporaryFailure: the endpoint is unreachable.
        """
        store = loaded.settings.stores[name]
        assert isinstance(store, S3Store)
        return inspect_store(loaded.settings, name, store, [(t.category, t.index) for t in targets])

    def probe(self, loaded: LoadedConfig, name: str) -> bool | None:
        """Return True when every bucket of store ``name`` answers ``GetBucketVersioning``."""
        return probe_store(loaded, name)

    def explain(
        self,
        loaded: LoadedConfig,
        name: str,
        record: Mapping[str, Any],
        holds_at: Callable[[datetime], Sequence[Hold]],
    ) -> Explanation:
        """Return, per covering category, the decision for each version of ``record["object_key"]`` now.

        Raises:
            UsageError: no category covers that bucket and key.
            TemporaryFailure: the endpoint is unreachable or the bucket unusable.
        """
        now = datetime.now(UTC)
        return explain_object(loaded.settings, name, record["bucket"], record["object_key"], now=now, holds_at=holds_at)

    def access_policy(self, settings: Settings, name: str, role: str) -> AccessPolicy:
        """Return the least privileges of store ``name`` (``retentiond print-grants`` / ``print-iam-policy``)."""
        policy: AccessPolicy = iam.access_policy(settings, name, role)
        return policy

    def anchor_client(self, loaded: LoadedConfig, name: str) -> Any:  # Any: boto3 clients are untyped
        """Return a client of S3 store ``name`` for the ledger's WORM anchor.

        Raises:
            ConfigError: ``name`` is not an S3 store, or its client cannot be made.
        """
        store = loaded.settings.stores.get(name)
        if not isinstance(store, S3Store):
            raise ConfigError([ConfigIssue("audit.anchor.store", f"{name!r} is not an S3 store of [stores]")])
        return make_client(store, f"stores.{name}")


registry.register(S3Kind())

__all__ = ["S3Kind"]
