"""Least privilege on PostgreSQL: a real role made from `retentiond print-grants` runs everything, and nothing more."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.audit.signing import generate_key_pair
from retentiond.cli.main import main
from retentiond.cli.render import toml_like

SCHEMA = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.tickets (id bigint PRIMARY KEY, customer text, closed_at timestamptz, body text)",
    "CREATE TABLE app.ticket_versions"
    " (version_id bigint PRIMARY KEY, ticket_id bigint, superseded_at timestamptz, body text)",
    "CREATE TABLE app.invoices"
    " (id bigint PRIMARY KEY, issued_at timestamptz, email text, name text, amount numeric NOT NULL)",
    "CREATE TABLE app.other (id bigint PRIMARY KEY, note text)",
)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``retentiond ARGS`` in-process; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0, out, err)


def sqlstate(url: str, statement: str) -> str | None:
    """Execute ``statement`` (static test SQL) as the URL's role; return the SQLSTATE it failed with, or None."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        return getattr(exc.orig, "sqlstate", None)
    finally:
        engine.dispose()
    return None


def execute_script(url: str, script: str) -> None:
    """Run a multi-statement SQL script as the URL's role (the administrator applying printed grants)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute(script)  # psycopg runs a parameterless script as several statements
        finally:
            raw.close()
    finally:
        engine.dispose()


@pytest.fixture
def role_env(pg_url: str, pg_engine: sa.Engine, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Tables with expired rows, a config whose store connects as a new role, and that role (dropped after)."""
    role = f"rtd_app_{uuid.uuid4().hex[:10]}"
    old = datetime.now(UTC) - timedelta(days=400)
    with pg_engine.begin() as conn:
        for statement in SCHEMA:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")  # our hex name, not configuration
        conn.execute(sa.text("INSERT INTO app.tickets VALUES (1, 'c1', :t, 'x'), (2, 'c2', NULL, 'y')"), {"t": old})
        conn.execute(sa.text("INSERT INTO app.ticket_versions VALUES (10, 1, :t, 'v'), (20, 2, :t, 'w')"), {"t": old})
        conn.execute(sa.text("INSERT INTO app.invoices VALUES (1, :t, 'a@example.com', 'Ann', 12.50)"), {"t": old})
        conn.exec_driver_sql("INSERT INTO app.other VALUES (1, 'keep')")
    role_url = sa.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "hmac.key").write_bytes(os.urandom(32).hex().encode())
    private_pem, _, _ = generate_key_pair()
    (keys / "signing.pem").write_bytes(private_pem)
    os.chmod(keys / "signing.pem", 0o600)
    (tmp_path / "holds.toml").write_text("# no holds\n", encoding="utf-8")
    target = {"store": "app", "key": ["id"]}
    config = {
        "daemon": {
            "state_dir": str(tmp_path / "state"),
            "holds_file": str(tmp_path / "holds.toml"),
            "metrics_listen": "",
            "max_fraction_per_run": 1.0,
        },
        "audit": {"hmac_key_file": str(keys / "hmac.key"), "signing_key_file": str(keys / "signing.pem")},
        "stores": {"app": {"kind": "sql", "url": role_url}},
        "categories": {
            "tickets": {
                "retain": "30d",
                "action": "delete",
                "sql": [
                    {
                        **target,
                        "table": "app.tickets",
                        "age_column": "closed_at",
                        "subject_column": "customer",
                        "history": {
                            "table": "app.ticket_versions",
                            "key": ["version_id"],
                            "parent": ["ticket_id"],
                            "superseded_column": "superseded_at",
                        },
                    }
                ],
            },
            "invoices": {
                "retain": "30d",
                "action": "anonymize",
                "sql": [
                    {
                        **target,
                        "table": "app.invoices",
                        "age_column": "issued_at",
                        "anonymize": {"email": "redact", "name": "null"},
                    }
                ],
            },
        },
    }
    path = tmp_path / "retention.toml"
    path.write_text(toml_like(config), encoding="utf-8")
    yield {"role": role, "url": role_url, "config": str(path), "admin": pg_url}
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")


