"""The PostgreSQL roles of the audit ledger (owner, writer, auditor), as SQL an administrator runs.

One source for ``docs/auditing.md`` ("PostgreSQL: least privilege"), ``retentiond print-grants``
and the tests that apply it: the doc's block is compared with :func:`ledger_roles_sql` by a test,
so they cannot drift. The writer can only append (INSERT entries and refs, move the head row);
the auditor can only read; the owner creates the schema and is not used by the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.dialects import postgresql

from retentiond.audit.schema import entries_table, head_table, ref_filters_table, refs_table

LEDGER_SCHEMA = "retentiond_audit"


@dataclass(frozen=True)
class LedgerRoles:
    """Names of the three ledger roles, the ledger's schema and its database."""

    owner: str = "retentiond_owner"
    writer: str = "retentiond_writer"
    auditor: str = "retentiond_auditor"
    schema: str = LEDGER_SCHEMA
    database: str = "audit"


def _q(name: str) -> str:
    """Return ``name`` quoted as a PostgreSQL identifier when it needs quoting."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's constructor is untyped
    return str(dialect.identifier_preparer.quote(name))


def superuser_sql(roles: LedgerRoles) -> list[str]:
    """Return the statements a superuser runs once: roles, schema, search paths."""
    owner, writer, auditor, schema, db = (
        _q(roles.owner),
        _q(roles.writer),
        _q(roles.auditor),
        _q(roles.schema),
        _q(roles.database),
    )
    return [
        f"CREATE ROLE {owner} LOGIN;      -- creates the schema; not used by the daemon",
        f"CREATE ROLE {writer} LOGIN;     -- the daemon",
        f"CREATE ROLE {auditor} LOGIN;    -- auditors: read only",
        f"CREATE SCHEMA {schema} AUTHORIZATION {owner};",
        f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;",
        f"GRANT USAGE ON SCHEMA {schema} TO {writer}, {auditor};",
        f"ALTER ROLE {owner}   IN DATABASE {db} SET search_path = {schema};",
        f"ALTER ROLE {writer}  IN DATABASE {db} SET search_path = {schema};",
        f"ALTER ROLE {auditor} IN DATABASE {db} SET search_path = {schema};",
    ]


def owner_grants(roles: LedgerRoles) -> list[str]:
    """Return the GRANTs the owner runs after ``retentiond audit init`` created the tables."""
    entries, refs, head = entries_table.name, refs_table.name, head_table.name
    filters = ref_filters_table.name
    writer, auditor = _q(roles.writer), _q(roles.auditor)
    return [
        f"GRANT SELECT, INSERT ON {entries}, {refs}, {filters} TO {writer};",
        f"GRANT SELECT, UPDATE ON {head} TO {writer};   -- the append lock and head move",
        f"GRANT SELECT ON {entries}, {refs}, {filters}, {head} TO {auditor};",
    ]


def ledger_roles_sql(roles: LedgerRoles | None = None) -> str:
    """Return the whole administrator's script of the ledger roles (the block of docs/auditing.md)."""
    roles = roles or LedgerRoles()
    lines = ["-- as a superuser, once", *superuser_sql(roles), ""]
    lines += [
        f"-- as {roles.owner}: create tables and triggers",
        f"--   retentiond -c owner.toml audit init   "
        f'(owner.toml: [audit] url = "postgresql+psycopg://{roles.owner}@db/{roles.database}")',
        f"-- then, as {roles.owner}:",
        *owner_grants(roles),
    ]
    return "\n".join(lines) + "\n"


def statements(lines: list[str]) -> list[str]:
    """Return ``lines`` without their trailing ``;`` and ``-- comment``, ready to execute one by one."""
    out = []
    for line in lines:
        code = line.split("--", 1)[0].strip()
        if code:
            out.append(code.rstrip(";").strip())
    return out
