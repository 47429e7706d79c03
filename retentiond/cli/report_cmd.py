"""``retentiond report``: the retention report (HTML, JSON or CSV) from the verified ledger.

Exit 0 with the report written; 65 when the ledger fails verification (the report is still
written, and says so on its first screen instead of showing figures); 2 for a bad option or an
unknown category; 75 when the ledger is unreachable; 78 for an invalid configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import click

from retentiond.cli.context import DEFAULT_CONFIG, AppContext, pass_app
from retentiond.cli.holds_cmd import INSTANT
from retentiond.errors import ExitCode, UsageError
from retentiond.report.aggregate import aggregate
from retentiond.report.html import render_html
from retentiond.report.model import Report
from retentiond.report.source import load_report_config, open_ledger, verified_entries, verify_ledger
from retentiond.report.tabular import render_csv, render_json

_RENDERERS = {"html": render_html, "json": render_json, "csv": render_csv}


def _set_config(ctx: click.Context, _: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        ctx.ensure_object(AppContext).config_path = value
    return value


@click.command("report")
@click.option(
    "-c",
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    expose_value=False,
    callback=_set_config,
    is_eager=True,
    help=(
        "Configuration file: the operator's, or an auditor's with only [audit] "
        f"(default: $RETENTIOND_CONFIG or {DEFAULT_CONFIG})."
    ),
)
@click.option("--since", type=INSTANT, help="Period start, inclusive (RFC 3339 or date; UTC if no offset).")
@click.option("--until", type=INSTANT, help="Period end, exclusive (default: now).")
@click.option(
    "--category", "categories", multiple=True, help="Only this category (repeat for several; default: every one)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(_RENDERERS)),
    default="html",
    show_default=True,
    help="html: a self-contained page with charts; json / csv: the same figures as data.",
)
@click.option(
    "--pubkey",
    "pubkeys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help=(
        "Ed25519 public key (PEM) that signs checkpoints; repeat after a rotation. "
        "Default: the public half of the configured signing key."
    ),
)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Write the report here.")
@pass_app
def report_command(
    app: AppContext,
    since: datetime | None,
    until: datetime | None,
    categories: tuple[str, ...],
    fmt: str,
    pubkeys: tuple[str, ...],
    out_path: str,
) -> int:
    """Write the retention report: what was deleted, kept and why, per category and month.

    The ledger is verified first; the report opens with the result, the head hash, the last
    checkpoint and the key fingerprint. Over a ledger that fails verification it shows the
    failure instead of figures, and the command exits 65.
    """
    if since is not None and until is not None and since >= until:
        raise UsageError("--since must be before --until")
    config = load_report_config(app.config_path)
    now = datetime.now(UTC)
    with open_ledger(config) as ledger:
        keys = config.keys(pubkeys)
        if keys is None:
            raise UsageError(
                "no public key: give --pubkey FILE (the signing key's public half; repeat for every key of the ledger)"
            )
        verification = verify_ledger(ledger, keys, max_unsigned_age=config.audit.checkpoint_interval)
        entries = verified_entries(ledger, verification) if verification.ok else iter(())
        report = aggregate(
            entries,
            ledger_id=ledger.ledger_id,
            verification=verification,
            generated_at=now,
            since=since,
            until=until,
            categories=categories,
            configured=config.configured(),
            given_config_sha256=None if config.loaded is None else config.loaded.sha256,
        )
    if verification.ok:
        _check_categories(categories, report, config.configured())
    _write(Path(out_path), _RENDERERS[fmt](report))
    _tell(report, out_path)
    if keys is None:
        click.echo(
            "retentiond: warning: no public key (--pubkey or audit.signing_key_*): checkpoint signatures NOT checked",
            err=True,
        )
    return ExitCode.OK if verification.ok else ExitCode.VERIFY_FAILED


def _check_categories(requested: tuple[str, ...], report: Report, configured: Mapping[str, object]) -> None:
    """Refuse a --category that neither the ledger nor the configuration knows (a typo, not "nothing")."""
    known = set(report.categories) | set(configured)
    unknown = [c for c in requested if c not in known]
    if unknown:
        raise UsageError(
            f"unknown category: {', '.join(unknown)} (in the ledger or config: {', '.join(sorted(known)) or 'none'})"
        )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"--out {path}: {exc.strerror}") from None


def _tell(report: Report, out_path: str) -> None:
    """Print the report's path on stdout and a one-line summary on stderr."""
    v = report.verification
    if v.ok:
        t = report.totals
        click.echo(
            f"report: ledger verified (head seq {v.head_seq}); {t.deleted} deleted, {t.anonymized} anonymized, "
            f"{t.prior_versions} prior versions, {t.failed} failed, {len(report.runs)} runs",
            err=True,
        )
    else:
        click.echo(f"report: LEDGER VERIFICATION FAILED: {v.damage}; the report shows the failure", err=True)
    click.echo(out_path)
