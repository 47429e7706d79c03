"""``audit keys``: the signing keys a ledger has used and when each was the valid one.

This reads the checkpoint and key-rotation entries as stored; it does not check signatures
(``audit verify`` does, and fails on a checkpoint signed outside its key's period).
"""

from __future__ import annotations

from collections.abc import Iterable

from retentiond.audit.entry import Entry
from retentiond.audit.results import KeyPeriod


def key_periods(entries: Iterable[Entry]) -> list[KeyPeriod]:
    """Return the key periods of ``checkpoint`` and ``key_rotated`` entries given in seq order.

    A checkpoint signed by another key than the period's opens an ``unannounced`` period: the
    ledger changed keys without a rotation entry, which verification reports as damage.
    """
    periods: list[KeyPeriod] = []
    for entry in entries:
        f = entry.fields
        if entry.event == "key_rotated":
            if periods:
                periods[-1].until_seq = entry.seq
            vouched = "rotation" if f.get("old_signature") else "rotation without old key"
            periods.append(KeyPeriod(str(f.get("new_fingerprint")), entry.seq, vouched_by=vouched))
            continue
        if entry.event != "checkpoint":
            continue
        fp = str(f.get("key_fingerprint"))
        if not periods:
            periods.append(KeyPeriod(fp, entry.seq, vouched_by="first checkpoint"))
        elif periods[-1].fingerprint != fp:
            periods[-1].until_seq = entry.seq
            periods.append(KeyPeriod(fp, entry.seq, vouched_by="unannounced"))
        period = periods[-1]
        period.checkpoints += 1
        period.first_time = period.first_time or entry.time
        period.last_time = entry.time
    return periods
