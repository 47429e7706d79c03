"""``retentiond config validate --connect`` end to end: exit codes, paths, JSON notes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.cli.main import main

TARGET = """
[categories.support]
retain = "30d"
action = "{action}"
  [[categories.support.sql]]
  store = "app"
  table = "tickets"
  key = ["id"]
  age_column = "closed_at"
{extra}
"""


def write_config(tmp_path: Path, *, action: str = "delete", extra: str = "", s3: str = "") -> Path:
    """Write a config with SQL store ``app`` (URL in RTD_TEST_APP_URL) and return its path."""
    (tmp_path / "holds.toml").write_text("")
    path = tmp_path / "retention.toml"
    path.write_text(
        '[stores.app]\nkind = "sql"\nurl_env = "RTD_TEST_APP_URL"\n' + s3 + TARGET.format(action=action, extra=extra)
    )
    return path


def validate(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    """Run ``config validate --connect`` in-process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as caught:
        main(["config", "validate", "--connect", "-c", str(config), *extra])
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


def ddl(url: str, *statements: str) -> None:
    """Execute fixed DDL on the database at ``url``."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


@pytest.fixture
def pg_app(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL database exposed as RTD_TEST_APP_URL (plain ``postgresql://`` scheme)."""
    monkeypatch.setenv("RTD_TEST_APP_URL", pg_url.replace("postgresql+psycopg://", "postgresql://"))
    return pg_url


@pytest.fixture
def sqlite_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty SQLite file exposed as RTD_TEST_APP_URL."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("RTD_TEST_APP_URL", url)
    return url


