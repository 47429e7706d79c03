"""Exception hierarchy and the exit codes of SPEC §6.

Every error a user can cause maps to one documented exit code; the CLI turns these
exceptions into a one-line message on stderr and that code, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class ExitCode:
    """Process exit codes (SPEC §6)."""

    OK = 0
    CATEGORY_FAILED = 1
    USAGE = 2
    VERIFY_FAILED = 65
    TEMPORARY = 75
    CONFIG = 78


class RetentiondError(Exception):
    """Base of every error retentiond reports to a user.

    Messages must never carry personal data (record keys, values, object keys).
    """

    exit_code: int = ExitCode.CATEGORY_FAILED


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a configuration or holds file.

    ``path`` is the dotted path of the offending key (``categories.x.sql[0].table``);
    ``line`` the 1-based line in ``file`` when it could be located.
    """

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        """Return ``file:line: path: message`` with the parts that are known."""
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        path = f"{self.path}: " if self.path else ""
        return f"{where}{path}{self.message}"


class ConfigError(RetentiondError):
    """The configuration or holds file is invalid; carries every issue found."""

    exit_code = ExitCode.CONFIG

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(i.render() for i in self.issues))


class HoldsUnavailable(RetentiondError):
    """The holds file is missing, unreadable or invalid: destructive work must stop.

    An operator must fix the file, so this is a configuration error (78): systemd does not
    restart-loop on it, and ``plan`` / ``run`` exit as README's table says.
    """

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, issues: list[ConfigIssue] | None = None) -> None:
        self.issues = list(issues or [])
        super().__init__(message)


class TemporaryFailure(RetentiondError):
    """A store or the ledger is unreachable, a lease is held elsewhere, clocks disagree."""

    exit_code = ExitCode.TEMPORARY


class UsageError(RetentiondError):
    """A command-line argument is wrong in a way click could not catch."""

    exit_code = ExitCode.USAGE
