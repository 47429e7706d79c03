"""The S3 kind of store (``kind = "s3"``), registered with the registry.

TRANSITIONAL ADAPTER: it serves the store protocol by wrapping the S3 code as it stands
(``S3StoreHandle`` of ``actions/s3targets.py``, ``actions/s3explain.py``, ``S3Worker``), until
the S3 store is implemented under ``stores/s3/`` against ``stores/base.py`` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.config.models import S3Store, S3Target, Settings
from retentiond.errors import ConfigError, ConfigIssue
from retentiond.stores import registry
from retentiond.stores.base import (
    BatchResult,
    Counts,
    Cursor,
    ExpirySelection,
    Explanation,
    Findings,
    OutcomeJournal,
    Phase,
    RecordRefs,
    RunContext,
    Selection,
    Store,
    TargetRef,
    Worker,
)


@dataclass
class _Audit:
    refs: RecordRefs | None


class _RunView:
    """What ``S3StoreHandle`` reads of the run (it predates :class:`RunContext`)."""

    def __init__(self, ctx: RunContext) -> None:
        self.loaded = ctx.loaded
        self.settings = ctx.settings
        self.writes = ctx.writes
        self.audit = _Audit(ctx.refs) if ctx.refs is not None else None


def _claim(settings: Settings, selection: ExpirySelection, category: str, target: S3Target) -> Any:
    from retentiond.policy.decide import Coverage
    from retentiond.stores.s3.decide import Claim

    cutoff = selection.cutoffs[category]
    prior = selection.prior_cutoffs.get(category)
    # S3's default: without prior_versions, noncurrent versions expire with the category's cutoff.
    return Claim(Coverage(category, "delete", cutoff, age_column=target.age), target.prefix, prior or cutoff)


class S3WorkerView:
    """The run driver's view of an ``S3Worker`` (one pass: prior versions go in the same batches)."""

    def __init__(self, inner: Any, run_start: datetime, run_id: str) -> None:
        self.inner = inner
        self.run_start = run_start
        self.run_id = run_id
        self.category: str = inner.category
        self.action: str = inner.action
        self.cutoff: datetime = inner.cutoff
        self.store: str = inner.store
        self.target_name: str = inner.target_name
        self.prefix: str | None = inner.prefix or None

    @property
    def journal(self) -> OutcomeJournal:
        """Return the store's intent journal."""
        journal: OutcomeJournal = self.inner.journal
        return journal

    def phases(self) -> Sequence[Phase]:
        """Return the one pass over the listing."""
        return (Phase.RECORDS,)

    def counts(self, holds: Sequence[Hold]) -> Counts:
        """Return versions listed, due, held, expired prior versions and blocked (lists the prefix once)."""
        counts: Counts = self.inner.counts(holds, self.run_start)
        return counts

    def run_batch(self, phase: Phase, cursor: Cursor, holds: Sequence[Hold], *, dry_run: bool) -> BatchResult:
        """Delete what is due in the next key groups after ``cursor``."""
        result: BatchResult = self.inner.run_batch(cursor, holds, self.run_start, self.run_id, dry_run=dry_run)
        return result

    def remaining(self, holds: Sequence[Hold]) -> int:
        """Return 0 (see ``S3Worker.remaining``)."""
        return int(self.inner.remaining(holds, self.run_start))

    def held_counts(self, holds: Sequence[Hold]) -> dict[str, int]:
        """Return, per hold, the versions it kept."""
        held: dict[str, int] = self.inner.held_counts(holds, self.run_start)
        return held


