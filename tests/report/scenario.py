"""A ledger made by real runs over four months, for the report's tests.

The engine (``Runner``) runs against a real SQL store (SQLite or PostgreSQL) and a real S3
endpoint (moto over HTTP) once a month, the clock moved with time-machine so each entry carries
its month. What happens, month by month (runs at 03:00 UTC on the 15th of four months ending two months
ago; the data starts four months before the first):

* month 1: the blast-radius guard (limit 30 %) stops every category; the operator allows the
  run once. Hold H1 (legal, ``support``, subject ``acct_h``) is in force from the 1st.
* month 2: H1 gets an expiry date (``hold_changed``); hold H2 (tax, ``contacts``) is placed.
* month 3: H1 is lifted (``hold_released``, 7 days of grace); the ``notes`` table is gone, so
  that category fails (a ``failed`` entry).
* month 4: ``notes`` is back; H1's records go.

Throughout, one S3 version is under an Object Lock legal hold (``blocked`` at every run) and
some objects and tickets have prior versions.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from retentiond.actions.run import Runner, RunReport
from retentiond.audit.ledger import Entry, Ledger
from retentiond.audit.signing import generate_key_pair
from retentiond.cli.render import toml_like
from retentiond.config.loader import load_config

TZ = sa.DateTime(timezone=True)
metadata = sa.MetaData()
tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text),
    sa.Column("closed_at", TZ),
)
ticket_versions = sa.Table(
    "ticket_versions",
    metadata,
    sa.Column("version_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ticket_id", sa.Integer, nullable=False),
    sa.Column("superseded_at", TZ, nullable=False),
)
contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text),
    sa.Column("last_seen", TZ),
    sa.Column("email", sa.Text),
)
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text),
    sa.Column("created_at", TZ),
)

#: The scenario's first month begins five months before this one (PostgreSQL's clock, which
#: the runs cannot move, must stay within ``max_clock_skew`` of theirs).
BASE = (datetime.now(UTC) - relativedelta(months=5)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
RUN_TIMES = tuple(BASE + relativedelta(months=m, days=14, hours=3) for m in range(4))
MONTHS = tuple(f"{t:%Y-%m}" for t in RUN_TIMES)
START = BASE - relativedelta(months=4)  # the oldest data


def _sql(table: str, age: str, **extra: Any) -> dict[str, Any]:
    return {"store": "app", "table": table, "key": ["id"], "age_column": age, "subject_column": "account_id", **extra}


CATEGORIES: dict[str, Any] = {
    "support": {
        "retain": "30d",
        "action": "delete",
        "sql": [
            _sql(
                "tickets",
                "closed_at",
                history={
                    "table": "ticket_versions",
                    "key": ["version_id"],
                    "parent": ["ticket_id"],
                    "superseded_column": "superseded_at",
                },
            )
        ],
    },
    "contacts": {
        "retain": "60d",
        "action": "anonymize",
        "sql": [_sql("contacts", "last_seen", anonymize={"email": "null"})],
    },
    "notes": {"retain": "30d", "action": "delete", "sql": [_sql("notes", "created_at")]},
    "media": {"retain": "30d", "action": "delete", "s3": [{"store": "files", "bucket": "", "prefix": "m/"}]},
}

H1 = {
    "id": "H1",
    "kind": "legal",
    "reason": "Preservation notice",
    "placed_by": "legal@test",
    "placed_at": BASE.date(),
    "categories": ["support"],
    "subjects": ["acct_h"],
}
H2 = {
    "id": "H2",
    "kind": "tax",
    "reason": "Tax record keeping",
    "placed_by": "finance@test",
    "placed_at": (BASE + relativedelta(months=1)).date(),
    "categories": ["contacts"],
    "keep_younger_than": "1y",
}


def ledger_time(day: str) -> str:
    """Return ``YYYY-MM-DD`` as the ledger writes that day's midnight (UTC)."""
    return f"{day}T00:00:00.000000Z"


