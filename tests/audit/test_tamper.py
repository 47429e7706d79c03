"""The tamper matrix of issue 3: every damage kind at the first, a middle and the last
position, on SQLite and PostgreSQL, with the triggers bypassed as a superuser would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentiond.audit import DamageKind, KeyRing
from retentiond.audit.schema import entries_table, refs_table

if TYPE_CHECKING:
    from tests.audit.conftest import Harness

N = 50  # entries built by Harness.build(): 10 rounds of 5, a checkpoint every 5th seq
POSITIONS = {"first": 1, "middle": 23, "last": N}
CHECKPOINTS = {"first": 5, "middle": 25, "last": N}


def _modify(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    with h.raw() as conn:
        row = h.row(conn, pos)
        column = {1: "fields", 23: "refs", N: "time"}[pos]
        if column == "refs":
            refs = bytearray(row["refs"])
            refs[5] ^= 0x01  # a changed record ref
            h.set_columns(conn, pos, refs=bytes(refs))
        elif column == "fields":
            h.set_columns(conn, pos, fields=row["fields"].replace('"support"', '"supporT"', 1))
        else:
            h.set_columns(conn, pos, time=row["time"].replace("Z", "Z").replace(":", ";", 1))
    return pos, {DamageKind.MODIFIED}


def _delete(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    with h.raw() as conn:
        conn.execute(sa.delete(entries_table).where(entries_table.c.seq == pos))
    return pos, {DamageKind.DELETED, DamageKind.TRUNCATED}


def _delete_renumber(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    with h.raw() as conn:
        conn.execute(sa.delete(entries_table).where(entries_table.c.seq == pos))
        h.renumber(conn, pos + 1, -1)
        h.fix_head(conn)
    return pos, {DamageKind.DELETED, DamageKind.TRUNCATED}


def _reorder(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    a = min(pos, N - 1)
    with h.raw() as conn:
        conn.execute(sa.update(entries_table).where(entries_table.c.seq == a).values(seq=-1))
        conn.execute(sa.update(entries_table).where(entries_table.c.seq == a + 1).values(seq=a))
        conn.execute(sa.update(entries_table).where(entries_table.c.seq == -1).values(seq=a + 1))
    return a, {DamageKind.REORDERED}


def _insert(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    with h.raw() as conn:
        h.forge_at(conn, pos)
    return pos, {DamageKind.INSERTED}


def _rebuild(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    with h.raw() as conn:
        row = h.row(conn, pos)
        h.set_columns(
            conn,
            pos,
            fields=row["fields"].replace('"', '"', 1).replace("0", "1", 1)
            if "0" in row["fields"]
            else row["fields"] + " ",
        )
        h.rehash_from(conn, pos)
    return pos, {DamageKind.CHAIN_REBUILT, DamageKind.BAD_SIGNATURE}


def _truncate(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    with h.raw() as conn:
        conn.execute(sa.delete(entries_table).where(entries_table.c.seq >= pos))
        h.fix_head(conn)
    return pos, {DamageKind.TRUNCATED}


def _roll_back_checkpoint(h: Harness, pos: int) -> tuple[int, set[DamageKind]]:
    """Replace a checkpoint with another (validly signed) one: the older one, or the next for the first."""
    cp = CHECKPOINTS[{1: "first", 23: "middle", N: "last"}[pos]]
    other = cp - 5 if cp > 5 else cp + 5
    with h.raw() as conn:
        h.set_columns(conn, cp, fields=h.row(conn, other)["fields"], time=h.row(conn, other)["time"])
        h.rehash_from(conn, cp)
    return cp, {DamageKind.ROLLED_BACK_CHECKPOINT}


SCENARIOS: dict[str, Callable[[Harness, int], tuple[int, set[DamageKind]]]] = {
    "modified": _modify,
    "deleted": _delete,
    "deleted+renumbered": _delete_renumber,
    "reordered": _reorder,
    "inserted": _insert,
    "chain_rebuilt": _rebuild,
    "truncated": _truncate,
    "rolled_back_checkpoint": _roll_back_checkpoint,
}


class TestTamperMatrix:
    """Every damage kind at the first, a middle and the last position is detected and located."""

    def test_matrix(
        self, harness_factory: Callable[[], Harness], keys: KeyRing, capsys: pytest.CaptureFixture[str]
    ) -> None:
        tried = detected = located = diagnosed = 0
        misses: list[str] = []
        dialect = ""
        for name, tamper in SCENARIOS.items():
            for where, pos in POSITIONS.items():
                h = harness_factory()
                dialect = h.dialect
                h.build()
                trusted = h.trusted_latest()
                assert h.ledger.verify(keys, trusted=[trusted]).ok
                bad_seq, kinds = tamper(h, pos)
                result = h.ledger.verify(keys, trusted=[trusted])
                tried += 1
                if result.ok:
                    misses.append(f"{name}@{where}: not detected")
                    h.close()
                    continue
                detected += 1
                assert result.damage is not None
                seq_ok = result.damage.seq == bad_seq or (
                    name == "chain_rebuilt" and result.damage.seq is not None and result.damage.seq <= bad_seq
                )
                located += seq_ok
                diagnosed += result.damage.kind in kinds
                if not seq_ok or result.damage.kind not in kinds:
                    misses.append(
                        f"{name}@{where}: expected seq {bad_seq} {sorted(k.value for k in kinds)}, "
                        f"got {result.damage.render()}"
                    )
                h.close()
        with capsys.disabled():
            print(
                f"\n[{dialect}] tamper matrix: detected {detected}/{tried}, located {located}/{tried}, "
                f"diagnosed {diagnosed}/{tried}"
            )
        assert [] == misses
        assert tried == detected


class TestNoFalsePositives:
    """Clean ledgers always verify."""

    def test_hundred_clean_verifies(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        failures = []
        for i in range(100):
            if i % 10 == 0:
                h.build(rounds=1)
            result = h.ledger.verify(keys, trusted=[h.trusted_latest()])
            if not result.ok:
                failures.append(result.summary())
        assert [] == failures


COLUMNS = ("seq", "time", "event", "run_id", "category", "batch_id", "fields", "refs", "prev_hash", "hash")


class TestSingleByteChanges:
    """Any single-byte change of any stored field of any entry is detected (hypothesis)."""

    @pytest.fixture
    def built(self, harness_factory: Callable[[], Harness]) -> Harness:
        h = harness_factory()
        h.build(rounds=4)
        return h

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        seq=st.integers(1, 20),
        column=st.sampled_from(COLUMNS),
        position=st.integers(0, 10_000),
        flip=st.integers(1, 255),
    )
    def test_any_byte(self, built: Harness, keys: KeyRing, seq: int, column: str, position: int, flip: int) -> None:
        h = built
        with h.raw() as conn:
            original = h.row(conn, seq)[column]
            if original is None:
                return  # nothing stored to change
            if column == "seq":
                changed: object = original ^ (flip << 8)  # never another existing seq
            elif isinstance(original, (bytes, memoryview)):
                data = bytearray(original)
                if data:
                    data[position % len(data)] ^= flip
                else:
                    data.append(flip)  # an empty refs field gains one byte
                changed = bytes(data)
            else:
                text = str(original)
                i = position % len(text)
                new_char = chr(((ord(text[i]) - 32 + (flip % 94) + 1) % 95) + 32)  # another printable ASCII char
                if new_char == text[i]:
                    new_char = "~" if text[i] != "~" else "!"
                changed = text[:i] + new_char + text[i + 1 :]
            conn.execute(sa.update(entries_table).where(entries_table.c.seq == seq).values({column: changed}))
        try:
            result = h.ledger.verify(keys)
            assert False is result.ok, f"{column} of seq {seq} changed, not detected"
        finally:
            key = changed if column == "seq" else seq
            with h.raw() as conn:
                conn.execute(sa.update(entries_table).where(entries_table.c.seq == key).values({column: original}))
        assert h.ledger.verify(keys).ok


class TestAcceptance:
    """The acceptance checks of issue 3, through the library."""

    def test_changed_entry_named(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=3)
        with h.raw() as conn:
            h.set_columns(conn, 7, fields=h.row(conn, 7)["fields"].replace("app", "ap2"))
        result = h.ledger.verify(keys)
        assert (7, DamageKind.MODIFIED) == (result.damage.seq, result.damage.kind)  # type: ignore[union-attr]

    def test_last_three_deleted_with_trusted_checkpoint(
        self, harness_factory: Callable[[], Harness], keys: KeyRing
    ) -> None:
        h = harness_factory()
        h.build(rounds=3)
        trusted = h.trusted_latest()
        with h.raw() as conn:
            conn.execute(sa.delete(entries_table).where(entries_table.c.seq > 10))
            conn.execute(sa.delete(refs_table).where(refs_table.c.seq > 10))
            h.fix_head(conn)
        assert h.ledger.verify(keys).ok  # cut at a checkpoint and covered up: invisible without outside state
        result = h.ledger.verify(keys, trusted=[trusted])
        assert (11, DamageKind.TRUNCATED) == (result.damage.seq, result.damage.kind)  # type: ignore[union-attr]

    def test_cut_inside_a_run_is_an_unsigned_outcome(
        self, harness_factory: Callable[[], Harness], keys: KeyRing
    ) -> None:
        h = harness_factory()
        h.build(rounds=3)
        with h.raw() as conn:
            conn.execute(sa.delete(entries_table).where(entries_table.c.seq > 12))
            conn.execute(sa.delete(refs_table).where(refs_table.c.seq > 12))
            h.fix_head(conn)
        result = h.ledger.verify(keys)
        assert (12, DamageKind.UNSIGNED_OUTCOME) == (result.damage.seq, result.damage.kind)  # type: ignore[union-attr]

    def test_exported_checkpoint_json_is_trusted_format(self, harness_factory: Callable[[], Harness]) -> None:
        h = harness_factory()
        h.build(rounds=1)
        entry = h.ledger.latest_checkpoint()
        assert entry is not None
        assert 5 == json.loads(json.dumps(entry.to_json()))["seq"]


class TestRefsIndex:
    """The refs index is checked: by count always, by content with deep=True."""

    def test_changed_index_row(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=2)
        with h.raw() as conn:
            ref = conn.execute(sa.select(refs_table.c.ref).where(refs_table.c.seq == 2).limit(1)).scalar_one()
            conn.execute(sa.update(refs_table).where(refs_table.c.ref == ref).values(ref=bytes(32)))
        shallow, deep = h.ledger.verify(keys), h.ledger.verify(keys, deep=True)
        assert (True, DamageKind.INDEX_MISMATCH) == (shallow.ok, deep.damage.kind)  # type: ignore[union-attr]

    def test_removed_index_row(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=2)
        with h.raw() as conn:
            conn.execute(sa.delete(refs_table).where(refs_table.c.seq == 3))
        assert DamageKind.INDEX_MISMATCH == h.ledger.verify(keys).damage.kind  # type: ignore[union-attr]

    def test_clean_deep(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=2)
        assert h.ledger.verify(keys, deep=True).ok
