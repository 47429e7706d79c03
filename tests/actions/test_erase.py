"""``retentiond erase`` end to end: a subject with records in five targets on PostgreSQL / SQLite and moto S3.

Targets: ``tickets`` (delete, with a history table), ``profiles`` (anonymize), ``chats`` (a legal
hold on the subject), ``invoices`` (``erasure = "never"``), and a versioned bucket prefix with a
``subject_pattern``. Exactly the subject's records go (whatever their age), the rest stay with
their reasons, and the ledger says so and verifies.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.actions.erase import erase
from retentiond.cli.render import toml_like
from retentiond.config.loader import load_config
from tests.stores.s3.conftest import backdate
from tests.stores.sql.conftest import Env, hold, ticket_versions, tickets

extra = sa.MetaData()
profiles = sa.Table(
    "profiles",
    extra,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("email", sa.Text),
    sa.Column("name", sa.Text),
)
chats = sa.Table(
    "chats",
    extra,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
)
invoices = sa.Table(
    "invoices",
    extra,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text),
    sa.Column("issued_at", sa.DateTime(timezone=True)),
)


def _sql(table: str, age: str, **more: Any) -> dict[str, Any]:
    return {"store": "app", "table": table, "key": ["id"], "age_column": age, "subject_column": "account_id", **more}


CATEGORIES: dict[str, Any] = {
    "support": {
        "retain": "2y",
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
    "profile": {
        "retain": "5y",
        "action": "anonymize",
        "sql": [_sql("profiles", "created_at", anonymize={"email": "null", "name": "redact"})],
    },
    "chat": {"retain": "1y", "action": "delete", "sql": [_sql("chats", "sent_at")]},
    "billing": {"retain": "10y", "action": "delete", "erasure": "never", "sql": [_sql("invoices", "issued_at")]},
    "attachments": {
        "retain": "2y",
        "action": "delete",
        "s3": [
            {
                "store": "files",
                "bucket": "media",
                "prefix": "tickets/",
                "subject_pattern": "^tickets/(?P<subject>[^/]+)/",
            }
        ],
    },
}


class World:
    """The five targets filled for subjects ``acct_1`` (the request's) and ``acct_2``."""

    def __init__(self, env: Env, client: Any, endpoint: str) -> None:
        self.env = env
        self.client = client
        extra.create_all(env.engine)
        env.configure(CATEGORIES)
        data = toml_like({"stores": {"files": {"kind": "s3", "endpoint_url": endpoint, "region": "us-east-1"}}})
        with env.config_path.open("a", encoding="utf-8") as f:
            f.write("\n" + data)
        env.write_holds([hold("LIT-1", ["chat"], subjects=["acct_1"])])
        ts = env.at
        env.insert(
            tickets,
            [
                env.ticket(1, 1, account="acct_1"),  # one day old: an erasure does not wait for retention
                env.ticket(2, None, account="acct_1", status="open"),  # the clock has not started
                env.ticket(3, 900, account="acct_2"),
            ],
        )
        env.insert(
            ticket_versions,
            [
                {"version_id": 10, "ticket_id": 1, "superseded_at": ts(days=2)},
                {"version_id": 11, "ticket_id": 1, "superseded_at": ts(days=3)},
                {"version_id": 12, "ticket_id": 3, "superseded_at": ts(days=3)},
            ],
        )
        env.insert(
            profiles,
            [
                {"id": 1, "account_id": "acct_1", "created_at": ts(days=10), "email": "a@x", "name": "A"},
                {"id": 2, "account_id": "acct_2", "created_at": ts(days=10), "email": "b@x", "name": "B"},
            ],
        )
        env.insert(
            chats,
            [
                {"id": i, "account_id": a, "sent_at": ts(days=5)}
                for i, a in ((1, "acct_1"), (2, "acct_1"), (3, "acct_2"))
            ],
        )
        env.insert(invoices, [{"id": 1, "account_id": "acct_1", "issued_at": ts(days=30)}])
        client.create_bucket(Bucket="media")
        client.put_bucket_versioning(Bucket="media", VersioningConfiguration={"Status": "Enabled"})
        for key, n in (("tickets/acct_1/a.txt", 2), ("tickets/acct_1/b.txt", 1), ("tickets/acct_2/c.txt", 1)):
            for _ in range(n):
                version = client.put_object(Bucket="media", Key=key, Body=b"x")["VersionId"]
                backdate("media", key, version, env.now - timedelta(days=1))
        client.delete_object(Bucket="media", Key="tickets/acct_1/b.txt")  # a delete marker in front of b's version

    def keys(self) -> set[str]:
        """Return the keys of every version and delete marker left in the bucket."""
        out: set[str] = set()
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket="media"):
            out |= {v["Key"] for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]}
        return out

    def ids(self, table: sa.Table) -> set[int]:
        """Return the ids left in ``table``."""
        with self.env.engine.connect() as conn:
            return set(conn.execute(sa.select(table.c[table.primary_key.columns.keys()[0]])).scalars())

    def erase(self, *, dry_run: bool = False, request: str = "DSR-1") -> tuple[Any, dict[str, Any]]:
        """Run the request for ``acct_1``."""
        return erase(
            load_config(self.env.config_path), subjects=["acct_1"], request=request, dry_run=dry_run, now=self.env.now
        )


