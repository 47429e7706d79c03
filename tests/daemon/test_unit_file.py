"""deploy/systemd: the unit's required settings, and systemd-analyze verify / security where it exists."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "deploy" / "systemd"
UNIT = SYSTEMD / "retentiond.service"


def settings(path: Path) -> dict[str, list[str]]:
    """Return every ``Key=value`` of a unit file (all sections), values in order."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


class TestUnitFile:
    """The unit carries what SPEC §7 and issue 6 require."""

    def test_required_settings(self) -> None:
        """Type=notify, watchdog, restart policy, state dir, user, hardening basics."""
        unit = settings(UNIT)
        wanted = {
            "Type": ["notify"],
            "Restart": ["on-failure"],
            "RestartPreventExitStatus": ["78"],
            "User": ["retentiond"],
            "StateDirectory": ["retentiond"],
            "NoNewPrivileges": ["yes"],
            "ProtectSystem": ["strict"],
            "PrivateTmp": ["yes"],
            "CapabilityBoundingSet": [""],
            "NotifyAccess": ["main"],
        }
        assert wanted == {k: unit.get(k) for k in wanted}
        assert "@system-service" in unit["SystemCallFilter"] and bool(unit.get("WatchdogSec"))

    def test_hardening_leftovers_of_issue_17(self) -> None:
        """PrivateMounts, PrivateIPC and MemoryDenyWriteExecute are on (free items of `systemd-analyze security`)."""
        unit = settings(UNIT)
        wanted = {"PrivateMounts": ["yes"], "PrivateIPC": ["yes"], "MemoryDenyWriteExecute": ["yes"]}
        assert wanted == {k: unit.get(k) for k in wanted}

    def test_documentation_is_installed_by_a_usr_install(self) -> None:
        """Documentation= names the file the wheel installs as data under the /usr prefix."""
        (uri,) = settings(UNIT)["Documentation"]
        relative = Path(uri.removeprefix("file:///usr/"))
        data_files = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
            "data-files"
        ]
        installed = {
            Path(folder) / source.name
            for folder, patterns in data_files.items()
            for pattern in patterns
            for source in REPO.glob(pattern)
        }
        assert (True, True) == (uri.startswith("file:///usr/"), relative in installed)

    def test_reload_validates_before_signalling(self) -> None:
        """ExecReload runs `config validate --connect`, then kill -HUP $MAINPID."""
        reload = settings(UNIT)["ExecReload"]
        assert (2, True, "/bin/kill -HUP $MAINPID") == (
            len(reload),
            "config validate --connect" in reload[0],
            reload[1],
        )

    def test_secrets_come_from_credentials(self) -> None:
        """audit-hmac, audit-signing and the app DB URL are LoadCredential= entries."""
        names = sorted(v.split(":", 1)[0] for v in settings(UNIT)["LoadCredential"])
        assert ["app-db-url", "audit-hmac", "audit-signing"] == names

    def test_legal_can_reach_the_holds_state(self) -> None:
        """The state directory's group bits let the tmpfiles ACL of retentiond-legal take effect.

        Group bits are an ACL's mask: with 0700 the `group:retentiond-legal:--x` entry on
        /var/lib/retentiond would grant nothing, and `holds list` could not read holds/.
        """
        tmpfiles = (SYSTEMD / "retentiond.tmpfiles").read_text()
        assert "a+ /var/lib/retentiond        - - - - group:retentiond-legal:--x" in tmpfiles
        mode = int(settings(UNIT)["StateDirectoryMode"][0], 8)
        assert (0o010, 0o000) == (mode & 0o010, mode & 0o007)

    def test_sysusers_declares_the_user(self) -> None:
        """sysusers.d creates the static user the unit runs as."""
        lines = [
            line.split()
            for line in (SYSTEMD / "retentiond.sysusers").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert [("u", "retentiond"), ("g", "retentiond-legal"), ("m", "retentiond")] == [(w[0], w[1]) for w in lines]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian: apt-get install systemd); unit settings are still checked above",
)
class TestSystemdAnalyze:
    """systemd's own checks of the unit."""

    def test_verify_is_clean(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` reports nothing (executables point at stand-ins: only the unit is judged)."""
        stub = tmp_path / "retentiond"
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        unit = tmp_path / "retentiond.service"
        unit.write_text(UNIT.read_text(encoding="utf-8").replace("/usr/bin/retentiond", str(stub)), encoding="utf-8")
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
        )
        assert (0, "") == (result.returncode, result.stderr.strip())

    def test_security_exposure_at_most_1_1(self) -> None:
        """`systemd-analyze security --offline=true` rates the unit 1.1 or lower."""
        found = re.search(r"Overall exposure level for retentiond\.service: (\d+\.\d+)", security_report())
        assert found is not None
        assert float(found.group(1)) <= 1.1

    def test_every_exposure_left_is_explained(self) -> None:
        """Each item the security report still marks ✗ has an ``# Exposure <Setting>=`` comment in the unit."""
        listed = {m.group(1) for m in re.finditer(r"^✗ ([A-Za-z]+)=", security_report(), flags=re.M)}
        explained = set(re.findall(r"^# Exposure ([A-Za-z]+)=", UNIT.read_text(encoding="utf-8"), flags=re.M))
        assert (True, set()) == (bool(listed), listed - explained)


@functools.cache
def security_report() -> str:
    """Return what `systemd-analyze security --offline=true` prints for the shipped unit."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.stdout + result.stderr
