"""``retentiond erase``: one erasure request (a data subject's right to deletion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from retentiond.cli.context import AppContext, common_options, pass_app
from retentiond.cli.render import table
from retentiond.errors import UsageError


def _subjects(subjects: tuple[str, ...], subjects_file: str | None) -> list[str]:
    """Return the subjects of ``--subject`` and of ``--subjects-file`` (one a line, ``#`` comments).

    Raises:
        UsageError: the file cannot be read (its content is never echoed: it is personal data).
    """
    found = list(subjects)
    if subjects_file is not None:
        try:
            text = Path(subjects_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--subjects-file: cannot read the file ({type(exc).__name__})") from None
        found += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return found


def render(report: Any, summary: dict[str, Any]) -> str:
    """Return the request's figures as text: per target, then per category and the verdict."""
    rows = [
        (
            t.category,
            f"{t.store}/{t.target}" + (f"/{t.prefix}" if t.prefix else ""),
            t.action,
            t.eligible,
            ", ".join(f"{k}:{v}" for k, v in sorted(t.held.items())) or "-",
            t.acted,
            t.prior_versions_deleted,
        )
        for t in report.targets
    ]
    head = ["category", "target", "action", "eligible", "held (per hold)", "acted", "prior versions"]
    lines = [table(head, rows), ""]
    mode = "dry run" if report.mode == "dry-run" else "request"
    lines.append(f"{mode} {summary['request']} (run {report.run_id})")
    for category, n in sorted(summary["kept_by_rule"].items()):
        lines.append(f'KEPT {category}: {n} records (erasure = "never")')
    for key, n in sorted(summary["held"].items()):
        lines.append(f"HELD {key}: {n} records")
    for category, n in sorted(summary["blocked"].items()):
        lines.append(f"BLOCKED {category}: {n} object versions under S3 Object Lock (never forced)")
    if not summary["left"]:
        lines.append("nothing left to erase for these subjects")
    for category, reason in sorted(report.failed.items()):
        lines.append(f"FAILED {category}: {reason}")
    if report.interrupted:
        lines.append("INTERRUPTED: stopped before the next batch; run the request again to finish it")
    return "\n".join(lines)


@click.command("erase")
@common_options
@click.option("--subject", "subjects", multiple=True, metavar="ID", help="A data subject's identifier (repeatable).")
@click.option("--subjects-file", metavar="F", help="File of subject identifiers, one a line.")
@click.option("--request", "request", required=True, metavar="REF", help="The request's reference (DSR-2026-0042).")
@click.option("--category", "categories", multiple=True, metavar="C", help="Only this category (repeatable).")
@click.option("--dry-run", is_flag=True, help="Walk the same batches, write nothing.")
@click.option("--allow-large", is_flag=True, help="Allow this request to exceed daemon.erasure_max_records (audited).")
@click.option("--queue", "queue", is_flag=True, help="Queue the request for the daemon instead of running it now.")
@pass_app
def erase_command(
    app: AppContext,
    subjects: tuple[str, ...],
    subjects_file: str | None,
    request: str,
    categories: tuple[str, ...],
    dry_run: bool,
    allow_large: bool,
    queue: bool,
) -> int:
    """Erase every record of the subjects, whatever its age, unless a hold or a rule keeps it."""
    from retentiond.actions.erase import check_request, check_subjects, erase

    found = _subjects(subjects, subjects_file)
    if queue:
        from retentiond.actions.requests import enqueue

        if dry_run:
            raise UsageError("--queue and --dry-run exclude each other")
        path = enqueue(app.config(), check_request(request), check_subjects(found), categories)
        click.echo(f"queued request {request} ({path.name})")
        return 0
    report, summary = erase(
        app.config(), subjects=found, request=request, categories=categories, dry_run=dry_run, allow_large=allow_large
    )
    if app.json:
        app.emit_json({"report": report.as_dict(), "summary": summary})
    else:
        click.echo(render(report, summary))
    return report.exit_code


@click.group("requests")
def requests_group() -> None:
    """Queued erasure requests (``erase --queue``) that the daemon runs before their deadline."""


@requests_group.command("list")
@common_options
@pass_app
def requests_list_command(app: AppContext) -> int:
    """Show each request's state (pending, overdue, failed, done), what is left, and what is kept and why."""
    from retentiond.actions.requests import states

    found = states(app.config())
    if app.json:
        app.emit_json([s.as_dict() for s in found])
        return 0
    rows = []
    for s in found:
        summary = s.summary
        kept = [f"{k}:{v}" for k, v in sorted({**summary.get("held", {}), **summary.get("kept_by_rule", {})}.items())]
        acted = sum(summary.get("acted", {}).values()) if summary else "-"
        left = "-" if not summary else (0 if s.state == "done" else summary.get("left", "-"))
        rows.append(
            (s.request, s.state, s.subjects, s.queued_at[:19], s.deadline[:19], acted, left, ", ".join(kept) or "-")
        )
    head = ["request", "state", "subjects", "queued", "deadline", "acted", "left", "kept (hold or rule)"]
    click.echo(table(head, rows) if rows else "no erasure requests queued")
    for s in found:
        if s.error:
            click.echo(f"{s.request}: {s.error}")
    return 0


commands = [erase_command, requests_group]
