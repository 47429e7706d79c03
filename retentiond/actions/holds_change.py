"""Change Legal's holds file safely: ``holds add``, ``extend``, ``edit`` and ``lift``.

:func:`plan_change` computes the new file text, validates every holds file as it would be with
the daemon's own validator, applies dual control, and returns the holds before and after (the
seam for impact counts: run the plan's counts with each list and subtract). :func:`apply_change`
does that under an exclusive lock next to the holds, checks that no file changed since it was
read (compare-and-swap against editors that do not take the lock), and replaces the file
atomically (temp file in the same folder, fsync, rename) with the old file's owner and mode.
An invalid change raises ``ConfigError`` (exit 78) and writes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from retentiond.config.holds import Hold
from retentiond.config.holds_edit import HoldBlock, HoldEditError, append_hold, edit_hold, hold_ids, merged
from retentiond.config.loader import HoldsSnapshot, LoadedConfig, holds_files, validate_holds
from retentiond.errors import ConfigError, ConfigIssue, TemporaryFailure
from retentiond.policy.hold_changes import Narrowing, approval_problem, narrowing

LOCK_NAME = ".retentiond-holds.lock"
NEW_FILE_MODE = 0o640
_ATTEMPTS = 3


@dataclass(frozen=True)
class HoldEdit:
    """One change to one hold.

    ``action`` ``add`` writes ``fields`` as a new hold; ``edit`` sets ``fields`` (None removes
    a key) and adds/removes subjects and categories; ``lift`` marks the hold lifted. ``actor``
    is recorded as ``changed_by`` / ``lifted_by``, ``approver`` as the change's approver.
    """

    action: Literal["add", "edit", "lift"]
    hold_id: str
    actor: str
    approver: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    add_subjects: tuple[str, ...] = ()
    remove_subjects: tuple[str, ...] = ()
    add_categories: tuple[str, ...] = ()
    remove_categories: tuple[str, ...] = ()
    file_name: str | None = None  # add to a holds directory: which file (default: <matter>.toml)


@dataclass(frozen=True)
class HoldChangePlan:
    """A validated change: the file to write, its bytes before and after, the holds before and after."""

    path: Path
    contents: dict[Path, bytes | None]  # every holds file as read (None: the new file)
    after: bytes
    old_holds: tuple[Hold, ...]
    new_holds: tuple[Hold, ...]
    old: Hold | None
    new: Hold | None
    narrowing: Narrowing

    @property
    def before(self) -> bytes | None:
        """Return the edited file's bytes as read (None when it is created)."""
        return self.contents.get(self.path)


def _issue(path: Path, hold_id: str, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(f"hold {hold_id}", message, file=str(path))])


def _read_all(location: Path) -> dict[Path, bytes | None]:
    files = holds_files(location) if location.exists() else ([] if location.suffix != ".toml" else [location])
    out: dict[Path, bytes | None] = {}
    for file in files:
        try:
            out[file] = file.read_bytes()
        except FileNotFoundError:
            out[file] = None
        except OSError as exc:
            raise ConfigError([ConfigIssue("", f"cannot read file: {exc.strerror}", file=str(file))]) from None
    return out


def _target(loaded: LoadedConfig, edit: HoldEdit, contents: dict[Path, bytes | None]) -> Path:
    """Return the file that holds (or will hold) ``edit.hold_id``."""
    for file, raw in contents.items():
        try:
            ids = hold_ids(raw.decode("utf-8")) if raw is not None else []
        except (HoldEditError, UnicodeDecodeError):
            continue  # reported by the validator
        if edit.hold_id in ids:
            if edit.action == "add":
                raise _issue(file, edit.hold_id, "a hold with this id exists already (use holds edit or extend)")
            return file
    if edit.action != "add":
        raise _issue(loaded.holds_path, edit.hold_id, "no such hold in the holds file(s)")
    location = loaded.holds_path
    if location.is_dir() or location.suffix != ".toml":
        matter = edit.fields.get("matter")
        name = edit.file_name or (f"{matter}.toml" if matter else "holds.toml")
        if "/" in name or name.startswith(".") or not name.endswith(".toml"):
            raise _issue(location, edit.hold_id, f"invalid holds file name {name!r}: NAME.toml in the holds folder")
        return location / name
    return location


def _apply_to_block(edit: HoldEdit, now: datetime) -> Callable[[HoldBlock], None]:
    stamp = now.replace(microsecond=0)

    def change(block: HoldBlock) -> None:
        if edit.action == "lift":
            if block.get("lifted_at") is not None:
                raise HoldEditError(f"hold {edit.hold_id!r} is lifted already")
            block.set("lifted_by", edit.actor)
            block.set("lifted_at", stamp)
            block.set("lift_approved_by", edit.approver)
            return
        for key, value in edit.fields.items():
            block.set(key, value)
        if edit.add_subjects or edit.remove_subjects:
            current = block.get("subjects")
            if current is None and edit.remove_subjects:
                raise HoldEditError("the hold covers every subject: there is no subject to remove")
            block.set_list("subjects", merged(current, edit.add_subjects, edit.remove_subjects))
        if edit.add_categories or edit.remove_categories:
            block.set_list("categories", merged(block.get("categories"), edit.add_categories, edit.remove_categories))
        block.set("changed_by", edit.actor)
        block.set("changed_at", stamp)
        block.set("change_approved_by", edit.approver)

    return change


