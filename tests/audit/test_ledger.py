"""The ledger API on SQLite and PostgreSQL: appends, reads, find, batches, triggers, checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from retentiond.audit import (
    Action,
    Batch,
    BatchId,
    Checkpoint,
    DuplicateBatch,
    GuardTripped,
    KeyRing,
    Ledger,
    Outcome,
    RefMaker,
    RunFinished,
    Signer,
    VerifyPolicy,
)
from retentiond.audit.canonical import genesis_hash
from retentiond.audit.refs import canonical_key
from retentiond.audit.schema import entries_table, head_table, refs_table
from retentiond.errors import ConfigError, TemporaryFailure


def _batch(
    refmaker: RefMaker, keys: list[int], outcome: Outcome = Outcome.DELETED, batch_id: str | None = None
) -> Batch:
    refs = tuple(refmaker.sql_many("app", "tickets", [(k,) for k in keys]))
    return Batch(
        batch_id=batch_id or BatchId.new(),
        category="support",
        store="app",
        target="tickets",
        action=Action.DELETE,
        outcome=outcome,
        count=len(refs),
        refs=refs,
    )


class TestAppend:
    """Appends are gapless, chained and typed."""

    def test_empty_head_is_genesis(self, url_factory: Callable[[], str]) -> None:
        with Ledger.open(url_factory(), "ledger-a") as ledger:
            assert (0, genesis_hash("ledger-a")) == (ledger.head().seq, ledger.head().hash)

    def test_seq_and_chain(self, url_factory: Callable[[], str], refmaker: RefMaker) -> None:
        with Ledger.open(url_factory()) as ledger:
            first = ledger.append(_batch(refmaker, [1, 2]), run_id="run-1")
            second = ledger.append(RunFinished(counts={"deleted": 2}), run_id="run-1")
            entries = ledger.entries()
            assert ([1, 2], first.hash) == ([e.seq for e in entries], entries[1].prev_hash)
            assert (second.seq, second.hash) == (ledger.head().seq, ledger.head().hash)

    def test_only_events_accepted(self, url_factory: Callable[[], str]) -> None:
        with Ledger.open(url_factory()) as ledger:
            for bad in ({"event": "batch"}, "batch", b"x"):
                with pytest.raises(TypeError):
                    ledger.append(bad)
            assert 0 == ledger.head().seq

    def test_checkpoint_not_appendable_directly(self, url_factory: Callable[[], str]) -> None:
        cp = Checkpoint(
            ledger_id="retentiond",
            covered_seq=0,
            covered_hash="0" * 64,
            signed_at=datetime.now(UTC),
            key_fingerprint="0" * 64,
            signature="0" * 128,
        )
        with Ledger.open(url_factory()) as ledger, pytest.raises(TypeError):
            ledger.append(cp)

    def test_no_update_or_delete_methods(self) -> None:
        assert [] == [
            m for m in dir(Ledger) if any(w in m.lower() for w in ("update", "delete", "remove", "truncate", "erase"))
        ]

    def test_duplicate_batch_refused_without_gap(self, url_factory: Callable[[], str], refmaker: RefMaker) -> None:
        with Ledger.open(url_factory()) as ledger:
            bid = BatchId.new()
            ledger.append(_batch(refmaker, [1], batch_id=bid))
            with pytest.raises(DuplicateBatch):
                ledger.append(_batch(refmaker, [1], batch_id=bid))
            ledger.append(RunFinished(counts={}))
            assert ([1, 2], True, False) == (
                [e.seq for e in ledger.entries()],
                ledger.has_batch(bid),
                ledger.has_batch(BatchId.new()),
            )

    def test_typed_round_trip(self, url_factory: Callable[[], str]) -> None:
        event = GuardTripped(category="support", store="app", target="tickets", would_act=90, total=100, limit=25)
        with Ledger.open(url_factory()) as ledger:
            ledger.append(event, run_id="run-1")
            assert event == ledger.entries()[0].typed()

    def test_ledger_id_mismatch_is_config_error(self, url_factory: Callable[[], str]) -> None:
        url = url_factory()
        Ledger.open(url, "one").close()
        with pytest.raises(ConfigError):
            Ledger.open(url, "two")

    def test_read_only_open_needs_schema(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError):
            Ledger.open(f"sqlite:///{tmp_path}/none.db", create=False)

    def test_unreachable_is_temporary(self) -> None:
        with pytest.raises(TemporaryFailure):
            Ledger.open("postgresql+psycopg://postgres@127.0.0.1:1/nothing")

    def test_append_many_chains_in_order(self, url_factory: Callable[[], str], refmaker: RefMaker) -> None:
        """Several entries in one transaction: consecutive seqs, each chained to the previous; the ledger verifies."""
        with Ledger.open(url_factory()) as ledger:
            ledger.append(RunFinished(counts={}))
            events = [_batch(refmaker, [k, k + 1]) for k in (1, 3, 5)]
            appended = ledger.append_many([(e, "run-1", None) for e in events])
            entries = ledger.entries()
            ok = ledger.verify(policy=VerifyPolicy(keys=None, allow_unsigned_tail=True), deep=True).ok
            assert ([2, 3, 4], [e.hash for e in entries[:3]], [4], True) == (
                [a.seq for a in appended],
                [e.prev_hash for e in entries[1:]],
                [e.seq for e in ledger.find(events[2].refs[1])],
                ok,
            )

    def test_append_many_with_a_duplicate_writes_none(self, url_factory: Callable[[], str], refmaker: RefMaker) -> None:
        """One batch already in the ledger: DuplicateBatch, and none of the others is written."""
        with Ledger.open(url_factory()) as ledger:
            bid = BatchId.new()
            ledger.append(_batch(refmaker, [1], batch_id=bid))
            fresh = _batch(refmaker, [2])
            with pytest.raises(DuplicateBatch):
                ledger.append_many([(fresh, None, None), (_batch(refmaker, [1], batch_id=bid), None, None)])
            assert (1, False) == (ledger.head().seq, ledger.has_batch(fresh.batch_id))

    def test_refs_given_apart_make_the_same_entry(self, tmp_path: Path, refmaker: RefMaker) -> None:
        """A batch whose refs come as a RefBlock is chained and found exactly like one carrying them."""
        keys = list(range(300))  # over the filter threshold: the Bloom filter path too
        event = _batch(refmaker, keys)
        block = refmaker.sql_text_block("app", "tickets", [canonical_key((k,)) for k in keys])
        with (
            Ledger.open(f"sqlite:///{tmp_path / 'a.db'}") as carried,
            Ledger.open(f"sqlite:///{tmp_path / 'b.db'}") as apart,
        ):
            carried.append(event, run_id="run-1")
            apart.append(replace(event, refs=()), run_id="run-1", refs=block)
            expected, actual = carried.entries()[0], apart.entries()[0]
            found = [e.seq for e in apart.find(event.refs[123])]
            ok = apart.verify(policy=VerifyPolicy(keys=None, allow_unsigned_tail=True), deep=True).ok
            # time differs between the two ledgers, so the hashes do; what they cover must not
            assert (expected.fields_json, expected.refs_blob, [1], True) == (
                actual.fields_json,
                actual.refs_blob,
                found,
                ok,
            )

    def test_refs_given_apart_are_checked(self, tmp_path: Path, refmaker: RefMaker) -> None:
        """Refs given apart must match the count and may not come on top of the event's own."""
        block = refmaker.sql_text_block("app", "tickets", ["1", "2"])
        with Ledger.open(f"sqlite:///{tmp_path / 'a.db'}") as ledger:
            with pytest.raises(ValueError, match="count"):
                ledger.append(replace(_batch(refmaker, [1, 2, 3]), refs=()), refs=block)
            with pytest.raises(TypeError):
                ledger.append(_batch(refmaker, [1, 2]), refs=block)
            with pytest.raises(TypeError):
                ledger.append(RunFinished(counts={"deleted": 2}), refs=block)
            assert 0 == ledger.head().seq