class TestGeneratedGrants:
    """A role holding exactly what `print-grants` prints does every job and nothing else."""

    @pytest.mark.parametrize("tuple_ids", [True, False], ids=["select-ctid", "granted-before-ctid"])
    def test_role_from_print_grants(
        self, role_env: dict[str, Any], pg_engine: sa.Engine, capsys: pytest.CaptureFixture[str], tuple_ids: bool
    ) -> None:
        """validate --connect, plan, run, explain succeed; other writes fail with 42501.

        A role granted before batches named rows by tuple id (no ``SELECT (ctid)``) works too: by key.
        """
        config, role = role_env["config"], role_env["role"]
        code, grants, _ = cli(capsys, "-c", config, "print-grants", "--store", "app", "--role", role)
        assert 0 == code
        assert f"GRANT UPDATE (email, name) ON app.invoices TO {role};" in grants.splitlines()
        assert "ctid" in grants
        if not tuple_ids:
            grants = re.sub(r"\bctid, |, ctid\b", "", grants)
        execute_script(role_env["admin"], grants)

        results = [cli(capsys, "-c", config, *args)[0] for args in (["config", "validate", "--connect"], ["plan"])]
        results.append(cli(capsys, "-c", config, "run")[0])
        code, out, err = cli(capsys, "-c", config, "explain", "--store", "app", "--table", "app.invoices", "--key", "1")
        results.append(code)
        assert [0, 0, 0, 0] == results, err
        with pg_engine.connect() as conn:
            tickets = conn.exec_driver_sql("SELECT id FROM app.tickets ORDER BY id").scalars().all()
            versions = conn.exec_driver_sql("SELECT version_id FROM app.ticket_versions ORDER BY 1").scalars().all()
            invoice = conn.exec_driver_sql("SELECT email, name, amount FROM app.invoices").one()
        # Version 20 of the open ticket 2 was superseded 400 days ago: past `retain` (the default of
        # `prior_versions`, docs/decision-rules.md), so it goes on its own, through the role's DELETE.
        assert ([2], [], ("[redacted]", None, 12.5)) == (
            tickets,
            versions,
            (invoice[0], invoice[1], float(invoice[2])),
        )

        url = role_env["url"]
        denied = {
            "update a column that is not anonymized": "UPDATE app.invoices SET amount = 0",
            "delete from an anonymize target": "DELETE FROM app.invoices",
            "delete from a table that is no target": "DELETE FROM app.other",
            "read a column nobody reads": "SELECT body FROM app.tickets",
            "alter": "ALTER TABLE app.tickets ADD COLUMN z int",
            "create in the app schema": "CREATE TABLE app.z (i int)",
            "create in public": "CREATE TABLE public.z (i int)",
            "truncate": "TRUNCATE app.tickets",
        }
        assert {k: "42501" for k in denied} == {k: sqlstate(url, s) for k, s in denied.items()}

    def test_missing_column_grant_exits_78(
        self, role_env: dict[str, Any], pg_engine: sa.Engine, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without UPDATE on one anonymized column, validate --connect exits 78 naming the column and the GRANT."""
        config, role = role_env["config"], role_env["role"]
        grants = cli(capsys, "-c", config, "print-grants", "--store", "app", "--role", role)[1]
        execute_script(role_env["admin"], grants)
        with pg_engine.begin() as conn:
            conn.exec_driver_sql(f"REVOKE UPDATE (name) ON app.invoices FROM {role}")
        code, _, err = cli(capsys, "-c", config, "config", "validate", "--connect")
        assert (78, True) == (
            code,
            f"lacks UPDATE on column name of app.invoices: GRANT UPDATE (name) ON app.invoices TO {role};" in err,
        ), err