class S3RunStore:
    """An S3 store opened for one run: client, thread pool and intent journal (``S3StoreHandle``)."""

    def __init__(self, name: str, ctx: RunContext) -> None:
        from retentiond.actions.s3targets import S3StoreHandle

        store = ctx.settings.stores[name]
        assert isinstance(store, S3Store)
        self.name = name
        self.ctx = ctx
        self.handle = S3StoreHandle(name, store, _RunView(ctx))

    def prepare(self) -> None:
        """Nothing to check before the run (buckets are read when their workers are built)."""

    def journal(self) -> OutcomeJournal:
        """Return the intent journal (its pending rows are resolved by listing)."""
        return self.handle

    def workers(self, category: str, selection: Selection) -> list[Worker]:
        """Return one worker per target of ``category`` in this store, in config order.

        Raises:
            ConfigError: a bucket is missing or denied.
            TemporaryFailure: the endpoint is unreachable.
        """
        from retentiond.stores.s3.engine import S3Worker

        settings, handle, ctx = self.ctx.settings, self.handle, self.ctx
        workers: list[Worker] = []
        for index, target in enumerate(settings.categories[category].s3):
            if target.store != self.name:
                continue
            info = handle.bucket(target.bucket, f"categories.{category}.s3[{index}]")
            others = [
                _claim(settings, selection, other_name, other_target)
                for other_name, other in settings.categories.items()
                if other_name != category
                for other_target in other.s3
                if other_target.store == target.store
                and other_target.bucket == target.bucket
                and (other_target.prefix.startswith(target.prefix) or target.prefix.startswith(other_target.prefix))
            ]
            store = handle.store
            inner = S3Worker(
                client=handle.client,
                pool=handle.pool,
                journal=handle.journal,
                store_name=target.store,
                bucket=target.bucket,
                acting=_claim(settings, selection, category, target),
                others=others,
                subject_pattern=target.subject_pattern,
                info=info,
                batch_size=settings.daemon.batch_size,
                max_workers=store.max_workers,
                verify_deletes=store.verify_deletes,
                spool_dir=ctx.state_dir if ctx.writes else None,
                refs_of=handle.refs_of,
            )
            handle.workers.append(inner)
            workers.append(S3WorkerView(inner, selection.run_start, ctx.run_id))
        return workers

    def close(self) -> None:
        """Stop the pool, delete the spools, close the journal."""
        self.handle.close()


class S3Kind:
    """Object versions under bucket prefixes (the :class:`~retentiond.stores.base.StoreKind` protocol)."""

    kind = "s3"
    record_fields: tuple[str, ...] = ("bucket", "object_key")
    errors: tuple[type[Exception], ...] = ()  # the engine turns client errors into TemporaryFailure
    probed = False

    def targets(self, settings: Settings, category: str) -> list[TargetRef]:
        """Return the category's ``[[categories.NAME.s3]]`` targets."""
        return [
            TargetRef("s3", category, i, t.store, t.bucket, f"categories.{category}.s3[{i}]", t.prefix or None)
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
        """Check each target's bucket (versioning, Object Lock, lifecycle) with the store's credentials.

        Raises:
            ConfigError: the client cannot be made.
            TemporaryFailure: the endpoint is unreachable.
        """
        from retentiond.stores.s3.client import make_client
        from retentiond.stores.s3.inspect import BucketFacts, inspect_s3_target

        store = loaded.settings.stores[name]
        assert isinstance(store, S3Store)
        client = make_client(store, f"stores.{name}")
        cache: dict[str, BucketFacts] = {}
        try:
            for ref in targets:
                findings = inspect_s3_target(client, loaded.settings, ref.category, ref.index, cache=cache)
                facts = cache.get(ref.target)
                extra: dict[str, Any] = {"store": name, "bucket": ref.target}
                if facts is not None and facts.problem is None:
                    extra.update(versioning=facts.versioning, object_lock=facts.object_lock)
                yield Findings(findings.issues, findings.notes, extra)
        finally:
            client.close()

    def probe(self, loaded: LoadedConfig, name: str) -> bool | None:
        """Return None: S3 stores are not probed by the daemon (yet)."""
        return None

    def explain(
        self,
        loaded: LoadedConfig,
        name: str,
        record: Mapping[str, Any],
        holds_at: Callable[[datetime], Sequence[Hold]],
    ) -> Explanation:
        """Return, per covering category, the decision for each version of ``record["object_key"]``.

        Raises:
            UsageError: no category covers that bucket and key.
            TemporaryFailure: the endpoint is unreachable or the bucket unusable.
        """
        from retentiond.actions.s3explain import explain_object

        return explain_object(loaded, name, record["bucket"], record["object_key"])

    def anchor_client(self, loaded: LoadedConfig, name: str) -> Any:  # Any: boto3 clients are untyped
        """Return a client of S3 store ``name`` for the ledger's WORM anchor.

        Raises:
            ConfigError: the client cannot be made (endpoint variable unset, profile missing).
        """
        from retentiond.stores.s3.client import make_client

        store = loaded.settings.stores.get(name)
        if not isinstance(store, S3Store):
            raise ConfigError([ConfigIssue("audit.anchor.store", f"{name!r} is not an S3 store of [stores]")])
        return make_client(store, f"stores.{name}")


registry.register(S3Kind())
