"""Fixtures of the SQL engine tests: a ticket table on PostgreSQL or SQLite, a config, holds, a ledger.

``env`` is parametrized over both backends, so every test that takes it runs on the real
PostgreSQL server and on SQLite: SPEC §4's rules must behave the same on both.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.actions.run import Runner, RunReport
from retentiond.audit.ledger import Entry, Ledger
from retentiond.audit.refs import RecordRef, RefMaker
from retentiond.audit.signing import generate_key_pair
from retentiond.cli.render import toml_like
from retentiond.config.loader import load_config

ROOT = Path(__file__).resolve().parents[3]  # the checkout (tests/stores/<kind>/conftest.py)
TZ = sa.DateTime(timezone=True)

metadata = sa.MetaData()
tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=True),
    sa.Column("closed_at", TZ, nullable=True),
    sa.Column("email", sa.Text, nullable=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("ip", sa.Text, nullable=True),
    sa.Column("ref", sa.Text, nullable=True),
    sa.Column("tier", sa.Text, nullable=True),
    sa.Column("born", sa.Date, nullable=True),
    sa.Column("seen_at", TZ, nullable=True),
    sa.Index("ix_tickets_closed_at", "closed_at"),
)
ticket_versions = sa.Table(
    "ticket_versions",
    metadata,
    sa.Column("version_id", sa.Integer, primary_key=True, autoincrement=False),
    # No foreign key: orphans (a parent deleted by the application) must be handled too.
    sa.Column("ticket_id", sa.Integer, nullable=False),
    sa.Column("superseded_at", TZ, nullable=False),
    sa.Column("email", sa.Text, nullable=True),
    sa.Index("ix_ticket_versions_ticket_id", "ticket_id"),
)

#: A category that deletes closed tickets after 30 days, with prior versions kept 10 days.
SUPPORT: dict[str, Any] = {
    "retain": "30d",
    "action": "delete",
    "sql": [
        {
            "store": "app",
            "table": "tickets",
            "key": ["id"],
            "age_column": "closed_at",
            "subject_column": "account_id",
            "match": {"status": "closed"},
            "history": {
                "table": "ticket_versions",
                "key": ["version_id"],
                "parent": ["ticket_id"],
                "superseded_column": "superseded_at",
            },
        }
    ],
}

ANON_STRATEGIES = {
    "email": "null",
    "name": "redact",
    "ip": "truncate_ip",
    "ref": "hmac",
    "tier": "fixed:gone",
    "born": "year",
    "seen_at": "month",
}


def anon_category(
    retain: str = "30d",
    strategies: dict[str, str] | None = None,
    *,
    history: bool = False,
    match: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a category anonymizing ``tickets`` with ``strategies`` (default: every strategy)."""
    target: dict[str, Any] = {
        "store": "app",
        "table": "tickets",
        "key": ["id"],
        "age_column": "closed_at",
        "subject_column": "account_id",
        "anonymize": dict(strategies or ANON_STRATEGIES),
    }
    if match is not None:
        target["match"] = match
    if history:
        target["history"] = SUPPORT["sql"][0]["history"]
    return {"retain": retain, "action": "anonymize", "sql": [target]}


def hold(hold_id: str, categories: Sequence[str], **extra: Any) -> dict[str, Any]:
    """Return a ``[[hold]]`` table placed long ago (extra keys: subjects, expires_at, keep_younger_than...)."""
    out: dict[str, Any] = {
        "id": hold_id,
        "kind": "legal",
        "reason": "test",
        "placed_by": "legal@test",
        "placed_at": date(2020, 1, 1),
        "categories": list(categories),
    }
    out.update(extra)
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return json.dumps(value)


