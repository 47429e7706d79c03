"""The ``retentiond`` command: option parsing, error → exit-code mapping, sub-commands."""

from __future__ import annotations

import os
import select
import sys
from typing import Any

import click

from retentiond import __version__
from retentiond.cli.context import AppContext, common_options
from retentiond.errors import ExitCode, RetentiondError
from retentiond.logs import configure_logging, get_logger


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@common_options
@click.version_option(__version__, prog_name="retentiond")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """retentiond: enforce data-retention rules on SQL tables and S3 buckets, with an audit ledger.

    Exit codes: 0 ok, 1 a category failed, 2 usage, 65 audit verification failed,
    75 temporary failure, 78 invalid configuration.
    """
    ctx.ensure_object(AppContext)


def _register() -> None:
    from retentiond.cli import config_cmd, holds_cmd

    cli.add_command(config_cmd.config_group)
    cli.add_command(holds_cmd.holds_group)
    for module_name, attr in (
        ("retentiond.cli.audit_cmd", "audit_group"),
        ("retentiond.cli.run_cmd", "commands"),
        ("retentiond.cli.daemon_cmd", "daemon_command"),
        ("retentiond.cli.report_cmd", "report_command"),
        ("retentiond.cli.install_cmd", "install_unit_command"),
        ("retentiond.cli.access_cmd", "commands"),
    ):
        try:
            module = __import__(module_name, fromlist=[attr])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        found = getattr(module, attr)
        for command in found if isinstance(found, (list, tuple)) else [found]:
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the code of SPEC §6; user errors never show a traceback."""
    app = AppContext()
    try:
        with cli.make_context("retentiond", list(sys.argv[1:] if argv is None else argv), obj=app) as ctx:
            configure_logging(app.log_level)
            result: Any = cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.CATEGORY_FAILED)
    except RetentiondError as exc:
        _report(exc, app)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _silence_stdout()
        sys.exit(OUTPUT_CLOSED)
    sys.exit(result if isinstance(result, int) else ExitCode.OK)


#: `config show | head`: the reader went away. 128 + SIGPIPE, what a shell reports for any Unix
#: tool killed by SIGPIPE; the command's own work (a run, say) had finished before it printed.
OUTPUT_CLOSED = 141


def _stdout_closed() -> bool:
    """Return True when stdout is a pipe or socket whose reader has gone (not some other pipe:
    a store connection's broken pipe is a real error and keeps its traceback-free handling)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _report(exc: RetentiondError, app: AppContext) -> None:
    issues = getattr(exc, "issues", None)
    if app.json and issues is not None:
        app.emit_json({"ok": False, "error": type(exc).__name__, "issues": [i.__dict__ for i in issues]})
    if issues:
        click.echo(f"retentiond: {len(issues)} error(s):", err=True)
        for issue in issues:
            click.echo(f"  {issue.render()}", err=True)
    else:
        click.echo(f"retentiond: {exc}", err=True)
    get_logger("retentiond.cli").debug("command failed", error=type(exc).__name__, exit_code=exc.exit_code)
