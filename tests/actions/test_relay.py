"""The relay: outbox rows to the ledger, several in one transaction, rows already there skipped."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from retentiond.actions.relay import Relay, relay_rows
from retentiond.audit import BatchId, Ledger, RefMaker
from retentiond.audit.refs import canonical_key
from retentiond.stores.base import OutcomeRow


class Journal:
    """An in-memory outcome journal: the rows pending and the ids removed."""

    def __init__(self, rows: list[OutcomeRow]) -> None:
        self.rows = list(rows)
        self.removed: list[str] = []

    def pending(self) -> list[OutcomeRow]:
        """Return the rows not removed yet."""
        return [r for r in self.rows if r.batch_id not in self.removed]

    def remove(self, batch_ids: list[str]) -> None:
        """Record the removal of ``batch_ids``."""
        self.removed.extend(batch_ids)


def _row(keys: list[int]) -> OutcomeRow:
    return OutcomeRow(
        batch_id=BatchId.new(),
        run_id="run-1",
        category="support",
        store="app",
        target="tickets",
        action="delete",
        outcome="deleted",
        count=len(keys),
        prior_versions=0,
        refs=b"",
        created_at=datetime.now(UTC),
        keys=json.dumps([canonical_key((k,)) for k in keys]),
    )


class TestRelayRows:
    """relay_rows appends every row once, in order, whatever is in the ledger already."""

    def test_rows_already_appended_are_skipped(self, tmp_path: Path) -> None:
        """After a crash some rows are in the ledger: the others are appended, in order, and all removed."""
        refs = RefMaker(b"k" * 32)
        rows = [_row([3 * i, 3 * i + 1, 3 * i + 2]) for i in range(5)]
        journal = Journal(rows)
        with Ledger.open(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
            relay_rows(ledger, refs, journal, [rows[1], rows[3]], remove=False)
            appended = relay_rows(ledger, refs, journal, rows)
            batches = [e.batch_id for e in ledger.entries()]
        expected = [rows[1].batch_id, rows[3].batch_id] + [rows[i].batch_id for i in (0, 2, 4)]
        assert (3, expected, [r.batch_id for r in rows]) == (appended, batches, journal.removed)


class TestRelayThread:
    """The background relay appends what queued up meanwhile together, in submission order."""

    def test_queued_batches_appended_in_order(self, tmp_path: Path) -> None:
        """Rows submitted while the relay is busy reach the ledger once each, in submission order."""
        refs = RefMaker(b"k" * 32)
        rows = [_row([i]) for i in range(12)]
        journal = Journal(rows)
        with Ledger.open(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
            gate = threading.Event()
            real = ledger.append_many
            sizes: list[int] = []

            def slow(items):  # type: ignore[no-untyped-def]
                gate.wait(5)  # the first append waits until every row is queued or submitting
                sizes.append(len(items))
                return real(items)

            ledger.append_many = slow  # type: ignore[method-assign]
            relay = Relay(ledger, refs)
            submitter = threading.Thread(target=lambda: [relay.submit(journal, [r]) for r in rows])
            submitter.start()
            threading.Timer(0.3, gate.set).start()
            submitter.join(10)
            relay.flush()
            relay.close()
            batches = [e.batch_id for e in ledger.entries()]
        assert [r.batch_id for r in rows] == batches
        assert 12 == sum(sizes) and max(sizes) > 1
