"""``retentiond audit …``: verify, show, find, export, checkpoint, init (SPEC §6).

Only the ``cli`` modules read configuration for the audit package; ``retentiond.audit`` takes
plain values. Every ``audit`` command accepts a config with only ``[audit]`` (an auditor's or
the ledger owner's); ``audit verify --file EXPORT --pubkey F`` and ``audit keygen`` need none.
Keys and rotations live in :mod:`retentiond.cli.audit_keys_cmd`.

:func:`verify_configured` is the function other commands (``retentiond report``) call to put a
verification result at the top of what they print.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

import click

from retentiond.audit.anchor import checkpoint_and_anchor
from retentiond.audit.canonical import canonical_loads
from retentiond.audit.events import EVENT_TYPES
from retentiond.audit.export import EXPORT_FORMAT, verify_export, write_csv, write_export
from retentiond.audit.ledger import Entry, Ledger
from retentiond.audit.results import TrustedCheckpoint, VerifyPolicy, VerifyResult
from retentiond.audit.signing import KeyRing, load_public_key
from retentiond.audit.state import read_state, write_state
from retentiond.cli.context import AppContext, command_with_options, pass_app
from retentiond.cli.holds_cmd import INSTANT
from retentiond.cli.render import table
from retentiond.config.durations import parse_operational
from retentiond.config.loader import LoadedConfig
from retentiond.errors import ExitCode, UsageError

DEFAULT_INTERVAL = timedelta(hours=1)


@click.group("audit")
def audit_group() -> None:
    """Read, verify and export the tamper-evident audit ledger."""


# --- glue to the configuration ------------------------------------------------------------------


def open_ledger(loaded: LoadedConfig, *, create: bool = False) -> Ledger:
    """Return the configured ledger, open.

    Raises:
        ConfigError: bad URL or no ledger there (``create`` False).
        TemporaryFailure: the database is unreachable.
    """
    from retentiond.actions.setup import ledger_url

    return Ledger.open(ledger_url(loaded), loaded.settings.audit.ledger_id, create=create)


def configured_keys(loaded: LoadedConfig) -> KeyRing | None:
    """Return the public half of the configured signing key, or None when none is configured.

    Raises:
        ConfigError: the key is configured but unreadable.
    """
    from retentiond.actions.setup import signer

    audit = loaded.settings.audit
    if audit.signing_key_env is None and audit.signing_key_credential is None and audit.signing_key_file is None:
        return None
    return KeyRing.of(signer(loaded).public_key)


def read_pubkeys(paths: tuple[str, ...]) -> KeyRing:
    """Return the ring of the public keys in ``paths`` (PEM).

    Raises:
        UsageError: a file is missing or not an Ed25519 key.
    """
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
        # One JSON document (pretty or not), JSON lines whose last line is the checkpoint, or a state file.
        try:
            data = canonical_loads(text)
        except ValueError:
            data = canonical_loads(lines[-1])
        if isinstance(data, dict) and "checkpoint" in data and "format" in data:
            data = data["checkpoint"]
        return TrustedCheckpoint.from_json(data, source=f"trusted checkpoint {Path(path).name}")
    except OSError as exc:
        raise UsageError(f"--trusted-checkpoint {path}: {exc.strerror}") from None
    except (ValueError, IndexError) as exc:
        raise UsageError(f"--trusted-checkpoint {path}: not a checkpoint entry ({exc})") from None


# --- verify -------------------------------------------------------------------------------------


@dataclass
class VerifyOptions:
    """What ``audit verify`` was asked for (also what ``report`` passes to :func:`verify_configured`)."""

    pubkeys: tuple[str, ...] = ()
    trusted_path: str | None = None
    state_path: str | None = None
    use_anchor: bool = True
    deep: bool = False
    allow_unsigned_tail: bool = False
    notes: list[str] = field(default_factory=list)


def _state(options: VerifyOptions, ledger_id: str | None) -> TrustedCheckpoint | None:
    if options.state_path is None:
        return None
    try:
        return read_state(Path(options.state_path), ledger_id)
    except OSError as exc:
        raise UsageError(f"--state {options.state_path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"--state {options.state_path}: {exc}") from None


def _finish(result: VerifyResult, options: VerifyOptions, state: TrustedCheckpoint | None) -> VerifyResult:
    result.notes[:0] = options.notes
    if options.state_path is not None and write_state(Path(options.state_path), result, state):
        result.notes.append(
            f"state file {options.state_path} now remembers checkpoint seq {result.last_checkpoint_seq}"
        )
    return result


def verify_configured(loaded: LoadedConfig, options: VerifyOptions) -> VerifyResult:
    """Verify the configured ledger: keys (``--pubkey`` or the configured signing key's public half),
    the anchor bucket's newest checkpoint, the trusted and state checkpoints; update the state file.

    Raises:
        UsageError: no public key at all, or an unreadable key/trusted/state file.
        ConfigError: the configuration is unusable.
        TemporaryFailure: the ledger or the anchor bucket is unreachable.
    """
    from retentiond.actions.setup import anchor as setup_anchor

    keys = read_pubkeys(options.pubkeys) if options.pubkeys else configured_keys(loaded)
    if keys is None:
        raise UsageError(
            "no public key: give --pubkey FILE (the signing key's public half; repeat for every key the ledger used)"
        )
    audit = loaded.settings.audit
    trusted = [_read_trusted(options.trusted_path)] if options.trusted_path else []
    state = _state(options, audit.ledger_id)
    if state is not None:
        trusted.append(state)
    anchor = setup_anchor(loaded) if options.use_anchor else None
    if anchor is not None:
        latest = anchor.latest()
        if latest is None:
            options.notes.append(
                f"anchor s3://{anchor.bucket}/{anchor.prefix} holds no checkpoint: nothing anchored yet"
            )
        else:
            trusted.append(latest)
    elif audit.anchor is not None:
        options.notes.append("the anchor bucket was not read (--no-anchor)")
    policy = VerifyPolicy(
        keys=keys,
        trusted=tuple(trusted),
        max_unsigned_age=audit.checkpoint_interval,
        allow_unsigned_tail=options.allow_unsigned_tail,
    )
    with open_ledger(loaded) as ledger:
        result = ledger.verify(policy=policy, deep=options.deep)
    return _finish(result, options, state)


def _interval(text: str | None) -> timedelta:
    if text is None:
        return DEFAULT_INTERVAL
    try:
        return parse_operational(text)
    except ValueError as exc:
        raise UsageError(f"--checkpoint-interval: {exc}") from None


@command_with_options(audit_group, "verify")
@click.option(
    "--pubkey",
    "pubkeys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Ed25519 public key (PEM) that signs checkpoints; repeat for every key the ledger used. "
    "Default: the public half of the configured signing key.",
)
@click.option(
    "--trusted-checkpoint",
    "trusted_path",
    type=click.Path(dir_okay=False),
    help="A checkpoint entry saved earlier; the ledger must still contain it.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False),
    help="Your state file: fail (rolled_back) on an older head or another history than last time; "
    "updated after each successful verification.",
)
@click.option("--file", "export_path", type=click.Path(dir_okay=False), help="Verify this JSON-lines export offline.")
@click.option("--no-anchor", is_flag=True, help="Do not read the newest checkpoint from the [audit.anchor] bucket.")
@click.option("--deep", is_flag=True, help="Also compare the contents of the refs index with the entries (slower).")
@click.option(
    "--allow-unsigned-tail",
    is_flag=True,
    help="Accept entries after the last checkpoint even when they hold outcomes or are old (said in the summary).",
)
@click.option(
    "--checkpoint-interval",
    "interval_text",
    help="--file: the ledger's checkpoint_interval, for the young unsigned tail (default 1h).",
)
@pass_app
def verify_cmd(
    app: AppContext,
    pubkeys: tuple[str, ...],
    trusted_path: str | None,
    state_path: str | None,
    export_path: str | None,
    no_anchor: bool,
    deep: bool,
    allow_unsigned_tail: bool,
    interval_text: str | None,
) -> int:
    """Recompute the hash chain, check every signature and key, and require signed coverage.

    Exit 0 with a one-line summary, or 65 naming the first bad seq and the kind of damage.
    """
    options = VerifyOptions(pubkeys, trusted_path, state_path, not no_anchor, deep, allow_unsigned_tail)
    if export_path is None:
        return _report(app, verify_configured(app.config(audit_only=True), options))
    if not pubkeys:
        raise UsageError("--file needs --pubkey FILE: the public key(s) that sign the ledger's checkpoints")
    keys = read_pubkeys(pubkeys)
    trusted = [_read_trusted(trusted_path)] if trusted_path else []
    state = _state(options, None)
    policy = VerifyPolicy(
        keys=keys,
        trusted=tuple(trusted + ([state] if state else [])),
        max_unsigned_age=_interval(interval_text),
        allow_unsigned_tail=allow_unsigned_tail,
    )
    try:
        with open(export_path, encoding="utf-8") as stream:
            result = verify_export(stream, policy)
    except OSError as exc:
        raise UsageError(f"--file {export_path}: {exc.strerror}") from None
    return _report(app, _finish(result, options, state))


def _report(app: AppContext, result: VerifyResult) -> int:
    if app.json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
    else:
        click.echo(result.summary())
        for note in result.notes:
            click.echo(f"retentiond: note: {note}", err=True)
    return ExitCode.OK if result.ok else ExitCode.VERIFY_FAILED


# --- show ---------------------------------------------------------------------------------------


def _summary(entry: Entry) -> str:
    f = entry.fields
    if entry.event == "batch":
        return f"{f.get('action')} {f.get('outcome')} {f.get('count')} in {f.get('store')}/{f.get('target')}"
    if entry.event == "checkpoint":
        return f"signs seq {f.get('covered_seq')} key {str(f.get('key_fingerprint'))[:16]}"
    if entry.event == "key_rotated":
        return f"key {str(f.get('old_fingerprint'))[:16]} -> {str(f.get('new_fingerprint'))[:16]}"
    if entry.event in ("run_finished", "run_interrupted"):
        counts = f.get("counts") or {}
        return " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "-"
    if entry.event in ("hold_placed", "hold_changed", "hold_released", "hold_release_refused"):
        return f"hold {f.get('hold_id')}" + (f" by {f['placed_by']}" if f.get("placed_by") else "")
    if entry.event == "guard_tripped":
        return f"{f.get('would_act')}/{f.get('total')} > limit {f.get('limit')} in {f.get('store')}/{f.get('target')}"
    if entry.event == "run_started":
        who = f.get("actor_unit") or f.get("actor_sudo_user") or f.get("actor_user")
        return f"cutoffs for {len(f.get('cutoffs') or {})} categories" + (f" by {who}" if who else "")
    return ""


@command_with_options(audit_group, "show")
@click.option("--since", type=INSTANT, help="Entries at or after this time (RFC 3339 or date, UTC if no offset).")
@click.option("--until", type=INSTANT, help="Entries before this time.")
@click.option("--category", "categories", multiple=True, help="Only entries of this category (repeatable).")
@click.option(
    "--event", "events", multiple=True, type=click.Choice(sorted(EVENT_TYPES)), help="Only this event (repeatable)."
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N matching entries.")
@pass_app
def show_cmd(
    app: AppContext,
    since: datetime | None,
    until: datetime | None,
    categories: tuple[str, ...],
    events: tuple[str, ...],
    limit: int | None,
) -> int:
    """Show ledger entries: a table, or JSON lines (one entry per line) with --format json."""
    with open_ledger(app.config(audit_only=True)) as ledger:
        entries = ledger.iter_entries(
            since=since, until=until, category=categories or None, event=events or None, limit=limit
        )
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


# --- export -------------------------------------------------------------------------------------


_COVERAGE = {
    "none": "the window's end is not covered by a checkpoint yet: it will not verify until one is written "
    "(`retentiond audit checkpoint`, then export again)",
    "head": "the window ends at the ledger's head: entries after its last checkpoint verify only while young "
    "and free of outcomes",
}


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
    """Export entries as JSON lines (a window with the proof of its end) or CSV."""
    if config_path is not None:
        app.config_path = config_path
    with open_ledger(app.config(audit_only=True)) as ledger:
        if out_path is None:
            _write_export(ledger, sys.stdout, fmt, since, until)
            return ExitCode.OK
        tmp = Path(f"{out_path}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            count, coverage = _write_export(ledger, stream, fmt, since, until)
        os.replace(tmp, out_path)
    click.echo(
        f"exported {count} entries to {out_path}" + (f" (coverage: {coverage})" if fmt == "jsonl" else ""), err=True
    )
    if coverage in _COVERAGE:
        click.echo(f"retentiond: warning: {_COVERAGE[coverage]}", err=True)
    return ExitCode.OK


def _write_export(
    ledger: Ledger, stream: TextIO, fmt: str, since: datetime | None, until: datetime | None
) -> tuple[int, str]:
    if fmt == "jsonl":
        return write_export(ledger, stream, since, until)
    return write_csv(ledger, stream, since, until), "csv"


# --- checkpoint, init ---------------------------------------------------------------------------


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
    from retentiond.actions.setup import anchor as setup_anchor
    from retentiond.actions.setup import signer

    loaded = app.config(audit_only=True)
    sign = signer(loaded)
    anchor = setup_anchor(loaded)
    with open_ledger(loaded, create=True) as ledger:
        entry = checkpoint_and_anchor(ledger, sign, anchor)
    assert entry is not None
    text = json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":"))
    if out_path:
        Path(out_path).write_text(text + "\n", encoding="utf-8")
    if app.json:
        click.echo(text)
    else:
        click.echo(
            f"checkpoint seq {entry.seq} signs seq {entry.fields['covered_seq']} "
            f"head {entry.fields['covered_hash']} at {entry.time}"
        )
    return ExitCode.OK


@command_with_options(audit_group, "init")
@pass_app
def init_cmd(app: AppContext) -> int:
    """Create the ledger's tables and triggers (run once as the owner role; see docs/auditing.md)."""
    with open_ledger(app.config(audit_only=True), create=True) as ledger:
        head = ledger.head()
    click.echo(f"audit ledger {ledger.ledger_id} ready: {head.seq} entries")
    return ExitCode.OK


def _register_keys() -> None:
    from retentiond.cli import audit_find_cmd, audit_keys_cmd

    for command in [*audit_keys_cmd.commands, *audit_find_cmd.commands]:
        audit_group.add_command(command)


_register_keys()

__all__ = ["EXPORT_FORMAT", "VerifyOptions", "audit_group", "verify_configured"]
