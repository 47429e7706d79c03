"""An S3 store opened for one plan or run (:class:`~retentiond.stores.base.Store`): its client
(shared by every thread), thread pool and intent journal, and one
:class:`~retentiond.stores.s3.worker.S3Worker` per S3 target of a category.
"""

from __future__ import annotations

from collections.abc import Sequence

from retentiond.config.models import S3Store, S3Target
from retentiond.errors import ConfigError, ConfigIssue
from retentiond.logs import ContextThreadPool
from retentiond.stores.base import OutcomeJournal, RunContext, Selection, Worker
from retentiond.stores.s3.client import make_client
from retentiond.stores.s3.decide import claim_for
from retentiond.stores.s3.inspect import read_bucket
from retentiond.stores.s3.journal import IntentJournal
from retentiond.stores.s3.spool import remove_stale_spools
from retentiond.stores.s3.worker import BucketInfo, S3Worker


def _overlap(a: S3Target, b: S3Target) -> bool:
    """Return True when two targets can name the same keys (same store and bucket, nested prefixes)."""
    nested = a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)
    return a.store == b.store and a.bucket == b.bucket and nested


class S3RunStore:
    """One S3 store for one plan or run.

    Its journal (:class:`~retentiond.stores.s3.journal.IntentJournal`) is on disk in
    ``state_dir`` on a real run, in memory on a plan or dry run (nothing is written).
    """

    def __init__(self, name: str, ctx: RunContext) -> None:
        """Open store ``name`` for ``ctx``: client, pool, journal; spools of crashed runs are removed.

        Raises:
            ConfigError: an endpoint variable is unset or a profile is missing.
        """
        store = ctx.settings.stores[name]
        assert isinstance(store, S3Store)
        self.name = name
        self.store_name = name
        self.config = store
        self.ctx = ctx
        # botocore's own retries are off: the engine retries with visible backoff (stores.s3.retry).
        self.client = make_client(store, f"stores.{name}", botocore_retries=False)
        # Its tasks log with the run's context (run_id, category, target) of the batch that submitted them.
        self.pool = ContextThreadPool(max_workers=store.max_workers, thread_name_prefix=f"retentiond-s3-{name}")
        refs = ctx.refs

        def refs_of(bucket: str, items: Sequence[tuple[str, str | None]]) -> bytes:
            if refs is None:
                return b""
            # The version refs, then each version's object-level ref (audit find by key alone).
            versions = b"".join(refs.s3(name, bucket, key, version) for key, version in items)
            return versions + b"".join(refs.s3_object(name, bucket, key) for key, _ in items)

        self.refs_of = refs_of
        self.intents = IntentJournal(ctx.state_dir if ctx.writes else None, name, self.client, refs_of)
        if ctx.writes and ctx.state_dir.is_dir():
            remove_stale_spools(ctx.state_dir)
        self.buckets: dict[str, BucketInfo] = {}
        self.opened: list[S3Worker] = []

    def prepare(self) -> None:
        """Nothing to check before the run: buckets are read when their workers are built."""

    def journal(self) -> OutcomeJournal:
        """Return the intent journal (its pending rows are resolved by listing: only versions really gone)."""
        return self.intents

    def bucket(self, bucket: str, path: str) -> BucketInfo:
        """Return the bucket's versioning and Object Lock facts (asked once per run).

        Raises:
            ConfigError: the bucket is missing or denied.
            TemporaryFailure: the endpoint is unreachable.
        """
        if bucket not in self.buckets:
            facts = read_bucket(self.client, bucket, self.name)
            if facts.problem is not None:
                raise ConfigError([ConfigIssue(f"{path}.bucket", facts.problem)])
            lock = facts.details.get("object_lock") or {}
            self.buckets[bucket] = BucketInfo(
                versioned=facts.versioning in ("enabled", "suspended"),
                object_lock=bool(lock.get("enabled")) if isinstance(lock, dict) else False,
            )
        return self.buckets[bucket]

    def workers(self, category: str, selection: Selection) -> list[Worker]:
        """Return one worker per S3 target of ``category`` in this store, in config order.

        Raises:
            ConfigError: a bucket is missing or denied.
            TemporaryFailure: the endpoint is unreachable.
        """
        settings = self.ctx.settings
        workers: list[Worker] = []
        for index, target in enumerate(settings.categories[category].s3):
            if target.store != self.name:
                continue
            info = self.bucket(target.bucket, f"categories.{category}.s3[{index}]")
            others = [
                claim_for(selection, other_name, other_target)
                for other_name, other in settings.categories.items()
                if other_name != category
                for other_target in other.s3
                if _overlap(target, other_target)
            ]
            worker = S3Worker(
                client=self.client,
                pool=self.pool,
                journal=self.intents,
                store_name=self.name,
                bucket=target.bucket,
                acting=claim_for(selection, category, target),
                others=others,
                subject_pattern=target.subject_pattern,
                info=info,
                batch_size=settings.daemon.batch_size,
                max_workers=self.config.max_workers,
                verify_deletes=self.config.verify_deletes,
                spool_dir=self.ctx.state_dir if self.ctx.writes else None,
                refs_of=self.refs_of,
                run_start=selection.run_start,
                run_id=self.ctx.run_id,
            )
            self.opened.append(worker)
            workers.append(worker)
        return workers

    def close(self) -> None:
        """Stop the pool, delete the workers' spools, close the journal."""
        for worker in self.opened:
            worker.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.intents.close()


__all__ = ["S3RunStore"]