class TestReads:
    """show filters, find by index, entry decoding."""

    def test_find(self, url_factory: Callable[[], str], refmaker: RefMaker) -> None:
        with Ledger.open(url_factory()) as ledger:
            ledger.append(_batch(refmaker, [1, 2, 3]), run_id="run-1")
            ledger.append(_batch(refmaker, [3, 4], outcome=Outcome.HELD), run_id="run-2")
            hits = ledger.find(refmaker.sql("app", "tickets", (3,)))
            assert ([1, 2], []) == ([e.seq for e in hits], ledger.find(refmaker.sql("app", "tickets", (99,))))

    def test_find_is_an_index_lookup(self, url_factory: Callable[[], str]) -> None:
        url = url_factory()
        Ledger.open(url).close()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes("audit_refs")}
        engine.dispose()
        assert "audit_refs_ref" in names

    def test_filters_and_limit(self, url_factory: Callable[[], str], refmaker: RefMaker, signer: Signer) -> None:
        with Ledger.open(url_factory()) as ledger:
            ledger.append(_batch(refmaker, [1]))
            ledger.checkpoint(signer)
            ledger.append(RunFinished(counts={}))
            ledger.checkpoint(signer)
            future = datetime.now(UTC) + timedelta(days=1)
            assert (
                [4],
                [1],
                [2, 4],
                [],
                4,
            ) == (
                [e.seq for e in ledger.entries(event="checkpoint", limit=1)],
                [e.seq for e in ledger.entries(category="support")],
                [e.seq for e in ledger.entries(event="checkpoint")],
                ledger.entries(since=future),
                len(ledger.entries(until=future)),
            )


