"""The engine tests' environment (a ticket table on PostgreSQL, a config, holds, a ledger)."""

from tests.stores.sql.conftest import env, pg_env, sqlite_env  # noqa: F401 - fixtures used by these tests
