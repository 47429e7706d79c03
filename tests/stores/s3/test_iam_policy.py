"""The IAM policy of `retentiond print-iam-policy`, enforced by moto's IAM for an IAM user holding only it.

moto evaluates IAM for S3 with three deviations from AWS, all visible in its source
(moto/iam/access_control.py, moto/s3/responses.py ACTION_MAP), which :func:`for_moto` adapts:

- a statement without ``Resource`` counts as matching whatever its ``Effect`` (so a ``Deny`` with
  ``NotResource`` would *allow*): those statements are dropped for moto, and "no delete outside the
  prefix" is then enforced by the absence of an Allow;
- DeleteObjects is authorized as ``s3:DeleteObject`` on the bucket ARN, not per key: the delete
  Allow also names the bucket for moto;
- PUT ?legal-hold / ?retention are authorized as ``s3:PutObject``, and a governance bypass is not
  an action moto checks (``s3:BypassGovernanceRetention``): the legal-hold change is denied here
  because no PutObject is allowed on the target prefix; the bypass denial is checked on the
  document only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retentiond.config.loader import load_config
from retentiond.stores.s3.iam import iam_policy
from tests.stores.s3.conftest import S3Env, s3_category


def for_moto(policy: dict[str, Any]) -> dict[str, Any]:
    """Return ``policy`` adapted to moto's evaluator (see the module docstring); AWS needs none of it."""
    out = copy.deepcopy(policy)
    out["Statement"] = [s for s in out["Statement"] if "Resource" in s]
    for statement in out["Statement"]:
        if statement["Sid"] == "DeleteInTargetPrefixes":
            buckets = sorted({r.split(":::", 1)[1].split("/", 1)[0] for r in statement["Resource"]})
            statement["Resource"] = [*statement["Resource"], *[f"arn:aws:s3:::{b}" for b in buckets]]
    return out


class Enforcement:
    """Switches moto's IAM enforcement (process-wide: the moto server runs in this process)."""

    def __init__(self, endpoint: str) -> None:
        from moto import settings

        self.settings = settings
        self.previous = settings.INITIAL_NO_AUTH_ACTION_COUNT
        self.iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )

    def enforce(self, policy: dict[str, Any]) -> tuple[str, str]:
        """Create an IAM user holding only ``policy``, enforce IAM; return the user's access key and secret."""
        from moto.core.authorization import ActionAuthenticatorMixin

        self.iam.create_user(UserName="retentiond")
        arn = self.iam.create_policy(PolicyName="retentiond", PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
        self.iam.attach_user_policy(UserName="retentiond", PolicyArn=arn)
        key = self.iam.create_access_key(UserName="retentiond")["AccessKey"]
        self.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0
        return key["AccessKeyId"], key["SecretAccessKey"]

    def relax(self) -> None:
        """Stop enforcing IAM (as before the test)."""
        from moto.core.authorization import ActionAuthenticatorMixin

        self.settings.INITIAL_NO_AUTH_ACTION_COUNT = self.previous
        ActionAuthenticatorMixin.request_count = 0


@pytest.fixture
def iam(s3env: S3Env) -> Iterator[Enforcement]:
    """IAM enforcement on the moto server, always switched off after the test."""
    enforcement = Enforcement(s3env.endpoint)
    yield enforcement
    enforcement.relax()


def _code(call: Any, **kwargs: Any) -> str:
    try:
        call(**kwargs)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "allowed"


class TestGeneratedIamPolicy:
    """A user with only the generated policy runs a full pass; the dangerous calls are denied."""

    def test_run_and_denials(self, s3env: S3Env, iam: Enforcement, monkeypatch: pytest.MonkeyPatch) -> None:
        """Deletes expired versions in the prefix, anchors its checkpoint; refused elsewhere."""
        s3env.bucket("media", lock=True)
        s3env.bucket("anchors", lock=True)
        s3env.configure({"tickets": s3_category(retain="30d")})
        text = s3env.config_path.read_text(encoding="utf-8")
        s3env.config_path.write_text(
            text + '\n[audit.anchor]\nstore = "files"\nbucket = "anchors"\nretain_days = 1\n', encoding="utf-8"
        )
        s3env.put("tickets/old.txt", 100)
        s3env.put("tickets/new.txt", 1)
        outside = s3env.put("other/keep.txt", 100)
        locked = s3env.client.put_object(
            Bucket="media",
            Key="tickets/locked.txt",
            Body=b"x",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=5),
        )["VersionId"]
        policy = iam_policy(load_config(s3env.config_path).settings, "files")
        key_id, secret = iam.enforce(for_moto(policy))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)

        report = s3env.run()
        user = boto3.client(
            "s3",
            endpoint_url=s3env.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        denied = {
            "legal hold": _code(
                user.put_object_legal_hold, Bucket="media", Key="tickets/new.txt", LegalHold={"Status": "ON"}
            ),
            "lifecycle": _code(
                user.put_bucket_lifecycle_configuration,
                Bucket="media",
                LifecycleConfiguration={
                    "Rules": [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]
                },
            ),
            "bucket policy": _code(user.put_bucket_policy, Bucket="media", Policy=json.dumps(policy)),
            "delete outside the prefix": _code(
                user.delete_object, Bucket="media", Key="other/keep.txt", VersionId=str(outside)
            ),
        }
        assert {k: "AccessDenied" for k in denied} == denied
        iam.relax()
        keys = {k for k, _ in s3env.versions()}
        anchored = s3env.client.list_objects_v2(Bucket="anchors").get("KeyCount", 0)
        never = next(s for s in policy["Statement"] if s["Sid"] == "NeverChangeLocksOrBucketRules")
        assert (0, {"tickets/new.txt", "tickets/locked.txt", "other/keep.txt"}, True, True) == (
            report.exit_code,
            keys,
            anchored > 0,
            {"s3:BypassGovernanceRetention", "s3:PutObjectLegalHold", "s3:PutLifecycleConfiguration"}
            <= set(never["Action"]),
        )
        assert (
            "GOVERNANCE"
            == s3env.client.head_object(Bucket="media", Key="tickets/locked.txt", VersionId=locked)["ObjectLockMode"]
        )
