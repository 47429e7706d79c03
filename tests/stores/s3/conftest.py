"""Fixtures of the S3 engine tests: a moto server bucket, a config, holds, a ledger.

Objects are backdated through moto's in-process backend (the session ``ThreadedMotoServer``
runs in this process): moto stamps ``LastModified`` with its own clock, and S3 offers no API
to change it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from retentiond.actions.run import Runner, RunReport
from retentiond.audit.ledger import Entry, Ledger
from retentiond.audit.refs import RecordRef, RefMaker
from retentiond.audit.signing import generate_key_pair
from retentiond.cli.render import toml_like
from retentiond.config.loader import load_config

ROOT = Path(__file__).resolve().parents[3]  # the checkout (tests/stores/<kind>/conftest.py)


def backdate(bucket: str, key: str, version_id: str | None, when: datetime) -> None:
    """Set the LastModified of one version (or delete marker) in moto's backend."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    store = s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets[bucket]
    naive = when.astimezone(UTC).replace(tzinfo=None)
    found = False
    for version in store.keys.getlist(key, []):
        if version_id is None or str(version.version_id) == version_id:
            version.last_modified = naive
            found = True
    assert found, "no such version"


def hold(hold_id: str, categories: Sequence[str], **extra: Any) -> dict[str, Any]:
    """Return a ``[[hold]]`` table placed long ago."""
    out: dict[str, Any] = {
        "id": hold_id,
        "kind": "legal",
        "reason": "test",
        "placed_by": "legal@test",
        "placed_at": date(2020, 1, 1),
        "categories": list(categories),
    }
    out.update(extra)
    return out


def s3_category(bucket: str = "media", prefix: str = "tickets/", retain: str = "30d", **extra: Any) -> dict[str, Any]:
    """Return a category deleting ``bucket``/``prefix`` after ``retain`` (extra: prior_versions, target keys)."""
    target: dict[str, Any] = {"store": "files", "bucket": bucket, "prefix": prefix}
    category: dict[str, Any] = {"retain": retain, "action": "delete"}
    for k, v in extra.items():
        (category if k in ("prior_versions", "schedule", "description") else target)[k] = v
    category["s3"] = [target]
    return category


