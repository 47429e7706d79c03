"""``retentiond audit find``: what the ledger says happened to one record or S3 object, and,
when nothing is recorded, the record's present state from ``explain``."""

from __future__ import annotations

import json
from typing import Any

import click

from retentiond.audit.find import Hit, find_object, find_record
from retentiond.audit.refs import RefMaker
from retentiond.cli.context import AppContext, common_options, pass_app
from retentiond.config.loader import LoadedConfig
from retentiond.errors import ConfigError, ConfigIssue, ExitCode, RetentiondError, UsageError
from retentiond.stores import registry


def hmac_maker(loaded: LoadedConfig) -> RefMaker:
    """Return the ref maker of the configured HMAC key.

    Raises:
        ConfigError: no key, or a key too short.
    """
    from retentiond.actions.setup import hmac_key

    try:
        return RefMaker(hmac_key(loaded))
    except ValueError as exc:
        raise ConfigError([ConfigIssue("audit.hmac_key", str(exc))]) from None


def _key_columns(loaded: LoadedConfig, store: str, table_name: str) -> int | None:
    """Return how many key columns the configured target ``store``/``table`` has, if configured."""
    for category in loaded.settings.categories:
        for ref in registry.targets(loaded.settings, category):
            if ref.store == store and ref.target == table_name and ref.key_columns is not None:
                return ref.key_columns
    return None


def present_state(app: AppContext, store: str, query: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """Return the record's state now from ``explain`` (text and JSON), or why it is not available.

    The one place ``audit find`` reaches the stores: the explain entry points decide held /
    kept until / would act / not found with the same code a run uses.
    """
    try:
        loaded = app.config()
    except ConfigError:
        return "present state not available: this config has no categories (an auditor-only config)", None
    try:
        from retentiond.actions.explain import explain

        if "bucket" in query:
            record: dict[str, Any] = {"bucket": query["bucket"], "object_key": query["object_key"]}
        else:
            record = {"table": query["table"], "key": list(query["key"])}
        found = explain(loaded, store, record)
    except RetentiondError as exc:
        return f"present state not available: {exc}", None
    return found.render(), found.as_dict()


@click.command("find")
@common_options
@click.option("--store", required=True, help="Store name of [stores].")
@click.option("--table", "table_name", help="SQL table (as in the config, optionally schema-qualified).")
@click.option(
    "--key", "keys", multiple=True, help="Primary key value in canonical text; repeat (or use a,b) for composite keys."
)
@click.option("--bucket", help="S3 bucket.")
@click.option("--object-key", help="S3 object key (every version of it, unless --version-id).")
@click.option("--version-id", help="S3: only this version ('null' for an unversioned object).")
@click.option("--no-explain", is_flag=True, help="When nothing is recorded, do not look up the record's present state.")
@pass_app
def find_cmd(
    app: AppContext,
    store: str,
    table_name: str | None,
    keys: tuple[str, ...],
    bucket: str | None,
    object_key: str | None,
    version_id: str | None,
    no_explain: bool,
) -> int:
    """Say what happened to one record or S3 object: "deleted on … by run … under category …"."""
    loaded = app.config(audit_only=True)
    maker = hmac_maker(loaded)
    from retentiond.cli.audit_cmd import open_ledger

    with open_ledger(loaded) as ledger:
        try:
            if table_name is not None and keys and bucket is None and object_key is None:
                values = list(keys)
                if len(values) == 1 and "," in values[0] and (_key_columns(loaded, store, table_name) or 1) > 1:
                    values = values[0].split(",")
                ref = maker.sql(store, table_name, tuple(values))
                hits, what = find_record(ledger, ref), f"{store}/{table_name} key"
                query: dict[str, Any] = {"table": table_name, "key": values}
            elif bucket is not None and object_key is not None and table_name is None and not keys:
                if version_id is not None:
                    ref = maker.s3(store, bucket, object_key, None if version_id == "null" else version_id)
                    hits, what = find_record(ledger, ref), f"{store}/{bucket} object version"
                else:
                    ref = maker.s3_object(store, bucket, object_key)
                    hits, what = find_object(ledger, maker, store, bucket, object_key), f"{store}/{bucket} object"
                query = {"bucket": bucket, "object_key": object_key}
            else:
                raise UsageError("give --table T --key K, or --bucket B --object-key K [--version-id V]")
        except (ValueError, TypeError) as exc:
            raise UsageError(str(exc)) from None
    present: tuple[str, dict[str, Any] | None] | None = None
    if not hits and not no_explain:
        present = present_state(app, store, query)
    _print_find(app, ref.hex(), what, hits, present)
    return ExitCode.OK


def _print_find(
    app: AppContext, ref: str, what: str, hits: list[Hit], present: tuple[str, dict[str, Any] | None] | None
) -> None:
    if app.json:
        data: dict[str, Any] = {"ref": ref, "entries": [h.to_json() for h in hits], "recorded": bool(hits)}
        if present is not None:
            data["present"] = present[1] if present[1] is not None else {"unavailable": present[0]}
        click.echo(json.dumps(data, sort_keys=True))
        return
    if not hits:
        click.echo(f"no outcome recorded: the ledger has no entry for this {what} (ref {ref[:16]})")
        if present is not None:
            click.echo(present[0])
        return
    for hit in hits:
        click.echo(hit.render())


commands = [find_cmd]