@pytest.fixture
def world(env: Env, s3_client: Any, s3_endpoint: str) -> World:
    """The five targets on this backend and moto."""
    return World(env, s3_client, s3_endpoint)


class TestErasure:
    """A subject's records go from every target, whatever their age; holds and rules keep theirs."""

    def test_exactly_the_subjects_records_go(self, world: World) -> None:
        """Tickets, their history and the bucket's versions go; profiles anonymized; chats held; invoices kept."""
        report, summary = world.erase()
        assert {} == report.failed
        assert {3} == world.ids(tickets)
        assert {12} == world.ids(ticket_versions)
        assert {1, 2, 3} == world.ids(chats)
        assert {1} == world.ids(invoices)
        assert {"tickets/acct_2/c.txt"} == world.keys()
        with world.env.engine.connect() as conn:
            rows = {r.id: (r.email, r.name) for r in conn.execute(sa.select(profiles))}
        assert {1: (None, "[redacted]"), 2: ("b@x", "B")} == rows
        assert {"support": 2, "profile": 1, "attachments": 4} == summary["acted"]  # 3 versions, 1 marker
        assert {"chat/LIT-1": 2} == summary["held"]
        assert {"billing": 1} == summary["kept_by_rule"]

    def test_ledger_names_the_request_never_the_subject(self, world: World) -> None:
        """erasure_requested carries subject refs, batch entries the request; no identifier in clear; verify passes."""
        world.erase()
        env = world.env
        requested = env.entries("erasure_requested")
        assert 1 == len(requested)
        assert "DSR-1" == requested[0].fields["request"]
        assert env.refs.subject("acct_1") in [bytes(r) for r in requested[0].refs]
        acting = [e for e in env.entries("batch") if e.fields["outcome"] in ("deleted", "anonymized")]
        assert acting and all(e.fields.get("request") == "DSR-1" for e in acting)
        finished = env.entries("erasure_finished")
        assert 1 == len(finished)
        assert {"chat/LIT-1": 2} == finished[0].fields["held"]
        for entry in env.entries():
            assert "acct_1" not in entry.fields_json
        result = env.cli("audit", "verify")
        assert 0 == result.returncode, result.stdout + result.stderr

    def test_second_request_finds_nothing_left(self, world: World) -> None:
        """The same subject again: nothing to erase, and the command says so."""
        world.erase()
        _, summary = world.erase(request="DSR-2")
        assert 0 == summary["left"]
        assert {} == summary["acted"]
        result = world.env.cli("erase", "--subject", "acct_1", "--request", "DSR-3")
        assert 0 == result.returncode, result.stderr
        assert "nothing left to erase" in result.stdout
        assert "acct_1" not in result.stdout + result.stderr

    def test_dry_run_shows_the_figures_of_the_run(self, world: World) -> None:
        """A dry run changes nothing and shows what the real run then does."""
        _, planned = world.erase(dry_run=True)
        assert {1, 2, 3} == world.ids(tickets)
        _, done = world.erase()
        for key in ("acted", "prior_versions", "held", "kept_by_rule", "found", "left"):
            assert planned[key] == done[key], key


