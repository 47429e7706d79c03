"""``retentiond explain --store S --bucket B --object-key K``: why each version of one object is
kept or would be deleted, with the same decision code (:mod:`.decide`) and the same reading of
ages and Object Lock (:mod:`.ages`) a run uses.

The object key is the operator's own input and is printed on stdout only (never logged).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from retentiond.config.holds import Hold
from retentiond.config.models import S3Store, S3Target, Settings
from retentiond.errors import TemporaryFailure, UsageError
from retentiond.stores.base import ExpirySelection
from retentiond.stores.s3 import retry
from retentiond.stores.s3.ages import is_locked, read_ages
from retentiond.stores.s3.client import make_client
from retentiond.stores.s3.decide import GroupPlan, claim_for, plan_group
from retentiond.stores.s3.inspect import read_bucket
from retentiond.stores.s3.listing import KeyGroup, Version

_KEPT_CURRENT = (
    "is kept: not older than the cutoff (or its clock has not started), or another category retains it longer"
)
_KEPT_PRIOR = "is kept: not noncurrent for longer than prior versions are kept"
_BLOCKED = "blocked: Object Lock (legal hold or unexpired retention); never bypassed"


@dataclass
class S3Explanation:
    """The reasoning for every version of one object."""

    store: str
    bucket: str
    found: bool
    at: datetime
    lines: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return {
            "store": self.store,
            "bucket": self.bucket,
            "found": self.found,
            "at": self.at.isoformat(),
            "categories": self.lines,
        }

    def render(self) -> str:
        """Return the explanation as sentences."""
        if not self.found:
            return (
                f"No version of that object in {self.store}/{self.bucket} "
                "(nothing to explain; see `retentiond audit find`)."
            )
        out = [f"Object in {self.store}/{self.bucket}, evaluated at {self.at.isoformat(timespec='seconds')}:"]
        for line in self.lines:
            out.append(
                f"- category {line['category']} (delete after {line['retain']}, "
                f"prior versions {line['prior_versions']}; prefix {line['prefix']!r}, "
                f"age from {line['age_source']} = {line['age'] or 'not set'}, cutoff {line['cutoff']}):"
            )
            for v in line["versions"]:
                since = f", noncurrent since {v['noncurrent_since']}" if v["noncurrent_since"] else ""
                out.append(
                    f"    {v['kind']} {v['version_id']} (LastModified {v['last_modified']}{since}) -> {v['decision']}"
                )
        return "\n".join(out)


def read_group(client: Any, bucket: str, key: str, *, versioned: bool) -> KeyGroup:
    """Return every version and delete marker of exactly ``key``, the current one first.

    Raises:
        botocore errors: listing failed after the retries.
    """
    group = KeyGroup(key)
    if not versioned:
        page = retry.call(client.list_objects_v2, Bucket=bucket, Prefix=key, MaxKeys=1)
        for o in page.get("Contents", []):
            if o["Key"] == key:
                group.entries.append(Version(key, None, o["LastModified"], True, False))
        return group
    entries: list[Version] = []
    markers: dict[str, str] = {}
    while True:
        page = retry.call(client.list_object_versions, Bucket=bucket, Prefix=key, MaxKeys=1000, **markers)
        entries += [
            Version(key, v.get("VersionId"), v["LastModified"], bool(v.get("IsLatest")), False)
            for v in page.get("Versions", [])
            if v["Key"] == key
        ]
        entries += [
            Version(key, m.get("VersionId"), m["LastModified"], bool(m.get("IsLatest")), True)
            for m in page.get("DeleteMarkers", [])
            if m["Key"] == key
        ]
        if not page.get("IsTruncated") or page.get("NextKeyMarker", "") > key:
            break
        markers = {
            "KeyMarker": page["NextKeyMarker"],
            **({"VersionIdMarker": page["NextVersionIdMarker"]} if page.get("NextVersionIdMarker") else {}),
        }
    group.entries = sorted(entries, key=lambda v: (not v.is_latest, -v.last_modified.timestamp()))
    return group


class _Locks:
    """The Object Lock of each version of one object, asked of S3 once (only in an Object Lock bucket)."""

    def __init__(self, client: Any, bucket: str, group: KeyGroup, now: datetime, *, enabled: bool) -> None:
        self.client, self.bucket, self.group, self.now, self.enabled = client, bucket, group, now, enabled
        self._known: dict[int, bool] = {}

    def __call__(self, index: int) -> bool:
        """Return True when entry ``index`` is under a legal hold or unexpired retention."""
        entry = self.group.entries[index]
        if not self.enabled or entry.is_marker:
            return False
        if index not in self._known:
            self._known[index] = is_locked(self.client, self.bucket, entry.key, entry.version_id, self.now)
        return self._known[index]


def _decision(index: int, entry: Version, plan: GroupPlan, held_ids: list[str], locks: _Locks) -> str:
    """Return the sentence of what a run would do with entry ``index`` under ``plan``."""
    if index in plan.main or index in plan.history:
        return _BLOCKED if locks(index) else "would be deleted by the next run"
    if index in plan.main_markers or index in plan.history_markers:
        return "would be removed once every version behind it is deleted"
    if held_ids:
        return f"is kept: held by {', '.join(held_ids)}"
    return _KEPT_CURRENT if index == 0 and not entry.is_marker else _KEPT_PRIOR


def _versions(group: KeyGroup, plan: GroupPlan, locks: _Locks) -> list[dict[str, Any]]:
    """Return one JSON-ready line per entry of ``group``: what it is and what a run would do with it."""
    held_ids = sorted(plan.held)
    versions = []
    for i, entry in enumerate(group.entries):
        since = group.noncurrent_since(i)
        versions.append(
            {
                "kind": "delete marker" if entry.is_marker else ("current version" if i == 0 else "noncurrent version"),
                "version_id": entry.version_id or "null",
                "last_modified": entry.last_modified.isoformat(),
                "noncurrent_since": since.isoformat() if since else None,
                "decision": _decision(i, entry, plan, held_ids, locks),
            }
        )
    return versions


def _line(
    settings: Settings,
    selection: ExpirySelection,
    name: str,
    target: S3Target,
    claims: Sequence[tuple[str, S3Target]],
    group: KeyGroup,
    ages: dict[str, datetime | None],
    holds: Sequence[Hold],
    locks: _Locks,
) -> dict[str, Any]:
    """Return what category ``name`` (through ``target``) would do with every entry of ``group``."""
    acting = claim_for(selection, name, target)
    others = [claim_for(selection, n, t) for n, t in claims if n != name]
    pattern = re.compile(target.subject_pattern) if target.subject_pattern else None
    plan = plan_group(group, ages, acting, others, holds, selection.run_start, pattern)
    current = group.entries[0]
    age = current.last_modified if target.age == "last_modified" and not current.is_marker else ages.get(target.age)
    category = settings.categories[name]
    return {
        "category": name,
        "retain": str(category.retain),
        "prior_versions": str(category.prior_versions) if category.prior_versions else f"{category.retain} (retain)",
        "prefix": target.prefix,
        "age_source": target.age,
        "age": age.isoformat() if age else None,
        "cutoff": acting.coverage.cutoff.isoformat(timespec="seconds"),
        "holds": sorted(plan.held),
        "versions": _versions(group, plan, locks),
    }


def explain_object(
    settings: Settings,
    store: str,
    bucket: str,
    key: str,
    *,
    now: datetime,
    holds_at: Callable[[datetime], Sequence[Hold]],
) -> S3Explanation:
    """Return, per covering category, the decision for each version of ``key`` at ``now``.

    ``holds_at(now)`` returns the holds protecting at ``now``; it is called only when the object exists.

    Raises:
        UsageError: no category covers that bucket and key.
        TemporaryFailure: the endpoint is unreachable or the bucket unusable.
        ConfigError: the holds file is invalid.
    """
    claims = [
        (name, t)
        for name, c in settings.categories.items()
        for t in c.s3
        if t.store == store and t.bucket == bucket and key.startswith(t.prefix)
    ]
    if not claims:
        raise UsageError(f"no category covers that key in bucket {bucket!r} of store {store!r}")
    config = settings.stores[store]
    assert isinstance(config, S3Store)
    client = make_client(config, f"stores.{store}")
    facts = read_bucket(client, bucket, store)
    if facts.problem is not None:
        raise TemporaryFailure(f"store {store!r}: {facts.problem}")
    lock = facts.details.get("object_lock") or {}
    try:
        group = read_group(client, bucket, key, versioned=facts.versioning in ("enabled", "suspended"))
        result = S3Explanation(store, bucket, bool(group.entries), now)
        if not group.entries:
            return result
        protecting = holds_at(now)
        selection = ExpirySelection.at(settings, now)
        ages = read_ages(client, bucket, group.entries[0], {t.age for _, t in claims})
        locks = _Locks(client, bucket, group, now, enabled=bool(lock.get("enabled")))
        for name, target in claims:
            result.lines.append(_line(settings, selection, name, target, claims, group, ages, protecting, locks))
        return result
    except (BotoCoreError, ClientError) as exc:  # unreachable or refused
        raise TemporaryFailure(f"store {store!r}: S3 request failed ({type(exc).__name__})") from None


__all__ = ["S3Explanation", "explain_object", "read_group"]
