"""Injected S3 faults converge on the right final state and the right ledger."""

from __future__ import annotations

from itertools import pairwise

import pytest

from retentiond.stores.s3 import listing, retry
from tests.stores.s3.conftest import S3Env, s3_category
from tests.stores.s3.faults import Faults, delete_result, faults, objects_of, response

__all__ = ["faults"]


def _seed(env: S3Env, keys: int = 6) -> list[tuple[str, str | None]]:
    env.bucket()
    items: list[tuple[str, str | None]] = []
    for i in range(keys):
        key = f"tickets/{i:03d}"
        items += [(key, v) for v in env.history(key, [100, 90])]
    env.put("tickets/zz-keep", 1)
    env.configure({"support": s3_category()})
    return items


def _converged(env: S3Env, items: list[tuple[str, str | None]], failed_batches: int = 0) -> None:
    assert ["tickets/zz-keep"] == [k for k, _ in env.versions()]
    assert env.refs_of(items) == sorted(env.audited())  # each deleted version exactly once
    assert failed_batches == len(env.batches("failed"))


class TestDeleteFaults:
    """Per-key errors, throttling and connection resets on DeleteObjects."""

    def test_per_key_internal_error_in_200(self, s3env: S3Env, faults: Faults) -> None:
        """Keys answered InternalError inside a 200 are retried; those the response listed deleted are audited once."""
        items = _seed(s3env)
        faults.on("DeleteObjects", faults.half_internal_error)
        report = s3env.run()
        assert {} == report.failed
        _converged(s3env, items)
        assert 2 == faults.calls["DeleteObjects"]

    def test_slow_down_503_backoff_grows(self, s3env: S3Env, faults: Faults) -> None:
        """503 SlowDown is retried with waits that grow each time, then succeeds."""
        items = _seed(s3env)
        for _ in range(4):
            faults.on("DeleteObjects", faults.slow_down_503)
        s3env.run()
        _converged(s3env, items)
        assert 4 == len(faults.sleeps)
        assert all(a < b for a, b in pairwise(faults.sleeps)), faults.sleeps

    def test_backoff_grows_across_retry_layers(self, s3env: S3Env, faults: Faults) -> None:
        """A per-key retry then throttling: one growing sequence of waits for the chunk, not a restart at 0.2 s."""
        items = _seed(s3env, keys=1)
        faults.on("DeleteObjects", faults.all_internal_error)
        for _ in range(3):
            faults.on("DeleteObjects", faults.slow_down_503)
        s3env.run()
        _converged(s3env, items)
        assert (5, 4) == (faults.calls["DeleteObjects"], len(faults.sleeps))
        assert all(a < b for a, b in pairwise(faults.sleeps)), faults.sleeps

    def test_one_retry_budget_per_chunk(self, s3env: S3Env, faults: Faults) -> None:
        """Per-key errors then endless throttling: at most ATTEMPTS sends for the chunk (not one budget per layer)."""
        items = _seed(s3env, keys=1)
        faults.on("DeleteObjects", faults.all_internal_error)
        for _ in range(40):
            faults.on("DeleteObjects", faults.slow_down_503)
        report = s3env.run()
        assert ["support"] == list(report.failed)
        assert retry.ATTEMPTS == faults.calls["DeleteObjects"]
        assert all(a < b for a, b in pairwise(faults.sleeps)), faults.sleeps
        assert s3env.refs_of(items) == sorted(r for e in s3env.batches("failed") for r in e.refs)

    def test_throttled_request_does_not_stall_the_others(
        self, s3env: S3Env, faults: Faults, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While one request waits out its backoff, the other worker's request goes through."""
        import time

        from retentiond.stores.s3 import retry

        items = _seed(s3env)
        s3env.configure({"support": s3_category()}, batch_size=6, store={"max_workers": 2})
        monkeypatch.setattr(retry, "sleep", lambda seconds: time.sleep(0.5))
        faults.on("DeleteObjects", faults.slow_down_503)
        s3env.run()
        _converged(s3env, items)
        throttled = faults.sent[0][1]
        retried_at = [i for i, (_, key) in enumerate(faults.sent) if key == throttled][1]
        assert [1] == [i for i, (_, key) in enumerate(faults.sent) if key != throttled]
        assert 2 == retried_at

    def test_slow_down_inside_200(self, s3env: S3Env, faults: Faults) -> None:
        """SlowDown in the body of a 200 is throttling too: retried, never mistaken for success."""
        items = _seed(s3env)
        faults.on("DeleteObjects", faults.slow_down_200)
        faults.on("DeleteObjects", faults.slow_down_200)
        s3env.run()
        _converged(s3env, items)
        assert 2 == len(faults.sleeps)

    def test_reset_after_send_resolved_by_listing(self, s3env: S3Env, faults: Faults) -> None:
        """A connection reset after the server deleted: the listing shows them gone; audited once, not resent."""
        items = _seed(s3env)
        faults.on("DeleteObjects", faults.reset_after_send)
        s3env.run()
        _converged(s3env, items)
        assert 1 == faults.calls["DeleteObjects"]

    def test_reset_with_nothing_done_is_retried(self, s3env: S3Env, faults: Faults) -> None:
        """A reset where the server did nothing: the listing shows them present; they are sent again."""
        items = _seed(s3env)
        faults.on("DeleteObjects", faults.reset_before_effect)
        s3env.run()
        _converged(s3env, items)
        assert 2 == faults.calls["DeleteObjects"]

    def test_persistent_per_key_errors_fail(self, s3env: S3Env, faults: Faults) -> None:
        """Per-key errors that never clear end ``failed`` (audited with refs), never ``deleted``; the category fails."""
        items = _seed(s3env, keys=1)
        for _ in range(10):
            faults.on("DeleteObjects", faults.all_internal_error)
        report = s3env.run()
        assert ["support"] == list(report.failed)
        assert [] == s3env.audited()
        assert s3env.refs_of(items) == sorted(r for e in s3env.batches("failed") for r in e.refs)
        assert 3 == len(s3env.versions())


class TestVerifyDeletes:
    """``verify_deletes = true``: a version the response calls deleted is audited so only if a listing agrees."""

    def test_false_deleted_claim_is_caught(self, s3env: S3Env, faults: Faults) -> None:
        """Versions a response calls deleted that are still there end ``failed`` (verify_deletes), never ``deleted``."""
        items = _seed(s3env, keys=2)
        s3env.configure({"support": s3_category()}, store={"verify_deletes": True})
        faults.on("DeleteObjects", lambda request: response(200, delete_result(objects_of(request), [])))
        report = s3env.run()
        assert ["support"] == list(report.failed)
        assert [] == s3env.audited()
        assert s3env.refs_of(items) == sorted(r for e in s3env.batches("failed") for r in e.refs)
        assert {} == s3env.run().failed  # the next run deletes them for real
        _converged(s3env, items, failed_batches=1)


class TestListingFaults:
    """ListObjectVersions failing mid-way."""

    def test_page_two_fails_then_recovers(self, s3env: S3Env, faults: Faults, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 500 on page 2 is retried from page 2's marker; the run completes."""
        monkeypatch.setattr(listing, "PAGE_SIZE", 4)
        items = _seed(s3env)
        original = faults._before_send
        seen = {"n": 0}

        def page_two(request: object, **kwargs: object) -> object:
            if str(kwargs.get("event_name", "")).endswith("ListObjectVersions") and "key-marker" in str(
                getattr(request, "url", "")
            ):
                seen["n"] += 1
                if seen["n"] <= 2:
                    return faults.internal_error_500(request)
            return original(request, **kwargs)

        monkeypatch.setattr(faults, "_before_send", page_two)
        s3env.run()
        _converged(s3env, items)
        assert 2 == len(faults.sleeps)

    def test_page_two_keeps_failing(self, s3env: S3Env, faults: Faults, monkeypatch: pytest.MonkeyPatch) -> None:
        """When page 2 never answers, nothing is deleted, the category fails; the next run converges."""
        monkeypatch.setattr(listing, "PAGE_SIZE", 4)
        items = _seed(s3env)
        original = faults._before_send
        broken = {"on": True}

        def page_two(request: object, **kwargs: object) -> object:
            if broken["on"] and "key-marker" in str(getattr(request, "url", "")):
                return faults.internal_error_500(request)
            return original(request, **kwargs)

        monkeypatch.setattr(faults, "_before_send", page_two)
        report = s3env.run()
        assert ["support"] == list(report.failed)
        assert 13 == len(s3env.versions())
        assert [0] == [e.fields["count"] for e in s3env.batches("failed")]
        broken["on"] = False
        assert {} == s3env.run().failed
        _converged(s3env, items, failed_batches=1)
