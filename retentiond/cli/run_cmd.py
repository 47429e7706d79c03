"""``retentiond plan``, ``retentiond run`` and ``retentiond explain``."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import click

from retentiond.cli.context import AppContext, common_options, pass_app
from retentiond.cli.render import table
from retentiond.errors import ExitCode


def _held(held: dict[str, int]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted(held.items())) or "-"


_WOULD = {"deleted": "would delete", "anonymized": "would anonymize", "prior_versions": "would delete prior versions"}


def _totals(report: Any) -> str:
    """Return the totals line's figures: what a dry run would do in the conditional, never "deleted N"."""
    totals = report.totals()
    if report.mode == "dry-run":
        return ", ".join(f"{_WOULD.get(k, k)} {v}" for k, v in sorted(totals.items()))
    return ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))


def _guard_lines(report: Any) -> list[str]:
    """Return one line per target whose guard would stop a real run (a dry run walks on past it)."""
    return [
        f"GUARD {t.category} {t.name}: a real run would stop here (would act on {t.eligible} of {t.total} "
        "records, more than max_fraction_per_run; --allow-large allows it once)"
        for t in report.targets
        if report.mode == "dry-run" and t.guard == "tripped"
    ]


def _render(report: Any, *, planned: bool) -> str:
    rows = []
    for t in report.targets:
        rows.append(
            (
                t.category,
                f"{t.store}/{t.target}" + (f"/{t.prefix}" if t.prefix else ""),
                t.action,
                t.cutoff.isoformat(timespec="seconds"),
                t.total,
                t.eligible,
                t.held_records,
                _held(t.held) + (f"; blocked {t.blocked}" if getattr(t, "blocked", 0) else ""),
                t.prior_versions_eligible if planned else t.prior_versions_deleted,
                t.guard if planned else t.acted,
            )
        )
    last = "guard" if planned else ("would act" if report.mode == "dry-run" else "acted")
    prior = "prior versions eligible" if planned else "prior versions deleted"
    if report.mode == "dry-run":
        prior = "prior versions (would delete)"
    head = ["category", "target", "action", "cutoff", "rows", "eligible", "held", "per hold (overlapping)", prior, last]
    text = table(head, rows)
    lines = [text, ""]
    if not planned:
        lines.append(f"run {report.run_id} ({report.mode}): " + _totals(report))
        lines += _guard_lines(report)
    for t in report.targets:
        if t.whole and (planned or report.mode == "dry-run"):
            units = ", ".join(f"{name} ({n} records)" for name, n in sorted(t.whole.items()))
            lines.append(f"WHOLE {t.category} {t.name}: would remove whole {units}")
    for category, reason in sorted(report.failed.items()):
        lines.append(f"FAILED {category}: {reason}")
    for category, reason in sorted(report.skipped.items()):
        lines.append(f"{category}: skipped: {reason}")
    if report.interrupted:
        lines.append("INTERRUPTED: stopped before the next batch")
    return "\n".join(lines)


@click.command("plan")
@common_options
@click.option("--category", "categories", multiple=True, metavar="C", help="Only this category (repeatable).")
@pass_app
def plan_command(app: AppContext, categories: tuple[str, ...]) -> int:
    """Show what a run would do now: per target cutoff, eligible, held per hold, prior versions, guard."""
    from retentiond.actions.run import Runner

    report = Runner(app.config(), categories=categories, mode="plan").execute()
    if app.json:
        app.emit_json(report.as_dict())
    else:
        click.echo(_render(report, planned=True))
    return report.exit_code


@click.command("run")
@common_options
@click.option("--category", "categories", multiple=True, metavar="C", help="Only this category (repeatable).")
@click.option("--dry-run", is_flag=True, help="Walk the same batches, write nothing.")
@click.option("--allow-large", is_flag=True, help="Allow this run to exceed max_fraction_per_run (audited).")
@click.option(
    "--reference",
    metavar="TICKET",
    help="Ticket the run is made under (a short label such as CHG-1234); required with --allow-large; audited.",
)
@pass_app
def run_command(
    app: AppContext, categories: tuple[str, ...], dry_run: bool, allow_large: bool, reference: str | None
) -> int:
    """Run retention now for every (or the named) category; exit 1 when any category failed."""
    from retentiond.actions.run import Runner
    from retentiond.audit.actor import check_reference
    from retentiond.errors import UsageError

    try:
        reference = check_reference(reference, allow_large=allow_large)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    from retentiond.cli.progress import terminal_progress

    stop = threading.Event()
    # A terminal gets the live view; otherwise the run logs one line per batch (BatchLog).
    view = None if app.json else terminal_progress()
    runner = Runner(
        app.config(),
        categories=categories,
        mode="dry-run" if dry_run else "run",
        allow_large=allow_large,
        reference=reference,
        observer=view,
        take_leases=True,
        stop=stop,
    )
    with _stop_on_signals(stop) as received, view.shown() if view is not None else nullcontext():
        report = runner.execute()
    if app.json:
        app.emit_json(report.as_dict())
    else:
        click.echo(_render(report, planned=False))
    # 128 + the signal, as the README says: the run stopped after its current batch.
    return 128 + received[0] if received else report.exit_code


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """Turn SIGTERM and SIGINT into ``stop`` (finish the batch, audit, summarise); yield the signals seen.

    A second stop signal gets the default action: the process ends at once, as the daemon's does
    (every batch and every ledger append is its own transaction, so nothing is half-written).
    """
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()
        signal.signal(signum, signal.SIG_DFL)
        click.echo(f"retentiond: signal {signum}: stopping after the current batch", err=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("explain")
@common_options
@click.option("--store", required=True, help="Store name (SQL or S3).")
@click.option("--table", "table_name", help="SQL: table as configured.")
@click.option("--key", "key", multiple=True, help="SQL: primary key value (repeat for composite keys, in key order).")
@click.option("--bucket", help="S3: bucket.")
@click.option("--object-key", "object_key", help="S3: object key (every version of it is explained).")
@pass_app
def explain_command(
    app: AppContext,
    store: str,
    table_name: str | None,
    key: tuple[str, ...],
    bucket: str | None,
    object_key: str | None,
) -> int:
    """Explain why one record is kept or would be acted on: categories, age, cutoffs, holds, decision."""
    from retentiond.errors import UsageError

    result: Any
    if bucket is not None or object_key is not None:
        if bucket is None or object_key is None or table_name is not None or key:
            raise UsageError("give --bucket and --object-key for an S3 object, or --table and --key for a row")
        record: dict[str, Any] = {"bucket": bucket, "object_key": object_key}
    else:
        if table_name is None or not key:
            raise UsageError("give --table and --key for a row, or --bucket and --object-key for an S3 object")
        record = {"table": table_name, "key": list(key)}
    from retentiond.actions.explain import explain

    result = explain(app.config(), store, record)
    if app.json:
        app.emit_json(result.as_dict())
    else:
        click.echo(result.render())
    return ExitCode.OK


commands = [plan_command, run_command, explain_command]
