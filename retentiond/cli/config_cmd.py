"""``retentiond config validate|show``."""

from __future__ import annotations

import click

from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.cli.render import table, toml_like
from retentiond.config.loader import load_holds
from retentiond.config.secrets import redacted
from retentiond.errors import ConfigError, ExitCode
from retentiond.stores import registry


@click.group("config")
def config_group() -> None:
    """Validate or show the configuration."""


@command_with_options(config_group, "validate")
@click.option("--connect", is_flag=True, help="Also connect to every store: tables, columns, types, buckets.")
@pass_app
def validate(app: AppContext, connect: bool) -> int:
    """Validate the configuration and the holds file; exit 78 listing every error."""
    issues = []
    loaded = None
    try:
        loaded = app.config()
    except ConfigError as exc:
        issues.extend(exc.issues)
    holds_count = None
    if loaded is not None:
        try:
            holds_count = len(load_holds(loaded.holds_path, loaded.settings.categories).holds)
        except ConfigError as exc:
            issues.extend(exc.issues)
    findings: list[dict[str, str]] = []
    if loaded is not None and not issues and connect:
        from retentiond.actions.inspect import inspect_stores

        report = inspect_stores(loaded)
        issues.extend(report.issues)
        findings = report.notes
        if not issues:
            from retentiond.cli.holds_cmd import check_warnings, store_warnings

            holds = load_holds(loaded.holds_path, loaded.settings.categories).holds
            warnings = check_warnings(loaded, holds) + store_warnings(loaded, holds)
            findings += [{"where": "holds", "message": f"warning: {w}"} for w in warnings]
    if issues:
        raise ConfigError(issues)
    assert loaded is not None
    settings = loaded.settings
    kinds = registry.kinds()  # one count per kind of store, in registration order (SQL, then S3)
    if app.json:
        app.emit_json(
            {
                "ok": True,
                "config": str(loaded.path),
                "sha256": loaded.sha256,
                "holds_file": str(loaded.holds_path),
                "holds": holds_count,
                "categories": {
                    name: {
                        "retain": str(c.retain),
                        "action": c.action,
                        **{f"{k.kind}_targets": len(k.targets(settings, name)) for k in kinds},
                    }
                    for name, c in settings.categories.items()
                },
                "connect": findings if connect else None,
            }
        )
        return ExitCode.OK
    click.echo(
        f"{loaded.path}: valid ({len(settings.categories)} categories, {holds_count} holds in {loaded.holds_path})"
    )
    rows = [
        (
            name,
            str(c.retain),
            c.action,
            str(c.prior_versions or "-"),
            *(len(k.targets(settings, name)) for k in kinds),
            c.schedule or settings.daemon.schedule,
        )
        for name, c in settings.categories.items()
    ]
    click.echo(table(["category", "retain", "action", "prior versions", *(k.kind for k in kinds), "schedule"], rows))
    for note in findings:
        click.echo(f"{note['where']}: {note['message']}")
    return ExitCode.OK


@command_with_options(config_group, "show")
@pass_app
def show(app: AppContext) -> int:
    """Print the effective configuration (defaults filled in, secrets redacted)."""
    loaded = app.config()
    data = redacted(loaded.settings.model_dump(mode="json"))
    assert isinstance(data, dict)
    if app.json:
        app.emit_json(data)
    else:
        click.echo(f"# effective configuration of {loaded.path} (sha256 {loaded.sha256})")
        click.echo(toml_like(data), nl=False)
    return ExitCode.OK
