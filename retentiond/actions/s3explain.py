"""``retentiond explain --store S --bucket B --object-key K``: why each version of one object is
kept or would be deleted, with the same decision code a run uses (``retentiond.stores.s3.decide``).

The object key is the operator's own input and is printed on stdout only (never logged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.actions.targets import cutoffs
from retentiond.config.loader import LoadedConfig
from retentiond.config.models import S3Store
from retentiond.errors import TemporaryFailure, UsageError
from retentiond.policy.cutoffs import prior_versions_cutoff
from retentiond.policy.decide import Coverage
from retentiond.stores.s3 import retry
from retentiond.stores.s3.client import make_client
from retentiond.stores.s3.decide import Claim, plan_group
from retentiond.stores.s3.engine import _locked, parse_time
from retentiond.stores.s3.inspect import read_bucket
from retentiond.stores.s3.listing import KeyGroup, Version


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


def _group(client: Any, bucket: str, key: str, versioned: bool) -> KeyGroup:
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


def explain_object(loaded: LoadedConfig, store: str, bucket: str, key: str) -> S3Explanation:
    """Return, per covering category, the decision for each version of ``key``.

    Raises:
        UsageError: no category covers that bucket and key.
        TemporaryFailure: the endpoint is unreachable or the bucket unusable.
    """
    settings = loaded.settings
    claims = [
        (name, t)
        for name, c in settings.categories.items()
        for t in c.s3
        if t.store == store and t.bucket == bucket and key.startswith(t.prefix)
    ]
    if not claims:
        raise UsageError(f"no category covers that key in bucket {bucket!r} of store {store!r}")
    now = datetime.now(UTC)
    cuts = cutoffs(loaded, now)
    config = settings.stores[store]
    assert isinstance(config, S3Store)
    client = make_client(config, f"stores.{store}")
    facts = read_bucket(client, bucket, store)
    if facts.problem is not None:
        raise TemporaryFailure(f"store {store!r}: {facts.problem}")
    lock = facts.details.get("object_lock") or {}
    try:
        group = _group(client, bucket, key, facts.versioning in ("enabled", "suspended"))
        result = S3Explanation(store, bucket, bool(group.entries), now)
        if not group.entries:
            return result
        holds = HoldWatcher(loaded, record_changes=False).protecting(now)

        def claim(name: str, target: Any) -> Claim:
            category = settings.categories[name]
            prior = prior_versions_cutoff(category, now)
            return Claim(Coverage(name, "delete", cuts[name], age_column=target.age), target.prefix, prior)

        current = group.entries[0]
        for name, target in claims:
            acting = claim(name, target)
            others = [claim(n, t) for n, t in claims if n != name]
            ages: dict[str, datetime | None] = {}
            for source in sorted({c.coverage.age_column for c in (acting, *others)} - {"last_modified"}):
                if current.is_marker:
                    continue
                kind, _, tag = source.partition(":")
                kwargs = {
                    "Bucket": bucket,
                    "Key": key,
                    **({"VersionId": current.version_id} if current.version_id else {}),
                }
                if kind == "tag":
                    tags = {
                        t["Key"]: t["Value"] for t in retry.call(client.get_object_tagging, **kwargs).get("TagSet", [])
                    }
                    ages[source] = parse_time(tags.get(tag))
                else:
                    meta = {
                        k.lower(): v for k, v in retry.call(client.head_object, **kwargs).get("Metadata", {}).items()
                    }
                    ages[source] = parse_time(meta.get(tag.lower()))
            plan = plan_group(
                group,
                ages,
                acting,
                others,
                holds,
                now,
                re.compile(target.subject_pattern) if target.subject_pattern else None,
            )
            held_ids = sorted(plan.held)
            versions = []
            for i, entry in enumerate(group.entries):
                locked = False
                if lock.get("enabled") and not entry.is_marker:
                    kwargs = {
                        "Bucket": bucket,
                        "Key": key,
                        **({"VersionId": entry.version_id} if entry.version_id else {}),
                    }
                    locked = _locked(retry.call(client.head_object, **kwargs), now)
                if i in plan.main or i in plan.history:
                    decision = (
                        "blocked: Object Lock (legal hold or unexpired retention); never bypassed"
                        if locked
                        else "would be deleted by the next run"
                    )
                elif i in plan.main_markers or i in plan.history_markers:
                    decision = "would be removed once every version behind it is deleted"
                elif held_ids:
                    decision = f"is kept: held by {', '.join(held_ids)}"
                elif i == 0 and not entry.is_marker:
                    decision = (
                        "is kept: not older than the cutoff (or its clock has not started), "
                        "or another category retains it longer"
                    )
                else:
                    decision = "is kept: not noncurrent for longer than prior versions are kept"
                since = group.noncurrent_since(i)
                versions.append(
                    {
                        "kind": "delete marker"
                        if entry.is_marker
                        else ("current version" if i == 0 else "noncurrent version"),
                        "version_id": entry.version_id or "null",
                        "last_modified": entry.last_modified.isoformat(),
                        "noncurrent_since": since.isoformat() if since else None,
                        "decision": decision,
                    }
                )
            category = settings.categories[name]
            age = (
                current.last_modified
                if target.age == "last_modified" and not current.is_marker
                else ages.get(target.age)
            )
            result.lines.append(
                {
                    "category": name,
                    "retain": str(category.retain),
                    "prior_versions": str(category.prior_versions)
                    if category.prior_versions
                    else f"{category.retain} (retain)",
                    "prefix": target.prefix,
                    "age_source": target.age,
                    "age": age.isoformat() if age else None,
                    "cutoff": cuts[name].isoformat(timespec="seconds"),
                    "holds": held_ids,
                    "versions": versions,
                }
            )
        return result
    except (BotoCoreError, ClientError) as exc:  # unreachable or refused
        raise TemporaryFailure(f"store {store!r}: S3 request failed ({type(exc).__name__})") from None
