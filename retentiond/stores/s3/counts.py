"""The figures an S3 worker hands the run driver: plan counts and batch results, in object versions."""

from __future__ import annotations

from dataclasses import dataclass

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


__all__ = ["Cursor", "S3BatchResult", "S3Counts"]
