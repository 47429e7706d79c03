"""Options shared by every command, and the object commands receive."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from retentiond.config.loader import LoadedConfig, load_config

DEFAULT_CONFIG = "/etc/retentiond/retention.toml"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """What every command gets: where the config is, how to print, a cached config."""

    config_path: str = field(default_factory=lambda: os.environ.get("RETENTIOND_CONFIG", DEFAULT_CONFIG))
    output_format: str = "text"
    log_level: str = "info"
    _loaded: LoadedConfig | None = None
    _audit_loaded: LoadedConfig | None = None

    def config(self, *, audit_only: bool = False) -> LoadedConfig:
        """Return the validated configuration, loading it on first use.

        ``audit_only`` (the ``audit`` commands) accepts a config without categories.

        Raises:
            ConfigError: the file is missing or invalid.
        """
        if audit_only and self._loaded is None:
            if self._audit_loaded is None:
                self._audit_loaded = load_config(Path(self.config_path), audit_only=True)
            return self._audit_loaded
        if self._loaded is None:
            self._loaded = load_config(Path(self.config_path))
        return self._loaded

    @property
    def json(self) -> bool:
        """Return True when output must be JSON."""
        return self.output_format == "json"

    def emit_json(self, data: Any) -> None:
        """Print ``data`` as one JSON document on stdout."""
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _set(attr: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _: click.Parameter, value: Any) -> Any:
        if value is not None:
            app = ctx.find_object(AppContext)
            if app is None:
                app = ctx.ensure_object(AppContext)
            setattr(app, attr, value)
            if attr == "log_level":
                from retentiond.logs import configure_logging

                configure_logging(value)
        return value

    return callback


def common_options(func: F) -> F:
    """Add ``-c``, ``--format`` and ``--log-level`` to a group or command.

    They are accepted before and after the sub-command (``retentiond holds list -c F
    --format json``); the one nearest the command wins.
    """
    options = [
        click.option(
            "-c",
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            default=None,
            expose_value=False,
            callback=_set("config_path"),
            is_eager=True,
            help=f"Configuration file (default: $RETENTIOND_CONFIG or {DEFAULT_CONFIG}).",
        ),
        click.option(
            "--format",
            "output_format",
            type=click.Choice(["text", "json"]),
            default=None,
            expose_value=False,
            callback=_set("output_format"),
            help="Output format on stdout.",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            default=None,
            expose_value=False,
            callback=_set("log_level"),
            is_eager=True,
            help="Log level on stderr.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def command_with_options(group: click.Group, *args: Any, **kwargs: Any) -> Callable[[F], F]:
    """Return ``group.command(...)`` that also takes the common options."""

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            return func(*a, **kw)

        # click turns the function into a Command; callers only register it, so typing it as the
        # decorated function (as click's own decorators do for their users) is harmless.
        return cast(F, group.command(*args, **kwargs)(common_options(wrapper)))

    return decorator
