"""Fixtures of the audit ledger tests: ledgers on SQLite and PostgreSQL, keys, and the
tampering helpers an attacker with database superuser rights (but no signing key) would use."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.audit import (
    Action,
    Batch,
    BatchId,
    KeyRing,
    Ledger,
    Outcome,
    RefMaker,
    RunFinished,
    RunStarted,
    Signer,
    TrustedCheckpoint,
    generate_key_pair,
)
from retentiond.audit.canonical import chain_hash, entry_body
from retentiond.audit.schema import entries_table, head_table
from retentiond.audit.signing import load_private_key
from retentiond.cli.main import main

HMAC_KEY = b"test-hmac-key-0123456789abcdef!!"
SQLITE_TRIGGER_NAMES = (
    "audit_entries_no_update",
    "audit_entries_no_delete",
    "audit_refs_no_update",
    "audit_refs_no_delete",
    "audit_ref_filters_no_update",
    "audit_ref_filters_no_delete",
    "audit_head_no_delete",
    "audit_head_forward_only",
)


@pytest.fixture(scope="session")
def key_pair() -> tuple[bytes, bytes, str]:
    """One Ed25519 key pair (private PEM, public PEM, fingerprint) for the session."""
    return generate_key_pair()


@pytest.fixture(scope="session")
def signer(key_pair: tuple[bytes, bytes, str]) -> Signer:
    """The checkpoint signer of the session's key pair."""
    return Signer(load_private_key(key_pair[0]))


@pytest.fixture(scope="session")
def keys(signer: Signer) -> KeyRing:
    """The auditor's key ring: the signer's public key."""
    return KeyRing.of(signer.public_key)


@pytest.fixture(scope="session")
def refmaker() -> RefMaker:
    """A ref maker with the test HMAC key."""
    return RefMaker(HMAC_KEY)


