"""Who started a run: the systemd unit, or the OS user (and ``SUDO_USER``) of a one-shot command.

Only names reach the ledger (``run_started``'s ``actor_*`` fields); a value that is not a plain
name is replaced by a neutral stand-in (``uid-1000``) rather than dropped, so a run always says
who ran it.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from retentiond.audit.values import Label, Name

_UNIT = re.compile(r"/([A-Za-z0-9@_.:\\-]+\.service)$")


@dataclass(frozen=True)
class Actor:
    """The unit and users a run is attributed to (each a :class:`Name`, or None)."""

    unit: str | None
    user: str | None
    sudo_user: str | None

    @classmethod
    def of_this_process(
        cls, environ: Mapping[str, str] | None = None, cgroup: Path = Path("/proc/self/cgroup")
    ) -> Actor:
        """Return the actor of the running process.

        ``unit`` is the systemd service whose cgroup the process is in (a login session's
        scope is not a unit that acts on its own); ``user`` the effective OS user;
        ``sudo_user`` the user who ran the command through sudo.
        """
        env = os.environ if environ is None else environ
        uid = os.geteuid()
        try:
            user: str | None = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = None
        return cls(
            unit=_name(_unit_of(cgroup)),
            user=_name(user) or f"uid-{uid}",
            sudo_user=_name(env.get("SUDO_USER"))
            or (f"uid-{env['SUDO_UID']}" if env.get("SUDO_UID", "").isdigit() else None),
        )

    def fields(self) -> dict[str, str | None]:
        """Return the ``run_started`` fields naming this actor."""
        return {"actor_unit": self.unit, "actor_user": self.user, "actor_sudo_user": self.sudo_user}


def _unit_of(cgroup: Path) -> str | None:
    try:
        text = cgroup.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        found = _UNIT.search(line.rsplit(":", 1)[-1].strip())
        if found:
            return found.group(1)
    return None


def _name(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(Name(value.replace("@", "_at_").replace(":", "_").replace("\\", "_")))
    except ValueError:
        return None


def check_reference(reference: str | None, *, allow_large: bool) -> str | None:
    """Return the validated ticket reference of a run.

    Raises:
        ValueError: ``allow_large`` without a reference, or a reference that is not a label
            (a few words of letters, digits and ``. _ - @ / : # +``, not free text).
    """
    if reference is None:
        if allow_large:
            raise ValueError("--allow-large needs --reference TICKET (the change or incident it was approved under)")
        return None
    return str(Label(reference))
