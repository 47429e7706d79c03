"""``retentiond holds list`` and ``holds check``; the group of Legal's commands.

The editing commands live in ``holds_edit_cmd``, history and report in ``holds_history_cmd``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import click

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.cli.render import table
from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig, load_holds
from retentiond.errors import ConfigError, ConfigIssue, ExitCode, HoldsUnavailable
from retentiond.policy.holds import HoldView
from retentiond.stores import registry

if TYPE_CHECKING:
    ParamBase = click.ParamType[Any]  # generic from click 8.3 on
else:
    ParamBase = click.ParamType


class InstantParam(ParamBase):
    """An RFC 3339 time or a date; a time without an offset is taken as UTC."""

    name = "TIME"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        """Return the instant written as ``value`` (a usage error, exit 2, when it is none)."""
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
    """Legal's holds: list, check, add, extend, edit, lift, history, report."""


def _subjects(hold: Hold) -> int | str:
    return len(hold.subjects) if hold.subjects is not None else "all"


def _until(view: HoldView) -> str:
    if view.protects_until is None:
        return "until removed"
    text = view.protects_until.isoformat(timespec="seconds")
    return f"{text} (estimate)" if view.pending else text


def _state(view: HoldView) -> str:
    if view.change in ("lifted", "removed", "narrowed") and view.protecting:
        return f"{view.state.value} ({view.change})"
    if view.change == "unapproved":
        return f"{view.state.value} (unapproved change)"
    return view.state.value


def _json_view(view: HoldView) -> dict[str, Any]:
    hold = view.hold
    return {
        "id": hold.id,
        "protector_id": view.protector_id,
        "kind": hold.kind,
        "matter": hold.matter,
        "state": view.state.value,
        "change": view.change,
        "pending": view.pending,
        "since": view.since.isoformat() if view.since else None,
        "protecting": view.protecting,
        "categories": hold.categories,
        "subjects": _subjects(hold),
        "keep_younger_than": str(hold.keep_younger_than) if hold.keep_younger_than else None,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at.isoformat(),
        "expires_at": hold.expires_at.isoformat() if hold.expires_at else None,
        "protects_until": view.protects_until.isoformat() if view.protects_until else None,
        "reason": hold.reason,
        "reference": hold.reference,
        "lifted_by": hold.lifted_by,
        "changed_by": hold.changed_by,
    }


def _protected_counts(loaded: LoadedConfig, views: list[HoldView], when: datetime) -> dict[str, int]:
    """Return per protector id the records each protecting definition keeps from a run at ``when``."""
    from retentiond.actions.holds_impact import CountingStores, protected_now
    from retentiond.policy.holds import protecting

    holds = protecting(views)
    if not holds:
        return {}
    with CountingStores(loaded, when) as stores:
        return protected_now(holds, when, stores)


@command_with_options(holds_group, "list")
@click.option("--at", "at", type=INSTANT, default=None, help="Evaluate at this time instead of now.")
@click.option("--matter", default=None, help="Only the holds of this matter.")
@click.option("--count", is_flag=True, help="Ask the stores how many records each hold protects (needs them).")
@pass_app
def list_holds(app: AppContext, at: datetime | None, matter: str | None, count: bool) -> int:
    """List holds as the daemon sees them: active, expiring, in release grace, expired, not yet active.

    A hold lifted, removed or narrowed shows its former definition in 'release_grace' until the
    grace ends; '(estimate)' marks a date no run or daemon has recorded yet. With --count, the
    records each protecting hold keeps from a run now (what runs audit as held), from the stores.
    """
    loaded = app.config()
    when = at or datetime.now(UTC)
    watcher = HoldWatcher(loaded, record_changes=False, pending="estimate", tolerate_unreadable_state=True)
    try:
        views = watcher.views(when)
    except HoldsUnavailable as exc:
        # Legal's file is invalid: `holds list` reports it like `config validate` does.
        raise ConfigError(exc.issues or [ConfigIssue("", str(exc), file=str(loaded.holds_path))]) from None
    for warning in watcher.warnings:
        click.echo(f"retentiond: warning: {warning}", err=True)
    if matter is not None:
        views = [v for v in views if v.hold.matter == matter]
    counted = _protected_counts(loaded, views, when) if count else None

    def protects(view: HoldView) -> int | None:
        if counted is None:
            return None
        return counted.get(view.protector_id or view.hold.id, 0) if view.protecting else 0

    if app.json:
        listed = [_json_view(v) | ({"protects_now": protects(v)} if count else {}) for v in views]
        app.emit_json({"at": when.isoformat(), "holds_file": str(loaded.holds_path), "holds": listed})
        return ExitCode.OK
    rows = [
        (
            v.protector_id or v.hold.id,
            v.hold.kind,
            v.hold.matter or "-",
            _state(v),
            ",".join(v.hold.categories),
            _subjects(v.hold),
            str(v.hold.keep_younger_than or "-"),
            v.hold.placed_at.date().isoformat(),
            _until(v),
            *((protects(v),) if count else ()),
        )
        for v in views
    ]
    click.echo(f"holds at {when.isoformat(timespec='seconds')} from {loaded.holds_path}")
    headers = ["id", "kind", "matter", "state", "categories", "subjects", "younger than", "placed", "protects until"]
    click.echo(table([*headers, *(["records now"] if count else [])], rows))
    return ExitCode.OK


