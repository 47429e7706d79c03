"""``retentiond install-unit``: write the systemd unit, sysusers.d and tmpfiles.d files of this installation.

The wheel installs the shipped files as data (``<prefix>/share/retentiond/systemd/``) and the docs
under ``<prefix>/share/doc/retentiond/``. The shipped unit names ``/usr/bin/retentiond`` and
``/usr/share/doc/…``, which is right for a package installed under ``/usr``; for any other
installation (a venv in ``/opt/retentiond``) this command writes the unit with the executable and
the documentation of the installation it runs from, so ``ExecStart=`` and ``Documentation=``
point at files that exist.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

from retentiond import __version__
from retentiond.cli.context import AppContext, common_options, pass_app
from retentiond.errors import ExitCode, RetentiondError, UsageError

# What the shipped unit names; a package installed under /usr needs no rewriting.
SHIPPED_EXECUTABLE = "/usr/bin/retentiond"
SHIPPED_DOCUMENTATION = "file:///usr/share/doc/retentiond/docs/operations.md"
# Characters systemd gives a meaning in ExecStart= (quoting, escapes, variables, separators).
_UNSAFE_IN_COMMAND = set("\"'\\$;\n\r\t")
# First line of every file this command writes: the hash of what follows the two header lines lets a
# later version replace its own unedited file without --force while an operator's edit is kept.
_HEADER = re.compile(
    r"\A# Written by `retentiond install-unit` \(retentiond [^)\n]*\); sha256 ([0-9a-f]{64})\n[^\n]*\n"
)


class InstallError(RetentiondError):
    """The shipped files cannot be found or a target cannot be written."""

    exit_code = ExitCode.CATEGORY_FAILED


@dataclass(frozen=True)
class ShippedFiles:
    """Where this installation keeps the files it ships (installed data, or the source checkout)."""

    systemd_dir: Path
    config_dir: Path
    operations_doc: Path


@dataclass(frozen=True)
class TargetFile:
    """One file to write: where, what, and whether it already holds exactly that."""

    path: Path
    content: str
    state: str  # "new" | "unchanged" | "outdated" (ours, unedited) | "differs" (edited or not ours)


def _installed_path(*tail: str) -> Path | None:
    """Return the installed file whose RECORD entry ends with the path parts ``tail``, or None.

    Data files and scripts are recorded relative to site-packages (``../../../share/…``), so this
    finds them whatever the installation scheme (venv, ``--prefix /usr``, ``--user``). The path is
    normalised without following symlinks: a venv reached through ``/opt/retentiond -> …-1.2``
    keeps its stable name in the unit.
    """
    try:
        dist = metadata.distribution("retentiond")
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if tuple(entry.parts[-len(tail) :]) == tail:
            path = Path(os.path.normpath(os.path.abspath(str(dist.locate_file(entry)))))
            if path.is_file():
                return path
    return None


def locate_shipped() -> ShippedFiles:
    """Return where the shipped unit, example config and operations guide are.

    An installed wheel's data files come first; an editable install or a source checkout (which
    install no data files) falls back to the repository's ``deploy/``, ``config/`` and ``docs/``.

    Raises:
        InstallError: neither exists.
    """
    unit = _installed_path("share", "retentiond", "systemd", "retentiond.service")
    config = _installed_path("share", "retentiond", "config", "retention.toml")
    doc = _installed_path("share", "doc", "retentiond", "docs", "operations.md")
    if unit is not None and config is not None and doc is not None:
        return ShippedFiles(unit.parent, config.parent, doc)
    checkout = Path(__file__).resolve().parents[2]
    found = ShippedFiles(checkout / "deploy" / "systemd", checkout / "config", checkout / "docs" / "operations.md")
    if (found.systemd_dir / "retentiond.service").is_file() and found.operations_doc.is_file():
        return found
    raise InstallError(
        "the shipped systemd files are not installed (share/retentiond/systemd/ of this installation); "
        "reinstall retentiond from its wheel"
    )


def locate_executable() -> Path:
    """Return the ``retentiond`` console script of this installation.

    Raises:
        UsageError: it cannot be found (pass ``--executable``).
    """
    recorded = _installed_path("bin", "retentiond")
    if recorded is not None:
        return recorded
    scripts = Path(sysconfig.get_path("scripts")) / "retentiond"
    if scripts.is_file():
        return scripts
    found = shutil.which("retentiond")
    if found is not None:
        return Path(os.path.abspath(found))
    raise UsageError("cannot find the retentiond executable of this installation; pass --executable PATH")


def _command_word(path: Path) -> str:
    """Return ``path`` as the first word of an ExecStart= line (``%`` escaped, quoted when it has spaces).

    Raises:
        UsageError: the path is relative or holds characters systemd would interpret.
    """
    text = str(path)
    if not path.is_absolute() or _UNSAFE_IN_COMMAND & set(text):
        raise UsageError(f"--executable must be an absolute path without quotes, '\\', '$' or ';': {text!r}")
    text = text.replace("%", "%%")
    return f'"{text}"' if " " in text else text


def render_unit(shipped_unit: str, executable: Path, operations_doc: Path) -> str:
    """Return the shipped unit with ``executable`` in its Exec lines and ``operations_doc`` in Documentation=.

    Raises:
        InstallError: the shipped unit does not name the paths this command replaces.
        UsageError: ``executable`` cannot be written into an Exec line.
    """
    if SHIPPED_EXECUTABLE not in shipped_unit or SHIPPED_DOCUMENTATION not in shipped_unit:
        raise InstallError(f"the shipped unit does not name {SHIPPED_EXECUTABLE} and {SHIPPED_DOCUMENTATION}")
    lines = []
    for line in shipped_unit.splitlines(keepends=True):
        if line.startswith(("ExecStart=", "ExecReload=")):
            line = line.replace(SHIPPED_EXECUTABLE, _command_word(executable))
        elif line.startswith("Documentation="):
            line = line.replace(SHIPPED_DOCUMENTATION, operations_doc.as_uri().replace("%", "%%"))
        lines.append(line)
    return "".join(lines)


def with_header(body: str, advice: str) -> str:
    """Return ``body`` under the two header lines: provenance with the body's SHA-256, then ``advice``."""
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f"# Written by `retentiond install-unit` (retentiond {__version__}); sha256 {digest}\n# {advice}\n{body}"