class TestGuard:
    """The request's own blast-radius limit."""

    def test_over_the_limit_stops_before_acting(self, world: World) -> None:
        """daemon.erasure_max_records = 2: nothing goes, every category fails with guard_tripped."""
        env = world.env
        text = env.config_path.read_text(encoding="utf-8").replace(
            "[daemon]\n", "[daemon]\nerasure_max_records = 2\n", 1
        )
        env.config_path.write_text(text, encoding="utf-8")
        report, _ = world.erase()
        assert {1, 2, 3} == world.ids(tickets)
        assert report.failed and all("guard_tripped" in r for r in report.failed.values())
        assert 1 == len(env.entries("guard_tripped"))


class TestQueue:
    """erase --queue, then the daemon's pass over the queue."""

    def test_queued_request_runs_and_forgets_its_subjects(self, world: World) -> None:
        """The request file holds the subjects until it ran; then only figures stay."""
        from retentiond.actions.requests import requests_dir, run_pending, states

        env = world.env
        result = env.cli("erase", "--subject", "acct_1", "--request", "DSR-9", "--queue")
        assert 0 == result.returncode, result.stderr
        loaded = load_config(env.config_path)
        assert ["pending"] == [s.state for s in states(loaded)]
        assert ["overdue"] == [s.state for s in states(loaded, now=env.now + timedelta(days=31))]
        assert 0o600 == os.stat(next(Path(requests_dir(loaded)).glob("*.json"))).st_mode & 0o777
        assert 1 == run_pending(loaded)
        assert {3} == world.ids(tickets)
        (state,) = states(loaded)
        assert ("done", 1) == (state.state, state.subjects)
        assert all("acct_1" not in p.read_text() for p in requests_dir(loaded).iterdir())
        listed = env.cli("requests", "list")
        assert 0 == listed.returncode, listed.stderr[-2000:]
        assert "DSR-9" in listed.stdout and "done" in listed.stdout and "LIT-1" in listed.stdout


CRASH_POINTS = [
    "sql_after_action",
    "sql_after_commit",
    "relay_after_append",
    "s3_after_delete",
    "s3_after_outcome",
    "before_run_finished",
]


class TestCrash:
    """SIGKILL during an erasure, then the request again: each record has exactly one outcome."""

    @pytest.mark.parametrize("point", CRASH_POINTS)
    def test_sigkill_then_rerun(self, world: World, point: str) -> None:
        """Every record of the subject is gone once, in the ledger once, and the ledger verifies."""
        env = world.env
        args = ("erase", "--subject", "acct_1", "--request", "DSR-1")
        crashed = env.cli(*args, env={"RETENTIOND_TEST_CRASH_AT": f"{point}:1"})
        assert -9 == crashed.returncode, crashed.stderr[-2000:]
        rerun = env.cli(*args)
        assert 0 == rerun.returncode, rerun.stderr[-2000:]
        assert {3} == world.ids(tickets)
        assert {12} == world.ids(ticket_versions)
        assert {"tickets/acct_2/c.txt"} == world.keys()
        outcomes: dict[bytes, int] = {}
        for entry in env.entries("batch"):
            if entry.fields["outcome"] in ("deleted", "anonymized"):
                assert "DSR-1" == entry.fields.get("request")
                for ref in entry.refs:
                    outcomes[bytes(ref)] = outcomes.get(bytes(ref), 0) + 1
        expected = {
            env.ref("tickets", 1),
            env.ref("tickets", 2),
            env.ref("ticket_versions", 10),
            env.ref("ticket_versions", 11),
            env.ref("profiles", 1),
        }
        assert expected <= set(outcomes)
        assert {1} == set(outcomes.values())
        assert 5 + 4 == len(outcomes)  # five rows, three versions and a delete marker
        verify = env.cli("audit", "verify")
        assert 0 == verify.returncode, verify.stdout + verify.stderr


