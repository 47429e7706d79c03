"""Poison-row benchmark (issue 10, item 1): a run over 100k expired rows of which 1 % cannot be deleted.

Prints figures; it is not a test. Needs the local PostgreSQL (127.0.0.1:5432, trust auth, or
``RETENTIOND_TEST_DATABASE_URL`` as an admin URL).

    .venv/bin/python bench/poison_bench.py                      # 100,000 rows, 1 % poison
    .venv/bin/python bench/poison_bench.py --rows 20000 --poison 0.05

Two runs on fresh databases with the same rows: (a) nothing refers to the tickets (baseline);
(b) ``invoices`` refers to a random ``--poison`` fraction of them with ``ON DELETE RESTRICT``,
so those rows cannot be deleted and each batch holding one is split down to single rows. For
each: wall time, rows deleted, rows audited as failed, ``failed`` ledger entries, exit code.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retentiond.actions.run import Runner  # noqa: E402
from retentiond.audit.ledger import Ledger  # noqa: E402
from retentiond.audit.signing import generate_key_pair  # noqa: E402
from retentiond.cli.render import toml_like  # noqa: E402
from retentiond.config.loader import load_config  # noqa: E402
from retentiond.logs import configure_logging  # noqa: E402

ADMIN = os.environ.get("RETENTIOND_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _url(database: str) -> sa.URL:
    url = make_url(ADMIN)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.set(database=database)


def seed(url: sa.URL, rows: int, poison: list[int], now: datetime) -> None:
    """Create ``tickets`` (``rows`` expired rows) and ``invoices`` referring to the ``poison`` ids."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE tickets (id int PRIMARY KEY, closed_at timestamptz NOT NULL)"))
        conn.execute(sa.text("CREATE INDEX ix_tickets_closed_at ON tickets (closed_at, id)"))
        conn.execute(
            sa.text("INSERT INTO tickets SELECT g, :base - g * interval '1 second' FROM generate_series(1, :n) AS g"),
            {"base": now - timedelta(days=40), "n": rows},
        )
        conn.execute(
            sa.text(
                "CREATE TABLE invoices (id serial PRIMARY KEY, "
                "ticket_id int NOT NULL REFERENCES tickets(id) ON DELETE RESTRICT)"
            )
        )
        if poison:
            conn.execute(
                sa.text("INSERT INTO invoices (ticket_id) SELECT unnest(CAST(:ids AS int[]))"), {"ids": poison}
            )
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def write_config(tmp: Path, url: sa.URL, batch_size: int) -> Path:
    """Write a config deleting tickets older than 30 days, its holds file and keys; return its path."""
    (tmp / "hmac.key").write_bytes(os.urandom(32).hex().encode())
    private_pem, _, _ = generate_key_pair()
    (tmp / "signing.pem").write_bytes(private_pem)
    os.chmod(tmp / "signing.pem", 0o600)
    (tmp / "holds.toml").write_text("# no holds\n")
    data = {
        "daemon": {
            "state_dir": str(tmp / "state"),
            "holds_file": str(tmp / "holds.toml"),
            "metrics_listen": "",
            "max_fraction_per_run": 1.0,
            "batch_size": batch_size,
        },
        "audit": {"hmac_key_file": str(tmp / "hmac.key"), "signing_key_file": str(tmp / "signing.pem")},
        "stores": {"app": {"kind": "sql", "url": url.render_as_string(hide_password=False)}},
        "categories": {
            "support": {
                "retain": "30d",
                "action": "delete",
                "sql": [{"store": "app", "table": "tickets", "key": ["id"], "age_column": "closed_at"}],
            }
        },
    }
    path = tmp / "retention.toml"
    path.write_text(toml_like(data))
    return path


def scenario(admin: sa.Engine, rows: int, fraction: float, batch_size: int, now: datetime) -> str:
    """Run once on a fresh database; return one line of figures."""
    name = f"rtd_poison_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # our own hex name
    try:
        poison = sorted(random.Random(7).sample(range(1, rows + 1), int(rows * fraction)))
        url = _url(name)
        seed(url, rows, poison, now)
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), url, batch_size)
            started = time.monotonic()
            report = Runner(load_config(config), now=now).execute()
            elapsed = time.monotonic() - started
            ledger = Ledger.open(f"sqlite:///{Path(tmp) / 'state' / 'audit.db'}", "retentiond")
            try:
                failed_entries = [e for e in ledger.entries(event="batch") if e.fields["outcome"] == "failed"]
            finally:
                ledger.close()
            target = report.targets[0]
            left = sa.create_engine(url)
            with left.connect() as conn:
                remaining = conn.execute(sa.text("SELECT count(*) FROM tickets")).scalar_one()
            left.dispose()
        return (
            f"rows {rows:>7}  poison {len(poison):>5}  time {elapsed:7.2f} s  deleted {target.acted:>7}  "
            f"failed {target.failed:>5} (ledger: {sum(e.fields['count'] for e in failed_entries)} in "
            f"{len(failed_entries)} entries)  left {remaining:>5}  batches {target.batches:>4}  "
            f"exit {report.exit_code}  reason: {report.failed.get('support', '-')}"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    """Parse the arguments and print the baseline and the poisoned run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--poison", type=float, default=0.01, help="fraction of rows another table refers to")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    configure_logging("error")
    admin = sa.create_engine(_url(make_url(ADMIN).database or "postgres"), isolation_level="AUTOCOMMIT")
    now = datetime.now(UTC)
    print(f"batch_size {args.batch_size}")
    print("baseline:", scenario(admin, args.rows, 0.0, args.batch_size, now))
    print("poisoned:", scenario(admin, args.rows, args.poison, args.batch_size, now))
    admin.dispose()


if __name__ == "__main__":
    main()
