"""``plan`` / ``run`` exit codes by the kind of failure (README's table): 75 unreachable, 78 holds file, 1 mixed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.stores.sql.conftest import SUPPORT, Env, pg_env  # noqa: F401 - fixture used below


def dead_port() -> int:
    """Return a local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_dead_s3(env: Env) -> Path:
    """Append S3 store ``gone`` (an endpoint that refuses connections) and category ``files`` on it."""
    text = env.config_path.read_text(encoding="utf-8")
    text += (
        f'\n[stores.gone]\nkind = "s3"\nendpoint_url = "http://127.0.0.1:{dead_port()}"\nregion = "us-east-1"\n'
        '\n[categories.files]\nretain = "30d"\naction = "delete"\n'
        '[[categories.files.s3]]\nstore = "gone"\nbucket = "media-files"\nprefix = "tickets/"\n'
    )
    env.config_path.write_text(text, encoding="utf-8")
    return env.config_path


AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class TestUnreachable:
    """A store that does not answer is a temporary failure: 75, for plan and run."""

    @pytest.mark.parametrize("command", ["plan", "run"])
    def test_s3_endpoint_unreachable_exits_75(self, pg_env: Env, command: str) -> None:  # noqa: F811
        """Every failed category failed because its S3 endpoint does not answer."""
        pg_env.configure({"support": SUPPORT})
        add_dead_s3(pg_env)
        done = pg_env.cli(command, "--category", "files", env=AWS)
        assert (75, False) == (done.returncode, "Traceback" in done.stderr)
        assert "unreachable" in done.stdout + done.stderr

    @pytest.mark.parametrize("command", ["plan", "run"])
    def test_database_unreachable_exits_75(self, pg_env: Env, command: str) -> None:  # noqa: F811
        """The SQL store's database refuses connections."""
        pg_env.url = f"postgresql+psycopg://postgres@127.0.0.1:{dead_port()}/nothing"
        pg_env.configure({"support": SUPPORT})
        done = pg_env.cli(command)
        assert (75, False) == (done.returncode, "Traceback" in done.stderr)


class TestHoldsFile:
    """An invalid holds file is the operator's to fix: 78 (not 1), nothing acted on."""

    @pytest.mark.parametrize("command", ["plan", "run"])
    def test_invalid_holds_file_exits_78(self, pg_env: Env, command: str) -> None:  # noqa: F811
        """A TOML syntax error in the holds file; the row stays."""
        pg_env.configure({"support": SUPPORT})
        pg_env.write_holds("[[hold]\nbroken")
        done = pg_env.cli(command)
        assert (78, False, True) == (done.returncode, "Traceback" in done.stderr, "holds.toml" in done.stderr)


class TestMixed:
    """Failures of different kinds in one run: 1."""

    def test_unreachable_and_guard_exit_1(self, pg_env: Env) -> None:  # noqa: F811
        """One category cannot reach S3 (75), another trips the blast-radius guard (1): the run exits 1."""
        from tests.stores.sql.conftest import tickets

        pg_env.configure({"support": SUPPORT}, max_fraction_per_run=0.5)
        add_dead_s3(pg_env)
        pg_env.insert(tickets, [pg_env.ticket(i, 40) for i in range(4)])
        done = pg_env.cli("run", env=AWS)
        assert (1, 4) == (done.returncode, len(pg_env.ids()))
        assert "guard_tripped" in done.stdout and "unreachable" in done.stdout
