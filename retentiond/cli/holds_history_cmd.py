"""``retentiond holds history [ID]`` and ``holds report --at DATE``: what happened, for counsel."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import click

from retentiond.actions.holds_history import base_id, held_at_last_run, holds_at, read_hold_events
from retentiond.cli.context import AppContext, _set, command_with_options, pass_app
from retentiond.cli.holds_cmd import INSTANT
from retentiond.cli.render import table
from retentiond.config.loader import load_holds
from retentiond.errors import ConfigError, ExitCode

_commands = click.Group()


def _detail(event: dict[str, Any]) -> str:
    name = event.get("event")
    if name == "hold_placed":
        subjects = event.get("subjects", event.get("subject_refs") or "all")
        return f"{event.get('kind')}; {','.join(event.get('categories') or [])}; subjects {subjects}"
    if name == "hold_changed":
        narrowed = event.get("narrowed") or []
        text = "changed" if not narrowed else f"narrowed: {', '.join(narrowed)}"
        if event.get("subjects_removed") or event.get("subjects_added"):
            text += f" (subjects -{event.get('subjects_removed', 0)} +{event.get('subjects_added', 0)})"
        if event.get("protects_until"):
            text += f"; former definition protects until {event['protects_until']}"
        return text
    if name == "hold_released":
        how = event.get("how", "released")
        return f"{how}; protects until {event.get('protects_until')}"
    if name == "hold_release_refused":
        return f"refused: {event.get('problem')}"
    return ""


def _note_source(loaded_source: str, error: str | None) -> None:
    if loaded_source != "ledger":
        why = f" (the ledger cannot be opened: {error})" if error else ""
        click.echo(f"retentiond: reading the copy {loaded_source}{why}", err=True)


@command_with_options(_commands, "history")
@click.argument("hold_id", required=False)
@click.option("--source", type=click.Choice(["auto", "ledger", "copy"]), default="auto", show_default=True)
@pass_app
def history(app: AppContext, hold_id: str | None, source: str) -> int:
    """Show each hold's placement, changes and release: time, event, who, approver, what changed."""
    loaded = app.config()
    found = read_hold_events(loaded, source=source)
    try:
        events = [e for e in found.events if hold_id is None or base_id(str(e.get("hold_id"))) == hold_id]
    finally:
        found.close()
    _note_source(found.source, found.ledger_error)
    if app.json:
        app.emit_json({"source": found.source, "events": events})
        return ExitCode.OK
    rows = [
        (
            e.get("seq", "-"),
            e.get("time", "-"),
            e.get("event"),
            e.get("hold_id"),
            e.get("by") or e.get("placed_by") or "-",
            e.get("approved_by") or "-",
            e.get("reference") or "-",
            _detail(e),
        )
        for e in events
    ]
    click.echo(
        table(["seq", "time (UTC)", "event", "hold", "by", "approved by", "reference", "detail"], rows)
        if rows
        else "no hold events"
    )
    return ExitCode.OK


def _file_details(app: AppContext) -> dict[str, Any]:
    loaded = app.config()
    try:
        return {h.id: h for h in load_holds(loaded.holds_path, loaded.settings.categories).holds}
    except ConfigError:
        return {}


def _former(held: dict[str, int], hold_id: str) -> int:
    return sum(n for protector, n in held.items() if protector != hold_id and base_id(protector) == hold_id)


@_commands.command("report")
@click.option("--at", "at", type=INSTANT, required=True, help="The date (or time) the report is about.")
@click.option("--format", "report_format", type=click.Choice(["text", "csv", "json"]), default="text")
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None, expose_value=False,
    callback=_set("config_path"), is_eager=True, help="Configuration file.",
)  # fmt: skip
@pass_app
def report(app: AppContext, at: datetime, report_format: str) -> int:
    """The holds in force at a date and the records they protected at the last run by then.

    Reads the ledger (the copy when it cannot: then without record counts).
    """
    loaded = app.config()
    found = read_hold_events(loaded)
    try:
        in_force = holds_at(found.events, at)
        held = held_at_last_run(found.ledger, at) if found.ledger is not None else None
    finally:
        found.close()
    _note_source(found.source, found.ledger_error)
    details = _file_details(app)
    rows: list[dict[str, Any]] = []
    for hold in in_force:
        current = details.get(hold["hold_id"])
        rows.append(
            {
                "hold_id": hold["hold_id"],
                "kind": hold.get("kind"),
                "matter": current.matter if current else None,
                "reference": current.reference if current else None,
                "state": hold["state"],
                "categories": ",".join(hold.get("categories") or []),
                "placed_at": hold.get("placed_at"),
                "protects_until": hold.get("protects_until"),
                "former_definition_until": hold.get("former_until"),
                "records_held_last_run": held[2].get(hold["hold_id"], 0) if held else None,
                "records_held_by_former_definitions": _former(held[2], hold["hold_id"]) if held else None,
            }
        )
    meta = {
        "at": at.astimezone(UTC).isoformat(),
        "source": found.source,
        "last_run": {"run_id": held[0], "finished": held[1]} if held else None,
        "note": "records held per definition: a record held by two holds, or by a hold and a former "
        "definition of it still in its release grace, counts for each",
    }
    if report_format == "json":
        click.echo(json.dumps({**meta, "holds": rows}, indent=2, sort_keys=True, default=str))
    elif report_format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["hold_id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        click.echo(f"holds in force at {meta['at']} (events from {found.source})")
        if held:
            click.echo(f"records held at the last run by then: run {held[0]} finished {held[1]}")
        headers = list(rows[0]) if rows else ["hold_id"]
        click.echo(table(headers, [[r[h] if r[h] is not None else "-" for h in headers] for r in rows]))
    return ExitCode.OK


COMMANDS = list(_commands.commands.values())
