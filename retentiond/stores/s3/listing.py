"""Stream the object versions under one prefix, grouped by key, page by page.

``ListObjectVersions`` (versioned or suspended buckets) or ``ListObjectsV2`` (never
versioned) is paginated by hand with the markers of each page, so that one failed page is
retried alone (a botocore paginator cannot resume mid-way after an exception without
re-requesting from its last token, which is exactly what this does). A background thread
fetches the next page while the caller works on the current one (bounded: two pages ahead).

Keys arrive sorted, each key's versions newest first; a key's versions may span two pages, so
the last key of a page is held back until the next page shows whether it continues. This
also keeps the marker of the next request (the last entry of the page) alive until that
request is made, which matters for servers that resolve markers by lookup. Memory stays
bounded by a page plus the versions of one key.

Every key is checked against the prefix again here: a key that does not start with it is
never yielded, whatever the server returned.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retentiond.logs import carry_context, get_logger
from retentiond.stores.s3 import retry

log = get_logger("retentiond.s3")

PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Version:
    """One object version or delete marker (never logged: the key may be personal data)."""

    key: str
    version_id: str | None  # None in a bucket that was never versioned
    last_modified: datetime
    is_latest: bool
    is_marker: bool


@dataclass(slots=True)
class KeyGroup:
    """Every version and delete marker of one key, newest first."""

    key: str
    entries: list[Version] = field(default_factory=list)

    def noncurrent_since(self, index: int) -> datetime | None:
        """Return when entry ``index`` stopped being current: the LastModified of the next newer entry."""
        if index == 0:
            return None
        return self.entries[index - 1].last_modified


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _order(entries: list[Version]) -> list[Version]:
    # The two lists of a ListObjectVersions page (Versions, DeleteMarkers) are merged back into
    # S3's order: key, then the current entry first, then newest first.
    return sorted(entries, key=lambda v: (v.key, not v.is_latest, -v.last_modified.timestamp()))


def _versions_page(
    client: Any, bucket: str, prefix: str, markers: dict[str, str]
) -> tuple[list[Version], dict[str, str] | None]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE_SIZE, **markers}
    page = retry.call(client.list_object_versions, **kwargs)
    entries = [
        Version(v["Key"], v.get("VersionId"), _aware(v["LastModified"]), bool(v.get("IsLatest")), False)
        for v in page.get("Versions", [])
    ]
    entries += [
        Version(m["Key"], m.get("VersionId"), _aware(m["LastModified"]), bool(m.get("IsLatest")), True)
        for m in page.get("DeleteMarkers", [])
    ]
    nxt: dict[str, str] | None = None
    if page.get("IsTruncated"):
        nxt = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextVersionIdMarker"):
            nxt["VersionIdMarker"] = page["NextVersionIdMarker"]
    return _order(entries), nxt


def _objects_page(
    client: Any, bucket: str, prefix: str, markers: dict[str, str]
) -> tuple[list[Version], dict[str, str] | None]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE_SIZE, **markers}
    page = retry.call(client.list_objects_v2, **kwargs)
    entries = [Version(o["Key"], None, _aware(o["LastModified"]), True, False) for o in page.get("Contents", [])]
    nxt = {"ContinuationToken": page["NextContinuationToken"]} if page.get("IsTruncated") else None
    return entries, nxt


_DONE = object()


def _pages(client: Any, bucket: str, prefix: str, versioned: bool) -> Iterator[list[Version]]:
    """Yield raw pages, fetched one ahead by a background thread; a failing page raises here."""
    fetch = _versions_page if versioned else _objects_page
    out: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        markers: dict[str, str] | None = {}
        try:
            while markers is not None and not stop.is_set():
                entries, markers = fetch(client, bucket, prefix, markers)
                while not stop.is_set():
                    try:
                        out.put(entries, timeout=0.2)
                        break
                    except queue.Full:
                        continue
            item: Any = _DONE
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            item = exc
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=carry_context(produce), name="retentiond-s3-list", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def list_groups(client: Any, bucket: str, prefix: str, *, versioned: bool) -> Iterator[list[KeyGroup]]:
    """Yield, page by page, the complete key groups under ``prefix`` (keys in order, versions newest first).

    Raises:
        botocore.exceptions.ClientError / BotoCoreError: a page still failed after the retries.
    """
    pending: KeyGroup | None = None
    outside = 0
    for page in _pages(client, bucket, prefix, versioned):
        ready: list[KeyGroup] = []
        for entry in page:
            if not entry.key.startswith(prefix):
                outside += 1  # never acted on, whatever the server sent
                continue
            if pending is not None and pending.key == entry.key:
                pending.entries.append(entry)
                continue
            if pending is not None:
                ready.append(pending)
            pending = KeyGroup(entry.key, [entry])
        if ready:
            yield ready
    if pending is not None:
        yield [pending]
    if outside:
        log.warning("listing returned keys outside the prefix; ignored", bucket=bucket, count=outside)