@dataclass
class S3Env:
    """A moto endpoint with a config, holds file, state dir and ledger in ``dir``."""

    endpoint: str
    client: Any
    dir: Path
    now: datetime
    hmac_key: bytes = field(default_factory=lambda: secrets.token_hex(32).encode())

    @property
    def config_path(self) -> Path:
        """Return the config file's path."""
        return self.dir / "retention.toml"

    @property
    def holds_path(self) -> Path:
        """Return the holds file's path."""
        return self.dir / "holds.toml"

    @property
    def state_dir(self) -> Path:
        """Return the state directory."""
        return self.dir / "state"

    def configure(self, categories: dict[str, Any], store: dict[str, Any] | None = None, **daemon: Any) -> Path:
        """Write the config; return its path."""
        keys = self.dir / "keys"
        if not keys.exists():
            keys.mkdir()
            (keys / "hmac.key").write_bytes(self.hmac_key)
            private_pem, _, _ = generate_key_pair()
            (keys / "signing.pem").write_bytes(private_pem)
            os.chmod(keys / "signing.pem", 0o600)
        data = {
            "daemon": {
                "state_dir": str(self.state_dir),
                "holds_file": str(self.holds_path),
                "metrics_listen": "",
                "max_fraction_per_run": 1.0,
                "batch_size": 1000,
                **daemon,
            },
            "audit": {"hmac_key_file": str(keys / "hmac.key"), "signing_key_file": str(keys / "signing.pem")},
            "stores": {"files": {"kind": "s3", "endpoint_url": self.endpoint, "region": "us-east-1", **(store or {})}},
            "categories": categories,
        }
        self.config_path.write_text(toml_like(data), encoding="utf-8")
        if not self.holds_path.exists():
            self.write_holds([])
        return self.config_path

    def write_holds(self, holds: Sequence[dict[str, Any]]) -> None:
        """Write the holds file."""
        blocks = ["[[hold]]\n" + "\n".join(f"{k} = {_toml(v)}" for k, v in h.items()) for h in holds]
        tmp = self.holds_path.with_suffix(".tmp")
        tmp.write_text("# test holds\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
        os.replace(tmp, self.holds_path)

    # -- data -----------------------------------------------------------------------------------

    def bucket(self, name: str = "media", *, versioned: bool = True, lock: bool = False) -> None:
        """Create a bucket (versioned unless told; Object Lock implies versioning)."""
        if lock:
            self.client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            self.client.create_bucket(Bucket=name)
            if versioned:
                self.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    def put(
        self,
        key: str,
        age_days: float,
        bucket: str = "media",
        *,
        tags: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str | None:
        """Put a new version of ``key`` written ``age_days`` before ``now``; return its VersionId."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": b"x"}
        if tags:
            kwargs["Tagging"] = "&".join(f"{k}={v}" for k, v in tags.items())
        if metadata:
            kwargs["Metadata"] = metadata
        version = self.client.put_object(**kwargs).get("VersionId")
        backdate(bucket, key, version, self.now - timedelta(days=age_days))
        return str(version) if version else None

    def history(self, key: str, ages: Sequence[float], bucket: str = "media") -> list[str | None]:
        """Put one version per age (oldest first); return their VersionIds."""
        return [self.put(key, age, bucket) for age in ages]

    def delete_marker(self, key: str, age_days: float, bucket: str = "media") -> str:
        """Put a delete marker on ``key`` ``age_days`` ago; return its VersionId."""
        version = str(self.client.delete_object(Bucket=bucket, Key=key)["VersionId"])
        backdate(bucket, key, version, self.now - timedelta(days=age_days))
        return version

    def versions(self, bucket: str = "media") -> set[tuple[str, str | None]]:
        """Return every (key, version) present, delete markers included."""
        out: set[tuple[str, str | None]] = set()
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                out.add((v["Key"], v["VersionId"]))
        return out

    def markers(self, bucket: str = "media") -> set[tuple[str, str]]:
        """Return every delete marker present."""
        out: set[tuple[str, str]] = set()
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            out |= {(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])}
        return out

    # -- runs and the ledger --------------------------------------------------------------------

    def runner(
        self,
        *,
        mode: str = "run",
        allow_large: bool = False,
        now: datetime | None = None,
        categories: Sequence[str] = (),
    ) -> Runner:
        """Return a Runner on the config."""
        return Runner(
            load_config(self.config_path),
            mode=mode,
            allow_large=allow_large,
            now=now or self.now,
            categories=categories,
        )

    def run(self, **kwargs: Any) -> RunReport:
        """Run (or plan) and return the report."""
        return self.runner(**kwargs).execute()

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``python -m retentiond -c CONFIG ARGS``; return the finished process."""
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "retentiond", "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
            check=False,
        )

    def entries(self, event: str | None = None) -> list[Entry]:
        """Return the ledger's entries (of ``event``)."""
        if not (self.state_dir / "audit.db").exists():
            return []
        ledger = Ledger.open(f"sqlite:///{self.state_dir / 'audit.db'}", "retentiond")
        try:
            return ledger.entries(event=event)
        finally:
            ledger.close()

    def batches(self, outcome: str | None = None) -> list[Entry]:
        """Return the ``batch`` entries (with ``outcome``)."""
        return [e for e in self.entries("batch") if outcome is None or e.fields["outcome"] == outcome]

    def ref(self, key: str, version: str | None, bucket: str = "media") -> RecordRef:
        """Return the ref of one object version."""
        return RefMaker(self.hmac_key).s3("files", bucket, key, version)

    def audited(self, outcome: str = "deleted") -> list[RecordRef]:
        """Return every ref claimed by ``outcome`` entries (repeats kept)."""
        return [r for e in self.batches(outcome) for r in e.refs]

    def refs_of(self, items: Sequence[tuple[str, str | None]], bucket: str = "media") -> list[RecordRef]:
        """Return the refs of ``items``, sorted."""
        return sorted(self.ref(k, v, bucket) for k, v in items)


def _toml(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return json.dumps(value)


@pytest.fixture
def s3env(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> Iterator[S3Env]:
    """An S3Env on a freshly reset moto server."""
    yield S3Env(s3_endpoint, s3_client, tmp_path, datetime.now(UTC).replace(microsecond=0))
