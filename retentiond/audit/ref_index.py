"""Writing an entry's ref lookup rows: one filter row for a large batch, index rows otherwise.

``audit find`` reads both (``audit.find``); they are derived from the entry's hash-covered refs,
so ``audit verify --deep`` can rebuild and compare them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Connection, LargeBinary, bindparam, func, insert, literal, select

from retentiond.audit.ref_filter import FILTER_MIN
from retentiond.audit.ref_filter import build as build_filter
from retentiond.audit.refs import REF_SIZE
from retentiond.audit.schema import ref_filters_table, refs_table


def write_ref_index(conn: Connection, *, seq: int, refs: bytes, filters: bool) -> None:
    """Write the lookup rows of entry ``seq``'s ``refs`` (concatenated 32-byte refs) in ``conn``.

    ``filters``: whether the ledger has the filters' table (a ledger created before it, opened
    by a role that may not add it, keeps one index row per ref).
    """
    if len(refs) >= FILTER_MIN * REF_SIZE and filters:
        # One filter row instead of one index row per ref (audit.ref_filter).
        conn.execute(insert(ref_filters_table).values(seq=seq, bits=build_filter(refs)))
    elif refs and conn.dialect.name == "postgresql":
        # One statement with the refs as one bytea parameter, cut into 32-byte refs
        # server-side: a bytea[] parameter costs a Python-side escape per element
        # (~3 µs/ref), executemany a round trip per row.
        position = func.generate_series(0, len(refs) // REF_SIZE - 1).column_valued("i")
        blob = bindparam("refs_blob", refs, type_=LargeBinary)
        conn.execute(
            insert(refs_table).from_select(
                ["ref", "seq"],
                select(func.substr(blob, position * REF_SIZE + 1, REF_SIZE), literal(seq, BigInteger)),
            )
        )
    elif refs:
        chunks = [refs[i : i + REF_SIZE] for i in range(0, len(refs), REF_SIZE)]
        conn.execute(insert(refs_table), [{"ref": c, "seq": seq} for c in chunks])
