"""``retentiond holds impact``, and the store figures of ``holds add --preview`` and ``holds list --count``.

Every figure is a count computed from the stores with the statements ``plan`` uses
(:mod:`retentiond.actions.holds_impact`); nothing is written, no ledger is opened. Subjects
Legal typed may be echoed here, on the command's own output; they are never logged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from retentiond.actions.holds_change import HoldChangePlan, HoldEdit, plan_change
from retentiond.actions.holds_impact import CountingStores, Impact, TargetFigures, horizon_columns, impact, preview
from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.cli.holds_edit_cmd import END, _end_value, os_user
from retentiond.cli.render import table
from retentiond.errors import ExitCode

_commands = click.Group()


def _rows(targets: list[TargetFigures], columns: list[str]) -> list[tuple[Any, ...]]:
    return [(t.category, t.where, *(t.figures.get(c, 0) for c in columns)) for t in targets]


def _json_targets(targets: list[TargetFigures]) -> list[dict[str, Any]]:
    return [
        {"category": t.category, "store": t.store, "target": t.target, "prefix": t.prefix, **t.figures} for t in targets
    ]


def _print_impact(app: AppContext, result: Impact, what: str) -> None:
    columns = ["released", *horizon_columns(), "kept"]
    when = result.release_at.isoformat(timespec="seconds")
    if app.json:
        app.emit_json(
            {
                "hold_id": result.hold_id,
                "change": what,
                "computed_at": result.now.isoformat(),
                "release_at": result.release_at.isoformat(),
                "after_grace": result.after_grace,
                "hold_release_grace": str(result.grace),
                "targets": _json_targets(result.targets),
                "totals": {c: result.total(c) for c in columns},
                "warnings": result.warnings,
            }
        )
        return
    for warning in result.warnings:
        click.echo(f"retentiond: warning: {warning}", err=True)
    click.echo(f"impact of {what} hold {result.hold_id} (distinct records, counted in the stores now)")
    if result.after_grace:
        click.echo(
            f"released at {when} after the grace (hold_release_grace {result.grace}, counted from when retentiond "
            "records the change: the daemon's next reading of the holds)"
        )
    else:
        click.echo(f"this change narrows nothing: nothing is released (counted at {when})")
    headers = ["category", "target", "released", *(f"+{c}" for c in horizon_columns()), "kept"]
    rows = _rows(result.targets, columns)
    rows.append(("total", "", *(result.total(c) for c in columns)))
    click.echo(table(headers, rows))
    click.echo(
        "released: records a run would then act on that it would not without the change; +30d/+90d/+365d: how many "
        "more by then as their retention ends; kept: records the change protects that would otherwise go"
    )


@command_with_options(_commands, "impact")
@click.argument("hold_id")
@click.option("--lift", is_flag=True, help="Count what lifting the hold releases.")
@click.option("--remove-subject", multiple=True, help="Count what removing this subject releases (repeatable).")
@click.option("--expires", type=END, default=None, help="Count what a new last day (or 'never') releases.")
@pass_app
def impact_cmd(app: AppContext, hold_id: str, lift: bool, remove_subject: tuple[str, ...], expires: Any) -> int:
    """Show, per category and target, how many records a change of a hold would release (nothing is written).

    Counted from the stores with the statements `plan` uses: what a run would act on when the change
    takes effect (after hold_release_grace for a narrowing), and how many more within 30, 90 and 365
    days as retention ends. Exit 78 when the change is invalid, 75 when a store is unreachable.
    """
    if [bool(lift), bool(remove_subject), expires is not None].count(True) != 1:
        raise click.UsageError("give exactly one of --lift, --remove-subject, --expires")
    actor = os_user()
    if lift:
        edit, what = HoldEdit("lift", hold_id, actor=actor), "lifting"
    elif remove_subject:
        edit = HoldEdit("edit", hold_id, actor=actor, remove_subjects=remove_subject)
        what = f"removing {len(remove_subject)} subject(s) from"
    else:
        edit = HoldEdit("edit", hold_id, actor=actor, fields={"expires_at": _end_value(expires)})
        what = f"a new end ({expires}) of"
    loaded = app.config()
    now = datetime.now(UTC)
    plan = plan_change(loaded, edit, now, check_approval=False)
    with CountingStores(loaded, now) as stores:
        result = impact(loaded, plan, now, stores)
    _print_impact(app, result, what)
    return ExitCode.OK


def print_preview(app: AppContext, plan: HoldChangePlan) -> int:
    """Print what the new hold of ``plan`` would protect now, per target (``holds add --preview``); return 0."""
    assert plan.new is not None
    loaded = app.config()
    now = datetime.now(UTC)
    with CountingStores(loaded, now) as stores:
        rows = preview(loaded, plan.new, now, stores)
    total = sum(r.figures["protected"] for r in rows)
    active = plan.new.placed_at <= now and (plan.new.expires_at is None or now < plan.new.expires_at)
    if app.json:
        app.emit_json(
            {
                "hold_id": plan.new.id,
                "preview": True,
                "written": False,
                "active_now": active,
                "targets": _json_targets(rows),
                "protected": total,
            }
        )
        return ExitCode.OK
    click.echo(f"preview of hold {plan.new.id}: not written to {plan.path}")
    if not active:
        click.echo("  the hold is not in force now: these are the records it would protect if it were")
    click.echo(table(["category", "target", "protected"], _rows(rows, ["protected"])))
    click.echo(f"{total} record(s) a run now would act on that this hold would keep (what runs audit as held for it)")
    return ExitCode.OK


COMMANDS = list(_commands.commands.values())
