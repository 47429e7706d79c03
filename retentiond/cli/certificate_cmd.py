"""``retentiond audit certificate`` and ``retentiond audit verify-certificate``: certificates of erasure."""

from __future__ import annotations

import json
from pathlib import Path

import click

from retentiond.audit.certificate import CertificateError, build, check, dumps, loads, render_html
from retentiond.audit.export import json_to_row, verify_export
from retentiond.audit.verify import VerifyPolicy
from retentiond.cli.audit_cmd import audit_group, open_ledger, read_pubkeys
from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.errors import ExitCode, UsageError


@audit_group.command("certificate")
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Configuration file."
)
@click.option("--request", "request", required=True, metavar="REF", help="The erasure request's reference.")
@click.option("--format", "fmt", type=click.Choice(["json", "html"]), default="json", show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@pass_app
def certificate_command(app: AppContext, config_path: str | None, request: str, fmt: str, out: str) -> int:
    """Write the signed certificate of erasure request REF (JSON for machines, HTML for the person who asked)."""
    if config_path is not None:
        app.config_path = config_path
    from retentiond import __version__
    from retentiond.actions.erase import check_request
    from retentiond.actions.setup import signer

    loaded = app.config(audit_only=True)
    with open_ledger(loaded) as ledger:
        try:
            cert = build(ledger, check_request(request), signer(loaded), __version__)
        except CertificateError as exc:
            raise UsageError(str(exc)) from None
    text = dumps(cert) if fmt == "json" else render_html(cert)
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror}") from None
    acted = sum(s["records"] + s["prior_versions"] for s in cert["sanitized"])
    kept = sum(k["records"] for k in cert["kept"])
    click.echo(
        f"certificate of {request}: {acted} records erased, {kept} kept "
        f"({', '.join(sorted({k.get('hold_id') or k['reason'] for k in cert['kept']})) or 'none'}); "
        f"verification {cert['verification']['result']}; {len(cert['entries'])} ledger entries cited; "
        f"written to {out}"
    )
    return ExitCode.OK


@command_with_options(audit_group, "verify-certificate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--pubkey", "pubkeys", multiple=True, required=True, metavar="K", help="Public key (PEM); repeatable.")
@click.option("--file", "export_path", type=click.Path(dir_okay=False), help="A ledger export the entries must be in.")
@pass_app
def verify_certificate_command(app: AppContext, path: str, pubkeys: tuple[str, ...], export_path: str | None) -> int:
    """Check a certificate's signature and, with --file (or the configured ledger), every entry it cites.

    Exit 0 when it verifies, 65 naming what does not.
    """
    keys = read_pubkeys(pubkeys)
    try:
        cert = loads(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        click.echo(f"FAILED: {path}: {exc}")
        return ExitCode.VERIFY_FAILED
    chain: dict[int, str] | None = None
    problems: list[str] = []
    policy = VerifyPolicy(keys=keys, allow_unsigned_tail=True)
    if export_path is not None:
        try:
            with open(export_path, encoding="utf-8") as stream:
                result = verify_export(stream, policy)
            with open(export_path, encoding="utf-8") as stream:
                stream.readline()
                chain = {}
                for line in stream:
                    row = json_to_row(json.loads(line))
                    chain[row[0]] = row[9].hex()
        except OSError as exc:
            raise UsageError(f"--file {export_path}: {exc.strerror}") from None
        except ValueError:
            result = None
        if result is None or not result.ok:
            problems.append("the export does not verify (retentiond audit verify --file says why)")
    elif Path(app.config_path).exists():
        with open_ledger(app.config(audit_only=True)) as ledger:
            result = ledger.verify(policy=policy)
            if not result.ok:
                problems.append("the ledger does not verify (retentiond audit verify says why)")
            chain = {e.seq: e.hash.hex() for e in ledger.iter_entries()}
    problems += check(cert, keys.keys.values(), chain)
    if problems:
        for problem in problems:
            click.echo(f"FAILED: {problem}")
        return ExitCode.VERIFY_FAILED
    scope = "signature and cited entries" if chain is not None else "signature only (give --file to check the entries)"
    click.echo(f"OK certificate of {cert['request']}: {scope} verified")
    return ExitCode.OK


commands: list[click.Command] = []  # both commands live in the `audit` group
