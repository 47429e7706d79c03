"""``retentiond holds list``."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.cli.render import table
from retentiond.errors import ConfigError, ConfigIssue, ExitCode, HoldsUnavailable


class InstantParam(click.ParamType):
    """An RFC 3339 time or a date; a time without an offset is taken as UTC."""

    name = "TIME"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not a date (2027-01-31) or an RFC 3339 time (2027-01-31T12:00:00Z)", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


INSTANT = InstantParam()


@click.group("holds")
def holds_group() -> None:
    """Inspect Legal's holds."""


@command_with_options(holds_group, "list")
@click.option("--at", "at", type=INSTANT, default=None, help="Evaluate at this time instead of now.")
@pass_app
def list_holds(app: AppContext, at: datetime | None) -> int:
    """List holds as the daemon sees them: active, expiring, in release grace, expired, not yet active."""
    loaded = app.config()
    when = at or datetime.now(UTC)
    try:
        views = HoldWatcher(loaded, record_changes=False, pending="estimate").views(when)
    except HoldsUnavailable as exc:
        # Legal's file is invalid: `holds list` reports it like `config validate` does.
        raise ConfigError(exc.issues or [ConfigIssue("", str(exc), file=str(loaded.holds_path))]) from None
    if app.json:
        app.emit_json(
            {
                "at": when.isoformat(),
                "holds_file": str(loaded.holds_path),
                "holds": [
                    {
                        "id": v.hold.id,
                        "kind": v.hold.kind,
                        "state": v.state.value,
                        "protecting": v.protecting,
                        "categories": v.hold.categories,
                        "subjects": len(v.hold.subjects) if v.hold.subjects else "all",
                        "keep_younger_than": str(v.hold.keep_younger_than) if v.hold.keep_younger_than else None,
                        "placed_by": v.hold.placed_by,
                        "placed_at": v.hold.placed_at.isoformat(),
                        "expires_at": v.hold.expires_at.isoformat() if v.hold.expires_at else None,
                        "protects_until": v.protects_until.isoformat() if v.protects_until else None,
                        "reason": v.hold.reason,
                        "reference": v.hold.reference,
                    }
                    for v in views
                ],
            }
        )
        return ExitCode.OK
    rows = [
        (
            v.hold.id,
            v.hold.kind,
            v.state.value,
            ",".join(v.hold.categories),
            len(v.hold.subjects) if v.hold.subjects else "all",
            str(v.hold.keep_younger_than or "-"),
            v.hold.placed_at.date().isoformat(),
            v.protects_until.isoformat(timespec="seconds") if v.protects_until else "until removed",
        )
        for v in views
    ]
    click.echo(f"holds at {when.isoformat(timespec='seconds')} from {loaded.holds_path}")
    click.echo(
        table(["id", "kind", "state", "categories", "subjects", "younger than", "placed", "protects until"], rows)
    )
    return ExitCode.OK
