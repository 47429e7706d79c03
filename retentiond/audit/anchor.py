"""WORM copies of checkpoints in an S3 bucket under Object Lock (``[audit.anchor]``).

Each checkpoint entry is written as ``<prefix><ledger id>/<seq, 20 digits>.json`` with
``ObjectLockMode=COMPLIANCE`` and a retain-until date, so that not even the bucket owner can
remove it before then. Zero-padded seqs make the newest checkpoint the last key in listing
order. ``audit verify`` reads the newest one as a trusted checkpoint: a ledger rolled back or
truncated below it fails verification.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from retentiond.audit.canonical import canonical_loads
from retentiond.audit.ledger import Entry, Ledger
from retentiond.audit.results import TrustedCheckpoint
from retentiond.audit.signing import Signer
from retentiond.errors import TemporaryFailure


class Anchor:
    """Writes and reads anchored checkpoints through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str, ledger_id: str, retain_days: int) -> None:
        """Keep the client and where the checkpoints go (``prefix`` may be empty)."""
        self._s3 = client
        self.bucket = bucket
        self.prefix = f"{prefix}{ledger_id}/"
        self.retain_days = retain_days

    def key_for(self, seq: int) -> str:
        """Return the object key of the checkpoint entry at ``seq``."""
        return f"{self.prefix}{seq:020d}.json"

    def put(self, checkpoint: Entry, *, now: datetime | None = None) -> str:
        """Write ``checkpoint`` under Object Lock (COMPLIANCE) and return its object key.

        Raises:
            ValueError: ``checkpoint`` is not a checkpoint entry.
            TemporaryFailure: S3 refused or is unreachable (the ledger entry is already committed).
        """
        if checkpoint.event != "checkpoint":
            raise ValueError("only checkpoint entries are anchored")
        body = json.dumps(checkpoint.to_json(), sort_keys=True, separators=(",", ":")).encode()
        until = (now or datetime.now(UTC)) + timedelta(days=self.retain_days)
        key = self.key_for(checkpoint.seq)
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),  # required with Object Lock
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=until,
            )
        except Exception as exc:  # noqa: BLE001 - botocore raises many unrelated classes; all mean "not anchored"
            raise TemporaryFailure(
                f"checkpoint seq {checkpoint.seq} committed but not anchored in s3://{self.bucket}: "
                f"{exc.__class__.__name__}"
            ) from None
        return key

    def latest(self) -> TrustedCheckpoint | None:
        """Return the newest anchored checkpoint, or None when the bucket holds none.

        Raises:
            TemporaryFailure: S3 is unreachable or the object cannot be read.
            ValueError: the newest object is not a checkpoint entry.
        """
        try:
            newest: str | None = None
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    if item["Key"].endswith(".json") and (newest is None or item["Key"] > newest):
                        newest = item["Key"]
            if newest is None:
                return None
            data = self._s3.get_object(Bucket=self.bucket, Key=newest)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - any botocore failure means "anchor unreadable"
            raise TemporaryFailure(
                f"cannot read the anchor bucket s3://{self.bucket}: {exc.__class__.__name__}"
            ) from None
        return TrustedCheckpoint.from_json(
            canonical_loads(data), source=f"anchor s3://{self.bucket}/{newest}", origin="anchor"
        )


def checkpoint_and_anchor(
    ledger: Ledger,
    signer: Signer,
    anchor: Anchor | None,
    *,
    run_id: str | None = None,
    if_older_than: timedelta | None = None,
    if_unsigned: bool = False,
) -> Entry | None:
    """Write a checkpoint (see :meth:`Ledger.checkpoint`) and, when ``anchor`` is set, anchor it.

    Returns the checkpoint entry, or None when ``if_older_than`` or ``if_unsigned`` found none due.

    Raises:
        TemporaryFailure: the ledger is unreachable, or the checkpoint committed but could not
            be anchored (the next checkpoint is anchored as usual).
    """
    entry = ledger.checkpoint(signer, run_id=run_id, if_older_than=if_older_than, if_unsigned=if_unsigned)
    if entry is not None and anchor is not None:
        anchor.put(entry)
    return entry