def file_state(path: Path, content: str) -> str:
    """Return how the file at ``path`` compares with ``content``.

    ``new`` (absent), ``unchanged`` (identical), ``outdated`` (written by install-unit and not
    edited since: its body still has the hash its header records) or ``differs`` (anything else).
    """
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "new"
    except (OSError, UnicodeDecodeError):
        return "differs"
    if current == content:
        return "unchanged"
    header = _HEADER.match(current)
    if header is not None:
        body = current[header.end() :]
        if hashlib.sha256(body.encode("utf-8")).hexdigest() == header.group(1):
            return "outdated"
    return "differs"


def plan_files(prefix: Path, shipped: ShippedFiles, executable: Path) -> list[TargetFile]:
    """Return the unit, sysusers.d and tmpfiles.d files to write under ``prefix`` and their state.

    ``prefix`` is the directory holding ``systemd/system``, ``sysusers.d`` and ``tmpfiles.d``:
    ``/etc`` for a local installation, ``/usr/lib`` or ``/usr/local/lib`` for a packaged one.

    Raises:
        InstallError: a shipped file cannot be read.
        UsageError: ``executable`` cannot be written into an Exec line.
    """
    try:
        unit = render_unit(
            (shipped.systemd_dir / "retentiond.service").read_text(encoding="utf-8"), executable, shipped.operations_doc
        )
        sysusers = (shipped.systemd_dir / "retentiond.sysusers").read_text(encoding="utf-8")
        tmpfiles = (shipped.systemd_dir / "retentiond.tmpfiles").read_text(encoding="utf-8")
    except OSError as exc:
        raise InstallError(f"cannot read the shipped systemd files in {shipped.systemd_dir}: {exc.strerror}") from exc
    keep = "Replaced on upgrade while unedited; "
    contents = {
        prefix / "systemd" / "system" / "retentiond.service": with_header(
            unit, keep + "change settings in a drop-in instead (`systemctl edit retentiond`)."
        ),
        prefix / "sysusers.d" / "retentiond.conf": with_header(sysusers, keep + "an edited file is kept."),
        prefix / "tmpfiles.d" / "retentiond.conf": with_header(tmpfiles, keep + "an edited file is kept."),
    }
    return [TargetFile(path, content, file_state(path, content)) for path, content in contents.items()]


