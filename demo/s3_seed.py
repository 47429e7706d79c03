"""The S3 part of ``make demo``: a local moto server with the shipped policy's three buckets.

moto stamps ``LastModified`` with its own clock and S3 has no API to change it, so objects
are backdated through moto's in-process backend: the ``ThreadedMotoServer`` runs in the demo
process, the ``retentiond`` commands talk to it over HTTP on 127.0.0.1. (time-machine would
move the whole process's clock, the retentiond subprocesses' too; the backend attribute is
the narrowest lever.) Support attachments are aged by their ``ticket-closed-at`` tag, as the
shipped policy says; event media and CloudTrail logs by ``LastModified``.

One event photo is under an Object Lock legal hold (the ``event-media`` bucket is created
with Object Lock enabled): the run reports it ``blocked`` and leaves it.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

BUCKETS = ("support-attachments", "event-media", "cloud-telemetry")


def start_moto() -> tuple[Any, str]:
    """Start a moto S3 server on a free 127.0.0.1 port; return (server, endpoint URL)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request would drown the demo

    # moto accepts any credentials; boto3 (here and in the retentiond subprocesses) needs some.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def _backdate(bucket: str, key: str, version_id: str, when: datetime) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    for version in s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets[bucket].keys.getlist(key, []):
        if str(version.version_id) == version_id:
            version.last_modified = when.astimezone(UTC).replace(tzinfo=None)


def seed_s3(endpoint: str, now: datetime) -> dict[str, int]:
    """Create the buckets and backdated objects (with prior versions); return versions per bucket."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for bucket in BUCKETS:
        if bucket == "event-media":
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)  # versioned by definition
        else:
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    counts = dict.fromkeys(BUCKETS, 0)

    def put(bucket: str, key: str, ages_days: list[int], tag: datetime | None = None) -> str:
        """Put one version per age (oldest first); return the last VersionId."""
        version = ""
        for age in ages_days:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": f"demo {key}".encode()}
            if tag is not None:
                kwargs["Tagging"] = "ticket-closed-at=" + tag.strftime("%Y-%m-%dT%H:%M:%SZ")
            version = str(client.put_object(**kwargs)["VersionId"])
            _backdate(bucket, key, version, now - timedelta(days=age))
            counts[bucket] += 1
        return version

    # Support attachments: tickets/<account>/<ticket>/file, clock = the ticket-closed-at tag.
    accounts = ["acct_1001", "acct_1002", "acct_1042", "acct_2210", "acct_3003"]
    for n in range(40):
        account = accounts[n % len(accounts)]
        closed = now - timedelta(days=30 + n * 25)  # 1 month to ~2.8 years ago
        history = [900, 899] if n % 4 == 0 else [900]  # an edited attachment has a prior version
        put("support-attachments", f"tickets/{account}/{5000 + n}/attachment.pdf", history, tag=closed)
    put("support-attachments", "tickets/acct_1001/open-ticket/draft.txt", [1000])  # untagged: open ticket, kept

    # Event media: events/<event>/<account>/..., clock = upload time.
    for n in range(30):
        put(
            "event-media",
            f"events/summit-{2023 + n % 3}/acct_{1100 + n}/photo-{n}.jpg",
            [800 - n * 20, 790 - n * 20] if n % 3 == 0 else [790 - n * 20],
        )
    locked = put("event-media", "events/summit-2023/acct_1042/keynote.mp4", [700])
    client.put_object_legal_hold(
        Bucket="event-media",
        Key="events/summit-2023/acct_1042/keynote.mp4",
        VersionId=locked,
        LegalHold={"Status": "ON"},
    )

    # Cloud telemetry: CloudTrail and EC2 inventory per customer account, clock = delivery time.
    for n in range(36):
        day = now - timedelta(days=n * 15)
        put("cloud-telemetry", f"cloudtrail/acct_{2000 + n % 4}/us-east-1/{day:%Y/%m/%d}/trail.json.gz", [n * 15])
        put(
            "cloud-telemetry",
            f"ec2-inventory/acct_{2000 + n % 4}/{day:%Y-%m-%d}.json.gz",
            [n * 15 + 1, n * 15] if n % 5 == 0 else [n * 15],
        )
    return counts
