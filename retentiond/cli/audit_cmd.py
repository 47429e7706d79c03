"""``retentiond audit …``: verify, show, find, export, checkpoint, keygen, init (SPEC §6).

Only this module reads configuration for the audit package; ``retentiond.audit`` itself takes
plain values. ``audit verify --file EXPORT --pubkey F`` and ``audit keygen`` need no config.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from retentiond.actions.setup import anchor as setup_anchor
from retentiond.audit.anchor import checkpoint_and_anchor
from retentiond.audit.canonical import canonical_loads
from retentiond.audit.events import EVENT_TYPES
from retentiond.audit.ledger import Entry, Ledger
from retentiond.audit.refs import RecordRef, RefMaker
from retentiond.audit.signing import KeyRing, generate_key_pair, load_public_key
from retentiond.audit.verify import (
    EXPORT_FORMAT,
    TrustedCheckpoint,
    VerifyResult,
    export_header,
    verify_export,
)
from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.cli.holds_cmd import INSTANT
from retentiond.cli.render import table
from retentiond.errors import ConfigError, ConfigIssue, ExitCode, UsageError

F = TypeVar("F", bound=Callable[..., Any])


@click.group("audit")
def audit_group() -> None:
    """Read, verify and export the tamper-evident audit ledger."""


# --- glue to the configuration ------------------------------------------------------------------


def _open_ledger(app: AppContext, *, create: bool = False) -> Ledger:
    from retentiond.actions.setup import ledger_url

    loaded = app.config()
    return Ledger.open(ledger_url(loaded), loaded.settings.audit.ledger_id, create=create)


def _configured_keys(app: AppContext) -> KeyRing | None:
    """Return the public half of the configured signing key, or None when none is configured."""
    from retentiond.actions.setup import signer

    loaded = app.config()
    audit = loaded.settings.audit
    if audit.signing_key_env is None and audit.signing_key_credential is None and audit.signing_key_file is None:
        return None
    return KeyRing.of(signer(loaded).public_key)


def _read_pubkeys(paths: tuple[str, ...]) -> KeyRing:
    keys = []
    for path in paths:
        try:
            keys.append(load_public_key(Path(path).read_bytes()))
        except OSError as exc:
            raise UsageError(f"--pubkey {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"--pubkey {path}: {exc}") from None
    return KeyRing.of(*keys)


def _read_trusted(path: str) -> TrustedCheckpoint:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        # Accept one JSON document (pretty or not) or JSON lines whose last line is the checkpoint.
        try:
            data = canonical_loads(text)
        except ValueError:
            data = canonical_loads(lines[-1])
        return TrustedCheckpoint.from_json(data, source=f"trusted checkpoint {Path(path).name}")
    except OSError as exc:
        raise UsageError(f"--trusted-checkpoint {path}: {exc.strerror}") from None
    except (ValueError, IndexError) as exc:
        raise UsageError(f"--trusted-checkpoint {path}: not a checkpoint entry ({exc})") from None


# --- verify -------------------------------------------------------------------------------------


@command_with_options(audit_group, "verify")
@click.option(
    "--pubkey",
    "pubkeys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Ed25519 public key (PEM) that signs checkpoints; repeat after a key rotation. Default: the public half of the configured signing key.",
)
@click.option(
    "--trusted-checkpoint",
    "trusted_path",
    type=click.Path(dir_okay=False),
    help="A checkpoint entry saved earlier (audit show --event checkpoint --format json --limit 1); the ledger must still contain it.",
)
@click.option(
    "--file",
    "export_path",
    type=click.Path(dir_okay=False),
    help="Verify this JSON-lines export offline instead of the database.",
)
@click.option("--no-anchor", is_flag=True, help="Do not read the newest checkpoint from the [audit.anchor] bucket.")
@click.option("--deep", is_flag=True, help="Also compare the contents of the refs index with the entries (slower).")
@pass_app
def verify_cmd(
    app: AppContext,
    pubkeys: tuple[str, ...],
    trusted_path: str | None,
    export_path: str | None,
    no_anchor: bool,
    deep: bool,
) -> int:
    """Recompute the hash chain and check every checkpoint signature.

    Exit 0 with a one-line summary, or 65 naming the first bad seq and the kind of damage.
    """
    keys = _read_pubkeys(pubkeys) if pubkeys else None
    trusted = [_read_trusted(trusted_path)] if trusted_path else []
    if export_path is not None:
        if keys is None:
            keys = _configured_keys(app)
        try:
            with open(export_path, encoding="utf-8") as stream:
                result = verify_export(stream, keys=keys, trusted=trusted)
        except OSError as exc:
            raise UsageError(f"--file {export_path}: {exc.strerror}") from None
    else:
        if keys is None:
            keys = _configured_keys(app)
        if not no_anchor:
            anchor = setup_anchor(app.config())
            if anchor is not None:
                latest = anchor.latest()
                if latest is not None:
                    trusted.append(latest)
        with _open_ledger(app) as ledger:
            result = ledger.verify(keys, trusted=trusted, deep=deep)
    if keys is None:
        click.echo(
            "retentiond: warning: no public key (--pubkey or audit.signing_key_*): checkpoint signatures NOT checked",
            err=True,
        )
    return _report(app, result)


def _report(app: AppContext, result: VerifyResult) -> int:
    if app.json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
    else:
        click.echo(result.summary())
    return ExitCode.OK if result.ok else ExitCode.VERIFY_FAILED


# --- show ---------------------------------------------------------------------------------------


def _summary(entry: Entry) -> str:
    f = entry.fields
    if entry.event == "batch":
        return f"{f.get('action')} {f.get('outcome')} {f.get('count')} in {f.get('store')}/{f.get('target')}"
    if entry.event == "checkpoint":
        return f"signs seq {f.get('covered_seq')} key {str(f.get('key_fingerprint'))[:16]}"
    if entry.event in ("run_finished", "run_interrupted"):
        counts = f.get("counts") or {}
        return " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "-"
    if entry.event in ("hold_placed", "hold_changed", "hold_released", "hold_release_refused"):
        return f"hold {f.get('hold_id')}"
    if entry.event == "guard_tripped":
        return f"{f.get('would_act')}/{f.get('total')} > limit {f.get('limit')} in {f.get('store')}/{f.get('target')}"
    if entry.event == "run_started":
        return f"cutoffs for {len(f.get('cutoffs') or {})} categories"
    return ""


@command_with_options(audit_group, "show")
@click.option("--since", type=INSTANT, help="Entries at or after this time (RFC 3339 or date, UTC if no offset).")
@click.option("--until", type=INSTANT, help="Entries before this time.")
@click.option("--category", help="Only entries of this category.")
@click.option("--event", type=click.Choice(sorted(EVENT_TYPES)), help="Only entries of this event.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N matching entries.")
@pass_app
def show_cmd(
    app: AppContext,
    since: datetime | None,
    until: datetime | None,
    category: str | None,
    event: str | None,
    limit: int | None,
) -> int:
    """Show ledger entries: a table, or JSON lines (one entry per line) with --format json."""
    with _open_ledger(app) as ledger:
        entries = ledger.iter_entries(since=since, until=until, category=category, event=event, limit=limit)
        if app.json:
            for entry in entries:
                click.echo(json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":")))
            return ExitCode.OK
        rows = [
            (e.seq, e.time, e.event, (e.run_id or "")[:8], e.category or "", e.ref_count or "", _summary(e))
            for e in entries
        ]
    click.echo(
        table(("SEQ", "TIME (UTC)", "EVENT", "RUN", "CATEGORY", "REFS", "DETAIL"), rows) if rows else "no entries"
    )
    return ExitCode.OK


# --- find ---------------------------------------------------------------------------------------


def _hmac_maker(app: AppContext) -> RefMaker:
    from retentiond.actions.setup import hmac_key

    try:
        return RefMaker(hmac_key(app.config()))
    except ValueError as exc:
        raise ConfigError([ConfigIssue("audit.hmac_key", str(exc))]) from None


def _key_columns(app: AppContext, store: str, table_name: str) -> int | None:
    """Return how many key columns the configured target ``store``/``table`` has, if configured."""
    for category in app.config().settings.categories.values():
        for target in getattr(category, "sql", None) or []:
            if target.store == store and target.table == table_name:
                return len(target.key)
    return None


_VERBS = {
    "deleted": "deleted",
    "anonymized": "anonymized",
    "held": "kept (held)",
    "blocked": "blocked (object lock)",
    "failed": "failed",
    "skipped": "skipped",
}


@command_with_options(audit_group, "find")
@click.option("--store", required=True, help="Store name of [stores].")
@click.option("--table", "table_name", help="SQL table (as in the config, optionally schema-qualified).")
@click.option(
    "--key", "keys", multiple=True, help="Primary key value in canonical text; repeat (or use a,b) for composite keys."
)
@click.option("--bucket", help="S3 bucket.")
@click.option("--object-key", help="S3 object key.")
@click.option("--version-id", help="S3 version id (default: the unversioned 'null' version).")
@pass_app
def find_cmd(
    app: AppContext,
    store: str,
    table_name: str | None,
    keys: tuple[str, ...],
    bucket: str | None,
    object_key: str | None,
    version_id: str | None,
) -> int:
    """Say what happened to one record: "deleted on … by run … under category …" or "no record"."""
    maker = _hmac_maker(app)
    try:
        if table_name is not None and keys and bucket is None and object_key is None:
            values = list(keys)
            if len(values) == 1 and "," in values[0] and (_key_columns(app, store, table_name) or 1) > 1:
                values = values[0].split(",")
            ref = maker.sql(store, table_name, tuple(values))
            what = f"{store}/{table_name} key ({len(values)} column{'s' if len(values) > 1 else ''})"
        elif bucket is not None and object_key is not None and table_name is None and not keys:
            ref = maker.s3(store, bucket, object_key, version_id)
            what = f"{store}/{bucket} object"
        else:
            raise UsageError("give --table T --key K, or --bucket B --object-key K [--version-id V]")
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    with _open_ledger(app) as ledger:
        hits = ledger.find(ref)
    if app.json:
        click.echo(
            json.dumps({"ref": ref.hex(), "entries": [e.to_json() | {"refs": None} for e in hits]}, sort_keys=True)
        )
        return ExitCode.OK
    if not hits:
        click.echo(f"no record: the ledger has no entry for this {what} (ref {ref.hex()[:16]})")
        return ExitCode.OK
    for e in hits:
        f = e.fields
        verb = _VERBS.get(str(f.get("outcome")), str(f.get("outcome")))
        click.echo(
            f"{verb} on {e.time} by run {e.run_id or '-'} under category {e.category or '-'} "
            f"(seq {e.seq}, batch {e.batch_id or '-'}, action {f.get('action', '-')})"
        )
    return ExitCode.OK


# --- export -------------------------------------------------------------------------------------


CSV_COLUMNS = (
    "seq",
    "time",
    "event",
    "run_id",
    "category",
    "batch_id",
    "store",
    "target",
    "action",
    "outcome",
    "count",
    "ref_count",
    "fields",
    "hash",
)


@audit_group.command("export")
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Configuration file."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    required=True,
    help="jsonl: verifiable offline; csv: for spreadsheets.",
)
@click.option("--since", type=INSTANT, help="Entries at or after this time.")
@click.option("--until", type=INSTANT, help="Entries before this time.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@pass_app
def export_cmd(
    app: AppContext,
    config_path: str | None,
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    out_path: str | None,
) -> int:
    """Export entries as JSON lines (header line, then one entry per line) or CSV."""
    if config_path is not None:
        app.config_path = config_path
    with _open_ledger(app) as ledger:
        stream: TextIO
        if out_path is None:
            stream = sys.stdout
            _write_export(ledger, stream, fmt, since, until)
            return ExitCode.OK
        tmp = Path(f"{out_path}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            count = _write_export(ledger, stream, fmt, since, until)
        os.replace(tmp, out_path)
    click.echo(f"exported {count} entries to {out_path}", err=True)
    return ExitCode.OK


def _write_export(ledger: Ledger, stream: TextIO, fmt: str, since: datetime | None, until: datetime | None) -> int:
    count = 0
    entries = ledger.iter_entries(since=since, until=until)
    if fmt == "jsonl":
        stream.write(json.dumps(export_header(ledger.ledger_id), sort_keys=True) + "\n")
        for entry in entries:
            stream.write(json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":")) + "\n")
            count += 1
        return count
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        f = e.fields
        writer.writerow(
            [
                e.seq,
                e.time,
                e.event,
                e.run_id or "",
                e.category or "",
                e.batch_id or "",
                f.get("store", ""),
                f.get("target", ""),
                f.get("action", ""),
                f.get("outcome", ""),
                f.get("count", ""),
                e.ref_count,
                e.fields_json,
                e.hash.hex(),
            ]
        )
        count += 1
    return count


# --- checkpoint, keygen, init -------------------------------------------------------------------


@command_with_options(audit_group, "checkpoint")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="Also save the checkpoint entry here (a trusted checkpoint file).",
)
@pass_app
def checkpoint_cmd(app: AppContext, out_path: str | None) -> int:
    """Sign the ledger's head now (and anchor it when [audit.anchor] is set)."""
    from retentiond.actions.setup import signer

    sign = signer(app.config())
    anchor = setup_anchor(app.config())
    with _open_ledger(app, create=True) as ledger:
        entry = checkpoint_and_anchor(ledger, sign, anchor)
    assert entry is not None
    text = json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":"))
    if out_path:
        Path(out_path).write_text(text + "\n", encoding="utf-8")
    if app.json:
        click.echo(text)
    else:
        click.echo(
            f"checkpoint seq {entry.seq} signs seq {entry.fields['covered_seq']} head {entry.fields['covered_hash']} at {entry.time}"
        )
    return ExitCode.OK


@audit_group.command("keygen")
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


@command_with_options(audit_group, "init")
@pass_app
def init_cmd(app: AppContext) -> int:
    """Create the ledger's tables and triggers (run once as the owner role; see docs/auditing.md)."""
    with _open_ledger(app, create=True) as ledger:
        head = ledger.head()
    click.echo(f"audit ledger {ledger.ledger_id} ready: {head.seq} entries")
    return ExitCode.OK


__all__ = ["EXPORT_FORMAT", "RecordRef", "audit_group"]
