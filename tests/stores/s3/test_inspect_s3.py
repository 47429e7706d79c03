"""Checks of S3 targets against a real S3 endpoint (moto server): ``retentiond.stores.s3.inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from retentiond.config.loader import load_config
from retentiond.config.models import S3Store, Settings
from retentiond.errors import ConfigError
from retentiond.stores.s3.client import make_client
from retentiond.stores.s3.inspect import check_s3_target, inspect_s3_target


def settings(tmp_path: Path, endpoint: str, buckets: list[str]) -> Settings:
    """Return a config with one S3 store on ``endpoint`` and one target per bucket."""
    (tmp_path / "holds.toml").write_text("")
    targets = "".join(
        f'  [[categories.media.s3]]\n  store = "files"\n  bucket = "{b}"\n  prefix = "events/"\n' for b in buckets
    )
    (tmp_path / "retention.toml").write_text(
        f'[stores.files]\nkind = "s3"\nregion = "us-east-1"\nendpoint_url = "{endpoint}"\n\n'
        f'[categories.media]\nretain = "90d"\naction = "delete"\n{targets}'
    )
    return load_config(tmp_path / "retention.toml").settings


def client_for(config: Settings) -> Any:
    """Return a client of the config's S3 store."""
    store = config.stores["files"]
    assert isinstance(store, S3Store)
    return make_client(store, "stores.files")


class TestBuckets:
    """Bucket existence, versioning and Object Lock."""

    def test_missing_bucket(self, s3_endpoint: str, tmp_path: Path) -> None:
        """A bucket that does not exist is refused at the target's bucket path."""
        config = settings(tmp_path, s3_endpoint, ["no-such-bucket"])
        issues = check_s3_target(client_for(config), config, "media", 0)
        assert (["categories.media.s3[0].bucket"], True) == (
            [i.path for i in issues],
            "does not exist" in issues[0].message,
        )

    def test_unversioned_bucket(self, s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
        """An existing bucket passes; the note says it is unversioned without Object Lock."""
        s3_client.create_bucket(Bucket="media")
        config = settings(tmp_path, s3_endpoint, ["media"])
        findings = inspect_s3_target(client_for(config), config, "media", 0)
        expected = ([], ["bucket 'media': versioning unversioned; Object Lock disabled"])
        assert expected == (findings.issues, [n.message for n in findings.notes])

    def test_versioned_bucket_with_object_lock(self, s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
        """Versioning and an Object Lock default retention are reported."""
        s3_client.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
        s3_client.put_object_lock_configuration(
            Bucket="locked",
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}},
            },
        )
        config = settings(tmp_path, s3_endpoint, ["locked"])
        findings = inspect_s3_target(client_for(config), config, "media", 0)
        expected = ["bucket 'locked': versioning enabled; Object Lock enabled, default retention GOVERNANCE 30 days"]
        assert expected == [n.message for n in findings.notes]

    def test_bucket_asked_once(self, s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
        """Targets sharing a bucket share the cached answer."""
        s3_client.create_bucket(Bucket="media")
        config = settings(tmp_path, s3_endpoint, ["media", "media"])
        cache: dict[str, Any] = {}
        client = client_for(config)
        first = inspect_s3_target(client, config, "media", 0, cache=cache)
        second = inspect_s3_target(client, config, "media", 1, cache=cache)
        assert (["media"], [n.message for n in first.notes]) == (list(cache), [n.message for n in second.notes])


class TestClient:
    """The client factory."""

    def test_endpoint_env_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unset endpoint variable is a config error naming the key."""
        monkeypatch.delenv("RTD_NO_SUCH_ENDPOINT", raising=False)
        store = S3Store(kind="s3", endpoint_url_env="RTD_NO_SUCH_ENDPOINT")
        with pytest.raises(ConfigError) as caught:
            make_client(store, "stores.files")
        assert ["stores.files.endpoint_url_env"] == [i.path for i in caught.value.issues]

    def test_unknown_profile(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A profile missing from the shared config is a config error naming the key."""
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        with pytest.raises(ConfigError) as caught:
            make_client(S3Store(kind="s3", profile="nobody"), "stores.files")
        assert ["stores.files.profile"] == [i.path for i in caught.value.issues]

    def test_retry_mode(self) -> None:
        """Clients use botocore's standard retry mode and a pool sized from max_workers."""
        client = make_client(S3Store(kind="s3", endpoint_url="http://127.0.0.1:9", max_workers=16))
        assert ("standard", 32) == (client.meta.config.retries["mode"], client.meta.config.max_pool_connections)
