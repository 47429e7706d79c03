"""Issue 11: no OK without a signature over it; rebuilt chains named at their first change;
key rotation and retired keys; rollback through the state file. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from retentiond.audit import (
    ConfigLoaded,
    DamageKind,
    KeyNotCurrent,
    KeyRing,
    Signer,
    VerifyPolicy,
    generate_key_pair,
)
from retentiond.audit.keys import key_periods
from retentiond.audit.schema import entries_table, refs_table
from retentiond.audit.signing import load_private_key
from retentiond.audit.state import read_state, write_state
from tests.audit.conftest import forged_checkpoint

if TYPE_CHECKING:
    from tests.audit.conftest import Harness

DIGEST = "a" * 64


@pytest.fixture(scope="module")
def second_signer() -> Signer:
    """A second key pair: the key rotated to."""
    return Signer(load_private_key(generate_key_pair()[0]))


def _kind(result: object) -> tuple[int | None, DamageKind | None]:
    damage = getattr(result, "damage", None)
    return (None, None) if damage is None else (damage.seq, damage.kind)


class TestSignedCoverage:
    """Entries no checkpoint covers make verification fail, except a young tail without outcomes."""

    def test_chain_rebuilt_without_checkpoints(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=4)
        with h.raw() as conn:
            for seq in (20, 15, 10, 5):  # remove every checkpoint, renumber, recompute every hash
                conn.execute(sa.delete(entries_table).where(entries_table.c.seq == seq))
                h.renumber(conn, seq + 1, -1)
            conn.execute(sa.delete(refs_table))
            h.rehash_from(conn, 1)
        result = h.ledger.verify(keys, check_index=False)
        assert (2, DamageKind.NO_CHECKPOINT) == _kind(result)

    def test_rebuilt_chain_names_first_changed_entry(
        self, harness_factory: Callable[[], Harness], keys: KeyRing
    ) -> None:
        h = harness_factory()
        h.build(rounds=6)
        with h.raw() as conn:
            row = h.row(conn, 23)
            h.set_columns(conn, 23, fields=row["fields"].replace('"app"', '"apx"'))
            h.rehash_from(conn, 23)
        assert (23, DamageKind.CHAIN_REBUILT) == _kind(h.ledger.verify(keys))

    def test_young_tail_without_outcome_is_ok(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=1)
        h.ledger.append(ConfigLoaded(config_sha256=DIGEST, holds_sha256=None))
        result = h.ledger.verify(keys)
        assert (True, 1, "young") == (result.ok, result.unsigned_tail, result.unsigned_status)
        assert "unsigned_tail=1 (younger than checkpoint_interval" in result.summary()

    def test_old_tail_fails_unless_allowed(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=1)
        h.ledger.append(ConfigLoaded(config_sha256=DIGEST, holds_sha256=None))
        later = datetime.now(UTC) + timedelta(hours=2)
        strict = h.ledger.verify(policy=VerifyPolicy(keys=keys, now=later))
        relaxed = h.ledger.verify(policy=VerifyPolicy(keys=keys, now=later, allow_unsigned_tail=True))
        assert (6, DamageKind.UNSIGNED_TAIL) == _kind(strict)
        assert (True, "allowed") == (relaxed.ok, relaxed.unsigned_status)
        assert "ALLOWED by --allow-unsigned-tail" in relaxed.summary()

    def test_unsigned_outcome(self, harness_factory: Callable[[], Harness], keys: KeyRing) -> None:
        h = harness_factory()
        h.build(rounds=2)
        with h.raw() as conn:  # the second run's checkpoint removed: its batches are signed by nothing
            conn.execute(sa.delete(entries_table).where(entries_table.c.seq == 10))
            h.fix_head(conn)
        assert (7, DamageKind.UNSIGNED_OUTCOME) == _kind(h.ledger.verify(keys))

    def test_no_key_is_never_ok(self, harness_factory: Callable[[], Harness]) -> None:
        h = harness_factory()
        h.build(rounds=1)
        assert (2, DamageKind.NO_CHECKPOINT) == _kind(h.ledger.verify(None))


class TestKeyRotation:
    """A rotation entry says which key is valid for which checkpoints."""

    def _rotated(self, h: Harness, old: Signer, new: Signer) -> None:
        h.build(rounds=2)  # seq 1..10, signed by old
        h.ledger.rotate_key(old, new)  # seq 11 rotation, 12 checkpoint by new
        h.signer = new
        h.build(rounds=1)  # 13..17, signed by new

    def test_rotation_verifies_and_is_listed(
        self, harness_factory: Callable[[], Harness], signer: Signer, second_signer: Signer, keys: KeyRing
    ) -> None:
        h = harness_factory()
        self._rotated(h, signer, second_signer)
        both = h.ledger.verify(KeyRing.of(signer.public_key, second_signer.public_key))
        first_only = h.ledger.verify(keys)  # the old key vouches for the new one
        periods = key_periods(h.ledger.iter_entries(event=("checkpoint", "key_rotated")))
        assert (True, True, second_signer.fingerprint) == (both.ok, first_only.ok, first_only.key_fingerprint)
        assert [(signer.fingerprint, 5, 11, 2), (second_signer.fingerprint, 11, None, 2)] == [
            (p.fingerprint, p.from_seq, p.until_seq, p.checkpoints) for p in periods
        ]

    def test_checkpoint_by_retired_key(
        self, harness_factory: Callable[[], Harness], signer: Signer, second_signer: Signer, keys: KeyRing
    ) -> None:
        h = harness_factory()
        self._rotated(h, signer, second_signer)
        with pytest.raises(KeyNotCurrent):
            h.ledger.checkpoint(signer)  # the daemon refuses a retired key
        h.ledger.append(ConfigLoaded(config_sha256=DIGEST, holds_sha256=None))
        seq = forged_checkpoint(h, signer)  # someone holding the retired key signs anyway
        assert (seq, DamageKind.KEY_NOT_VALID) == _kind(h.ledger.verify(keys))

    def test_key_change_without_rotation_refused(
        self, harness_factory: Callable[[], Harness], second_signer: Signer
    ) -> None:
        h = harness_factory()
        h.build(rounds=1)
        with pytest.raises(KeyNotCurrent):
            h.ledger.checkpoint(second_signer)

    def test_rotation_without_old_key_needs_the_auditor(
        self, harness_factory: Callable[[], Harness], signer: Signer, second_signer: Signer, keys: KeyRing
    ) -> None:
        h = harness_factory()
        h.build(rounds=1)
        h.ledger.rotate_key(None, second_signer)
        vouched = h.ledger.verify(KeyRing.of(signer.public_key, second_signer.public_key))
        assert (True, (6, DamageKind.BAD_SIGNATURE)) == (vouched.ok, _kind(h.ledger.verify(keys)))

    def test_new_key_alone_cannot_vouch_for_the_old(
        self, harness_factory: Callable[[], Harness], signer: Signer, second_signer: Signer
    ) -> None:
        h = harness_factory()
        self._rotated(h, signer, second_signer)
        assert (5, DamageKind.BAD_SIGNATURE) == _kind(h.ledger.verify(KeyRing.of(second_signer.public_key)))


class TestStateFile:
    """--state remembers the newest verified checkpoint; an older head or another history is rolled_back."""

    def _verify(self, h: Harness, keys: KeyRing, state: Path) -> object:
        previous = read_state(state, h.ledger_id)
        trusted = (previous,) if previous else ()
        result = h.ledger.verify(policy=VerifyPolicy(keys=keys, trusted=trusted))
        write_state(state, result, previous)
        return result

    def test_rollback_to_older_head(
        self, harness_factory: Callable[[], Harness], keys: KeyRing, tmp_path: Path
    ) -> None:
        h = harness_factory()
        state = tmp_path / "ledger.state"
        h.build(rounds=4)
        first = self._verify(h, keys, state)
        with h.raw() as conn:  # back to an older backup, cut at a checkpoint
            conn.execute(sa.delete(entries_table).where(entries_table.c.seq > 10))
            conn.execute(sa.delete(refs_table).where(refs_table.c.seq > 10))
            h.fix_head(conn)
        assert h.ledger.verify(keys).ok  # self-consistent: only the state file sees it
        again = self._verify(h, keys, state)
        assert (True, 20, (11, DamageKind.ROLLED_BACK)) == (
            first.ok,
            json.loads(state.read_text())["checkpoint"]["seq"],
            _kind(again),
        )

    def test_different_history(self, harness_factory: Callable[[], Harness], keys: KeyRing, tmp_path: Path) -> None:
        h = harness_factory()
        state = tmp_path / "ledger.state"
        h.build(rounds=4)
        assert self._verify(h, keys, state).ok
        with h.raw() as conn:  # restored from the backup taken at seq 15, then the daemon carried on
            conn.execute(sa.delete(entries_table).where(entries_table.c.seq > 15))
            conn.execute(sa.delete(refs_table).where(refs_table.c.seq > 15))
            h.fix_head(conn)
        h.build(rounds=2)  # seq 16..25: a new, validly signed history
        assert (16, DamageKind.ROLLED_BACK) == _kind(self._verify(h, keys, state))

    def test_state_moves_forward(self, harness_factory: Callable[[], Harness], keys: KeyRing, tmp_path: Path) -> None:
        h = harness_factory()
        state = tmp_path / "ledger.state"
        h.build(rounds=1)
        self._verify(h, keys, state)
        h.build(rounds=1)
        result = self._verify(h, keys, state)
        assert (True, 10) == (result.ok, json.loads(state.read_text())["checkpoint"]["seq"])