class TestAppendOnly:
    """Triggers refuse UPDATE and DELETE (and TRUNCATE in PostgreSQL)."""

    @pytest.mark.parametrize("table", [entries_table, refs_table])
    def test_update_delete_refused(self, url_factory: Callable[[], str], refmaker: RefMaker, table: sa.Table) -> None:
        url = url_factory()
        with Ledger.open(url) as ledger:
            ledger.append(_batch(refmaker, [1]))
        engine = sa.create_engine(url)
        statements = [sa.update(table).values(seq=5), sa.delete(table)]
        if engine.dialect.name == "postgresql":
            statements.append(sa.text(f"TRUNCATE {table.name}"))
        refused = 0
        for stmt in statements:
            try:
                with engine.begin() as conn:
                    conn.execute(stmt)
            except sa.exc.DBAPIError:
                refused += 1
        engine.dispose()
        assert len(statements) == refused

    def test_head_only_moves_forward(self, url_factory: Callable[[], str]) -> None:
        url = url_factory()
        Ledger.open(url).close()
        engine = sa.create_engine(url)
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
            conn.execute(sa.update(head_table).values(seq=10))
        engine.dispose()


class TestCheckpoints:
    """Checkpoints sign the head and are verified."""

    def test_checkpoint_signs_head(
        self, url_factory: Callable[[], str], refmaker: RefMaker, signer: Signer, keys: KeyRing
    ) -> None:
        with Ledger.open(url_factory()) as ledger:
            ledger.append(_batch(refmaker, [1]))
            head = ledger.head()
            entry = ledger.checkpoint(signer)
            assert entry is not None
            assert (1, head.hash.hex(), signer.fingerprint) == (
                entry.fields["covered_seq"],
                entry.fields["covered_hash"],
                entry.fields["key_fingerprint"],
            )
            result = ledger.verify(keys)
            assert (True, 2, 0, 2) == (result.ok, result.entries, result.unsigned_tail, result.last_checkpoint_seq)

    def test_checkpoint_if_due(self, url_factory: Callable[[], str], signer: Signer) -> None:
        with Ledger.open(url_factory()) as ledger:
            first = ledger.checkpoint_if_due(signer, timedelta(hours=1))
            second = ledger.checkpoint_if_due(signer, timedelta(hours=1))
            third = ledger.checkpoint_if_due(signer, timedelta(0))
            assert (True, None, True) == (first is not None, second, third is not None)

    def test_other_key_is_bad_signature(self, url_factory: Callable[[], str], signer: Signer) -> None:
        from retentiond.audit import DamageKind, generate_key_pair, load_public_key

        with Ledger.open(url_factory()) as ledger:
            ledger.checkpoint(signer)
            other = KeyRing.of(load_public_key(generate_key_pair()[1]))
            result = ledger.verify(other)
            assert (1, DamageKind.BAD_SIGNATURE) == (result.damage.seq, result.damage.kind)  # type: ignore[union-attr]
