"""Helpers of bench/sql_bench.py: databases, seeding, the concurrent writer, a retentiond run.

Not a test and not part of the package; see sql_bench.py for what is measured.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dateutil.relativedelta import relativedelta
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retentiond.audit.signing import generate_key_pair  # noqa: E402
from retentiond.cli.render import toml_like  # noqa: E402

ADMIN = os.environ.get("RETENTIOND_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SUBJECTS = 10_000
HELD = tuple(f"acct_{i}" for i in range(SUBJECTS // 100))  # 1 % of the subjects: the legal hold
PART_HELD = ("acct_part",)  # the partitioned case's one held subject, all in one expired month
PART_HELD_MONTH = 2  # its rows: in the third monthly partition (wholly expired)
# The data spans the 12 whole months before the current one; with a 6-month retention the older 6
# monthly partitions are wholly expired and the 7th partly (up to today's day of the month).
RETAIN = "6mo"
MONTHS = 12
# No rows in the GAP after the bench's cutoff: each ``retentiond run`` takes its own clock (it
# refuses one far from the database's), so its cutoff is later than the bench's by the time the
# bench has run; the gap keeps the expired rows the same for every scenario.
GAP = timedelta(days=2)
WRITER_IDS = 1_000_000_000  # ids of the writer's inserts (above any seeded id)


def _url(database: str | None = None) -> sa.URL:
    url = make_url(ADMIN)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.set(database=database) if database else url


def admin_engine() -> sa.Engine:
    """Return an AUTOCOMMIT engine on the admin database."""
    return sa.create_engine(_url(), isolation_level="AUTOCOMMIT")


def db_url(name: str) -> str:
    """Return the URL of database ``name`` (password kept: it goes to a config file)."""
    return _url(name).render_as_string(hide_password=False)


def pg_dsn(name: str) -> str:
    """Return a libpq URL of database ``name`` for psycopg itself."""
    return _url(name).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate(admin: sa.Engine, name: str, template: str | None = None) -> None:
    """Drop database ``name`` and create it again, empty or as a copy of ``template``."""
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if template:
            # FILE_COPY: a file-level copy (PostgreSQL 15's default WAL_LOG writes the whole copy to WAL).
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY = FILE_COPY'))
        else:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))


def drop(admin: sa.Engine, *names: str) -> None:
    """Drop the databases ``names`` if they exist."""
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def span(now: datetime) -> tuple[datetime, datetime]:
    """Return (start, end) of the data: the 12 whole months before the month of ``now`` (UTC)."""
    end = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return end - relativedelta(months=MONTHS), end


def seed(admin: sa.Engine, name: str, rows: int, now: datetime, cutoff: datetime, *, partitioned: bool) -> None:
    """Create database ``name``: ``rows`` events spread evenly over the 12 months of ``span(now)``.

    None in ``[cutoff, cutoff + GAP)``. ``id`` follows time, so ids up to about ``rows // 2`` are
    past the 6-month retention. Subject ``acct_<id % 10000>``, except every 200th row of the third
    month: subject ``acct_part``. Partitioned: the same rows in 12 monthly range partitions of
    ``created_at``. The table ``bench_held`` lists the subjects the raw hold-aware statements spare.
    """
    recreate(admin, name)
    start, end = span(now)
    part_from = start + relativedelta(months=PART_HELD_MONTH)
    part_to = part_from + relativedelta(months=1)
    engine = sa.create_engine(db_url(name))
    columns = "id bigint NOT NULL, account_id text NOT NULL, created_at timestamptz NOT NULL, "
    columns += "email text, name text, payload text"
    with engine.begin() as conn:
        if partitioned:
            conn.execute(
                sa.text(
                    f"CREATE TABLE events ({columns}, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)"
                )
            )
            for m in range(MONTHS):
                low, high = start + relativedelta(months=m), start + relativedelta(months=m + 1)
                bounds = f"FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
                conn.execute(sa.text(f"CREATE TABLE events_p{low:%Y%m} PARTITION OF events FOR VALUES {bounds}"))
        else:
            conn.execute(sa.text(f"CREATE TABLE events ({columns}, PRIMARY KEY (id))"))
        # generate_series keeps seeding fast; the data is synthetic, no personal data. (g - 1) / rows
        # keeps every instant inside [start, end - GAP), so every row has a partition; instants from
        # the cutoff on move up by GAP.
        conn.execute(
            sa.text(
                "INSERT INTO events SELECT g, 'acct_' || (g % :subjects), "
                "CASE WHEN t < :cutoff THEN t ELSE t + :gap END, "
                "'user' || g || '@example.com', 'Name ' || g, repeat('x', 60) FROM generate_series(1, :rows) g, "
                "LATERAL (SELECT :start + ((g - 1)::double precision / :rows) * (:end - :gap - :start) AS t) x"
            ),
            {"subjects": SUBJECTS, "start": start, "end": end, "rows": rows, "cutoff": cutoff, "gap": GAP},
        )
        conn.execute(
            sa.text("UPDATE events SET account_id = :s WHERE created_at >= :a AND created_at < :b AND id % 200 = 7"),
            {"s": PART_HELD[0], "a": part_from, "b": part_to},
        )
        conn.execute(sa.text("CREATE INDEX events_created_at ON events (created_at)"))
        conn.execute(sa.text("CREATE INDEX events_account ON events (account_id)"))
        conn.execute(sa.text("CREATE TABLE bench_held (account_id text PRIMARY KEY)"))
        held = PART_HELD if partitioned else HELD
        conn.execute(sa.text("INSERT INTO bench_held VALUES (:a)"), [{"a": a} for a in held])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


@dataclass(frozen=True)
class State:
    """What a check compares: seeded rows left (count and id sum) and rows with their original values."""

    left: int
    id_sum: int
    untouched: int


def state(db: str) -> State:
    """Return the state of the seeded rows of ``events`` in ``db`` (the writer's inserts excluded)."""
    engine = sa.create_engine(db_url(db))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*), coalesce(sum(id), 0), "
                "count(*) FILTER (WHERE email = 'user' || id || '@example.com' AND name = 'Name ' || id) "
                "FROM events WHERE id < :w"
            ),
            {"w": WRITER_IDS},
        ).one()
    engine.dispose()
    return State(int(row[0]), int(row[1]), int(row[2]))