@pytest.fixture
def pg_db_factory(pg_admin: sa.Engine) -> Iterator[Callable[[], str]]:
    """Return a function creating fresh PostgreSQL databases (``rtd_audit_<hex>``), all dropped after."""
    created: list[str] = []
    base = pg_admin.url

    def make() -> str:
        name = f"rtd_audit_{uuid.uuid4().hex}"
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # our own hex name
        created.append(name)
        return base.set(database=name).render_as_string(hide_password=False)

    yield make
    with pg_admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def url_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Return a function making fresh ledger URLs on the parametrized backend."""
    if request.param == "sqlite":
        counter = iter(range(1_000_000))
        return lambda: f"sqlite:///{tmp_path}/audit-{next(counter)}.db"
    return request.getfixturevalue("pg_db_factory")


@dataclass
class Harness:
    """A ledger plus the attacker's tools (triggers bypassed, hashes recomputed)."""

    url: str
    signer: Signer
    refmaker: RefMaker
    ledger_id: str = "retentiond"
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger.open(self.url, self.ledger_id)
        self.engine = sa.create_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._sqlite_unlocked = False

    def close(self) -> None:
        """Release both engines."""
        self.ledger.close()
        self.engine.dispose()

    def build(self, rounds: int = 10, refs_per_batch: int = 3) -> None:
        """Append ``rounds`` × (run_started, 2 batches, run_finished, checkpoint): 5 entries a round."""
        from datetime import UTC, datetime

        key = 0
        for _ in range(rounds):
            run = str(uuid.uuid4())
            self.ledger.append(
                RunStarted(run_start=datetime.now(UTC), cutoffs={"support": datetime.now(UTC)}), run_id=run
            )
            for outcome in (Outcome.DELETED, Outcome.HELD):
                refs = tuple(self.refmaker.sql_many("app", "tickets", [(key + i,) for i in range(refs_per_batch)]))
                key += refs_per_batch
                self.ledger.append(
                    Batch(
                        batch_id=BatchId.new(),
                        category="support",
                        store="app",
                        target="tickets",
                        action=Action.DELETE,
                        outcome=outcome,
                        count=len(refs),
                        refs=refs,
                    ),
                    run_id=run,
                )
            self.ledger.append(RunFinished(counts={"deleted": refs_per_batch, "held": refs_per_batch}), run_id=run)
            self.ledger.checkpoint(self.signer, run_id=run)

    def trusted_latest(self) -> TrustedCheckpoint:
        """Return the newest checkpoint as an auditor would have saved it (JSON round trip)."""
        entry = self.ledger.latest_checkpoint()
        assert entry is not None
        return TrustedCheckpoint.from_json(json.loads(json.dumps(entry.to_json())))

    @contextmanager
    def raw(self) -> Iterator[sa.Connection]:
        """A transaction with the append-only triggers out of the way (superuser powers)."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            elif not self._sqlite_unlocked:
                for name in SQLITE_TRIGGER_NAMES:
                    conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
                self._sqlite_unlocked = True
            yield conn

    def row(self, conn: sa.Connection, seq: int) -> dict[str, Any]:
        """Return the stored entry ``seq`` as a dict of columns."""
        return dict(conn.execute(sa.select(entries_table).where(entries_table.c.seq == seq)).mappings().one())

    def set_columns(self, conn: sa.Connection, seq: int, **values: Any) -> None:
        """Overwrite columns of entry ``seq``."""
        conn.execute(sa.update(entries_table).where(entries_table.c.seq == seq).values(**values))

    def renumber(self, conn: sa.Connection, from_seq: int, delta: int) -> None:
        """Shift the seq of every entry ``>= from_seq`` by ``delta`` (via a far-away range: no PK clash)."""
        far = 10_000_000
        conn.execute(
            sa.update(entries_table).where(entries_table.c.seq >= from_seq).values(seq=entries_table.c.seq + far)
        )
        conn.execute(
            sa.update(entries_table).where(entries_table.c.seq >= far).values(seq=entries_table.c.seq - far + delta)
        )

    def rehash_from(self, conn: sa.Connection, seq: int) -> None:
        """Recompute prev_hash/hash of entries ``>= seq`` and the head row, as an attacker would."""
        from retentiond.audit.canonical import genesis_hash

        prev_row = conn.execute(sa.select(entries_table.c.hash).where(entries_table.c.seq == seq - 1)).first()
        prev = bytes(prev_row.hash) if prev_row else genesis_hash(self.ledger_id)
        rows = (
            conn.execute(sa.select(entries_table).where(entries_table.c.seq >= seq).order_by(entries_table.c.seq))
            .mappings()
            .all()
        )
        for r in rows:
            body = entry_body(
                seq=r["seq"],
                time=r["time"],
                event=r["event"],
                run_id=r["run_id"],
                category=r["category"],
                batch_id=r["batch_id"],
                fields=r["fields"],
                refs=bytes(r["refs"]),
            )
            h = chain_hash(prev, body)
            self.set_columns(conn, r["seq"], prev_hash=prev, hash=h)
            prev = h
        self.fix_head(conn)

    def fix_head(self, conn: sa.Connection) -> None:
        """Point the head row at the last remaining entry (covering tracks)."""
        from retentiond.audit.canonical import genesis_hash

        last = conn.execute(
            sa.select(entries_table.c.seq, entries_table.c.hash, entries_table.c.time)
            .order_by(entries_table.c.seq.desc())
            .limit(1)
        ).first()
        values = (
            {"seq": last.seq, "hash": bytes(last.hash), "time": last.time}
            if last
            else {"seq": 0, "hash": genesis_hash(self.ledger_id), "time": None}
        )
        conn.execute(sa.update(head_table).where(head_table.c.id == 1).values(**values))

    def forge_at(self, conn: sa.Connection, seq: int) -> None:
        """Insert a forged, correctly chained entry at ``seq``, renumbering the entries after it."""
        prev = self.row(conn, seq - 1)["hash"] if seq > 1 else None
        from retentiond.audit.canonical import genesis_hash

        prev = bytes(prev) if prev is not None else genesis_hash(self.ledger_id)
        self.renumber(conn, seq, 1)
        fields = '{"counts":{"deleted":0},"duration_ms":0,"failed_categories":[]}'
        time = "2026-01-01T00:00:00.000000Z"
        body = entry_body(
            seq=seq, time=time, event="run_finished", run_id=None, category=None, batch_id=None, fields=fields, refs=b""
        )
        conn.execute(
            sa.insert(entries_table).values(
                seq=seq,
                time=time,
                event="run_finished",
                run_id=None,
                category=None,
                batch_id=None,
                fields=fields,
                refs=b"",
                prev_hash=prev,
                hash=chain_hash(prev, body),
            )
        )
        self.fix_head(conn)


@pytest.fixture
def harness_factory(
    url_factory: Callable[[], str], signer: Signer, refmaker: RefMaker
) -> Iterator[Callable[[], Harness]]:
    """Return a function making fresh harnesses on the parametrized backend (closed after)."""
    made: list[Harness] = []

    def make() -> Harness:
        h = Harness(url_factory(), signer, refmaker)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def append_forged(h: Harness, event: str, fields: dict[str, Any], *, time: str | None = None) -> int:
    """Append a correctly chained entry straight into the tables, as someone with database rights would."""
    from retentiond.audit.canonical import canonical_dumps, utcnow_text

    stamp = time or utcnow_text()
    text = canonical_dumps(fields)
    with h.raw() as conn:
        last = conn.execute(
            sa.select(entries_table.c.seq, entries_table.c.hash).order_by(entries_table.c.seq.desc())
        ).first()
        from retentiond.audit.canonical import genesis_hash

        seq, prev = (last.seq + 1, bytes(last.hash)) if last else (1, genesis_hash(h.ledger_id))
        body = entry_body(
            seq=seq, time=stamp, event=event, run_id=None, category=None, batch_id=None, fields=text, refs=b""
        )
        conn.execute(
            sa.insert(entries_table).values(
                seq=seq,
                time=stamp,
                event=event,
                run_id=None,
                category=None,
                batch_id=None,
                fields=text,
                refs=b"",
                prev_hash=prev,
                hash=chain_hash(prev, body),
            )
        )
        h.fix_head(conn)
    return seq


def forged_checkpoint(h: Harness, signer: Signer) -> int:
    """Append a v2 checkpoint over the head signed by ``signer`` without the ledger's key guard."""
    from retentiond.audit.canonical import utcnow_text
    from retentiond.audit.signing import checkpoint_message

    head = h.ledger.head()
    last_cp = h.ledger.latest_checkpoint()
    from_seq = last_cp.seq if last_cp else 1
    hashes = b"".join(e.hash for e in h.ledger.iter_entries(from_seq=from_seq)).hex()
    now = utcnow_text()
    message = checkpoint_message(h.ledger_id, head.seq, head.hash.hex(), now, from_seq=from_seq, entry_hashes=hashes)
    fields = {
        "covered_hash": head.hash.hex(),
        "covered_seq": head.seq,
        "entry_hashes": hashes,
        "from_seq": from_seq,
        "key_fingerprint": signer.fingerprint,
        "ledger_id": h.ledger_id,
        "signature": signer.sign(message),
        "signed_at": now,
    }
    return append_forged(h, "checkpoint", fields, time=now)


