"""Lines logged on the run's other threads (the ledger relay, the S3 pool and lister) carry the run's context."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import structlog

from retentiond.logs import ContextThreadPool, carry_context, log_context
from tests.stores.s3.conftest import S3Env, s3_category


class Seen(logging.Handler):
    """Remembers, per record, the thread that logged it and the log context bound there at that moment."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, dict[str, object]]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Record the thread's name and its structlog context variables."""
        with self._lock:
            self.lines.append((record.threadName or "", dict(structlog.contextvars.get_contextvars())))


@pytest.fixture
def seen() -> Iterator[Seen]:
    """botocore's debug lines and SQLAlchemy's statement lines (ledger appends), as :class:`Seen` records."""
    handler = Seen()
    loggers = [logging.getLogger("botocore"), logging.getLogger("sqlalchemy.engine")]
    levels = [lg.level for lg in loggers]
    loggers[0].setLevel(logging.DEBUG)
    loggers[1].setLevel(logging.INFO)
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


class TestRunThreads:
    """A real S3 run: every line its relay, request pool and lister log names the run, category and target."""

    def test_relay_pool_and_lister_lines_carry_the_context(self, s3env: S3Env, seen: Seen) -> None:
        """Relay lines (ledger appends) carry run_id, category and target; the S3 threads' lines run_id and category
        (the target too once its batches run)."""
        s3env.bucket()
        for i in range(3):
            s3env.history(f"tickets/a/{i}.txt", [300, 200])
        s3env.configure({"support": s3_category()}, store={"max_workers": 2})
        runner = s3env.runner()
        report = runner.execute()
        assert {} == report.failed
        assert 6 == report.targets[0].acted
        relay = [ctx for thread, ctx in seen.lines if thread == "retentiond-relay"]
        s3 = [ctx for thread, ctx in seen.lines if thread.startswith("retentiond-s3-")]
        assert relay, "the relay thread logged no ledger statement"
        assert {thread.rstrip("_0123456789") for thread, _ in seen.lines if thread.startswith("retentiond-s3-")} == {
            "retentiond-s3-files",
            "retentiond-s3-list",
        }
        expected = {"run_id": runner.run_id, "category": "support", "target": "files/media/tickets/"}
        assert [expected] == [dict(x) for x in {tuple(sorted(ctx.items())) for ctx in relay}]
        assert [] == [ctx for ctx in s3 if (ctx.get("run_id"), ctx.get("category")) != (runner.run_id, "support")]
        assert {"files/media/tickets/"} == {ctx["target"] for ctx in s3 if "target" in ctx}


class TestCarryContext:
    """The helpers hand the submitting thread's context to the thread that runs the work."""

    def test_pool_tasks_run_in_the_submitters_context(self) -> None:
        """A ContextThreadPool task sees the context bound when it was submitted; a plain pool's task sees none."""

        def bound() -> dict[str, object]:
            return dict(structlog.contextvars.get_contextvars())

        with ContextThreadPool(max_workers=2) as pool, ThreadPoolExecutor(max_workers=1) as plain:
            with log_context(run_id="r1", category="c", target="s/t"):
                carried = list(pool.map(lambda _: bound(), range(4)))
                bare = plain.submit(bound).result()
            with log_context(run_id="r2"):
                later = pool.submit(bound).result()
        assert [{"run_id": "r1", "category": "c", "target": "s/t"}] * 4 == carried
        assert {} == bare
        assert {"run_id": "r2"} == later

    def test_thread_target_runs_in_the_starters_context(self) -> None:
        """A thread started with ``carry_context(fn)`` runs ``fn`` in the context of the code that made it."""
        out: list[dict[str, object]] = []
        with log_context(run_id="r3", category="c"):
            thread = threading.Thread(target=carry_context(lambda: out.append(structlog.contextvars.get_contextvars())))
        thread.start()
        thread.join()
        assert [{"run_id": "r3", "category": "c"}] == out
