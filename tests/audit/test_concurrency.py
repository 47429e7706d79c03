"""Two writer processes never fork the chain; an interrupted append leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from retentiond.audit import Ledger, RunFinished, VerifyPolicy

#: These tests check the chain under concurrency; what signatures cover is tested elsewhere.
CHAIN_ONLY = VerifyPolicy(keys=None, allow_unsigned_tail=True)

WRITER = textwrap.dedent(
    """
    import sys, time
    from retentiond.audit import Action, Batch, BatchId, Ledger, Outcome, RefMaker
    url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    maker = RefMaker(b"k" * 32)
    with Ledger.open(url) as ledger:
        if len(sys.argv) > 4:
            time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # both start together
        for i in range(count):
            refs = tuple(maker.sql_many("app", "tickets", [(name, i, j) for j in range(3)]))
            ledger.append(Batch(batch_id=BatchId.new(), category="support", store="app", target="tickets",
                                action=Action.DELETE, outcome=Outcome.DELETED, count=3, refs=refs), run_id=name)
    """
)
ROOT = Path(__file__).resolve().parents[2]


class TestConcurrentWriters:
    """Two processes appending 1,000 entries each leave one valid chain of 2,000."""

    def test_two_processes(self, url_factory: Callable[[], str], keys: object) -> None:
        url = url_factory()
        Ledger.open(url).close()  # schema first, so both writers start appending at once
        start_at = str(time.time() + 2.0)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, url, name, "1000", start_at], cwd=ROOT, stderr=subprocess.PIPE, text=True
            )
            for name in ("writer-a", "writer-b")
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert ([0, 0], ["", ""]) == ([p.returncode for p in procs], errors)
        with Ledger.open(url) as ledger:
            result = ledger.verify(policy=CHAIN_ONLY)
            entries = ledger.entries()
            assert (True, 2000, 6000) == (result.ok, result.entries, result.refs)
            assert list(range(1, 2001)) == [e.seq for e in entries]
            assert {"writer-a": 1000, "writer-b": 1000} == dict(Counter(e.run_id for e in entries))
            interleaved = sum(1 for a, b in pairwise(entries) if a.run_id != b.run_id)
            if url.startswith("postgresql"):
                # Row-lock waiters queue fairly in PostgreSQL; SQLite's busy handler is not fair
                # (one writer may take every turn), which is correct but not interleaved.
                assert interleaved > 10


class TestCrashDuringAppend:
    """A failure inside the append transaction leaves no entry, no refs and no gap."""

    def test_failed_append_rolls_back(self, url_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
        from retentiond.audit import ledger as ledger_module

        url = url_factory()
        with Ledger.open(url) as ledger:
            ledger.append(RunFinished(counts={}))
            real_update = ledger_module.update

            def exploding_update(*args: object, **kwargs: object) -> object:
                raise RuntimeError("power cut between the entry insert and the head move")

            monkeypatch.setattr(ledger_module, "update", exploding_update)
            with pytest.raises(RuntimeError):
                ledger.append(RunFinished(counts={"deleted": 1}))
            monkeypatch.setattr(ledger_module, "update", real_update)
            ledger.append(RunFinished(counts={"deleted": 2}))
            assert ([1, 2], True) == ([e.seq for e in ledger.entries()], ledger.verify(policy=CHAIN_ONLY).ok)

    def test_killed_writer_leaves_valid_chain(self, url_factory: Callable[[], str]) -> None:
        url = url_factory()
        Ledger.open(url).close()
        proc = subprocess.Popen([sys.executable, "-c", WRITER, url, "victim", "100000"], cwd=ROOT)

        deadline = time.monotonic() + 30
        with Ledger.open(url) as ledger:
            while ledger.head().seq < 50 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.kill()
            proc.wait()
            result = ledger.verify(policy=CHAIN_ONLY)
            assert (True, ledger.head().seq) == (result.ok, result.entries)


class TestConcurrentOpeners:
    """Openers racing on a ledger file that does not exist yet all get the same ledger."""

    def test_threads_open_a_new_file_at_once(self, tmp_path: Path) -> None:
        """Eight threads opening one new SQLite file together never fail with 'database is locked'."""
        failures: list[BaseException] = []
        for round_ in range(10):
            url = f"sqlite:///{tmp_path / f'race-{round_}.db'}"
            gate = threading.Barrier(8)

            def open_once(url: str = url, gate: threading.Barrier = gate) -> None:
                gate.wait()
                try:
                    Ledger.open(url).close()
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    failures.append(exc)

            threads = [threading.Thread(target=open_once) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        assert [] == [str(f) for f in failures]