def _toml_value(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return json.dumps(value)


@dataclass
class Scenario:
    """The files and handles of one scenario; ``reports`` are the runs' own reports, in order."""

    dir: Path
    store_url: str
    ledger_url: str | None  # None: SQLite audit.db in state_dir
    endpoint: str
    bucket: str
    reports: list[RunReport] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        """Return the operator's config."""
        return self.dir / "retention.toml"

    @property
    def pubkey_path(self) -> Path:
        """Return the public key of the checkpoint signing key."""
        return self.dir / "keys" / "signing.pub.pem"

    @property
    def audit_url(self) -> str:
        """Return the ledger's URL."""
        return self.ledger_url or f"sqlite:///{self.dir / 'state' / 'audit.db'}"

    def auditor_config(self) -> Path:
        """Write and return an auditor's config: ``[audit]`` with the ledger URL only."""
        path = self.dir / "auditor.toml"
        path.write_text(f'[audit]\nurl = "{self.audit_url}"\n', encoding="utf-8")
        return path

    def configure(self, max_fraction: float = 1.0) -> None:
        """Write the operator's config."""
        categories = json.loads(json.dumps(CATEGORIES))
        categories["media"]["s3"][0]["bucket"] = self.bucket
        keys = self.dir / "keys"
        data: dict[str, Any] = {
            "daemon": {
                "state_dir": str(self.dir / "state"),
                "holds_file": str(self.dir / "holds.toml"),
                "metrics_listen": "",
                "max_fraction_per_run": max_fraction,
                "min_retention": "1d",
                # The runs move the clock back to 2026; PostgreSQL's clock does not follow.
                "max_clock_skew": "365d",
            },
            "audit": {"hmac_key_file": str(keys / "hmac.key"), "signing_key_file": str(keys / "signing.pem")},
            "stores": {
                "app": {"kind": "sql", "url": self.store_url},
                "files": {"kind": "s3", "endpoint_url": self.endpoint, "region": "us-east-1"},
            },
            "categories": categories,
        }
        if self.ledger_url is not None:
            data["audit"]["url"] = self.ledger_url
        self.config_path.write_text(toml_like(data), encoding="utf-8")

    def holds(self, *holds: dict[str, Any]) -> None:
        """Write Legal's file."""
        blocks = ["[[hold]]\n" + "\n".join(f"{k} = {_toml_value(v)}" for k, v in h.items()) for h in holds]
        (self.dir / "holds.toml").write_text("# holds\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")

    def run(self, at: datetime, **kwargs: Any) -> RunReport:
        """Run the policy at ``at`` (the clock moved there) and keep its report."""
        import time_machine

        with time_machine.travel(at, tick=True):
            report = Runner(load_config(self.config_path), **kwargs).execute()
        self.reports.append(report)
        return report

    def entries(self) -> list[Entry]:
        """Return every ledger entry, in seq order."""
        with Ledger.open(self.audit_url, create=False) as ledger:
            return ledger.entries()


def _stored(value: datetime, sqlite: bool) -> datetime:
    return value.replace(tzinfo=None) if sqlite else value


def _seed_sql(engine: sa.Engine) -> None:
    sqlite = engine.dialect.name == "sqlite"
    metadata.create_all(engine)
    day = timedelta(days=1)
    ticket_rows = [
        {"id": i, "account_id": "acct_h" if i % 5 == 0 else "acct_x", "closed_at": _stored(START + i * 5 * day, sqlite)}
        for i in range(1, 41)
    ]
    versions = [
        {"version_id": 1000 + i, "ticket_id": i, "superseded_at": _stored(START + i * 5 * day - day, sqlite)}
        for i in range(1, 41)
        if i % 3 == 0
    ]
    contact_rows = [
        {
            "id": i,
            "account_id": f"acct_{i}",
            "last_seen": _stored(START + i * 7 * day, sqlite),
            "email": f"c{i}@example.org",
        }
        for i in range(1, 21)
    ]
    note_rows = [
        {"id": i, "account_id": "acct_x", "created_at": _stored(START + i * 12 * day, sqlite)} for i in range(1, 11)
    ]
    with engine.begin() as conn:
        conn.execute(tickets.insert(), ticket_rows)
        conn.execute(ticket_versions.insert(), versions)
        conn.execute(contacts.insert(), contact_rows)
        conn.execute(notes.insert(), note_rows)


def _backdate(bucket: str, key: str, version_id: str, when: datetime) -> None:
    """Set one version's LastModified in moto's in-process backend (S3 has no API for it)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    for version in s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets[bucket].keys.getlist(key, []):
        if str(version.version_id) == version_id:
            version.last_modified = when.astimezone(UTC).replace(tzinfo=None)


def _seed_s3(scenario: Scenario) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=scenario.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=scenario.bucket, ObjectLockEnabledForBucket=True)
    for i in range(12):
        key = f"m/o{i}"
        ages = (
            [START + timedelta(days=10 * i), START + timedelta(days=10 * i + 2)]
            if i % 4 == 0
            else [START + timedelta(days=10 * i)]
        )
        for when in ages:
            version = client.put_object(Bucket=scenario.bucket, Key=key, Body=b"x")["VersionId"]
            _backdate(scenario.bucket, key, version, when)
    locked = client.put_object(Bucket=scenario.bucket, Key="m/locked", Body=b"x")["VersionId"]
    _backdate(scenario.bucket, "m/locked", locked, START)
    client.put_object_legal_hold(Bucket=scenario.bucket, Key="m/locked", VersionId=locked, LegalHold={"Status": "ON"})


def build(dir: Path, store_url: str, endpoint: str, ledger_url: str | None = None) -> Scenario:
    """Seed the stores and run the four months; return the scenario."""
    scenario = Scenario(dir, store_url, ledger_url, endpoint, bucket=f"report-{secrets.token_hex(4)}")
    keys = dir / "keys"
    keys.mkdir(parents=True)
    (keys / "hmac.key").write_text(secrets.token_hex(32))
    private_pem, public_pem, _ = generate_key_pair()
    (keys / "signing.pem").write_bytes(private_pem)
    os.chmod(keys / "signing.pem", 0o600)
    (keys / "signing.pub.pem").write_bytes(public_pem)
    engine = sa.create_engine(store_url)
    try:
        _seed_sql(engine)
        _seed_s3(scenario)
        jan, feb, mar, apr = RUN_TIMES
        scenario.holds(H1)
        scenario.configure(max_fraction=0.3)
        scenario.run(jan)  # the guard stops support
        scenario.run(jan + timedelta(minutes=10), allow_large=True)
        scenario.configure(max_fraction=1.0)
        scenario.holds({**H1, "expires_at": (BASE + relativedelta(months=11)).date()}, H2)
        scenario.run(feb)
        scenario.holds(H2)
        notes.drop(engine)
        scenario.run(mar)  # notes fails
        notes.create(engine)
        scenario.run(apr)
    finally:
        engine.dispose()
    return scenario
