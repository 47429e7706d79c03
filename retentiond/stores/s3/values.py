"""The value types an S3 store shares with the run driver: plan counts, batch results, outcome rows,
findings. The one module of ``stores.s3`` that names the shared types' home."""

from __future__ import annotations

from dataclasses import dataclass

from retentiond.stores.sql.inspect import TargetFindings
from retentiond.stores.sql.outbox import OutboxRow
from retentiond.stores.sql.worker import BatchResult, Counts, Cursor


@dataclass
class S3Counts(Counts):
    """Plan figures of one S3 target, in object versions (delete markers included)."""

    blocked: int = 0


@dataclass
class S3BatchResult(BatchResult):
    """What one S3 batch did, with the versions Object Lock kept and those that failed."""

    blocked: int = 0
    failed: int = 0


__all__ = ["Cursor", "OutboxRow", "S3BatchResult", "S3Counts", "TargetFindings"]
