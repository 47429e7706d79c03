"""`audit find` of a deleted S3 object by bucket and key alone, after a real run (issue 11, item 6)."""

from __future__ import annotations

import json

from tests.stores.s3.conftest import S3Env, s3_category


class TestFindByKeyAlone:
    """The run records an object ref beside each version ref; find lists every version's outcome."""

    def test_deleted_object_found_without_version_id(self, s3env: S3Env) -> None:
        s3env.bucket()
        old = s3env.history("tickets/a/1.txt", [400, 300])
        s3env.put("tickets/a/2.txt", 5)
        s3env.configure({"support": s3_category()})
        assert {} == s3env.run().failed
        found = s3env.cli(
            "audit",
            "find",
            "--store",
            "files",
            "--bucket",
            "media",
            "--object-key",
            "tickets/a/1.txt",
            "--format",
            "json",
        )
        kept = s3env.cli("audit", "find", "--store", "files", "--bucket", "media", "--object-key", "tickets/a/2.txt")
        entries = json.loads(found.stdout)["entries"]
        assert (0, ["deleted"]) == (found.returncode, [e["fields"]["outcome"] for e in entries])
        assert sorted(r.hex() for r in s3env.refs_of([("tickets/a/1.txt", v) for v in old])) == sorted(
            entries[0]["version_refs"]
        )
        assert kept.stdout.startswith("no outcome recorded")
        assert "Object in files/media, evaluated at" in kept.stdout  # the present state, from explain
        assert 0 == s3env.cli("audit", "verify").returncode
