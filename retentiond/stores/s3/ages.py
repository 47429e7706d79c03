"""What S3 says about one object version's clock and lock: its age tags / metadata, and Object Lock.

The one reading of both for a run (:mod:`.worker`) and for ``explain`` (:mod:`.explain`), so that
``explain`` decides from the same values a run would.

* An age source other than ``last_modified`` is ``tag:<name>`` (GetObjectTagging) or
  ``metadata:<name>`` (HeadObject's user metadata, names compared case-insensitively). Its value
  is an RFC 3339 instant; an absent, invalid or naive value means the clock has not started
  (the object is kept).
* A version is *locked* when it has a legal hold or a retention date in the future. Locked
  versions are never deleted, and no request ever bypasses governance retention.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from retentiond.stores.s3 import retry
from retentiond.stores.s3.listing import Version


def parse_time(value: str | None) -> datetime | None:
    """Return the aware instant of an RFC 3339 tag / metadata value, or None (absent, invalid or naive:
    clock not started)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a naive time could be any zone: never guess, keep the object
    return parsed.astimezone(UTC)


def locked(head: dict[str, Any], now: datetime) -> bool:
    """Return True when a HeadObject response shows a legal hold or a retention date after ``now``."""
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        return True
    until = head.get("ObjectLockRetainUntilDate")
    if isinstance(until, datetime):
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        return until > now
    return False


def version_args(bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    """Return the ``Bucket`` / ``Key`` / ``VersionId`` arguments that address exactly one version."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id is not None:
        kwargs["VersionId"] = version_id
    return kwargs


def read_ages(client: Any, bucket: str, current: Version, sources: Iterable[str]) -> dict[str, datetime | None]:
    """Return the value of each tag / metadata age source of ``current`` (the key's newest entry).

    A delete marker or a noncurrent entry has no such age (empty result). Tags and metadata are
    each asked for at most once.

    Raises:
        botocore errors: a request failed after the retries.
    """
    wanted = sorted(set(sources) - {"last_modified"})
    if not wanted or current.is_marker or not current.is_latest:
        return {}
    kwargs = version_args(bucket, current.key, current.version_id)
    out: dict[str, datetime | None] = {}
    tags: dict[str, str] | None = None
    meta: dict[str, str] | None = None
    for source in wanted:
        kind, _, name = source.partition(":")
        if kind == "tag":
            if tags is None:
                tag_set = retry.call(client.get_object_tagging, **kwargs).get("TagSet", [])
                tags = {t["Key"]: t["Value"] for t in tag_set}
            out[source] = parse_time(tags.get(name))
        else:
            if meta is None:
                metadata = retry.call(client.head_object, **kwargs).get("Metadata", {})
                meta = {k.lower(): v for k, v in metadata.items()}
            out[source] = parse_time(meta.get(name.lower()))
    return out


def is_locked(client: Any, bucket: str, key: str, version_id: str | None, now: datetime) -> bool:
    """Return True when the version is under a legal hold or unexpired retention (HeadObject).

    Raises:
        botocore errors: the request failed after the retries.
    """
    return locked(retry.call(client.head_object, **version_args(bucket, key, version_id)), now)


__all__ = ["is_locked", "locked", "parse_time", "read_ages", "version_args"]
