"""``retentiond install-unit``: the unit, sysusers.d and tmpfiles.d files of this installation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from retentiond.cli.install_cmd import with_header
from tests.cli.conftest import RunCli

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "systemd"


def stub_executable(path: Path) -> Path:
    """Create an executable stand-in for retentiond at ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def body(path: Path) -> str:
    """Return a written file without its two header lines."""
    return path.read_text(encoding="utf-8").split("\n", 2)[2]


def unit_lines(prefix: Path, key: str) -> list[str]:
    """Return the values of ``key=`` in the unit written under ``prefix``."""
    text = (prefix / "systemd" / "system" / "retentiond.service").read_text(encoding="utf-8")
    return re.findall(rf"^{key}=(.*)$", text, flags=re.M)


class TestWrites:
    """The three files land under --prefix with this installation's paths."""

    def test_writes_unit_sysusers_and_tmpfiles(self, run_cli: RunCli, tmp_path: Path) -> None:
        """The unit, sysusers.d and tmpfiles.d files are written; the latter two as shipped, under the header."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        result = run_cli("install-unit", "--prefix", tmp_path / "etc", "--executable", exe)
        etc = tmp_path / "etc"
        assert (0, True, True, True) == (
            result.code,
            (etc / "systemd" / "system" / "retentiond.service").is_file(),
            body(etc / "sysusers.d" / "retentiond.conf") == (SHIPPED / "retentiond.sysusers").read_text(),
            body(etc / "tmpfiles.d" / "retentiond.conf") == (SHIPPED / "retentiond.tmpfiles").read_text(),
        ), result.output

    def test_exec_lines_run_the_given_executable(self, run_cli: RunCli, tmp_path: Path) -> None:
        """ExecStart= and the validating ExecReload= run --executable; the kill line is untouched."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        assert 0 == run_cli("install-unit", "--prefix", tmp_path, "--executable", exe).code
        assert (
            [f"{exe} -c /etc/retentiond/retention.toml daemon"],
            [
                f"{exe} -c /etc/retentiond/retention.toml --log-level warning config validate --connect",
                "/bin/kill -HUP $MAINPID",
            ],
        ) == (unit_lines(tmp_path, "ExecStart"), unit_lines(tmp_path, "ExecReload"))

    def test_documentation_names_an_existing_file(self, run_cli: RunCli, tmp_path: Path) -> None:
        """Documentation= is a file:// URI of the operations guide this installation has."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        assert 0 == run_cli("install-unit", "--prefix", tmp_path, "--executable", exe).code
        (doc,) = unit_lines(tmp_path, "Documentation")
        assert (True, "operations.md") == (Path(doc.removeprefix("file://")).is_file(), Path(doc).name)

    def test_everything_else_is_the_shipped_unit(self, run_cli: RunCli, tmp_path: Path) -> None:
        """Apart from the header, Exec and Documentation lines, the unit is the shipped one."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        assert 0 == run_cli("install-unit", "--prefix", tmp_path, "--executable", exe).code
        written = body(tmp_path / "systemd" / "system" / "retentiond.service").splitlines()
        shipped = (SHIPPED / "retentiond.service").read_text().splitlines()

        def rest(lines: list[str]) -> list[str]:
            return [line for line in lines if not line.startswith(("ExecStart=", "ExecReload=", "Documentation="))]

        assert rest(shipped) == rest(written)

    def test_default_executable_is_this_installations(self, run_cli: RunCli, tmp_path: Path) -> None:
        """Without --executable the unit runs the retentiond console script of the running installation."""
        assert 0 == run_cli("install-unit", "--prefix", tmp_path).code
        (exec_start,) = unit_lines(tmp_path, "ExecStart")
        exe = Path(exec_start.split()[0])
        assert (True, "retentiond") == (exe.is_file(), exe.name)

    def test_json_lists_files_and_next_steps(self, run_cli: RunCli, tmp_path: Path) -> None:
        """--format json reports each file's action, the example config folder and the remaining steps."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        result = run_cli("install-unit", "--prefix", tmp_path, "--executable", exe, "--format", "json")
        data = json.loads(result.stdout)
        assert (["wrote"] * 3, True, "systemctl daemon-reload" in data["next_steps"]) == (
            [f["action"] for f in data["files"]],
            (Path(data["examples"]) / "retention.toml").is_file(),
            True,
        )


class TestExistingFiles:
    """An operator's file is never replaced silently."""

    def test_refuses_to_replace_a_changed_file(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A unit that differs stays as it is and the command exits 2 naming it; nothing else is written."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        unit = tmp_path / "systemd" / "system" / "retentiond.service"
        unit.parent.mkdir(parents=True)
        unit.write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
        result = run_cli("install-unit", "--prefix", tmp_path, "--executable", exe)
        assert (2, "[Service]\nExecStart=/bin/true\n", True, False) == (
            result.code,
            unit.read_text(encoding="utf-8"),
            str(unit) in result.stderr and "--force" in result.stderr,
            (tmp_path / "sysusers.d").exists(),
        )

    def test_force_replaces(self, run_cli: RunCli, tmp_path: Path) -> None:
        """--force replaces a differing unit and says so."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        unit = tmp_path / "systemd" / "system" / "retentiond.service"
        unit.parent.mkdir(parents=True)
        unit.write_text("[Service]\n", encoding="utf-8")
        result = run_cli("install-unit", "--prefix", tmp_path, "--executable", exe, "--force")
        assert (0, [str(exe)], True) == (
            result.code,
            [v.split()[0] for v in unit_lines(tmp_path, "ExecStart")],
            f"replaced      {unit}" in result.stdout,
        )

    def test_replaces_its_own_unedited_file(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A file an earlier install-unit wrote (header hash matches its body) is updated without --force."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        unit = tmp_path / "systemd" / "system" / "retentiond.service"
        unit.parent.mkdir(parents=True)
        unit.write_text(
            with_header("[Service]\nExecStart=/old/retentiond daemon\n", "an older version"), encoding="utf-8"
        )
        result = run_cli("install-unit", "--prefix", tmp_path, "--executable", exe)
        assert (0, [f"{exe} -c /etc/retentiond/retention.toml daemon"], True) == (
            result.code,
            unit_lines(tmp_path, "ExecStart"),
            f"updated       {unit}" in result.stdout,
        )

    def test_keeps_an_edited_file(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A file install-unit wrote and an operator edited afterwards differs: kept, exit 2."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        assert 0 == run_cli("install-unit", "--prefix", tmp_path, "--executable", exe).code
        tmpfiles = tmp_path / "tmpfiles.d" / "retentiond.conf"
        edited = tmpfiles.read_text(encoding="utf-8") + "d /srv/retentiond 0750 root retentiond -\n"
        tmpfiles.write_text(edited, encoding="utf-8")
        result = run_cli("install-unit", "--prefix", tmp_path, "--executable", exe)
        assert (2, edited) == (result.code, tmpfiles.read_text(encoding="utf-8"))

    def test_second_run_changes_nothing(self, run_cli: RunCli, tmp_path: Path) -> None:
        """Running it again reports every file unchanged and exits 0."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        assert 0 == run_cli("install-unit", "--prefix", tmp_path, "--executable", exe).code
        result = run_cli("install-unit", "--prefix", tmp_path, "--executable", exe)
        assert (0, 3) == (result.code, result.stdout.count("unchanged"))

    def test_dry_run_writes_nothing(self, run_cli: RunCli, tmp_path: Path) -> None:
        """--dry-run lists what it would write and leaves the prefix empty."""
        exe = stub_executable(tmp_path / "bin" / "retentiond")
        result = run_cli("install-unit", "--prefix", tmp_path / "p", "--executable", exe, "--dry-run")
        assert (0, 3, False) == (result.code, result.stdout.count("would write"), (tmp_path / "p").exists())


class TestExecutablePaths:
    """Paths are written so systemd reads them as they are."""

    @pytest.mark.parametrize("name", ["re$tentiond", "a;b", 'quo"te'])
    def test_refuses_characters_systemd_interprets(self, run_cli: RunCli, tmp_path: Path, name: str) -> None:
        """A path with $, ; or a quote is refused with exit 2 and nothing is written."""
        result = run_cli("install-unit", "--prefix", tmp_path / "p", "--executable", tmp_path / name)
        assert (2, False) == (result.code, (tmp_path / "p").exists())

    def test_refuses_a_missing_executable(self, run_cli: RunCli, tmp_path: Path) -> None:
        """--executable naming no executable file is refused with exit 2 and nothing is written."""
        result = run_cli("install-unit", "--prefix", tmp_path / "p", "--executable", tmp_path / "nowhere")
        assert (2, False, True) == (result.code, (tmp_path / "p").exists(), "not an executable" in result.stderr)

    def test_percent_is_escaped(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A % in the path is written as %% (systemd's specifier escape)."""
        exe = stub_executable(tmp_path / "100%" / "retentiond")
        assert 0 == run_cli("install-unit", "--prefix", tmp_path, "--executable", exe).code
        (exec_start,) = unit_lines(tmp_path, "ExecStart")
        assert exec_start.startswith(str(exe).replace("%", "%%") + " ")

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
    def test_path_with_spaces_verifies(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A venv under a folder with spaces and % yields a unit `systemd-analyze verify` accepts."""
        exe = stub_executable(tmp_path / "my venv 100%" / "bin" / "retentiond")
        assert 0 == run_cli("install-unit", "--prefix", tmp_path / "p", "--executable", exe).code
        result = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / "p" / "systemd" / "system" / "retentiond.service")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert (0, "") == (result.returncode, result.stderr.strip())
