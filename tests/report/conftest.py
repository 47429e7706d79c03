"""Fixtures of the report tests: the four-month scenario on SQLite and on PostgreSQL, and the CLI."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from retentiond.audit.schema import entries_table
from tests.report import scenario as scenario_module
from tests.report.scenario import Scenario


@pytest.fixture(scope="session")
def scenario_sqlite(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Scenario:
    """The scenario with its store and ledger in SQLite files (built once per session)."""
    base = tmp_path_factory.mktemp("report-sqlite")
    return scenario_module.build(base, f"sqlite:///{base / 'app.db'}", moto_server)


@pytest.fixture(scope="session")
def scenario_pg(tmp_path_factory: pytest.TempPathFactory, moto_server: str, pg_admin: sa.Engine) -> Iterator[Scenario]:
    """The scenario with its store and ledger in one fresh PostgreSQL database (dropped after)."""
    name = f"rtd_report_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # our own hex name
    url = pg_admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield scenario_module.build(tmp_path_factory.mktemp("report-pg"), url, moto_server, ledger_url=url)
    finally:
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    """The scenario on each backend."""
    name = "scenario_sqlite" if request.param == "sqlite" else "scenario_pg"
    found: Scenario = request.getfixturevalue(name)
    return found


@dataclass
class Result:
    """What ``retentiond report`` did: exit code, stdout, stderr and the file it wrote."""

    code: int
    out: str
    err: str
    path: Path

    @property
    def text(self) -> str:
        """Return the report file's text."""
        return self.path.read_text(encoding="utf-8")

    def json(self) -> dict[str, object]:
        """Return the report file as JSON."""
        data: dict[str, object] = json.loads(self.text)
        return data


@pytest.fixture
def report_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> object:
    """Return ``run(config, *args, fmt="json") -> Result`` calling ``retentiond report`` in-process.

    Logging is left as it is: ``main`` would point the root logger at pytest's captured stderr,
    which is closed after the test while the session's moto server keeps logging.
    """
    from retentiond.cli import main as main_module
    from retentiond.cli.main import main

    monkeypatch.setattr(main_module, "configure_logging", lambda *_, **__: None)

    counter = iter(range(1000))

    def run(config: Path, *args: str, fmt: str = "json") -> Result:
        out = tmp_path / f"report-{next(counter)}.{fmt}"
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(["report", "-c", str(config), "--format", fmt, "--out", str(out), *args])
        captured = capsys.readouterr()
        return Result(int(exit_info.value.code or 0), captured.out, captured.err, out)

    return run


def tampered_copy(scenario: Scenario, dest: Path) -> Path:
    """Copy the scenario's SQLite ledger to ``dest`` and change one batch entry's count there.

    Returns an auditor config pointing at the copy. The change is made as a superuser would:
    the append-only triggers dropped first.
    """
    source = scenario.dir / "state" / "audit.db"
    copy = dest / "tampered.db"
    with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    engine = sa.create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        for (name,) in conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
            conn.execute(sa.text(f'DROP TRIGGER "{name}"'))  # names from sqlite_master
        seq, fields = conn.execute(
            sa.select(entries_table.c.seq, entries_table.c.fields)
            .where(entries_table.c.event == "batch")
            .where(entries_table.c.fields.like('%"outcome":"deleted"%'))
            .order_by(entries_table.c.seq)
            .limit(1)
        ).one()
        data = json.loads(fields)
        data["count"] = data["count"] - 1  # one deletion fewer: the kind of edit a cover-up makes
        conn.execute(
            sa.update(entries_table)
            .where(entries_table.c.seq == seq)
            .values(fields=json.dumps(data, sort_keys=True, separators=(",", ":")))
        )
    engine.dispose()
    config = dest / "tampered.toml"
    config.write_text(f'[audit]\nurl = "sqlite:///{copy}"\n', encoding="utf-8")
    return config
