"""Partitioned-purge benchmark: ``retentiond run`` on a range-partitioned table vs the raw DELETE.

Prints figures; it is not a test. Needs the local PostgreSQL (127.0.0.1:5432, trust auth, or
``RETENTIOND_TEST_DATABASE_URL`` as an admin URL).

    .venv/bin/python bench/partition_bench.py                 # 1,000,000 rows, 3 repetitions
    .venv/bin/python bench/partition_bench.py --rows 200000 --repeat 1

The source database holds ``events`` range-partitioned on ``created_at`` in 12 leaves of 30
days; the rows are spread evenly over the 360 days, retention is 180 days, so the 6 oldest
leaves (half the rows) are wholly expired; one subject with 10 rows in one of them is under a
legal hold, so that leaf goes through the batches and the other 5 are purged whole. Each
repetition runs, on fresh copies (``CREATE DATABASE … TEMPLATE``), interleaved: (a) the raw
``DELETE FROM events WHERE created_at < cutoff``, (b) ``retentiond run`` (audited: COPY of the
keys, outbox rows, DETACH … CONCURRENTLY, DROP; the held leaf in batches; refs in a PostgreSQL
ledger); and (c), for reference, the unaudited structure alone: the 5 clean leaves' keys read
with a binary COPY, then DETACH … CONCURRENTLY and DROP. Reported: rows/s and the ratios to
(a), with the time (b) spent in the whole-partition step and in the batches (the rest:
counting, the relay to the ledger, start and finish).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _bench_common import admin_engine, db_url, drop, recreate  # noqa: E402
from _bench_common import write_config as common_config  # noqa: E402

SOURCE = "rtd_partbench_source"
LEAVES = 12
DAYS = 30
HELD = "acct_held"


def write_config(tmp: Path, db: str, ledger_db: str, batch_size: int) -> Path:
    """Write the config of a run deleting the partitioned events after half their span; return its path."""
    return common_config(
        tmp,
        db,
        ledger_db,
        action="delete",
        batch_size=batch_size,
        strategy="null",
        partitioned=True,
        retain=f"{DAYS * LEAVES // 2}d",
        held=(HELD,),
    )


def seed(admin: sa.Engine, rows: int, now: datetime) -> None:
    """Create the source database: ``rows`` events over 360 days in 12 leaves; 10 held rows in leaf 8."""
    recreate(admin, SOURCE)
    engine = sa.create_engine(db_url(SOURCE))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE events (id bigint NOT NULL, account_id text NOT NULL, created_at timestamptz NOT NULL, "
                "email text, name text, payload text, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)"
            )
        )
        for k in range(LEAVES):
            lo, hi = now - timedelta(days=DAYS * (k + 1)), now - timedelta(days=DAYS * k)
            # Bench DDL: the values are ours (datetimes), formatted as ISO literals.
            conn.execute(
                sa.text(
                    f"CREATE TABLE events_p{k:02d} PARTITION OF events "
                    f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
                )
            )
        # Synthetic data, no personal data. Ages spread evenly over [0, 360 days).
        conn.execute(
            sa.text(
                "INSERT INTO events SELECT g, 'acct_' || (g % 10000), "
                ":now - ((g - 0.5)::double precision / :rows) * interval '360 days', "
                "'user' || g || '@example.com', 'Name ' || g, repeat('x', 60) FROM generate_series(1, :rows) g"
            ),
            {"now": now, "rows": rows},
        )
        held_at = now - timedelta(days=DAYS * 8 + 1)
        conn.execute(
            sa.text("INSERT INTO events SELECT :base + g, :held, :at, NULL, NULL, 'x' FROM generate_series(1, 10) g"),
            {"base": rows + 1, "held": HELD, "at": held_at},
        )
        conn.execute(sa.text("CREATE INDEX events_created_at ON events (created_at)"))
        conn.execute(sa.text("CREATE INDEX events_account ON events (account_id)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE events"))
    engine.dispose()


def timed_raw(db: str, cutoff: datetime) -> tuple[int, float]:
    engine = sa.create_engine(db_url(db))
    with engine.begin() as conn:
        started = time.perf_counter()
        count = conn.execute(sa.text("DELETE FROM events WHERE created_at < :cutoff"), {"cutoff": cutoff}).rowcount
        elapsed = time.perf_counter() - started
    engine.dispose()
    return count, elapsed


def timed_prototype(db: str, leaves: list[str]) -> tuple[int, float]:
    """The unaudited reference: per leaf, the keys read with a binary COPY (kept, not audited), DETACH, DROP."""
    engine = sa.create_engine(db_url(db))
    count = 0
    started = time.perf_counter()
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.autocommit = True
        for leaf in leaves:
            with raw.cursor() as cur:
                with cur.copy(f"COPY (SELECT id, created_at FROM {leaf}) TO STDOUT (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "timestamptz"])
                    count += sum(1 for _ in copy.rows())
                cur.execute(f"ALTER TABLE events DETACH PARTITION {leaf} CONCURRENTLY")
                cur.execute(f"DROP TABLE {leaf}")
    elapsed = time.perf_counter() - started
    engine.dispose()
    return count, elapsed


# Runs in a subprocess: the run, with the time spent in the whole-partition step and in batches.
_RUN = """
import json, time, resource
from datetime import datetime
from retentiond.config.loader import load_config
from retentiond.actions.run import Runner
from retentiond.logs import configure_logging
from retentiond.stores.sql import partitions, worker
spent = {"whole": 0.0, "batches": 0.0}
def timed(fn, key):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[key] += time.perf_counter() - t
    return wrapper