class TestCertificate:
    """audit certificate: signed, cites the ledger; verify-certificate and tools/verify_ledger.py check it offline."""

    def _files(self, world: World) -> tuple[Path, Path, Path]:
        from cryptography.hazmat.primitives import serialization

        env = world.env
        world.erase()
        cert, export, pub = env.dir / "cert.json", env.dir / "ledger.jsonl", env.dir / "signing.pub.pem"
        private = serialization.load_pem_private_key((env.dir / "keys" / "signing.pem").read_bytes(), password=None)
        pub.write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        made = env.cli("audit", "certificate", "--request", "DSR-1", "--out", str(cert))
        assert 0 == made.returncode, made.stderr[-2000:]
        exported = env.cli("audit", "export", "--format", "jsonl", "--out", str(export))
        assert 0 == exported.returncode, exported.stderr[-2000:]
        return cert, export, pub

    def test_certificate_says_what_went_and_what_stayed(self, world: World) -> None:
        """Counts per target, kept with hold id and rule, the cited entries and their checkpoint."""
        import json

        cert_path, _, _ = self._files(world)
        cert = json.loads(cert_path.read_text())
        records = {(s["category"], s["target"]): s["records"] + s["prior_versions"] for s in cert["sanitized"]}
        assert 2 == records[("support", "tickets")]
        assert 1 == records[("profile", "profiles")]
        assert 4 == records[("attachments", "media")]  # versions and the delete marker
        assert 2 == {s["target"]: s["prior_versions"] for s in cert["sanitized"]}["ticket_versions"]
        kept = {(k["category"], k["reason"], k.get("hold_id")): k["records"] for k in cert["kept"]}
        assert {("chat", "hold", "LIT-1"): 2, ("billing", "rule", None): 1} == kept
        assert "complete" == cert["verification"]["result"]
        assert cert["checkpoint"] is not None
        assert "acct_1" not in cert_path.read_text()
        html = world.env.dir / "cert.html"
        made = world.env.cli("audit", "certificate", "--request", "DSR-1", "--format", "html", "--out", str(html))
        assert 0 == made.returncode
        assert "LIT-1" in html.read_text()

    def test_verifies_offline_and_fails_after_one_byte(self, world: World) -> None:
        """verify-certificate and the standalone tool accept it; a one-byte change fails both."""
        import subprocess
        import sys

        env = world.env
        cert, export, pub = self._files(world)
        ok = env.cli("audit", "verify-certificate", str(cert), "--pubkey", str(pub), "--file", str(export))
        assert 0 == ok.returncode, ok.stdout + ok.stderr
        root = Path(__file__).resolve().parents[2]
        tool = [sys.executable, str(root / "tools" / "verify_ledger.py"), str(export), "--pubkey", str(pub)]
        standalone = subprocess.run([*tool, "--certificate", str(cert)], capture_output=True, text=True, check=False)
        assert 0 == standalone.returncode, standalone.stdout + standalone.stderr
        data = cert.read_bytes()
        at = data.index(b'"records":') + len(b'"records":')
        changed = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]  # one digit of a count
        cert.write_bytes(changed)
        bad = env.cli("audit", "verify-certificate", str(cert), "--pubkey", str(pub), "--file", str(export))
        assert 65 == bad.returncode, bad.stdout + bad.stderr
        standalone = subprocess.run([*tool, "--certificate", str(cert)], capture_output=True, text=True, check=False)
        assert 65 == standalone.returncode, standalone.stdout
