"""The least IAM policy of one S3 store, derived from the config (``retentiond print-iam-policy``).

What the daemon calls, and the IAM action each call needs:

- GetBucketVersioning / GetObjectLockConfiguration (``s3:GetBucketVersioning``,
  ``s3:GetBucketObjectLockConfiguration``): what a bucket is, at the start of a run;
- ListObjectVersions / ListObjectsV2 (``s3:ListBucketVersions``, ``s3:ListBucket``), only
  under the configured prefixes (condition ``s3:prefix``);
- DeleteObjects (``s3:DeleteObject``, ``s3:DeleteObjectVersion`` per key), under the prefixes;
- HeadObject (``s3:GetObject``, ``s3:GetObjectVersion``) for Object Lock state and
  ``metadata:`` ages, with ``s3:GetObjectRetention``/``s3:GetObjectLegalHold`` so the lock
  headers are returned; GetObjectTagging (``s3:GetObjectTagging``,
  ``s3:GetObjectVersionTagging``) only for ``tag:`` ages;
- PutObject with COMPLIANCE retention (``s3:PutObject``, ``s3:PutObjectRetention``) only under
  the anchor prefix, when ``[audit.anchor]`` uses this store.

An explicit Deny covers what must never happen even if another policy allowed it: bypassing
governance retention, changing legal holds, retention (outside the anchor prefix), bucket
policies, lifecycle rules, Object Lock configuration or versioning, and deleting outside the
prefixes. (The IAM action of PutBucketLifecycleConfiguration is ``s3:PutLifecycleConfiguration``.)
"""

from __future__ import annotations

import json
from typing import Any

from retentiond.config.models import S3Target, Settings

_NEVER = [
    "s3:BypassGovernanceRetention",
    "s3:PutObjectLegalHold",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketVersioning",
]
_DELETE = ["s3:DeleteObject", "s3:DeleteObjectVersion"]


def _objects(bucket: str, prefix: str) -> str:
    return f"arn:aws:s3:::{bucket}/{prefix}*"


def _targets(settings: Settings, store: str) -> list[S3Target]:
    return [t for c in settings.categories.values() for t in c.s3 if t.store == store]


def _list_statement(sid: str, bucket: str, prefixes: list[str], actions: list[str]) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    if "" not in prefixes:  # whole_bucket = true lists everything
        statement["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    return statement


def iam_policy(settings: Settings, store: str) -> dict[str, Any]:
    """Return the IAM policy document (a JSON-ready dict) the daemon needs for S3 store ``store``."""
    targets = _targets(settings, store)
    buckets: dict[str, list[str]] = {}
    for t in targets:
        prefixes = buckets.setdefault(t.bucket, [])
        if t.prefix not in prefixes:
            prefixes.append(t.prefix)
    objects = [_objects(b, p) for b, ps in buckets.items() for p in ps]
    statements: list[dict[str, Any]] = []
    if buckets:
        statements.append(
            {
                "Sid": "ReadBucketSettings",
                "Effect": "Allow",
                "Action": ["s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration"],
                "Resource": [f"arn:aws:s3:::{b}" for b in buckets],
            }
        )
    for i, (bucket, prefixes) in enumerate(buckets.items()):
        statements.append(
            _list_statement(f"ListTargetPrefixes{i}", bucket, prefixes, ["s3:ListBucket", "s3:ListBucketVersions"])
        )
    if objects:
        statements += [
            {"Sid": "DeleteInTargetPrefixes", "Effect": "Allow", "Action": _DELETE, "Resource": objects},
            {
                "Sid": "ReadObjectLockAndMetadata",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:GetObjectLegalHold"],
                "Resource": objects,
            },
        ]
    tagged = sorted({_objects(t.bucket, t.prefix) for t in targets if t.age.startswith("tag:")})
    if tagged:
        statements.append(
            {
                "Sid": "ReadAgeTags",
                "Effect": "Allow",
                "Action": ["s3:GetObjectTagging", "s3:GetObjectVersionTagging"],
                "Resource": tagged,
            }
        )
    anchor = settings.audit.anchor
    anchor_objects: str | None = None
    if anchor is not None and anchor.store == store:
        anchor_objects = _objects(anchor.bucket, f"{anchor.prefix}{settings.audit.ledger_id}/")
        statements.append(
            {
                "Sid": "WriteCheckpointAnchors",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:PutObjectRetention"],
                "Resource": anchor_objects,
            }
        )
    statements.append({"Sid": "NeverChangeLocksOrBucketRules", "Effect": "Deny", "Action": _NEVER, "Resource": "*"})
    retention: dict[str, Any] = {"Sid": "NoRetentionChanges", "Effect": "Deny", "Action": ["s3:PutObjectRetention"]}
    if anchor_objects is not None:
        retention["NotResource"] = anchor_objects
    else:
        retention["Resource"] = "*"
    statements.append(retention)
    if objects:
        statements.append(
            {"Sid": "NoDeletesOutsideTargetPrefixes", "Effect": "Deny", "Action": _DELETE, "NotResource": objects}
        )
    return {"Version": "2012-10-17", "Statement": statements}


def iam_policy_json(settings: Settings, store: str) -> str:
    """Return :func:`iam_policy` as indented JSON text."""
    return json.dumps(iam_policy(settings, store), indent=2) + "\n"


def access_policy(settings: Settings, name: str, role: str) -> Any:
    """Return the ``AccessPolicy`` (format ``iam-json``) of S3 store ``name``; ``role`` is not part of it."""
    from retentiond.stores.base import AccessPolicy

    return AccessPolicy(name, "iam-json", iam_policy_json(settings, name))