partitions.WholePartitions.next = timed(partitions.WholePartitions.next, "whole")
worker.TargetWorker.run_batch = timed(worker.TargetWorker.run_batch, "batches")
configure_logging("warning", renderer="json")
t = time.perf_counter()
r = Runner(load_config(CONFIG), mode="run", now=datetime.fromisoformat(NOW)).execute()
e = time.perf_counter() - t
print(json.dumps({"totals": r.totals(), "seconds": e, "failed": r.failed, "spent": spent,
                  "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def timed_retentiond(config: Path, now: datetime) -> dict[str, object]:
    code = _RUN.replace("CONFIG", repr(str(config))).replace("NOW", repr(now.isoformat()))
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    data: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    if data["failed"]:
        raise SystemExit(f"retentiond run failed: {data['failed']}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    admin = admin_engine()
    now = datetime.now(UTC).replace(microsecond=0)
    cutoff = now - timedelta(days=DAYS * LEAVES // 2)
    print(f"seeding {args.rows:,} rows in {LEAVES} leaves, half expired, 10 held rows in one expired leaf ...")
    t = time.perf_counter()
    seed(admin, args.rows, now)
    print(f"  seeded in {time.perf_counter() - t:.1f}s", flush=True)
    raw: list[float] = []
    ours: list[float] = []
    proto: list[float] = []
    spent: list[dict[str, float]] = []
    rss: list[int] = []
    deleted = 0
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            for rep in range(args.repeat):
                recreate(admin, "rtd_partbench_raw", SOURCE)
                count, seconds = timed_raw("rtd_partbench_raw", cutoff)
                raw.append(count / seconds)
                deleted = count
                recreate(admin, "rtd_partbench_proto", SOURCE)
                n, proto_s = timed_prototype("rtd_partbench_proto", [f"events_p{k:02d}" for k in (6, 7, 9, 10, 11)])
                proto.append(n / proto_s)
                drop(admin, "rtd_partbench_proto")
                recreate(admin, "rtd_partbench_run", SOURCE)
                recreate(admin, "rtd_partbench_ledger")
                tmp = Path(tmpdir) / f"r{rep}"
                tmp.mkdir()
                data = timed_retentiond(write_config(tmp, "rtd_partbench_run", "rtd_partbench_ledger", 5000), now)
                totals = data["totals"]
                assert isinstance(totals, dict)
                acted = int(totals.get("deleted", 0))
                if acted != count - 10:
                    raise SystemExit(f"retentiond deleted {acted}, expected {count - 10} (raw {count} minus held)")
                ours.append(acted / float(data["seconds"]))  # type: ignore[arg-type]
                spent.append(data["spent"])  # type: ignore[arg-type]
                rss.append(int(data["rss_kib"]))  # type: ignore[call-overload]
                print(
                    f"  rep {rep + 1}: raw {count:,} rows in {seconds:.2f}s; retentiond {acted:,} rows in "
                    f"{data['seconds']:.2f}s (whole-partition step {spent[-1]['whole']:.2f}s, "
                    f"batches {spent[-1]['batches']:.2f}s)",
                    flush=True,
                )
    finally:
        for name in ("rtd_partbench_raw", "rtd_partbench_proto", "rtd_partbench_run", "rtd_partbench_ledger", SOURCE):
            drop(admin, name)
    ratios = [o / r for o, r in zip(ours, raw, strict=True)]
    print(f"\nrows {args.rows:,}, expired {deleted:,} (10 held), {args.repeat} interleaved repetitions, medians:")
    print(f"  raw DELETE … WHERE created_at < cutoff: {statistics.median(raw):>12,.0f} rows/s")
    print(
        f"  retentiond run (audited):               {statistics.median(ours):>12,.0f} rows/s  "
        f"= {statistics.median(ratios):.2f}× raw (range {min(ratios):.2f}–{max(ratios):.2f})"
    )
    pratios = [p / r for p, r in zip(proto, raw, strict=True)]
    print(
        f"  unaudited COPY of the keys + DETACH + DROP of the 5 clean leaves: {statistics.median(proto):>12,.0f} rows/s"
        f"  = {statistics.median(pratios):.2f}× raw"
    )
    whole = statistics.median(s["whole"] for s in spent)
    batches = statistics.median(s["batches"] for s in spent)
    print(f"  of which: whole-partition step {whole:.2f}s, batches (held leaf) {batches:.2f}s")
    print(f"  peak RSS {max(rss) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
