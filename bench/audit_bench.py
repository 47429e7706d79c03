#!/usr/bin/env python3
"""Audit ledger benchmark (issue 3): prints figures, is not a test.

1. Append latency of a ``batch`` entry carrying 1,000 refs, on PostgreSQL and SQLite
   (each append is one committed, durable transaction: fsync on SQLite with synchronous=FULL).
2. Verify throughput over a ledger of 100,000 entries / 1,000,000 refs with a signed checkpoint
   every 1,000 entries: from PostgreSQL, from SQLite, and offline from a JSON-lines export.

Usage:  python bench/audit_bench.py [--entries 100000] [--refs-per-entry 10] [--appends 200]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--skip-pg]

The big ledger is bulk-loaded with correct hashes (appending 100,000 entries one by one would
only measure commit latency again); a temporary PostgreSQL database is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from retentiond.audit import (
    Action,
    Batch,
    BatchId,
    KeyRing,
    Ledger,
    Outcome,
    RefMaker,
    Signer,
    generate_key_pair,
)
from retentiond.audit.canonical import (
    canonical_dumps,
    chain_hash,
    entry_body,
    genesis_hash,
)
from retentiond.audit.events import Checkpoint
from retentiond.audit.export import export_header, row_to_json, verify_export
from retentiond.audit.results import VerifyPolicy
from retentiond.audit.schema import entries_table, head_table, refs_table
from retentiond.audit.signing import checkpoint_message, load_private_key


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLAlchemy {sa.__version__}"


def bench_append(url: str, label: str, appends: int, maker: RefMaker) -> None:
    with Ledger.open(url) as ledger:
        times = []
        refs_time = []
        for i in range(appends + 5):
            keys = [(i * 1000 + j,) for j in range(1000)]
            t0 = time.perf_counter()
            refs = tuple(maker.sql_many("app", "tickets", keys))
            t1 = time.perf_counter()
            ledger.append(
                Batch(
                    batch_id=BatchId.new(),
                    category="support",
                    store="app",
                    target="tickets",
                    action=Action.DELETE,
                    outcome=Outcome.DELETED,
                    count=1000,
                    refs=refs,
                ),
                run_id="bench",
            )
            t2 = time.perf_counter()
            if i >= 5:  # warm-up
                times.append(t2 - t1)
                refs_time.append(t1 - t0)
        times.sort()
        print(
            f"append 1,000-ref batch entry [{label}]: median {statistics.median(times) * 1000:.2f} ms, "
            f"p95 {times[int(len(times) * 0.95) - 1] * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms over {appends}; "
            f"computing the 1,000 refs: {statistics.median(refs_time) * 1e6 / 1000:.2f} µs/key"
        )


def build_rows(
    entries: int, refs_per_entry: int, signer: Signer, ledger_id: str
) -> tuple[list[dict], list[tuple[bytes, int]]]:
    """Return correctly chained entry rows and ref rows (a checkpoint every 1,000th entry)."""
    rows: list[dict] = []
    ref_rows: list[tuple[bytes, int]] = []
    prev = genesis_hash(ledger_id)
    maker = RefMaker(b"b" * 32)
    fields_batch = canonical_dumps(
        {
            "action": "delete",
            "count": refs_per_entry,
            "outcome": "deleted",
            "prefix": None,
            "prior_versions": 0,
            "store": "app",
            "target": "tickets",
        }
    )
    key = 0
    base = "2026-11-01T00:00:00.000000Z"
    since: list[bytes] = []  # hashes a v2 checkpoint lists: from the previous checkpoint on
    from_seq = 1
    for seq in range(1, entries + 1):
        if seq % 1000 == 0:
            listed = b"".join(since).hex()
            msg = checkpoint_message(ledger_id, seq - 1, prev.hex(), base, from_seq=from_seq, entry_hashes=listed)
            cp = Checkpoint(
                ledger_id=ledger_id,
                covered_seq=seq - 1,
                covered_hash=prev.hex(),
                signed_at=datetime(2026, 11, 1, tzinfo=UTC),
                key_fingerprint=signer.fingerprint,
                signature=signer.sign(msg),
                from_seq=from_seq,
                entry_hashes=listed,
            )
            row = dict(
                seq=seq,
                time=base,
                event="checkpoint",
                run_id=None,
                category=None,
                batch_id=None,
                fields=canonical_dumps(cp.json_fields()),
                refs=b"",
            )
        else:
            # The entry after each checkpoint carries twice the refs: 100,000 entries hold exactly 1,000,000.
            n = refs_per_entry * (2 if seq % 1000 == 1 else 1)
            refs = b"".join(maker.sql_many("app", "tickets", [(key + j,) for j in range(n)]))
            key += n
            row = dict(
                seq=seq,
                time=base,
                event="batch",
                run_id="bench-run",
                category="support",
                batch_id=str(uuid.uuid4()),
                fields=fields_batch
                if n == refs_per_entry
                else fields_batch.replace(f'"count":{refs_per_entry}', f'"count":{n}'),
                refs=refs,
            )
            ref_rows.extend((refs[i : i + 32], seq) for i in range(0, len(refs), 32))
        h = chain_hash(prev, entry_body(**row))
        row["prev_hash"], row["hash"] = prev, h
        rows.append(row)
        prev = h
        if row["event"] == "checkpoint":
            since, from_seq = [], seq
        since.append(h)
    return rows, ref_rows


def load(url: str, rows: list[dict], ref_rows: list[tuple[bytes, int]]) -> None:
    Ledger.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # COPY for speed; bench-only (the product appends through Ledger.append).
            raw = conn.connection.driver_connection
            with raw.cursor() as cur:
                cols = ("seq", "time", "event", "run_id", "category", "batch_id", "fields", "refs", "prev_hash", "hash")
                with cur.copy(
                    "COPY audit_entries (seq, time, event, run_id, category, batch_id, fields, refs, prev_hash, hash) "
                    "FROM STDIN"
                ) as cp:
                    for r in rows:
                        cp.write_row([r[c] for c in cols])
                with cur.copy("COPY audit_refs (ref, seq) FROM STDIN") as cp:
                    for r in ref_rows:
                        cp.write_row(r)
        else:
            for i in range(0, len(rows), 5000):
                conn.execute(sa.insert(entries_table), rows[i : i + 5000])
            for i in range(0, len(ref_rows), 50000):
                conn.execute(sa.insert(refs_table), [{"ref": r, "seq": s} for r, s in ref_rows[i : i + 50000]])
        conn.execute(
            sa.text("DROP TRIGGER IF EXISTS audit_head_forward_only")
            if engine.dialect.name == "sqlite"
            else sa.text("SET LOCAL session_replication_role = replica")
        )
        conn.execute(sa.update(head_table).values(seq=rows[-1]["seq"], hash=rows[-1]["hash"], time=rows[-1]["time"]))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE audit_entries"))
    engine.dispose()


def bench_verify(url: str, label: str, keys: KeyRing, entries: int, refs: int) -> None:
    with Ledger.open(url, create=False) as ledger:
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            result = ledger.verify(keys)
            elapsed = time.perf_counter() - t0
            assert result.ok and result.entries == entries and result.refs == refs, result.summary()
            best = elapsed if best is None else min(best, elapsed)
        assert best is not None
        print(
            f"verify [{label}]: {entries:,} entries / {refs:,} refs in {best:.2f} s = "
            f"{entries / best:,.0f} entries/s, {refs / best:,.0f} refs/s (best of 3, {result.checkpoints} signatures)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--refs-per-entry", type=int, default=10)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("RETENTIOND_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    private_pem, _, _ = generate_key_pair()
    signer = Signer(load_private_key(private_pem))
    keys = KeyRing.of(signer.public_key)
    maker = RefMaker(b"a" * 32)
    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    databases: list[str] = []

    def new_pg() -> str:
        name = f"rtd_audit_bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        databases.append(name)
        return admin.url.set(database=name).render_as_string(hide_password=False)

    try:
        if not args.skip_pg:
            bench_append(new_pg(), "PostgreSQL", args.appends, maker)
        bench_append(f"sqlite:///{tmp}/append.db", "SQLite WAL synchronous=FULL", args.appends, maker)

        t0 = time.perf_counter()
        rows, ref_rows = build_rows(args.entries, args.refs_per_entry, signer, "retentiond")
        print(
            f"(built {len(rows):,} chained entries / {len(ref_rows):,} refs in memory "
            f"in {time.perf_counter() - t0:.1f} s)"
        )
        if not args.skip_pg:
            url = new_pg()
            load(url, rows, ref_rows)
            bench_verify(url, "PostgreSQL", keys, len(rows), len(ref_rows))
        sqlite_url = f"sqlite:///{tmp}/verify.db"
        load(sqlite_url, rows, ref_rows)
        bench_verify(sqlite_url, "SQLite", keys, len(rows), len(ref_rows))
        with Ledger.open(sqlite_url, create=False) as ledger:
            t0 = time.perf_counter()
            assert ledger.verify(keys, deep=True).ok
            print(f"verify --deep [SQLite] (index contents compared too): {time.perf_counter() - t0:.2f} s")

        export = tmp / "export.jsonl"
        with Ledger.open(sqlite_url, create=False) as ledger, open(export, "w") as out:
            import json

            out.write(json.dumps(export_header(ledger.ledger_id, since=None, until=None)) + "\n")
            out.writelines(
                json.dumps(row_to_json(e.as_row()), sort_keys=True, separators=(",", ":")) + "\n"
                for e in ledger.iter_entries()
            )
        t0 = time.perf_counter()
        with open(export) as stream:
            result = verify_export(stream, VerifyPolicy(keys=keys))
        elapsed = time.perf_counter() - t0
        assert result.ok, result.summary()
        print(
            f"verify [offline JSON-lines export, {export.stat().st_size / 1e6:.0f} MB]: "
            f"{len(rows) / elapsed:,.0f} entries/s, {len(ref_rows) / elapsed:,.0f} refs/s"
        )
    finally:
        with admin.connect() as conn:
            for name in databases:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
