"""SQL engine benchmark: retentiond vs the raw statement on identical copies of the data.

Prints figures; it is not a test. Needs the local PostgreSQL (127.0.0.1:5432, trust auth, or
``RETENTIOND_TEST_DATABASE_URL`` as an admin URL).

    .venv/bin/python bench/sql_bench.py                 # 1,000,000 rows
    .venv/bin/python bench/sql_bench.py --rows 100000   # quicker

Scenarios, each on a fresh copy (``CREATE DATABASE … TEMPLATE``) of one seeded database:
(a) raw ``DELETE … WHERE created_at < cutoff``; (b) ``retentiond run`` deleting the same rows
(batched, hold-aware, every deleted row's ref in a PostgreSQL ledger); (c) raw
``UPDATE … SET email = NULL, name = NULL`` vs ``retentiond run`` anonymizing the same rows;
(d) latency of a concurrent writer (single-row INSERTs and UPDATEs of random expired rows)
at idle, during (a) and during (b); (e) retentiond's peak RSS (a subprocess per size).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retentiond.audit.signing import generate_key_pair  # noqa: E402
from retentiond.cli.render import toml_like  # noqa: E402

ADMIN = os.environ.get("RETENTIOND_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SOURCE = "rtd_bench_source"
SUBJECTS = 10_000
HELD_FRACTION = 0.01


def admin_engine() -> sa.Engine:
    url = make_url(ADMIN)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def db_url(name: str) -> str:
    url = make_url(ADMIN)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.set(database=name).render_as_string(hide_password=False)


def recreate(admin: sa.Engine, name: str, template: str | None = None) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if template:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        else:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))


def seed(admin: sa.Engine, rows: int, now: datetime) -> None:
    """Create the source database: ``rows`` events over two years, half older than one year."""
    recreate(admin, SOURCE)
    engine = sa.create_engine(db_url(SOURCE))
    start = now - timedelta(days=730)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE events (id bigint PRIMARY KEY, account_id text NOT NULL, "
                "created_at timestamptz NOT NULL, email text, name text, payload text)"
            )
        )
        # generate_series keeps seeding fast; the data is synthetic, no personal data.
        conn.execute(
            sa.text(
                "INSERT INTO events SELECT g, 'acct_' || (g % :subjects), "
                ":start + (g::double precision / :rows) * interval '730 days', "
                "'user' || g || '@example.com', 'Name ' || g, repeat('x', 60) FROM generate_series(1, :rows) g"
            ),
            {"subjects": SUBJECTS, "start": start, "rows": rows},
        )
        conn.execute(sa.text("CREATE INDEX events_created_at ON events (created_at)"))
        conn.execute(sa.text("CREATE INDEX events_account ON events (account_id)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE events"))
    engine.dispose()


def write_config(tmp: Path, db: str, ledger_db: str, action: str, batch_size: int) -> Path:
    keys = tmp / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "hmac").write_text("b" * 64)
    private_pem, _, _ = generate_key_pair()
    (keys / "signing.pem").write_bytes(private_pem)
    held = [f"acct_{i}" for i in range(0, int(SUBJECTS * HELD_FRACTION))]
    holds = tmp / "holds.toml"
    lines = []
    lines.append(
        '[[hold]]\nid = "LIT-BENCH"\nkind = "legal"\nreason = "benchmark"\nplaced_by = "bench"\n'
        'placed_at = 2020-01-01\ncategories = ["events"]\nsubjects = [' + ", ".join(f'"{s}"' for s in held) + "]\n"
    )
    holds.write_text("\n".join(lines))
    target = {
        "store": "app",
        "table": "events",
        "key": ["id"],
        "age_column": "created_at",
        "subject_column": "account_id",
    }
    if action == "anonymize":
        target["anonymize"] = {"email": "null", "name": "null"}
    data = {
        "daemon": {
            "state_dir": str(tmp / "state"),
            "holds_file": str(holds),
            "batch_size": batch_size,
            "max_fraction_per_run": 1.0,
            "metrics_listen": "",
        },
        "audit": {
            "url": db_url(ledger_db),
            "hmac_key_file": str(keys / "hmac"),
            "signing_key_file": str(keys / "signing.pem"),
        },
        "stores": {"app": {"kind": "sql", "url": db_url(db), "statement_timeout": "10m"}},
        "categories": {"events": {"retain": "1y", "action": action, "sql": [target]}},
    }
    path = tmp / "retention.toml"
    path.write_text(toml_like(data))
    return path


class Writer(threading.Thread):
    """A concurrent application writer: single-row INSERTs and UPDATEs of random expired rows."""

    def __init__(self, db: str, rows: int) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(db_url(db), pool_size=1)
        self.rows = rows
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.next_id = 10_000_000

    def run(self) -> None:
        rng = random.Random(1)
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                if rng.random() < 0.5:
                    self.next_id += 1
                    conn.execute(
                        sa.text("INSERT INTO events VALUES (:id, 'acct_new', now(), NULL, NULL, 'x')"),
                        {"id": self.next_id},
                    )
                else:
                    conn.execute(
                        sa.text("UPDATE events SET payload = 'y' WHERE id = :id"),
                        {"id": rng.randint(1, self.rows // 2)},
                    )
                conn.commit()
                self.latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.002)
        self.engine.dispose()

    def figures(self) -> str:
        if not self.latencies:
            return "no samples"
        lat = sorted(self.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return f"p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} writes)"


def timed_raw(db: str, statement: str, cutoff: datetime) -> tuple[int, float]:
    engine = sa.create_engine(db_url(db))
    with engine.begin() as conn:
        started = time.perf_counter()
        count = conn.execute(sa.text(statement), {"cutoff": cutoff}).rowcount
        elapsed = time.perf_counter() - started
    engine.dispose()
    return count, elapsed


def timed_retentiond(config: Path, now: datetime) -> tuple[dict[str, int], float, int]:
    """Run retentiond in a subprocess; return (totals, seconds, peak RSS in KiB)."""
    code = (
        "import json,sys,time,resource\n"
        "from datetime import datetime\n"
        "from retentiond.config.loader import load_config\n"
        "from retentiond.actions.run import Runner\n"
        "from retentiond.logs import configure_logging\n"
        "configure_logging('warning', renderer='json')\n"
        "t=time.perf_counter()\n"
        f"r=Runner(load_config({str(config)!r}), mode='run',"
        f" now=datetime.fromisoformat({now.isoformat()!r})).execute()\n"
        "e=time.perf_counter()-t\n"
        "print(json.dumps({'totals': r.totals(), 'seconds': e, 'failed': r.failed,"
        " 'rss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    if data["failed"]:
        raise SystemExit(f"retentiond run failed: {data['failed']}")
    return data["totals"], data["seconds"], data["rss_kib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    admin = admin_engine()
    now = datetime.now(UTC).replace(microsecond=0)
    cutoff = now - timedelta(days=365)
    print(
        f"seeding {args.rows:,} rows (50 % expired, {HELD_FRACTION:.0%} of {SUBJECTS:,} subjects held) ...", flush=True
    )
    t = time.perf_counter()
    seed(admin, args.rows, now)
    print(f"  seeded in {time.perf_counter() - t:.1f}s")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)

        def scenario(name: str) -> str:
            db = f"rtd_bench_{name}"
            recreate(admin, db, SOURCE)
            return db

        # (a) raw DELETE, with and without a concurrent writer
        db = scenario("raw_delete")
        writer = None if args.skip_latency else Writer(db, args.rows)
        if writer:
            writer.start()
        n, s = timed_raw(db, "DELETE FROM events WHERE created_at < :cutoff", cutoff)
        if writer:
            writer.stop.set()
            writer.join()
        results["raw_delete"] = n / s
        print(f"(a) raw DELETE: {n:,} rows in {s:.2f}s = {n / s:,.0f} rows/s")
        if writer:
            print(f"    concurrent writer during raw DELETE: {writer.figures()}")

        # (b) retentiond delete, ledger in PostgreSQL
        db = scenario("rtd_delete")
        recreate(admin, "rtd_bench_ledger")
        (tmp / "b").mkdir()
        config = write_config(tmp / "b", db, "rtd_bench_ledger", "delete", args.batch_size)
        writer = None if args.skip_latency else Writer(db, args.rows)
        if writer:
            writer.start()
        totals, s, rss = timed_retentiond(config, now)
        if writer:
            writer.stop.set()
            writer.join()
        n = totals.get("deleted", 0)
        results["rtd_delete"] = n / s
        print(
            f"(b) retentiond delete: {n:,} rows in {s:.2f}s = {n / s:,.0f} rows/s = "
            f"{results['rtd_delete'] / results['raw_delete']:.2f}x raw (held {totals.get('held', 0):,}); "
            f"peak RSS {rss / 1024:.0f} MB"
        )
        if writer:
            print(f"    concurrent writer during retentiond delete: {writer.figures()}")

        # idle writer latency
        if not args.skip_latency:
            db = scenario("idle")
            writer = Writer(db, args.rows)
            writer.start()
            time.sleep(3)
            writer.stop.set()
            writer.join()
            print(f"(d) concurrent writer at idle: {writer.figures()}")

        # (c) anonymize: raw UPDATE vs retentiond
        db = scenario("raw_update")
        n, s = timed_raw(
            db, "UPDATE events SET email = NULL, name = NULL WHERE created_at < :cutoff AND email IS NOT NULL", cutoff
        )
        results["raw_update"] = n / s
        print(f"(c) raw UPDATE (2 columns to NULL): {n:,} rows in {s:.2f}s = {n / s:,.0f} rows/s")
        db = scenario("rtd_update")
        recreate(admin, "rtd_bench_ledger")
        (tmp / "c").mkdir()
        config = write_config(tmp / "c", db, "rtd_bench_ledger", "anonymize", args.batch_size)
        totals, s, _ = timed_retentiond(config, now)
        n = totals.get("anonymized", 0)
        results["rtd_update"] = n / s
        print(
            f"    retentiond anonymize: {n:,} rows in {s:.2f}s = {n / s:,.0f} rows/s = "
            f"{results['rtd_update'] / results['raw_update']:.2f}x raw"
        )

        # (e) peak RSS at 10 % and 100 % of the size
        if not args.skip_rss:
            for rows in sorted({max(args.rows // 10, 1000), args.rows}):
                seed(admin, rows, now)
                db = scenario("rss")
                recreate(admin, "rtd_bench_ledger")
                (tmp / f"e{rows}").mkdir()
                config = write_config(tmp / f"e{rows}", db, "rtd_bench_ledger", "delete", args.batch_size)
                _, _, rss = timed_retentiond(config, now)
                print(f"(e) peak RSS of retentiond run at {rows:,} rows: {rss / 1024:.0f} MB")
    for name in [
        "rtd_bench_raw_delete",
        "rtd_bench_rtd_delete",
        "rtd_bench_idle",
        "rtd_bench_raw_update",
        "rtd_bench_rtd_update",
        "rtd_bench_rss",
        "rtd_bench_ledger",
        SOURCE,
    ]:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


if __name__ == "__main__":
    main()
