"""Build the S3 side of a run: one open handle per S3 store (client, thread pool, intent
journal) and one :class:`~retentiond.stores.s3.engine.S3Worker` per S3 target.

The run driver (``retentiond.actions.run``) reaches this module through
``retentiond.actions.targets.open_s3_stores`` and ``s3_workers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from retentiond.config.models import S3Store, S3Target
from retentiond.errors import ConfigError, ConfigIssue
from retentiond.policy.cutoffs import prior_versions_cutoff, retain_cutoff
from retentiond.policy.decide import Coverage
from retentiond.stores.s3.client import make_client
from retentiond.stores.s3.decide import Claim
from retentiond.stores.s3.engine import BucketInfo, S3Worker, remove_stale_spools
from retentiond.stores.s3.inspect import read_bucket
from retentiond.stores.s3.journal import IntentJournal
from retentiond.stores.sql.outbox import OutboxRow


class S3StoreHandle:
    """An open S3 store for one run: its client (shared by every thread), pool and intent journal.

    Offers the driver's recovery protocol: ``store_name``, ``pending()``, ``remove()``, ``close()``.
    """

    def __init__(self, name: str, store: S3Store, runner: Any) -> None:
        self.store_name = name
        self.store = store
        # botocore's own retries are off: the engine retries with visible backoff (stores.s3.retry).
        self.client = make_client(store, f"stores.{name}", botocore_retries=False)
        self.pool = ThreadPoolExecutor(max_workers=store.max_workers, thread_name_prefix=f"retentiond-s3-{name}")
        refs = runner.audit.refs if runner.audit is not None else None

        def refs_of(bucket: str, items: Sequence[tuple[str, str | None]]) -> bytes:
            if refs is None:
                return b""
            # The version refs, then each version's object-level ref (audit find by key alone).
            versions = b"".join(refs.s3(name, bucket, key, version) for key, version in items)
            return versions + b"".join(refs.s3_object(name, bucket, key) for key, _ in items)

        self.refs_of = refs_of
        self.journal = IntentJournal(runner.loaded.state_dir if runner.writes else None, name, self.client, refs_of)
        if runner.writes and runner.loaded.state_dir.is_dir():
            remove_stale_spools(runner.loaded.state_dir)
        self.buckets: dict[str, BucketInfo] = {}
        self.workers: list[S3Worker] = []

    def bucket(self, bucket: str, path: str) -> BucketInfo:
        """Return the bucket's versioning and Object Lock facts (asked once per run).

        Raises:
            ConfigError: the bucket is missing or denied.
            TemporaryFailure: the endpoint is unreachable.
        """
        if bucket not in self.buckets:
            facts = read_bucket(self.client, bucket, self.store_name)
            if facts.problem is not None:
                raise ConfigError([ConfigIssue(f"{path}.bucket", facts.problem)])
            lock = facts.details.get("object_lock") or {}
            self.buckets[bucket] = BucketInfo(
                versioned=facts.versioning in ("enabled", "suspended"),
                object_lock=bool(lock.get("enabled")) if isinstance(lock, dict) else False,
            )
        return self.buckets[bucket]

    def pending(self) -> list[OutboxRow]:
        """Return outcome rows a crashed run left unrelayed (unfinished intents resolved by listing)."""
        return self.journal.pending()

    def remove(self, batch_ids: list[str]) -> None:
        """Acknowledge relayed outcome rows."""
        self.journal.remove(batch_ids)

    def close(self) -> None:
        """Stop the pool, delete the workers' spools, close the journal."""
        for worker in self.workers:
            worker.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.journal.close()


def _handles(runner: Any) -> dict[str, S3StoreHandle]:
    handles: dict[str, S3StoreHandle] | None = getattr(runner, "_s3_handles", None)
    if handles is None:
        handles = {}
        runner._s3_handles = handles
    return handles


def open_s3_stores(runner: Any) -> list[S3StoreHandle]:
    """Open every S3 store the run's categories use; return their handles (intent journals).

    Raises:
        ConfigError: an endpoint variable is unset or a profile is missing.
    """
    settings = runner.settings
    names = sorted({t.store for c in runner.categories for t in settings.categories[c].s3})
    handles = _handles(runner)
    for name in names:
        if name not in handles:
            store = settings.stores[name]
            assert isinstance(store, S3Store)
            handles[name] = S3StoreHandle(name, store, runner)
    return [handles[n] for n in names]


def _claim(runner: Any, category: str, target: S3Target) -> Claim:
    cat = runner.settings.categories[category]
    cutoff = retain_cutoff(cat, runner.run_start)
    prior = prior_versions_cutoff(cat, runner.run_start)
    return Claim(Coverage(category, "delete", cutoff, age_column=target.age), target.prefix, prior)


def s3_workers(runner: Any, category: str) -> list[S3Worker]:
    """Return one worker per S3 target of ``category``.

    Raises:
        ConfigError: a bucket is missing or denied.
        TemporaryFailure: an endpoint is unreachable.
    """
    settings = runner.settings
    handles = _handles(runner)
    workers: list[S3Worker] = []
    for index, target in enumerate(settings.categories[category].s3):
        handle = handles.get(target.store)
        if handle is None:
            open_s3_stores(runner)
            handle = handles[target.store]
        info = handle.bucket(target.bucket, f"categories.{category}.s3[{index}]")
        others: list[Claim] = []
        for other_name, other in settings.categories.items():
            if other_name == category:
                continue
            for other_target in other.s3:
                overlap = other_target.prefix.startswith(target.prefix) or target.prefix.startswith(other_target.prefix)
                if other_target.store == target.store and other_target.bucket == target.bucket and overlap:
                    others.append(_claim(runner, other_name, other_target))
        store = handle.store
        worker = S3Worker(
            client=handle.client,
            pool=handle.pool,
            journal=handle.journal,
            store_name=target.store,
            bucket=target.bucket,
            acting=_claim(runner, category, target),
            others=others,
            subject_pattern=target.subject_pattern,
            info=info,
            batch_size=settings.daemon.batch_size,
            max_workers=store.max_workers,
            verify_deletes=store.verify_deletes,
            spool_dir=runner.loaded.state_dir if runner.writes else None,
            refs_of=handle.refs_of,
        )
        handle.workers.append(worker)
        workers.append(worker)
    return workers
