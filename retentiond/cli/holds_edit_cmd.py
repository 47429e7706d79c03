"""``retentiond holds add | extend | edit | lift``: change Legal's holds file from a terminal.

Each command edits the file in place (comments and layout kept), validates the result with the
daemon's validator, writes it atomically under a lock, and prints what changed. An invalid
change writes nothing and exits 78; a busy lock exits 75.
"""

from __future__ import annotations

import getpass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from retentiond.actions.holds_change import HoldChangePlan, HoldEdit, apply_change
from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.cli.holds_cmd import ParamBase
from retentiond.config.holds import HOLD_KINDS, Hold
from retentiond.errors import ExitCode

_commands = click.Group()
NEVER = "never"


class EndParam(ParamBase):
    """A hold's last day (2027-12-31), an RFC 3339 time with an offset, or ``never``."""

    name = "DATE|never"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return a date, an aware datetime or :data:`NEVER` (a usage error, exit 2, otherwise)."""
        if isinstance(value, (date, datetime)):
            return value
        text = str(value).strip()
        if text.lower() == NEVER:
            return NEVER
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not a date (2027-12-31), a time with an offset, or 'never'", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{text!r} has no offset: write 2027-12-31T17:00:00Z or a plain date", param, ctx)
        return parsed


END = EndParam()


def os_user() -> str:
    """Return the name of the person at the terminal (the OS user)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _read_subjects(path: str | None) -> list[str]:
    """Return the subjects of a file: one per line, '#' lines and blank lines ignored (spaces kept)."""
    if path is None:
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _end_value(value: Any) -> Any:
    return None if value == NEVER else value


def _describe(hold: Hold | None) -> dict[str, str]:
    if hold is None:
        return {}
    return {
        "kind": hold.kind,
        "matter": hold.matter or "-",
        "reason": hold.reason,
        "reference": hold.reference or "-",
        "expires_at": hold.expires_at.isoformat() if hold.expires_at else "never",
        "categories": ", ".join(hold.categories),
        "subjects": str(len(hold.subjects)) if hold.subjects is not None else "all",
        "keep_younger_than": str(hold.keep_younger_than or "-"),
        "lifted": f"by {hold.lifted_by} at {hold.lifted_at.isoformat()}" if hold.lifted_at else "no",
    }


def _report(app: AppContext, plan: HoldChangePlan, verb: str) -> int:
    """Print what changed (subjects as counts) and what a narrowing means; return exit 0."""
    before, after = _describe(plan.old), _describe(plan.new)
    changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    if plan.old is None:  # a new hold: what it has, not every default
        changed = {k: (old, new) for k, (old, new) in changed.items() if new not in ("-", "no")}
    grace = app.config().settings.daemon.hold_release_grace
    narrowed = plan.narrowing.aspects
    hold = plan.new or plan.old
    assert hold is not None
    if app.json:
        app.emit_json(
            {
                "hold_id": hold.id,
                "action": verb,
                "file": str(plan.path),
                "changed": {k: {"from": old, "to": new} for k, (old, new) in changed.items()},
                "narrowed": list(narrowed),
            }
        )
        return ExitCode.OK
    click.echo(f"{verb} hold {hold.id} in {plan.path}")
    for key, (old, new) in changed.items():
        click.echo(f"  {key}: {new}" if old is None else f"  {key}: {old} -> {new}")
    if narrowed:
        click.echo(
            f"  this releases protection ({', '.join(narrowed)}): what the hold protected stays protected for "
            f"hold_release_grace ({grace}) from when retentiond records the change (see `retentiond holds list`)"
        )
    return ExitCode.OK


@command_with_options(_commands, "add")
@click.option("--id", "hold_id", required=True, help="Unique id, e.g. LIT-2026-014.")
@click.option("--kind", type=click.Choice(HOLD_KINDS), required=True, help="Why the records are kept.")
@click.option("--reason", required=True, help="Why, in plain words (no personal data: it is digested into the ledger).")
@click.option("--reference", default=None, help="Matter number, ticket or statute.")
@click.option("--placed-by", default=None, help="Who places the hold (default: your user name).")
@click.option("--placed-at", type=END, default=None, help="First day of the hold (default: today, UTC).")
@click.option("--category", "categories", multiple=True, required=True, help="A category name, or '*' for all.")
@click.option("--subject", "subjects", multiple=True, help="A subject id (repeatable); none: every subject.")
@click.option("--subjects-file", type=click.Path(exists=True, dir_okay=False), help="Subject ids, one per line.")
@click.option("--expires", type=END, default=None, help="Last day of the hold (default: until lifted).")
@click.option("--keep-younger-than", default=None, help="Hold only records younger than this (e.g. 7y).")
@click.option("--matter", default=None, help="The matter the hold belongs to (a holds folder: its file).")
@click.option("--file", "file_name", default=None, help="With a holds folder: the file to add to (NAME.toml).")
@click.option("--preview", is_flag=True, help="Write nothing: show per target what the hold would protect now.")
@pass_app
def add_hold(
    app: AppContext,
    hold_id: str,
    kind: str,
    reason: str,
    reference: str | None,
    placed_by: str | None,
    placed_at: Any,
    categories: tuple[str, ...],
    subjects: tuple[str, ...],
    subjects_file: str | None,
    expires: Any,
    keep_younger_than: str | None,
    matter: str | None,
    file_name: str | None,
    preview: bool,
) -> int:
    """Add a hold to the holds file (validated before it is written; exit 78 when invalid).

    With --preview nothing is written: the stores are asked what the hold would protect now.
    """
    all_subjects = [*subjects, *_read_subjects(subjects_file)]
    fields = {
        "kind": kind,
        "matter": matter,
        "reason": reason,
        "reference": reference,
        "placed_by": placed_by or os_user(),
        "placed_at": placed_at if placed_at not in (None, NEVER) else datetime.now(UTC).date(),
        "expires_at": _end_value(expires),
        "categories": list(categories),
        "subjects": all_subjects or None,
        "keep_younger_than": keep_younger_than,
    }
    edit = HoldEdit("add", hold_id, actor=fields["placed_by"], fields=fields, file_name=file_name)
    if preview:
        from retentiond.actions.holds_change import plan_change
        from retentiond.cli.holds_impact_cmd import print_preview

        return print_preview(app, plan_change(app.config(), edit, datetime.now(UTC)))
    return _report(app, apply_change(app.config(), edit, datetime.now(UTC)), "added")


