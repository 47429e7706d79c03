"""``retentiond audit keygen | keys | rotate-key``: the Ed25519 keys that sign checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from retentiond.audit.keys import key_periods
from retentiond.audit.signing import Signer, generate_key_pair
from retentiond.cli.context import AppContext, common_options, pass_app
from retentiond.cli.render import table
from retentiond.errors import ExitCode, UsageError


@click.command("keygen")
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the key pair (created if missing).",
)
@click.option(
    "--name",
    default="audit-signing",
    show_default=True,
    help="File name stem: NAME.pem (private, 0600) and NAME.pub.pem.",
)
def keygen_cmd(out_dir: str, name: str) -> int:
    """Write a new Ed25519 key pair for signing checkpoints and print the public key's fingerprint."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} exists: refusing to overwrite a key")
    private_pem, public_pem, fp = generate_key_pair()
    # O_EXCL + mode 0600 at creation: the private key is never readable by others, not even briefly.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(public_pem)
    click.echo(
        f"private key: {private_path} (mode 0600; give it to the daemon as audit.signing_key_credential)", err=True
    )
    click.echo(f"public key:  {public_path} (give it to auditors: audit verify --pubkey)", err=True)
    click.echo(f"fingerprint: {fp}")
    return ExitCode.OK


@click.command("keys")
@common_options
@pass_app
def keys_cmd(app: AppContext) -> int:
    """List the signing keys the ledger has used: fingerprint, seqs and times of validity, checkpoints."""
    from retentiond.cli.audit_cmd import open_ledger

    with open_ledger(app.config(audit_only=True)) as ledger:
        periods = key_periods(ledger.iter_entries(event=("checkpoint", "key_rotated")))
    if app.json:
        click.echo(json.dumps([p.to_json() for p in periods], sort_keys=True))
        return ExitCode.OK
    if not periods:
        click.echo("no key has signed this ledger yet")
        return ExitCode.OK
    rows = [
        (
            p.fingerprint,
            p.from_seq,
            "-" if p.until_seq is None else p.until_seq,
            p.first_time or "-",
            p.last_time or "-",
            p.checkpoints,
            p.vouched_by,
        )
        for p in periods
    ]
    click.echo(
        table(("FINGERPRINT", "FROM SEQ", "UNTIL SEQ", "FIRST SIGNED", "LAST SIGNED", "CHECKPOINTS", "HOW"), rows)
    )
    return ExitCode.OK


@click.command("rotate-key")
@common_options
@click.option(
    "--new-key",
    "new_key_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The new Ed25519 private key (PEM), e.g. from `audit keygen`.",
)
@click.option(
    "--without-old-key",
    is_flag=True,
    help="The configured (old) key is lost: record the rotation unsigned by it. Auditors must then give "
    "the new public key explicitly.",
)
@pass_app
def rotate_key_cmd(app: AppContext, new_key_path: str, without_old_key: bool) -> int:
    """Record in the ledger that a new key signs checkpoints from now on (signed by the old key)."""
    from retentiond.actions.setup import signer
    from retentiond.cli.audit_cmd import open_ledger

    loaded = app.config(audit_only=True)
    try:
        new = Signer.from_pem(Path(new_key_path).read_bytes())
    except OSError as exc:
        raise UsageError(f"--new-key {new_key_path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"--new-key {new_key_path}: {exc}") from None
    old = None if without_old_key else signer(loaded)
    with open_ledger(loaded, create=True) as ledger:
        checkpoint = ledger.rotate_key(old, new)
    click.echo(
        f"rotated to key {new.fingerprint} at seq {checkpoint.seq - 1}; "
        f"checkpoint seq {checkpoint.seq} is signed by it.\n"
        "Now point audit.signing_key_* at the new key (the old key can no longer sign this ledger) and give "
        "auditors its public key."
    )
    return ExitCode.OK


commands = [keygen_cmd, keys_cmd, rotate_key_cmd]
