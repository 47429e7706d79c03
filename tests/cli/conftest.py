"""Run the ``retentiond`` command in-process and capture what it prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from retentiond.cli.main import main


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one ``retentiond`` invocation."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Return stdout and stderr together."""
        return self.stdout + self.stderr


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """Return ``run(*args, env={...})``: calls ``retentiond.cli.main.main`` and returns a CliResult.

    RETENTIOND_CONFIG is unset so only ``-c`` decides; ``env`` sets extra variables for the call.
    """
    monkeypatch.delenv("RETENTIOND_CONFIG", raising=False)

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        code = exited.value.code
        return CliResult(code if isinstance(code, int) else (0 if code is None else 1), out, err)

    return run
