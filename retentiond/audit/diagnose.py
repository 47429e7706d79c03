"""Telling what kind of damage a broken chain link is (modified, deleted, reordered, inserted).

Runs only after verification found the first entry that does not chain onto its predecessor;
the seq it reports is the first entry that is certainly bad, the kind a diagnosis.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from retentiond.audit.canonical import chain_hash, entry_body

if TYPE_CHECKING:
    from retentiond.audit.results import Damage, Row

LOOKAHEAD = 1000  # rows read past the first bad one to tell a reorder from a deletion


def body_of(row: Row, seq: int | None = None) -> bytes:
    """Return the canonical body of a stored row, as if it sat at ``seq`` (default: its own)."""
    return entry_body(
        seq=row[0] if seq is None else seq,
        time=row[1],
        event=row[2],
        run_id=row[3],
        category=row[4],
        batch_id=row[5],
        fields=row[6],
        refs=row[7],
    )


def intact_as(row: Row, seq: int) -> bool:
    """Return True when the row's own prev_hash, fields and hash agree with it sitting at ``seq``."""
    try:
        return chain_hash(row[8], body_of(row, seq)) == row[9]
    except (TypeError, ValueError):
        return False


def diagnose(row: Row, n: int, prev: bytes, recent: dict[bytes, int], rows: Iterator[Row]) -> Damage:
    """Explain why ``row`` (read where seq ``n`` was expected) does not chain onto ``prev``.

    ``recent`` maps the hashes of recently verified entries to their seqs; ``rows`` yields the
    entries after ``row`` (up to :data:`LOOKAHEAD` of them are read).
    """
    from retentiond.audit.results import Damage, DamageKind

    ahead: list[Row] = []
    for other in rows:
        ahead.append(other)
        if len(ahead) >= LOOKAHEAD:
            break

    def appears_later(seq: int) -> bool:
        return any(intact_as(r, seq) for r in ahead)

    seq = row[0]
    if seq > n:
        if appears_later(n):
            return Damage(n, DamageKind.REORDERED, f"the entry written as seq {n} was moved later in the ledger")
        return Damage(n, DamageKind.DELETED, f"entries {n}..{seq - 1} are missing")
    if seq < n:
        return Damage(seq, DamageKind.REORDERED, f"seq {seq} appears after seq {n - 1}")
    if intact_as(row, n):
        # Exactly as written, but it was written after a different predecessor.
        j = recent.get(row[8])
        if j is not None and j < n - 1:
            return Damage(
                j + 1, DamageKind.INSERTED, f"entries {j + 1}..{n - 1} were not in the chain when seq {n} was written"
            )
        return Damage(
            n - 1,
            DamageKind.MODIFIED,
            f"seq {n - 1} was rewritten with a recomputed hash (seq {n} chains from another entry)",
        )
    for distance in range(1, LOOKAHEAD + 64):
        if intact_as(row, n + distance):
            if appears_later(n):
                return Damage(n, DamageKind.REORDERED, f"seq {n} holds the entry written as seq {n + distance}")
            return Damage(n, DamageKind.DELETED, f"{distance} entries were removed at seq {n} and the rest renumbered")
        if n - distance >= 1 and intact_as(row, n - distance):
            j = recent.get(row[8])
            start = j + 1 if j is not None else n - distance
            return Damage(
                start,
                DamageKind.INSERTED,
                f"entries {start}..{n - 1} were inserted before the entry written as seq {n - distance}",
            )
    if row[8] != prev:
        return Damage(n, DamageKind.MODIFIED, "the stored prev_hash or hash was changed")
    return Damage(n, DamageKind.MODIFIED, "the entry's fields no longer match its hash")
