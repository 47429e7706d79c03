"""``retentiond print-grants`` and ``retentiond print-iam-policy``: the least privileges, from the config.

Both reach the stores only through :func:`retentiond.stores.access.access_policies`; which kind
prints what is the policy's ``format`` ("sql" or "iam-json"), not the store's kind.
"""

from __future__ import annotations

import json

import click

from retentiond.audit.roles import LedgerRoles, ledger_roles_sql
from retentiond.cli.context import AppContext, common_options, pass_app
from retentiond.config.models import Settings
from retentiond.errors import ExitCode, UsageError
from retentiond.stores.access import access_policies


def _ledger_section(settings: Settings) -> str:
    """Return the ledger roles' SQL, or a comment when the ledger is not PostgreSQL."""
    audit = settings.audit
    if audit.url is None and audit.url_env is None and audit.url_credential is None:
        return "-- the audit ledger is the SQLite file audit.db in state_dir: no roles to grant\n"
    database = "audit"
    if audit.url is not None:
        from sqlalchemy.engine import make_url

        url = make_url(audit.url)
        if not url.drivername.startswith("postgresql"):
            return f"-- the audit ledger is {url.drivername}: no roles to grant\n"
        database = url.database or database
    return '-- the audit ledger (docs/auditing.md, "PostgreSQL: least privilege")\n' + ledger_roles_sql(
        LedgerRoles(database=database)
    )


@click.command("print-grants")
@click.option("--store", "store", default=None, help="Only this store (default: every SQL store and the ledger).")
@click.option("--role", "role", default="retentiond", show_default=True, help="The role the daemon connects as.")
@common_options
@pass_app
def print_grants(app: AppContext, store: str | None, role: str) -> int:
    """Print the least PostgreSQL privileges of each SQL store, and the ledger's roles.

    SELECT on the columns read, UPDATE on the anonymized columns only, DELETE on delete targets
    and history tables, the outbox, USAGE on schemas; nothing else. Exit 2 when --store names a
    store without grants, 78 when the configuration is invalid.
    """
    settings = app.config().settings
    policies = [p for p in access_policies(settings, store, role) if p.format == "sql"]
    if store is not None and not policies:
        raise UsageError(f"store {store!r} has no SQL grants (for S3 stores: retentiond print-iam-policy)")
    if app.json:
        out = {p.store: p.text for p in policies}
        app.emit_json({"stores": out, "ledger": None if store is not None else _ledger_section(settings)})
        return ExitCode.OK
    texts = [p.text for p in policies]
    if store is None:
        texts.append(_ledger_section(settings))
    click.echo("\n".join(texts), nl=False)
    return ExitCode.OK


@click.command("print-iam-policy")
@click.option("--store", "store", default=None, help="Only this store (default: every S3 store).")
@common_options
@pass_app
def print_iam_policy(app: AppContext, store: str | None) -> int:
    """Print the least IAM policy (JSON) of each S3 store: prefix-scoped lists and deletes, explicit denies.

    With one S3 store (or --store) the output is the policy document itself; with several, a JSON
    object mapping each store to its document. Exit 2 when --store names a store without one.
    """
    settings = app.config().settings
    policies = [p for p in access_policies(settings, store) if p.format == "iam-json"]
    if store is not None and not policies:
        raise UsageError(f"store {store!r} has no IAM policy (for SQL stores: retentiond print-grants)")
    if len(policies) == 1:
        click.echo(policies[0].text, nl=False)
    else:
        click.echo(json.dumps({p.store: json.loads(p.text) for p in policies}, indent=2))
    return ExitCode.OK


commands = [print_grants, print_iam_policy]
