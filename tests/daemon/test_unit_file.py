"""deploy/systemd: the unit's required settings, and systemd-analyze verify / security where it exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
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

    def test_sysusers_declares_the_user(self) -> None:
        """sysusers.d creates the static user the unit runs as."""
        lines = [
            l.split() for l in (SYSTEMD / "retentiond.sysusers").read_text().splitlines() if l and not l.startswith("#")
        ]
        assert [("u", "retentiond"), ("g", "retentiond-legal"), ("m", "retentiond")] == [(l[0], l[1]) for l in lines]


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

    def test_security_exposure_at_most_2(self) -> None:
        """`systemd-analyze security --offline=true` rates the unit 2.0 or lower."""
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", str(UNIT)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        found = re.search(r"Overall exposure level for retentiond\.service: (\d+\.\d+)", result.stdout + result.stderr)
        assert found is not None, result.stdout[-2000:]
        assert float(found.group(1)) <= 2.0
