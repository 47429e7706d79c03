"""Check an S3 target against its bucket (``config validate --connect`` and run start).

For each ``[[categories.X.s3]]``: the bucket exists and is reachable with our credentials
(GetBucketVersioning: NoSuchBucket and AccessDenied are refusals); its versioning status and Object Lock configuration
are reported as notes (a versioned bucket means deletes remove every version by VersionId;
Object Lock means some objects may be reported ``blocked``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from retentiond.config.models import S3Store, Settings
from retentiond.errors import ConfigIssue, TemporaryFailure
from retentiond.stores.base import Findings
from retentiond.stores.s3.client import make_client

_MISSING = frozenset({"404", "NoSuchBucket", "NotFound"})
_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled", "Forbidden"})


@dataclass(frozen=True)
class BucketFacts:
    """What the S3 API told us about one bucket. ``problem`` is set when the bucket is unusable."""

    bucket: str
    problem: str | None = None
    versioning: str = "unknown"
    object_lock: str = "unknown"
    details: dict[str, Any] = field(default_factory=dict)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def read_bucket(client: Any, bucket: str, store_name: str) -> BucketFacts:
    """Return what GetBucketVersioning and GetObjectLockConfiguration say about ``bucket``.

    GetBucketVersioning also tells whether the bucket exists and may be used: HeadBucket would
    need ``s3:ListBucket`` without a prefix, more than ``retentiond print-iam-policy`` grants.

    Raises:
        TemporaryFailure: the endpoint cannot be reached (names the store, not the endpoint's credentials).
    """
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except ClientError as exc:
        code = _code(exc)
        if code in _MISSING:
            return BucketFacts(bucket, problem=f"bucket {bucket!r} does not exist")
        if code in _DENIED:
            return BucketFacts(bucket, problem=f"access denied to bucket {bucket!r} (GetBucketVersioning: {code})")
        if code.startswith("5") or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            raise TemporaryFailure(f"store {store_name!r}: S3 answered {code} for bucket {bucket!r}") from None
        return BucketFacts(bucket, problem=f"bucket {bucket!r} cannot be used: GetBucketVersioning failed with {code}")
    except NoCredentialsError:
        return BucketFacts(bucket, problem="no AWS credentials found (boto3's standard chain or the store's profile)")
    except EndpointConnectionError:
        raise TemporaryFailure(f"store {store_name!r} is unreachable (S3 endpoint does not answer)") from None
    except BotoCoreError as exc:
        raise TemporaryFailure(f"store {store_name!r} is unreachable ({type(exc).__name__})") from None

    details: dict[str, Any] = {}
    versioning = {"Enabled": "enabled", "Suspended": "suspended"}.get(str(status), "unversioned")
    details["versioning"] = versioning
    try:
        config = client.get_object_lock_configuration(Bucket=bucket).get("ObjectLockConfiguration", {})
        enabled = config.get("ObjectLockEnabled") == "Enabled"
        rule = config.get("Rule", {}).get("DefaultRetention", {})
        if enabled and rule:
            span = f"{rule['Days']} days" if "Days" in rule else f"{rule.get('Years')} years"
            object_lock = f"enabled, default retention {rule.get('Mode')} {span}"
        else:
            object_lock = "enabled, no default retention" if enabled else "disabled"
        details["object_lock"] = {"enabled": enabled, "default_retention": rule or None}
    except ClientError as exc:
        code = _code(exc)
        object_lock = "disabled" if code == "ObjectLockConfigurationNotFoundError" else f"unknown ({code})"
        if code == "ObjectLockConfigurationNotFoundError":
            details["object_lock"] = {"enabled": False, "default_retention": None}
    return BucketFacts(bucket, None, versioning, object_lock, details)


def inspect_s3_target(
    client: Any,
    settings: Settings,
    category_name: str,
    index: int,
    *,
    cache: dict[str, BucketFacts] | None = None,
) -> Findings:
    """Return the issues and notes of target ``categories.<category_name>.s3[<index>]``.

    ``client`` must be a client of the target's store (see ``retentiond.stores.s3.client``);
    ``cache`` (bucket → facts) lets targets sharing a bucket ask S3 once.

    Raises:
        TemporaryFailure: the endpoint cannot be reached.
    """
    target = settings.categories[category_name].s3[index]
    path = f"categories.{category_name}.s3[{index}]"
    facts = cache.get(target.bucket) if cache is not None else None
    if facts is None:
        facts = read_bucket(client, target.bucket, target.store)
        if cache is not None:
            cache[target.bucket] = facts
    findings = Findings()
    if facts.problem is not None:
        findings.issues.append(ConfigIssue(f"{path}.bucket", facts.problem))
        return findings
    findings.notes.append(
        ConfigIssue(
            f"{path}.bucket",
            f"bucket {target.bucket!r}: versioning {facts.versioning}; Object Lock {facts.object_lock}",
        )
    )
    return findings


def check_s3_target(client: Any, settings: Settings, category_name: str, index: int) -> list[ConfigIssue]:
    """Return the refusals of one S3 target (empty when it may run); see :func:`inspect_s3_target`.

    Raises:
        TemporaryFailure: the endpoint cannot be reached.
    """
    return inspect_s3_target(client, settings, category_name, index).issues


def inspect_store(
    settings: Settings, name: str, store: S3Store, targets: Sequence[tuple[str, int]]
) -> Iterator[Findings]:
    """Yield the findings of each S3 target ``(category, index)`` of store ``name`` as soon as it is
    checked, with the facts its notes add (store, bucket, versioning, Object Lock) in ``extra``;
    each bucket is asked about once.

    Raises:
        ConfigError: an endpoint variable is unset or a profile is missing.
        TemporaryFailure: the endpoint cannot be reached.
    """
    client = make_client(store, f"stores.{name}")
    cache: dict[str, BucketFacts] = {}
    try:
        for cname, index in targets:
            findings = inspect_s3_target(client, settings, cname, index, cache=cache)
            bucket = settings.categories[cname].s3[index].bucket
            facts = cache.get(bucket)
            findings.extra.update(store=name, bucket=bucket)
            if facts is not None and facts.problem is None:
                findings.extra.update(versioning=facts.versioning, object_lock=facts.object_lock)
            yield findings
    finally:
        client.close()