def _holds_of(snapshot: HoldsSnapshot, hold_id: str) -> Hold | None:
    return next((h for h in snapshot.holds if h.id == hold_id), None)


def plan_change(loaded: LoadedConfig, edit: HoldEdit, now: datetime, *, check_approval: bool = True) -> HoldChangePlan:
    """Return the validated change ``edit`` would make at ``now``; write nothing.

    ``check_approval`` False skips dual control (``holds impact``: the figures of an approved change).

    Raises:
        ConfigError: the holds are invalid now, the change would make them invalid, the hold is
            missing (or exists, for ``add``), or dual control refuses it (exit 78).
    """
    categories = list(loaded.settings.categories)
    contents = _read_all(loaded.holds_path)
    try:
        before = validate_holds({f: raw for f, raw in contents.items() if raw is not None}, categories)
    except ConfigError as exc:
        raise ConfigError(
            [ConfigIssue("", "the holds are invalid already; fix them first (retentiond holds check)"), *exc.issues]
        ) from None
    path = _target(loaded, edit, contents)
    raw = contents.get(path)
    text = raw.decode("utf-8") if raw is not None else ""
    try:
        if edit.action == "add":
            heading = None if text else "Legal's holds for retentiond: edit with `retentiond holds` or by hand."
            new_text = append_hold(text, {"id": edit.hold_id, **edit.fields}, heading=heading)
        else:
            new_text = edit_hold(text, edit.hold_id, _apply_to_block(edit, now))
    except HoldEditError as exc:
        raise _issue(path, edit.hold_id, str(exc)) from None
    after = new_text.encode("utf-8")
    proposed = {f: r for f, r in contents.items() if r is not None}
    proposed[path] = after
    new_snapshot = validate_holds(proposed, categories)  # the daemon's validator: ConfigError -> 78
    old, new = _holds_of(before, edit.hold_id), _holds_of(new_snapshot, edit.hold_id)
    change = narrowing(old, new, now) if old is not None else Narrowing()
    required = loaded.settings.daemon.hold_release_requires_approval
    if check_approval and old is not None and approval_problem(old, new, change, required=required) is not None:
        what = "lifting" if edit.action == "lift" else "this change of"
        raise _issue(
            path,
            edit.hold_id,
            f"{what} legal hold {edit.hold_id!r} releases records and needs an approver: add --approved-by NAME "
            "(someone else than you; daemon.hold_release_requires_approval is on)",
        )
    return HoldChangePlan(path, {**contents, path: raw}, after, before.holds, new_snapshot.holds, old, new, change)


def lock_path(location: Path) -> Path:
    """Return the lock file of the holds at ``location`` (in the folder Legal writes to)."""
    if location.is_dir():
        return location / LOCK_NAME
    return location.parent / LOCK_NAME


@contextlib.contextmanager
def edit_lock(location: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold the exclusive lock of holds edits (every ``holds add/edit/extend/lift`` takes it).

    Raises:
        TemporaryFailure: another edit held the lock for ``timeout`` seconds (exit 75).
        ConfigError: the lock file cannot be created (no write access to the holds folder).
    """
    path = lock_path(location)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, NEW_FILE_MODE)
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue("", f"cannot edit the holds here: {exc.strerror} (see docs/legal-holds.md)", file=str(path))]
        ) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise TemporaryFailure("another holds edit is in progress; try again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its mode (and owner and group when allowed)."""
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, (st.st_mode & 0o7777) if st else NEW_FILE_MODE)
        if st is not None:
            # Another member of Legal's group may not give the file to its owner: keep the group then.
            with contextlib.suppress(PermissionError):
                try:
                    os.fchown(fd, st.st_uid, st.st_gid)
                except PermissionError:
                    os.fchown(fd, -1, st.st_gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def apply_change(loaded: LoadedConfig, edit: HoldEdit, now: datetime, *, lock_timeout: float = 30.0) -> HoldChangePlan:
    """Make the change ``edit`` describes and return it (see :func:`plan_change`).

    Raises:
        ConfigError: as :func:`plan_change`; nothing is written.
        TemporaryFailure: the lock is busy, or the files kept changing under the edit (exit 75).
    """
    with edit_lock(loaded.holds_path, lock_timeout):
        for _ in range(_ATTEMPTS):
            plan = plan_change(loaded, edit, now)
            if _read_all(loaded.holds_path) | {plan.path: _current(plan.path)} != plan.contents:
                continue  # an editor that does not take the lock wrote meanwhile: plan again
            write_atomic(plan.path, plan.after)
            return plan
    raise TemporaryFailure("the holds files kept changing during the edit; nothing was written, try again")


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
