"""The S3 engine end to end on a moto server: every copy deleted, prior versions, scope, holds, ages."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from retentiond.stores.s3 import listing
from tests.stores.s3.conftest import S3Env, hold, s3_category


class TestEveryCopy:
    """SPEC §4 rule 6: an expired object loses every version and delete marker."""

    def test_expired_object_loses_every_version_and_marker(self, s3env: S3Env) -> None:
        """An expired current version takes its prior versions and markers with it; the ledger names each one."""
        s3env.bucket()
        old = s3env.history("tickets/a/1.txt", [400, 300])
        marker = s3env.delete_marker("tickets/a/1.txt", 250)
        current = s3env.put("tickets/a/1.txt", 200)
        fresh = s3env.put("tickets/a/2.txt", 5)
        s3env.configure({"support": s3_category()})
        report = s3env.run()
        assert {} == report.failed
        assert {("tickets/a/2.txt", fresh)} == s3env.versions()
        assert set() == s3env.markers()
        gone = [("tickets/a/1.txt", v) for v in [*old, marker, current]]
        assert s3env.refs_of(gone) == sorted(s3env.audited())
        assert 4 == report.targets[0].acted
        verified = s3env.cli("audit", "verify")
        assert 0 == verified.returncode, verified.stdout + verified.stderr

    def test_prior_versions_expire_after_they_became_noncurrent(self, s3env: S3Env) -> None:
        """A noncurrent version goes prior_versions after the next version replaced it; younger ones stay."""
        s3env.bucket()
        v1, v2, v3, v4 = s3env.history("tickets/a/1.txt", [20, 15, 8, 1])
        s3env.configure({"support": s3_category(prior_versions="10d")})
        report = s3env.run()
        # v1 replaced 15 days ago, v2 8 days ago, v3 1 day ago: only v1 is past 10 days.
        assert {("tickets/a/1.txt", v) for v in (v2, v3, v4)} == s3env.versions()
        assert s3env.refs_of([("tickets/a/1.txt", v1)]) == sorted(s3env.audited())
        assert (0, 1) == (report.targets[0].acted, report.targets[0].prior_versions_deleted)

    def test_deleted_object_versions_and_orphaned_marker_go(self, s3env: S3Env) -> None:
        """Versions behind a delete marker expire; the marker left with nothing behind it goes too."""
        s3env.bucket()
        s3env.history("tickets/a/1.txt", [100, 90])
        s3env.delete_marker("tickets/a/1.txt", 60)
        orphan = s3env.put("tickets/b/2.txt", 1)
        s3env.delete_marker("tickets/b/2.txt", 1)
        s3env.client.delete_object(Bucket="media", Key="tickets/b/2.txt", VersionId=orphan)  # a marker over nothing now
        s3env.configure({"support": s3_category(prior_versions="10d")})
        s3env.run()
        assert set() == s3env.versions()

    def test_marker_stays_while_a_version_behind_it_is_kept(self, s3env: S3Env) -> None:
        """A delete marker is not removed while a version behind it remains (it would undelete the object)."""
        s3env.bucket()
        s3env.history("tickets/a/1.txt", [100, 5])
        marker = s3env.delete_marker("tickets/a/1.txt", 1)
        s3env.configure({"support": s3_category(prior_versions="10d")})
        s3env.run()
        assert {("tickets/a/1.txt", marker)} == s3env.markers()
        assert 3 == len(s3env.versions())

    def test_unversioned_bucket(self, s3env: S3Env) -> None:
        """In a bucket that was never versioned, expired keys are deleted by key (ListObjectsV2)."""
        s3env.bucket(versioned=False)
        s3env.put("tickets/old", 100)
        s3env.put("tickets/new", 1)
        s3env.configure({"support": s3_category()})
        s3env.run()
        assert {("tickets/new", "null")} == s3env.versions()
        assert [s3env.ref("tickets/old", None)] == s3env.audited()

    def test_suspended_versioning_null_versions(self, s3env: S3Env) -> None:
        """A bucket whose versioning was suspended: versions from before and ``null`` versions from after all go."""
        from tests.stores.s3.conftest import backdate

        s3env.bucket()
        old = s3env.put("tickets/a", 100)
        s3env.client.put_bucket_versioning(Bucket="media", VersioningConfiguration={"Status": "Suspended"})
        s3env.client.put_object(Bucket="media", Key="tickets/b", Body=b"y")
        backdate("media", "tickets/b", "null", s3env.now - timedelta(days=90))
        s3env.configure({"support": s3_category()})
        s3env.run()
        assert set() == s3env.versions()
        assert s3env.refs_of([("tickets/a", old), ("tickets/b", "null")]) == sorted(s3env.audited())

    def test_keys_with_special_characters(self, s3env: S3Env) -> None:
        """Spaces, plus signs, XML metacharacters and non-ASCII survive listing (url-encoded) and DeleteObjects."""
        s3env.bucket()
        keys = ["tickets/a b+c/ü&<>'\".txt", "tickets/%20literal", "tickets/日本/ファイル"]
        for key in keys:
            s3env.history(key, [100, 90])
        s3env.put("tickets/a b+c/keep", 1)
        s3env.configure({"support": s3_category()})
        report = s3env.run()
        assert {} == report.failed
        assert ["tickets/a b+c/keep"] == [k for k, _ in s3env.versions()]
        assert 6 == len(set(s3env.audited()))

    def test_many_keys_over_several_pages_and_requests(self, s3env: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """Keys whose versions span listing pages, several requests per batch: every expired version goes once."""
        monkeypatch.setattr(listing, "PAGE_SIZE", 50)  # 3 versions per key: page boundaries split keys
        s3env.bucket()
        for i in range(150):
            s3env.history(f"tickets/{i:04d}", [100, 90, 80])
        keep = s3env.put("tickets/keep", 1)
        s3env.configure({"support": s3_category()}, batch_size=100)
        report = s3env.run()
        assert {("tickets/keep", keep)} == s3env.versions()
        assert 450 == report.targets[0].acted
        assert 450 == len(set(s3env.audited()))
        assert 450 == len(s3env.audited())
        assert all(e.fields["count"] <= 100 for e in s3env.batches("deleted"))


class TestScope:
    """The prefix bounds everything: ``tickets/`` never touches ``tickets-archive/`` or ``Tickets/``."""

    def test_prefix_scoping(self, s3env: S3Env) -> None:
        """Only keys under the prefix are listed and deleted."""
        s3env.bucket()
        for key in ("tickets/x", "tickets-archive/x", "Tickets/x", "other/tickets/x"):
            s3env.put(key, 100)
        s3env.configure({"support": s3_category()})
        s3env.run()
        assert ["Tickets/x", "other/tickets/x", "tickets-archive/x"] == sorted(k for k, _ in s3env.versions())

    def test_ledger_names_bucket_and_prefix(self, s3env: S3Env) -> None:
        """Batch entries carry the bucket as target and the prefix."""
        s3env.bucket()
        s3env.put("tickets/x", 100)
        s3env.configure({"support": s3_category()})
        s3env.run()
        (entry,) = s3env.batches("deleted")
        assert ("media", "tickets/", "files") == (entry.fields["target"], entry.fields["prefix"], entry.fields["store"])


class TestHolds:
    """Holds by category, subject pattern and tax floor are re-checked before each request."""

    def test_subject_hold_by_pattern(self, s3env: S3Env) -> None:
        """A subject hold keeps every version of its subject's keys, and only those; held counts are audited."""
        s3env.bucket()
        s3env.history("tickets/acct_1/a", [100, 90])
        s3env.put("tickets/acct_2/b", 100)
        s3env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1"])])
        s3env.configure({"support": s3_category(subject_pattern="^tickets/(?P<subject>[^/]+)/")})
        report = s3env.run()
        assert ["tickets/acct_1/a", "tickets/acct_1/a"] == sorted(k for k, _ in s3env.versions())
        assert {"LIT-1": 2} == report.targets[0].held
        assert [2] == [e.fields["count"] for e in s3env.batches("held")]

    def test_long_run_of_held_keys_does_not_end_the_batches(self, s3env: S3Env) -> None:
        """Many held keys in a row (more than a batch) are skipped over; expired keys after them still go."""
        s3env.bucket()
        for i in range(10):
            s3env.put(f"tickets/acct_1/{i}", 100)
        for i in range(3):
            s3env.put(f"tickets/acct_2/{i}", 100)
        s3env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1"])])
        s3env.configure(
            {"support": s3_category(subject_pattern="^tickets/(?P<subject>[^/]+)/")},
            batch_size=2,
            store={"max_workers": 1},
        )
        report = s3env.run()
        assert (3, {"LIT-1": 10}) == (report.targets[0].acted, report.targets[0].held)
        assert 10 == len(s3env.versions())

    def test_subject_hold_without_pattern_fails_closed(self, s3env: S3Env) -> None:
        """Without subject_pattern retentiond cannot tell whose data a key is: a subject hold keeps everything."""
        s3env.bucket()
        s3env.put("tickets/acct_2/b", 100)
        s3env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1"])])
        s3env.configure({"support": s3_category()})
        s3env.run()
        assert 1 == len(s3env.versions())

    def test_key_not_matching_pattern_fails_closed(self, s3env: S3Env) -> None:
        """A key the pattern does not match has an unknown subject: a subject hold keeps it."""
        s3env.bucket()
        s3env.put("tickets/loose-file", 100)
        s3env.put("tickets/acct_2/b", 100)
        s3env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1"])])
        s3env.configure({"support": s3_category(subject_pattern="^tickets/(?P<subject>[^/]+)/")})
        s3env.run()
        assert ["tickets/loose-file"] == [k for k, _ in s3env.versions()]

    def test_tax_floor_keeps_younger_objects(self, s3env: S3Env) -> None:
        """keep_younger_than holds objects younger than the floor; older expired ones go."""
        s3env.bucket()
        s3env.put("tickets/young", 100)
        s3env.put("tickets/old", 500)
        s3env.write_holds([hold("TAX", ["support"], kind="tax", keep_younger_than="1y")])
        s3env.configure({"support": s3_category()})
        s3env.run()
        assert ["tickets/young"] == [k for k, _ in s3env.versions()]

    def test_longest_retention_wins(self, s3env: S3Env) -> None:
        """A key two categories cover is deleted only when both have expired it."""
        s3env.bucket()
        s3env.put("tickets/a/x", 100)
        s3env.put("tickets/b/x", 100)
        s3env.configure(
            {"support": s3_category(retain="30d"), "legal_b": s3_category(prefix="tickets/b/", retain="1y")}
        )
        s3env.run(categories=["support"])
        assert ["tickets/b/x"] == [k for k, _ in s3env.versions()]