def check_warnings(loaded: LoadedConfig, holds: tuple[Hold, ...]) -> list[str]:
    """Return the mistakes found in valid holds that need no database: subjects with spaces or
    listed twice, and subject holds on targets that cannot tell whose a record is."""
    warnings: list[str] = []
    settings = loaded.settings
    for hold in holds:
        subjects = hold.subjects or []
        for n, subject in enumerate(subjects, start=1):
            if subject != subject.strip():
                warnings.append(
                    f"hold {hold.id}: subject {n} of {len(subjects)} has a leading or trailing space "
                    "and matches only a stored value with the same space"
                )
        if len(set(subjects)) != len(subjects):
            warnings.append(f"hold {hold.id}: {len(subjects) - len(set(subjects))} subject(s) listed twice")
        if hold.subjects is None or hold.lifted:
            continue
        for name in settings.categories:
            if not hold.covers_category(name):
                continue
            for ref in registry.targets(settings, name):
                if ref.no_subject is not None:
                    warnings.append(f"hold {hold.id}: {ref.path} ({ref.store}/{ref.target}) {ref.no_subject}")
    return warnings


def store_warnings(loaded: LoadedConfig, holds: tuple[Hold, ...]) -> list[str]:
    """Return the subjects of holds in force that match no stored record, or only with another case.

    Raises:
        ConfigError: a target is unusable. TemporaryFailure: a store is unreachable.
    """
    from retentiond.actions.holds_impact import CountingStores, subject_matches, subject_warnings

    if not any(h.subjects is not None and not h.lifted for h in holds):
        return []
    now = datetime.now(UTC)
    with CountingStores(loaded, now) as stores:
        return subject_warnings(list(subject_matches(holds, stores, now)))


@command_with_options(holds_group, "check")
@click.option("--connect", is_flag=True, help="Also compare the subjects with the stored values (needs the stores).")
@pass_app
def check_holds(app: AppContext, connect: bool) -> int:
    """Validate the holds file(s) and warn about likely mistakes (exit 78 when invalid).

    Warns about subjects with leading or trailing spaces or listed twice, and about holds naming
    subjects in a category whose targets have no subject column (or pattern), where they hold
    everything. With --connect, also about subjects that match no record in any target of their
    categories, or whose case differs from the stored values (exit 75 when a store is unreachable).
    """
    loaded = app.config()
    snapshot = load_holds(loaded.holds_path, loaded.settings.categories)  # ConfigError -> 78
    warnings = check_warnings(loaded, snapshot.holds)
    if connect:
        warnings += store_warnings(loaded, snapshot.holds)
    if app.json:
        app.emit_json({"valid": True, "holds": len(snapshot.holds), "warnings": warnings})
        return ExitCode.OK
    for warning in warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"valid: {len(snapshot.holds)} hold(s) in {loaded.holds_path}, {len(warnings)} warning(s)")
    return ExitCode.OK


def _register() -> None:
    from retentiond.cli import holds_edit_cmd, holds_history_cmd, holds_impact_cmd

    for module in (holds_edit_cmd, holds_history_cmd, holds_impact_cmd):
        for command in module.COMMANDS:
            holds_group.add_command(command)


_register()