@command_with_options(_commands, "extend")
@click.argument("hold_id")
@click.option("--expires", type=END, required=True, help="The new last day (later than the current one), or 'never'.")
@click.option("--by", "actor", default=None, help="Who extends it (default: your user name).")
@pass_app
def extend_hold(app: AppContext, hold_id: str, expires: Any, actor: str | None) -> int:
    """Move a hold's expires_at later (or remove it). Shortening is `holds edit --expires`."""
    edit = HoldEdit("edit", hold_id, actor=actor or os_user(), fields={"expires_at": _end_value(expires)})
    loaded = app.config()
    from retentiond.actions.holds_change import plan_change

    plan = plan_change(loaded, edit, datetime.now(UTC))
    if plan.narrowing.expires_earlier:
        raise click.BadParameter(
            "that is earlier than the hold's end: use `holds edit ID --expires DATE`", param_hint="--expires"
        )
    return _report(app, apply_change(loaded, edit, datetime.now(UTC)), "extended")


@command_with_options(_commands, "edit")
@click.argument("hold_id")
@click.option("--add-subject", multiple=True, help="Add a subject id (repeatable).")
@click.option("--remove-subject", multiple=True, help="Remove a subject id (repeatable): releases its records.")
@click.option("--add-subjects-file", type=click.Path(exists=True, dir_okay=False), help="Subject ids to add.")
@click.option("--remove-subjects-file", type=click.Path(exists=True, dir_okay=False), help="Subject ids to remove.")
@click.option("--add-category", multiple=True, help="Add a category (repeatable).")
@click.option("--remove-category", multiple=True, help="Remove a category (repeatable): releases its records.")
@click.option("--expires", type=END, default=None, help="New last day, or 'never'.")
@click.option("--keep-younger-than", default=None, help="New age floor (e.g. 7y), or 'none'.")
@click.option("--reason", default=None, help="New reason.")
@click.option("--reference", default=None, help="New reference.")
@click.option("--matter", default=None, help="New matter.")
@click.option("--approved-by", default=None, help="Who approved this change (dual control; not you).")
@click.option("--by", "actor", default=None, help="Who makes the change (default: your user name).")
@pass_app
def edit_hold_cmd(
    app: AppContext,
    hold_id: str,
    add_subject: tuple[str, ...],
    remove_subject: tuple[str, ...],
    add_subjects_file: str | None,
    remove_subjects_file: str | None,
    add_category: tuple[str, ...],
    remove_category: tuple[str, ...],
    expires: Any,
    keep_younger_than: str | None,
    reason: str | None,
    reference: str | None,
    matter: str | None,
    approved_by: str | None,
    actor: str | None,
) -> int:
    """Change a hold: subjects, categories, end, age floor, texts. Narrowing releases after the grace."""
    fields: dict[str, Any] = {}
    if expires is not None:
        fields["expires_at"] = _end_value(expires)
    if keep_younger_than is not None:
        fields["keep_younger_than"] = None if keep_younger_than.lower() == "none" else keep_younger_than
    for key, value in (("reason", reason), ("reference", reference), ("matter", matter)):
        if value is not None:
            fields[key] = value
    edit = HoldEdit(
        "edit",
        hold_id,
        actor=actor or os_user(),
        approver=approved_by,
        fields=fields,
        add_subjects=(*add_subject, *_read_subjects(add_subjects_file)),
        remove_subjects=(*remove_subject, *_read_subjects(remove_subjects_file)),
        add_categories=add_category,
        remove_categories=remove_category,
    )
    if not (fields or edit.add_subjects or edit.remove_subjects or add_category or remove_category):
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    return _report(app, apply_change(app.config(), edit, datetime.now(UTC)), "changed")


@command_with_options(_commands, "lift")
@click.argument("hold_id")
@click.option("--approved-by", default=None, help="Who approved the lift (dual control; not you).")
@click.option("--by", "actor", default=None, help="Who lifts it (default: your user name).")
@pass_app
def lift_hold(app: AppContext, hold_id: str, approved_by: str | None, actor: str | None) -> int:
    """Lift a hold: it stays in the file as a record (lifted_by, lifted_at) and protects for the grace."""
    edit = HoldEdit("lift", hold_id, actor=actor or os_user(), approver=approved_by)
    return _report(app, apply_change(app.config(), edit, datetime.now(UTC)), "lifted")


COMMANDS = list(_commands.commands.values())
