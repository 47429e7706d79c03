"""Ref filters: one row per large batch entry instead of one index row per ref; find and verify use them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from retentiond.audit import DamageKind, KeyRing
from retentiond.audit.events import Action, Batch, BatchId, Outcome
from retentiond.audit.ledger import Ledger
from retentiond.audit.ref_filter import BITS_PER_REF, FILTER_MIN, build, may_hold
from retentiond.audit.refs import RecordRef, RefMaker
from retentiond.audit.schema import ref_filters_table, refs_table

if TYPE_CHECKING:
    from tests.audit.conftest import Harness

REFS = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=700, unique=True)


class TestFilter:
    """The filter never misses a ref it was built from and rarely claims one it was not."""

    @settings(max_examples=80, deadline=None)
    @given(refs=REFS)
    def test_no_false_negatives(self, refs: list[bytes]) -> None:
        """Every ref the filter was built from may be held."""
        bits = build(b"".join(refs))

        assert [] == [r for r in refs if not may_hold(bits, r)]

    @settings(max_examples=40, deadline=None)
    @given(refs=REFS)
    def test_size_is_a_power_of_two_with_enough_bits(self, refs: list[bytes]) -> None:
        """The bitmap has a power-of-two size of at least BITS_PER_REF bits per ref."""
        size = len(build(b"".join(refs))) * 8

        assert (0, True) == (size & (size - 1), size >= BITS_PER_REF * len(refs))

    def test_false_positive_rate_is_small(self) -> None:
        """Fewer than 1 % of 20,000 absent refs pass a filter of 5,000 refs."""
        bits = build(os.urandom(32 * 5000))
        passed = sum(may_hold(bits, os.urandom(32)) for _ in range(20_000))

        assert passed < 200

    def test_partial_refs_are_refused(self) -> None:
        """A blob that is not whole refs is a programming error."""
        with pytest.raises(ValueError, match="32-byte"):
            build(b"x" * 33)


def _batch(maker: RefMaker, start: int, count: int) -> tuple[Batch, list[RecordRef]]:
    refs = maker.sql_many("app", "tickets", [(start + i,) for i in range(count)])
    event = Batch(
        batch_id=BatchId.new(),
        category="support",
        store="app",
        target="tickets",
        action=Action.DELETE,
        outcome=Outcome.DELETED,
        count=count,
        refs=tuple(refs),
    )
    return event, refs


class TestLedgerFilters:
    """A large batch entry is found through its filter; verify checks the filters on both backends."""

    def _large(self, h: Harness, count: int = FILTER_MIN + 44) -> tuple[int, list[RecordRef]]:
        event, refs = _batch(h.refmaker, 10_000, count)
        seq = h.ledger.append(event, run_id=str(uuid.uuid4())).seq
        h.ledger.checkpoint(h.signer)
        return seq, refs

    def test_one_filter_row_and_no_index_rows(self, harness_factory: Callable[[], Harness]) -> None:
        """A batch of FILTER_MIN refs or more writes one filter row; a smaller one its index rows."""
        h = harness_factory()
        h.build(rounds=1, refs_per_batch=3)
        seq, _ = self._large(h)
        with h.engine.connect() as conn:
            filters = conn.execute(sa.select(ref_filters_table.c.seq)).scalars().all()
            indexed = conn.execute(sa.select(sa.func.count()).select_from(refs_table)).scalar_one()

        assert ([seq], 6) == (filters, indexed)

    def test_find_through_the_filter(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        """Every ref of the entry is found, an absent one is not, and verify (deep) is OK."""
        h = harness_factory()
        seq, refs = self._large(h)
        absent = h.refmaker.sql("app", "tickets", (1,))

        found = {tuple(e.seq for e in h.ledger.find(r)) for r in refs}
        result = h.ledger.verify(keys, deep=True)

        assert ({(seq,)}, [], True) == (found, h.ledger.find(absent), result.ok)

    def test_missing_filter_row_is_damage(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        """A deleted filter row hides records from find: verify reports an index mismatch."""
        h = harness_factory()
        self._large(h)
        with h.raw() as conn:
            conn.execute(sa.delete(ref_filters_table))

        assert DamageKind.INDEX_MISMATCH == h.ledger.verify(keys).damage.kind  # type: ignore[union-attr]

    def test_emptied_filter_is_damage_under_deep(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        """A filter whose bits were cleared passes the count check but not --deep."""
        h = harness_factory()
        self._large(h)
        with h.raw() as conn:
            size = len(conn.execute(sa.select(ref_filters_table.c.bits)).scalar_one())
            conn.execute(sa.update(ref_filters_table).values(bits=b"\0" * size))

        shallow, deep = h.ledger.verify(keys), h.ledger.verify(keys, deep=True)

        assert (True, DamageKind.INDEX_MISMATCH) == (shallow.ok, deep.damage.kind)  # type: ignore[union-attr]

    def test_ledger_without_filters_gets_them(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        """A ledger created before the filters keeps its index rows and gains the table when reopened."""
        h = harness_factory()
        seq, refs = self._large(h)
        with h.raw() as conn:
            rows = conn.execute(sa.select(ref_filters_table)).all()
            conn.execute(sa.delete(ref_filters_table))
            conn.execute(sa.insert(refs_table), [{"ref": bytes(r), "seq": seq} for r in refs])
            assert rows  # the large entry had its filter
            ref_filters_table.drop(conn)
        h.ledger.close()
        h.ledger = Ledger.open(h.url, h.ledger_id)
        with h.engine.connect() as conn:
            restored = sa.inspect(conn).has_table(ref_filters_table.name)

        assert (True, [seq], True) == (restored, [e.seq for e in h.ledger.find(refs[7])], h.ledger.verify(keys).ok)