def write_files(files: list[TargetFile]) -> None:
    """Write every new or differing file (mode 0644, atomically: a reader never sees half a unit).

    Raises:
        InstallError: a directory or file cannot be written.
    """
    for target in files:
        if target.state == "unchanged":
            continue
        try:
            target.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.path.parent, prefix=f".{target.path.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(target.content)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise InstallError(f"cannot write {target.path}: {exc.strerror}") from exc


def _next_steps(prefix: Path, shipped: ShippedFiles, executable: Path) -> list[str]:
    return [
        "systemd-sysusers",
        f"systemd-tmpfiles --create {prefix / 'tmpfiles.d' / 'retentiond.conf'}",
        f"install -m 0640 -g retentiond {shipped.config_dir / 'retention.toml'} /etc/retentiond/retention.toml",
        f"install -m 0640 -g retentiond {shipped.config_dir / 'holds.toml'} /etc/retentiond/holds.toml",
        "systemctl daemon-reload",
        f"{executable} -c /etc/retentiond/retention.toml config validate --connect",
        "systemctl enable --now retentiond",
    ]


@click.command("install-unit")
@common_options
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc"),
    show_default=True,
    help="Directory holding systemd/system, sysusers.d and tmpfiles.d: /etc (local) or /usr/lib (package).",
)
@click.option(
    "--executable",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The retentiond the unit runs (default: this installation's console script).",
)
@click.option("--force", is_flag=True, help="Replace files that exist with a different content.")
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@pass_app
def install_unit_command(app: AppContext, prefix: Path, executable: Path | None, force: bool, dry_run: bool) -> int:
    """Write retentiond.service, sysusers.d and tmpfiles.d files for this installation.

    The unit runs this installation's retentiond and its Documentation= names the installed
    operations guide. A file an earlier install-unit wrote and nobody edited is replaced; any
    other existing file with another content is kept unless --force is given. Prints each file
    (wrote, updated, unchanged, replaced), then the remaining setup steps. Exits 2 when a file
    differs and --force is not given, 1 when a file cannot be written.
    """
    shipped = locate_shipped()
    if executable is not None and not os.access(executable, os.X_OK):
        raise UsageError(f"--executable {executable} is not an executable file")
    executable = executable or locate_executable()
    files = plan_files(prefix.absolute(), shipped, executable)
    differing = [str(f.path) for f in files if f.state == "differs"]
    if differing and not force:
        raise UsageError(f"refusing to replace {', '.join(differing)}: they differ from this version (pass --force)")
    if not dry_run:
        write_files(files)
    verbs = {
        "new": "would write" if dry_run else "wrote",
        "outdated": "would update" if dry_run else "updated",
        "differs": "would replace" if dry_run else "replaced",
    }
    report = [(verbs.get(f.state, "unchanged"), str(f.path)) for f in files]
    steps = _next_steps(prefix.absolute(), shipped, executable)
    if app.json:
        app.emit_json(
            {
                "files": [{"action": action, "path": path} for action, path in report],
                "examples": str(shipped.config_dir),
                "documentation": str(shipped.operations_doc),
                "next_steps": steps,
            }
        )
        return ExitCode.OK
    for action, path in report:
        click.echo(f"{action:<13} {path}")
    click.echo("\nthen, as root:")
    for step in steps:
        click.echo(f"  {step}")
    return ExitCode.OK