@dataclass
class Env:
    """One backend with a config, holds file, state dir and ledger in ``dir``."""

    backend: str
    url: str
    engine: sa.Engine
    dir: Path
    now: datetime
    hmac_key: bytes = field(default_factory=lambda: secrets.token_hex(32).encode())
    categories: dict[str, Any] = field(default_factory=dict)
    daemon: dict[str, Any] = field(default_factory=dict)

    # -- files ----------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        """Return the path of the config file."""
        return self.dir / "retention.toml"

    @property
    def holds_path(self) -> Path:
        """Return the path of the holds file."""
        return self.dir / "holds.toml"

    @property
    def state_dir(self) -> Path:
        """Return the state directory (ledger, holds state)."""
        return self.dir / "state"

    def configure(self, categories: dict[str, Any], *, store: dict[str, Any] | None = None, **daemon: Any) -> Path:
        """Write the config (categories, store ``app``'s extra settings, daemon overrides); return its path."""
        self.categories = categories
        self.daemon = daemon
        keys = self.dir / "keys"
        if not keys.exists():
            keys.mkdir()
            (keys / "hmac.key").write_bytes(self.hmac_key)
            private_pem, _, _ = generate_key_pair()
            (keys / "signing.pem").write_bytes(private_pem)
            os.chmod(keys / "signing.pem", 0o600)
        data = {
            "daemon": {
                "state_dir": str(self.state_dir),
                "holds_file": str(self.holds_path),
                "metrics_listen": "",
                "max_fraction_per_run": 1.0,
                "batch_size": 1000,
                **daemon,
            },
            "audit": {"hmac_key_file": str(keys / "hmac.key"), "signing_key_file": str(keys / "signing.pem")},
            "stores": {"app": {"kind": "sql", "url": self.url, **(store or {})}},
            "categories": categories,
        }
        self.config_path.write_text(toml_like(data), encoding="utf-8")
        if not self.holds_path.exists():
            self.write_holds([])
        return self.config_path

    def write_holds(self, holds: Sequence[dict[str, Any]] | str) -> None:
        """Write the holds file (a list of holds, or raw text for broken files)."""
        if isinstance(holds, str):
            text = holds
        else:
            blocks = []
            for h in holds:
                lines = ["[[hold]]"] + [f"{k} = {_toml_value(v)}" for k, v in h.items()]
                blocks.append("\n".join(lines))
            text = "# test holds\n" + "\n\n".join(blocks) + "\n"
        # Write then rename: the watcher must never read half a file.
        tmp = self.holds_path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.holds_path)

    # -- data -----------------------------------------------------------------------------------

    def at(self, **delta: float) -> datetime:
        """Return ``now - timedelta(**delta)`` as stored by the backend (SQLite: naive UTC)."""
        value = self.now - timedelta(**delta)
        return value.replace(tzinfo=None) if self.backend == "sqlite" else value

    def ts(self, value: datetime | None) -> datetime | None:
        """Return an aware UTC instant as the backend stores it."""
        if value is None or self.backend != "sqlite":
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def insert(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (missing columns NULL)."""
        full = [{c.name: r.get(c.name) for c in table.c} for r in rows]
        with self.engine.begin() as conn:
            conn.execute(table.insert(), full)

    def ticket(
        self,
        id: int,
        age_days: float | None = None,
        *,
        seconds: float = 0,
        status: str | None = "closed",
        account: str | None = "acct_1",
        **values: Any,
    ) -> dict[str, Any]:
        """Return a ticket row closed ``age_days`` days (plus ``seconds``) before ``now`` (None: open)."""
        closed = None if age_days is None else self.at(days=age_days, seconds=seconds)
        return {"id": id, "account_id": account, "status": status, "closed_at": closed, **values}

    def ids(self, table: sa.Table = tickets) -> set[int]:
        """Return the primary keys present in ``table``."""
        key = table.c.id if "id" in table.c else table.c.version_id
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(key)).scalars())

    def rows(self, table: sa.Table = tickets) -> dict[int, dict[str, Any]]:
        """Return every row of ``table`` by primary key."""
        with self.engine.connect() as conn:
            return {r.id: dict(r._mapping) for r in conn.execute(sa.select(table))}

    # -- runs and the ledger --------------------------------------------------------------------

    def runner(
        self,
        *,
        mode: str = "run",
        allow_large: bool = False,
        now: datetime | None = None,
        categories: Sequence[str] = (),
        progress: Callable[[str, int], None] | None = None,
    ) -> Runner:
        """Return a Runner on the current config (``now`` defaults to the env's ``now``)."""
        return Runner(
            load_config(self.config_path),
            mode=mode,
            allow_large=allow_large,
            now=now or self.now,
            categories=categories,
            progress=progress,
        )

    def run(self, **kwargs: Any) -> RunReport:
        """Run (or plan) and return the report."""
        return self.runner(**kwargs).execute()

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``python -m retentiond -c CONFIG ARGS`` and return the finished process."""
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "retentiond", "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
            check=False,
        )

    def ledger(self) -> Ledger:
        """Open the run's ledger (SQLite in state_dir)."""
        return Ledger.open(f"sqlite:///{self.state_dir / 'audit.db'}", "retentiond")

    def entries(self, event: str | None = None) -> list[Entry]:
        """Return the ledger's entries (of ``event``), in seq order."""
        if not (self.state_dir / "audit.db").exists():
            return []
        ledger = self.ledger()
        try:
            return ledger.entries(event=event)
        finally:
            ledger.close()

    def batches(self, outcome: str | None = None, target: str | None = None) -> list[Entry]:
        """Return the ``batch`` entries with ``outcome`` and ``target`` when given."""
        return [
            e
            for e in self.entries("batch")
            if (outcome is None or e.fields["outcome"] == outcome) and (target is None or e.fields["target"] == target)
        ]

    def held_counts(self, target: str = "tickets") -> dict[str, int]:
        """Return hold id → rows held, summed over the ledger's ``held`` entries."""
        out: dict[str, int] = {}
        for e in self.batches("held", target):
            for h in e.fields["holds"]:
                out[h] = out.get(h, 0) + e.fields["count"]
        return out

    @property
    def refs(self) -> RefMaker:
        """Return the ref maker of the configured key."""
        return RefMaker(self.hmac_key)

    def ref(self, table: str, key: int) -> RecordRef:
        """Return the ref of row ``key`` of ``table`` in store ``app``."""
        return self.refs.sql("app", table, [key])

    def audited(self, table: str = "tickets", outcome: str | None = None) -> list[RecordRef]:
        """Return every ref of ``table`` claimed by outcome entries (with repeats, to count duplicates)."""
        out: list[RecordRef] = []
        for e in self.batches(target=table):
            if e.fields["outcome"] in ("deleted", "anonymized") and (outcome is None or e.fields["outcome"] == outcome):
                out.extend(e.refs)
        return out

    def audited_keys(
        self, table: str = "tickets", candidates: Sequence[int] = range(2000), outcome: str | None = None
    ) -> list[int]:
        """Return the keys among ``candidates`` whose refs outcome entries claim (repeats kept)."""
        by_ref = {self.ref(table, k): k for k in candidates}
        return sorted(by_ref[r] for r in self.audited(table, outcome))


def create_schema(engine: sa.Engine) -> None:
    """Create the test tables."""
    metadata.create_all(engine)


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """An Env on SQLite (a file in tmp_path) or on a fresh PostgreSQL database."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    create_schema(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    yield Env(request.param, url, engine, tmp_path, now)
    engine.dispose()


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[Env]:
    """An Env on SQLite only (behaviour that does not depend on the backend)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    create_schema(engine)
    yield Env("sqlite", url, engine, tmp_path, datetime.now(UTC).replace(microsecond=0))
    engine.dispose()


@pytest.fixture
def pg_env(pg_url: str, tmp_path: Path) -> Iterator[Env]:
    """An Env on a fresh PostgreSQL database only (for the costlier PostgreSQL-specific cases)."""
    engine = sa.create_engine(pg_url)
    create_schema(engine)
    yield Env("postgresql", pg_url, engine, tmp_path, datetime.now(UTC).replace(microsecond=0))
    engine.dispose()