class TestAgeSources:
    """``age = tag:...`` / ``metadata:...``: the value is the clock; LastModified never stands in for it."""

    def test_tag_age(self, s3env: S3Env) -> None:
        """Old LastModified with a recent tag is kept; recent LastModified with an old tag goes; no tag: kept."""
        s3env.bucket()
        old_tag = (s3env.now - timedelta(days=100)).isoformat().replace("+00:00", "Z")
        new_tag = (s3env.now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
        s3env.put("tickets/old-file-new-tag", 300, tags={"closed-at": new_tag})
        s3env.put("tickets/new-file-old-tag", 1, tags={"closed-at": old_tag})
        s3env.put("tickets/untagged", 300)
        s3env.put("tickets/naive-tag", 300, tags={"closed-at": "2020-01-01T00:00:00"})
        s3env.configure({"support": s3_category(age="tag:closed-at")})
        s3env.run()
        assert ["tickets/naive-tag", "tickets/old-file-new-tag", "tickets/untagged"] == sorted(
            k for k, _ in s3env.versions()
        )

    def test_metadata_age(self, s3env: S3Env) -> None:
        """The metadata value decides, case-insensitively by name."""
        s3env.bucket()
        s3env.put("tickets/a", 1, metadata={"closed-at": (s3env.now - timedelta(days=100)).isoformat()})
        s3env.put("tickets/b", 100, metadata={"closed-at": (s3env.now - timedelta(days=1)).isoformat()})
        s3env.configure({"support": s3_category(age="metadata:Closed-At")})
        s3env.run()
        assert ["tickets/b"] == [k for k, _ in s3env.versions()]

    def test_cutoff_boundary(self, s3env: S3Env) -> None:
        """One second older than the cutoff goes; one second younger stays."""
        s3env.bucket()
        s3env.put("tickets/older", 30 + 1 / 86400)
        s3env.put("tickets/younger", 30 - 1 / 86400)
        s3env.configure({"support": s3_category(retain="30d")})
        s3env.run()
        assert ["tickets/younger"] == [k for k, _ in s3env.versions()]


class TestPlan:
    """``plan`` counts what ``run`` then does, and ``--dry-run`` deletes nothing."""

    def test_plan_equals_run(self, s3env: S3Env) -> None:
        """Eligible, held and prior-version figures of the plan match the run's."""
        s3env.bucket()
        s3env.history("tickets/acct_1/a", [100, 90])
        s3env.history("tickets/acct_2/b", [100, 90, 80])
        s3env.history("tickets/acct_3/c", [100, 50, 1])
        s3env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1"])])
        s3env.configure({"support": s3_category(prior_versions="20d", subject_pattern="^tickets/(?P<subject>[^/]+)/")})
        plan = s3env.run(mode="plan").targets[0]
        dry = s3env.run(mode="dry-run").targets[0]
        assert 8 == len(s3env.versions())
        run = s3env.run().targets[0]
        assert (8, 3, {"LIT-1": 2}, 1) == (plan.total, plan.eligible, plan.held, plan.prior_versions_eligible)
        assert (3, 1) == (dry.acted, dry.prior_versions_deleted)
        assert (3, 1, {"LIT-1": 2}) == (run.acted, run.prior_versions_deleted, run.held)

    def test_guard_counts_versions(self, s3env: S3Env) -> None:
        """The blast-radius guard stops a run that would delete more than max_fraction_per_run of the versions."""
        s3env.bucket()
        s3env.put("tickets/a", 100)
        s3env.put("tickets/b", 1)
        s3env.configure({"support": s3_category()}, max_fraction_per_run=0.25)
        report = s3env.run()
        assert ["support"] == list(report.failed)
        assert 2 == len(s3env.versions())
        assert ["stopped"] == [e.fields["decision"] for e in s3env.entries("guard_tripped")]

    def test_cli_plan_json(self, s3env: S3Env) -> None:
        """``retentiond plan --format json`` reports S3 targets with bucket and counts."""
        import json

        s3env.bucket()
        s3env.put("tickets/a", 100)
        s3env.configure({"support": s3_category()})
        done = s3env.cli("--format", "json", "plan")
        assert 0 == done.returncode, done.stderr
        target: dict[str, Any] = json.loads(done.stdout)["targets"][0]
        assert ("media", 1, 1, 0) == (target["target"], target["total"], target["eligible"], target["blocked"])


class TestExplain:
    """``retentiond explain --store S --bucket B --object-key K`` explains every version."""

    def test_explain_versions(self, s3env: S3Env) -> None:
        """Current and prior versions get their own decision, held keys name the hold."""
        s3env.bucket()
        s3env.history("tickets/acct_1/a", [100, 90])
        s3env.history("tickets/acct_2/b", [20, 15, 1])
        s3env.write_holds([hold("LIT-1", ["support"], subjects=["acct_1"])])
        s3env.configure({"support": s3_category(prior_versions="10d", subject_pattern="^tickets/(?P<subject>[^/]+)/")})
        held = s3env.cli(
            "--format", "json", "explain", "--store", "files", "--bucket", "media", "--object-key", "tickets/acct_1/a"
        )
        mixed = s3env.cli("explain", "--store", "files", "--bucket", "media", "--object-key", "tickets/acct_2/b")
        assert 0 == held.returncode, held.stderr
        (line,) = json.loads(held.stdout)["categories"]
        assert (["LIT-1"], ["is kept: held by LIT-1"] * 2) == (line["holds"], [v["decision"] for v in line["versions"]])
        assert 0 == mixed.returncode, mixed.stderr
        decisions = [t.split("-> ")[1] for t in mixed.stdout.splitlines() if "-> " in t]
        assert [
            "is kept: not older than the cutoff (or its clock has not started), or another category retains it longer",
            "is kept: not noncurrent for longer than prior versions are kept",
            "would be deleted by the next run",
        ] == decisions

    def test_explain_needs_both_bucket_and_key(self, s3env: S3Env) -> None:
        """Half an S3 address is a usage error (exit 2)."""
        s3env.bucket()
        s3env.configure({"support": s3_category()})
        assert 2 == s3env.cli("explain", "--store", "files", "--bucket", "media").returncode


class TestLiveHolds:
    """A hold saved while a run is in progress protects its keys from the next batch on."""

    def test_hold_added_mid_run(self, s3env: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """After the first batch, a new subject hold keeps the rest of that subject's keys."""
        from retentiond.stores.s3 import requests, worker

        s3env.bucket()
        for i in range(6):
            s3env.put(f"tickets/acct_1/{i}", 100)
        s3env.configure(
            {"support": s3_category(subject_pattern="^tickets/(?P<subject>[^/]+)/")},
            batch_size=2,
            store={"max_workers": 1},
        )
        original = worker.S3Worker._send_all
        calls = {"n": 0}

        def send_all(self: worker.S3Worker, *args: object, **kwargs: object) -> requests.RequestOutcome:
            calls["n"] += 1
            out = original(self, *args, **kwargs)  # type: ignore[arg-type]
            if calls["n"] == 1:
                s3env.write_holds([hold("LIT-NEW", ["support"], subjects=["acct_1"])])
            return out

        monkeypatch.setattr(worker.S3Worker, "_send_all", send_all)
        report = s3env.run()
        assert (2, {"LIT-NEW": 4}) == (report.targets[0].acted, report.targets[0].held)
        assert 4 == len(s3env.versions())
