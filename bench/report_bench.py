#!/usr/bin/env python3
"""Report benchmark (issue 14): prints figures, is not a test.

On a ledger of N entries (batch entries of 10 refs each, a signed checkpoint every 1,000th;
bulk-loaded with correct hashes as in bench/audit_bench.py), side by side in one process:

1. ``verify``: ``Ledger.verify`` alone (what ``audit verify`` does);
2. ``report``: what ``retentiond report`` does — verify, read the entries back, aggregate, render
   HTML — and the ratio to 1;
3. the peak Python memory of reading + aggregating, at N and at N/5: it must not grow with N.

Usage:  python bench/report_bench.py [--entries 100000] [--skip-pg]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from audit_bench import build_rows, load, machine  # type: ignore[import-not-found]

from retentiond.audit import KeyRing, Ledger, Signer, generate_key_pair
from retentiond.audit.signing import load_private_key
from retentiond.report.aggregate import aggregate
from retentiond.report.html import render_html
from retentiond.report.source import verified_entries, verify_ledger


def best_of(n: int, fn: object) -> float:
    """Return the best wall time of ``n`` calls of ``fn``."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(url: str, label: str, keys: KeyRing, entries: int) -> None:
    """Print verify vs report times and the memory peak of aggregation."""
    with Ledger.open(url, create=False) as ledger:

        def verify() -> None:
            assert ledger.verify(keys).ok

        def report() -> None:
            v = verify_ledger(ledger, keys, max_unsigned_age=timedelta(hours=1))
            assert v.ok
            r = aggregate(verified_entries(ledger, v), ledger_id="retentiond", verification=v, generated_at=NOW)
            render_html(r)

        t_verify, t_report = best_of(3, verify), best_of(3, report)
        print(
            f"{label}: {entries:,} entries — verify {t_verify:.2f} s, report {t_report:.2f} s "
            f"(ratio {t_report / t_verify:.2f}; {entries / t_report:,.0f} entries/s)"
        )
        v = verify_ledger(ledger, keys, max_unsigned_age=timedelta(hours=1))
        for limit in (entries // 5, entries):
            tracemalloc.start()
            aggregate(
                (e for e in verified_entries(ledger, v) if e.seq <= limit),
                ledger_id="retentiond",
                verification=v,
                generated_at=NOW,
            )
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{label}: read + aggregate {limit:,} entries: peak {peak / 2**20:.1f} MiB of Python memory")


NOW = datetime(2026, 12, 1, tzinfo=UTC)


def main() -> None:
    """Build the ledger(s) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
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
    rows, ref_rows = build_rows(args.entries, 10, signer, "retentiond")
    tmp = Path(tempfile.mkdtemp(prefix="report-bench-"))
    sqlite_url = f"sqlite:///{tmp}/ledger.db"
    load(sqlite_url, rows, ref_rows)
    bench(sqlite_url, "SQLite", keys, len(rows))
    if args.skip_pg:
        return
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    name = f"rtd_report_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        load(url, rows, ref_rows)
        bench(url, "PostgreSQL", keys, len(rows))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