def expected_state(db: str, cutoff: datetime) -> State:
    """Return the state ``db`` must reach after a hold-aware purge: held and unexpired rows stay."""
    engine = sa.create_engine(db_url(db))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*), coalesce(sum(id), 0) FROM events e WHERE NOT (created_at < :cutoff "
                "AND NOT EXISTS (SELECT 1 FROM bench_held h WHERE h.account_id = e.account_id))"
            ),
            {"cutoff": cutoff},
        ).one()
    engine.dispose()
    return State(int(row[0]), int(row[1]), int(row[0]))


def write_config(
    tmp: Path,
    db: str,
    ledger_db: str,
    *,
    action: str,
    batch_size: int,
    strategy: str,
    partitioned: bool,
    retain: str = RETAIN,
    held: Sequence[str] | None = None,
) -> Path:
    """Write a retentiond config for one run in ``tmp``; return its path (``held``: the held subjects)."""
    tmp.mkdir(parents=True, exist_ok=True)
    keys = tmp / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "hmac").write_text("b" * 64)
    private_pem, _, _ = generate_key_pair()
    (keys / "signing.pem").write_bytes(private_pem)
    if held is None:
        held = PART_HELD if partitioned else HELD
    holds = tmp / "holds.toml"
    holds.write_text(
        '[[hold]]\nid = "LIT-BENCH"\nkind = "legal"\nreason = "benchmark"\nplaced_by = "bench"\n'
        'placed_at = 2020-01-01\ncategories = ["events"]\nsubjects = [' + ", ".join(f'"{s}"' for s in held) + "]\n"
    )
    target: dict[str, Any] = {
        "store": "app",
        "table": "events",
        # A partitioned table's primary key must include the partition key.
        "key": ["id", "created_at"] if partitioned else ["id"],
        "age_column": "created_at",
        "subject_column": "account_id",
    }
    if action == "anonymize":
        target["anonymize"] = {"email": strategy, "name": strategy}
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
        "categories": {"events": {"retain": retain, "action": action, "sql": [target]}},
    }
    path = tmp / "retention.toml"
    path.write_text(toml_like(data))
    return path


@dataclass(frozen=True)
class RunResult:
    """One ``retentiond run``: its totals, the seconds of ``Runner.execute()`` and its peak RSS."""

    totals: dict[str, int]
    seconds: float
    rss_kib: int


_RUN = """\
import json, resource, time
from retentiond.actions.run import Runner
from retentiond.config.loader import load_config
from retentiond.logs import configure_logging
configure_logging('warning', renderer='json')
t = time.perf_counter()
r = Runner(load_config({config!r}), mode='run').execute()
e = time.perf_counter() - t
print(json.dumps({{'totals': r.totals(), 'seconds': e, 'failed': r.failed,
                  'rss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def run_retentiond(config: Path) -> RunResult:
    """Run ``retentiond run`` (the Runner, on its own clock) in a subprocess; return its figures.

    Raises:
        SystemExit: the run failed or reported failed targets.
    """
    out = subprocess.run(
        [sys.executable, "-c", _RUN.format(config=str(config))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if out.returncode != 0:
        raise SystemExit(f"retentiond run exited {out.returncode}:\n{out.stderr[-3000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    if data["failed"]:
        raise SystemExit(f"retentiond run failed: {data['failed']}")
    return RunResult(data["totals"], data["seconds"], data["rss_kib"])


class Writer(threading.Thread):
    """A concurrent application writer: single-row UPDATEs of random expired rows and INSERTs."""

    def __init__(self, db: str, rows: int, insert_at: datetime) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(db_url(db), pool_size=1)
        self.expired_ids = max(1, int(rows * 0.45))  # ids below ~rows/2 are expired
        self.insert_at = insert_at  # inside the newest partition: every insert has a partition
        self.stop = threading.Event()
        self.ready = threading.Event()  # connected: the first write's wait holds no connection set-up
        self.latencies: list[float] = []
        self.next_id = WRITER_IDS

    def run(self) -> None:
        """Write until stopped, one committed statement at a time, 2 ms apart."""
        rng = random.Random(1)
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            conn.commit()
            self.ready.set()
            while not self.stop.is_set():
                started = time.perf_counter()
                if rng.random() < 0.5:
                    self.next_id += 1
                    conn.execute(
                        sa.text("INSERT INTO events VALUES (:id, 'acct_new', :at, NULL, NULL, 'x')"),
                        {"id": self.next_id, "at": self.insert_at},
                    )
                else:
                    conn.execute(
                        sa.text("UPDATE events SET payload = 'y' WHERE id = :id"),
                        {"id": rng.randint(1, self.expired_ids)},
                    )
                conn.commit()
                self.latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.002)
        self.engine.dispose()

    def figures(self) -> tuple[float, float, float, int]:
        """Return (p50, p99, max) wait in ms and the number of writes."""
        lat = sorted(self.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return statistics.median(lat), p99, lat[-1], len(self.latencies)