class TestPostgres:
    """validate --connect against a fresh PostgreSQL database."""

    def test_good_schema(self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A matching schema exits 0."""
        ddl(pg_app, "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamptz)")
        code, out, err = validate(write_config(tmp_path), capsys)
        assert (0, "Traceback" in err) == (code, False)
        assert "valid" in out

    def test_missing_column(self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing age column exits 78 naming its path."""
        ddl(pg_app, "CREATE TABLE tickets (id bigint PRIMARY KEY, created_at timestamptz)")
        code, _, err = validate(write_config(tmp_path), capsys)
        assert (78, True, False) == (code, "categories.support.sql[0].age_column" in err, "Traceback" in err)

    @pytest.mark.parametrize("column_type", ["text", "timestamp"])
    def test_wrong_age_type(
        self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], column_type: str
    ) -> None:
        """A text or naive timestamp age column (no age_timezone) exits 78."""
        ddl(pg_app, f"CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at {column_type})")
        code, _, err = validate(write_config(tmp_path), capsys)
        assert (78, True, False) == (code, "categories.support.sql[0].age_column" in err, "Traceback" in err)

    def test_naive_timestamp_with_age_timezone(
        self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A naive timestamp with age_timezone exits 0."""
        ddl(pg_app, "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamp)")
        code, _, err = validate(write_config(tmp_path, extra='  age_timezone = "UTC"\n'), capsys)
        assert (0, False) == (code, "Traceback" in err)

    def test_null_on_not_null(self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The null strategy on a NOT NULL column exits 78."""
        ddl(pg_app, "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamptz, email text NOT NULL)")
        code, _, err = validate(
            write_config(tmp_path, action="anonymize", extra='  anonymize = { email = "null" }\n'), capsys
        )
        assert (78, True, False) == (code, "categories.support.sql[0].anonymize.email" in err, "Traceback" in err)

    def test_cascade_from_outside(self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """ON DELETE CASCADE from a table outside the category exits 78."""
        ddl(
            pg_app,
            "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamptz)",
            "CREATE TABLE invoices (id bigint PRIMARY KEY, ticket_id bigint REFERENCES tickets(id) ON DELETE CASCADE)",
        )
        code, _, err = validate(write_config(tmp_path), capsys)
        assert (78, True, False) == (code, "ON DELETE CASCADE" in err, "Traceback" in err)

    def test_missing_table(self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing table exits 78 naming the table path."""
        code, _, err = validate(write_config(tmp_path), capsys)
        assert (78, True, False) == (code, "categories.support.sql[0].table" in err, "Traceback" in err)

    def test_json_lists_every_issue(self, pg_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """With --format json the failure lists each issue's path."""
        ddl(pg_app, "CREATE TABLE tickets (id bigint, closed_at text)")
        code, out, _ = validate(write_config(tmp_path), capsys, "--format", "json")
        expected = (78, ["categories.support.sql[0].age_column", "categories.support.sql[0].key"])
        assert expected == (code, sorted(i["path"] for i in json.loads(out)["issues"]))


class TestSqlite:
    """validate --connect against SQLite files."""

    def test_good_schema(self, sqlite_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A DATETIME age column exits 0 and says values are taken as UTC."""
        ddl(sqlite_app, "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at DATETIME)")
        code, out, err = validate(write_config(tmp_path), capsys)
        assert (0, True, False) == (code, "taken as UTC" in out, "Traceback" in err)

    def test_text_age_column(self, sqlite_app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A TEXT age column exits 78."""
        ddl(sqlite_app, "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at TEXT)")
        code, _, err = validate(write_config(tmp_path), capsys)
        assert (78, True) == (code, "categories.support.sql[0].age_column" in err)

    def test_missing_file_is_not_created(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A SQLite URL naming a missing file exits 78 and does not create the file."""
        missing = tmp_path / "missing.db"
        monkeypatch.setenv("RTD_TEST_APP_URL", f"sqlite:///{missing}")
        code, _, err = validate(write_config(tmp_path), capsys)
        assert (78, True, False) == (code, "stores.app" in err, missing.exists())


class TestUnreachable:
    """Stores that cannot be reached."""

    def test_postgres_down_exits_75(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A refused connection exits 75 naming the store and never the URL's password."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        monkeypatch.setenv("RTD_TEST_APP_URL", f"postgresql://user:s3cret@127.0.0.1:{port}/db")
        code, out, err = validate(write_config(tmp_path), capsys)
        assert (75, True, False, False) == (code, "'app'" in err, "s3cret" in err + out, "Traceback" in err)


class TestS3:
    """validate --connect with an S3 target on the moto server."""

    S3 = '[stores.files]\nkind = "s3"\nendpoint_url_env = "RTD_TEST_S3"\n\n'
    MEDIA = (
        '\n[categories.media]\nretain = "90d"\naction = "delete"\n'
        '  [[categories.media.s3]]\n  store = "files"\n  bucket = "{bucket}"\n  prefix = "m/"\n'
    )

    def config(self, tmp_path: Path, bucket: str) -> Path:
        """Write a config with a good SQLite target and an S3 target on ``bucket``."""
        path = write_config(tmp_path, s3=self.S3)
        path.write_text(path.read_text() + self.MEDIA.format(bucket=bucket))
        return path

    def test_missing_bucket(
        self,
        sqlite_app: str,
        s3_endpoint: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A missing bucket exits 78 naming the bucket path."""
        monkeypatch.setenv("RTD_TEST_S3", s3_endpoint)
        ddl(sqlite_app, "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at DATETIME)")
        code, _, err = validate(self.config(tmp_path, "absent"), capsys)
        assert (78, True, False) == (code, "categories.media.s3[0].bucket" in err, "Traceback" in err)

    def test_versioned_bucket_in_json(
        self,
        sqlite_app: str,
        s3_endpoint: str,
        s3_client: Any,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A versioned bucket's versioning status is in the JSON output."""
        monkeypatch.setenv("RTD_TEST_S3", s3_endpoint)
        s3_client.create_bucket(Bucket="media")
        s3_client.put_bucket_versioning(Bucket="media", VersioningConfiguration={"Status": "Enabled"})
        ddl(sqlite_app, "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at DATETIME)")
        code, out, _ = validate(self.config(tmp_path, "media"), capsys, "--format", "json")
        notes = [n for n in json.loads(out)["connect"] if n.get("bucket") == "media"]
        assert (0, ["enabled"]) == (code, [n["versioning"] for n in notes])


class TestSubprocess:
    """The real entry point, as systemd and operators run it."""

    def test_exit_78_without_traceback(self, pg_app: str, tmp_path: Path) -> None:
        """``python -m retentiond`` exits 78 on a missing column and prints no traceback."""
        ddl(pg_app, "CREATE TABLE tickets (id bigint PRIMARY KEY)")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        done = subprocess.run(
            [sys.executable, "-m", "retentiond", "config", "validate", "--connect", "-c", str(write_config(tmp_path))],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert (78, True, False) == (
            done.returncode,
            "categories.support.sql[0].age_column" in done.stderr,
            "Traceback" in done.stderr,
        )