# --- the command line -----------------------------------------------------------------------

CONFIG = """\
[daemon]
holds_file = "holds.toml"
state_dir = "state"

[audit]
url = "{url}"
hmac_key_file = "hmac.key"
signing_key_file = "keys/audit-signing.pem"

[stores.app]
kind = "sql"
url_env = "RETENTIOND_APP_DB_URL"

[categories.support]
retain = "2y"
action = "delete"

  [[categories.support.sql]]
  store = "app"
  table = "tickets"
  key = ["id"]
  age_column = "closed_at"

  [[categories.support.sql]]
  store = "app"
  table = "ticket_parts"
  key = ["ticket_id", "part"]
  age_column = "closed_at"
"""


@dataclass(frozen=True)
class Result:
    """Exit code and output of one CLI call."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Return ``run(*args)`` calling ``retentiond.cli.main.main`` in-process."""
    monkeypatch.delenv("RETENTIOND_CONFIG", raising=False)

    def run(*args: object) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        code = exited.value.code
        return Result(code if isinstance(code, int) else 0, out, err)

    return run


@pytest.fixture
def setup(tmp_path: Path, url_factory: Callable[[], str], cli: Callable[..., Result]) -> dict[str, object]:
    """A config with keys (made by `audit keygen`) and a ledger of two runs ending with checkpoints."""
    url = url_factory()
    assert 0 == cli("audit", "keygen", "--out-dir", tmp_path / "keys").code
    (tmp_path / "hmac.key").write_bytes(HMAC_KEY)
    (tmp_path / "holds.toml").write_text("", encoding="utf-8")
    config = tmp_path / "retention.toml"
    config.write_text(CONFIG.format(url=url), encoding="utf-8")
    maker = RefMaker(HMAC_KEY)
    with Ledger.open(url) as ledger:
        for run, keys in (("run-1", [1, 2, 3]), ("run-2", [4, 5])):
            refs = tuple(maker.sql_many("app", "tickets", [(k,) for k in keys]))
            ledger.append(
                Batch(
                    batch_id=BatchId.new(),
                    category="support",
                    store="app",
                    target="tickets",
                    action=Action.DELETE,
                    outcome=Outcome.DELETED,
                    count=len(refs),
                    refs=refs,
                ),
                run_id=run,
            )
            parts = (maker.sql("app", "ticket_parts", (7, "a")),)
            ledger.append(
                Batch(
                    batch_id=BatchId.new(),
                    category="support",
                    store="app",
                    target="ticket_parts",
                    action=Action.DELETE,
                    outcome=Outcome.HELD,
                    count=1,
                    refs=parts,
                ),
                run_id=run,
            )
            ledger.append(RunFinished(counts={"deleted": len(keys)}), run_id=run)
            assert 0 == cli("audit", "checkpoint", "-c", config).code
    return {"url": url, "config": config, "dir": tmp_path}


def tamper_db(url: str, *stmts: sa.Executable) -> None:
    """Run ``stmts`` on the ledger database with the append-only triggers out of the way."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            for name in SQLITE_TRIGGER_NAMES:
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
        for stmt in stmts:
            conn.execute(stmt)
    engine.dispose()
