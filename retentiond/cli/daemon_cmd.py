"""``retentiond daemon``: the scheduler systemd starts (see retentiond.daemon.service)."""

from __future__ import annotations

import click

from retentiond.cli.context import AppContext, common_options, pass_app


@click.command("daemon")
@common_options
@click.option(
    "--tick-seconds",
    type=click.FloatRange(min=0.1),
    default=None,
    hidden=True,
    help="TEST ONLY: replace every cron schedule with a tick every N seconds (cron is minute-granular).",
)
@pass_app
def daemon_command(app: AppContext, tick_seconds: float | None) -> int:
    """Run the scheduler: one job per category, reload on SIGHUP, stop cleanly on SIGTERM.

    Exits 0 after SIGTERM/SIGINT, 78 when the configuration is invalid at start, 75 when a
    store or the ledger is unreachable at start.
    """
    from retentiond.daemon.service import run_daemon

    return run_daemon(app.config(), tick_seconds=tick_seconds)
