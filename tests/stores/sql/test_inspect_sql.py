"""Checks of SQL targets against real PostgreSQL and SQLite schemas (``retentiond.stores.sql.inspect``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from retentiond.config.loader import load_config
from retentiond.config.models import Settings
from retentiond.stores.sql.inspect import REDACT_MARKER, SchemaCatalog, check_sql_target, inspect_sql_target

STORE = """
[stores.app]
kind = "sql"
url_env = "RTD_TEST_APP_URL"
"""


def settings(tmp_path: Path, body: str) -> Settings:
    """Return the settings of a config made of one SQL store and ``body``."""
    (tmp_path / "holds.toml").write_text("")
    path = tmp_path / "retention.toml"
    path.write_text(STORE + body)
    return load_config(path).settings


def target(table: str = "tickets", *, action: str = "delete", extra: str = "", category: str = "support") -> str:
    """Return the TOML of a category with one SQL target on ``table`` plus ``extra`` target keys."""
    return f"""
[categories.{category}]
retain = "30d"
action = "{action}"
  [[categories.{category}.sql]]
  store = "app"
  table = "{table}"
  key = ["id"]
  age_column = "closed_at"
{extra}
"""


def run_ddl(engine: sa.Engine, *statements: str) -> None:
    """Execute fixed DDL statements of a test schema."""
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def paths(engine: sa.Engine, config: Settings, category: str = "support", index: int = 0) -> list[str]:
    """Return the paths of the issues of one target."""
    with engine.connect() as conn:
        return [issue.path for issue in check_sql_target(conn, config, category, index)]


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on an empty SQLite file."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    yield engine
    engine.dispose()


#: A history table (TOML inline tables are one line: the line is built from two).
HISTORY = (
    '  history = { table = "ticket_versions", key = ["version_id"], parent = ["ticket_id"], '
    'superseded_column = "superseded_at" }\n'
)

GOOD_PG = (
    "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamptz, account_id text NOT NULL, "
    "status text NOT NULL)",
    "CREATE TABLE ticket_versions (version_id bigint PRIMARY KEY, ticket_id bigint NOT NULL "
    "REFERENCES tickets(id) ON DELETE CASCADE, superseded_at timestamptz NOT NULL, body text)",
)


class TestPostgresTargets:
    """Targets checked against a fresh PostgreSQL database."""

    def test_good_schema_passes(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """A table with a timestamptz age column, matching key, subject, match and history is accepted."""
        run_ddl(pg_engine, *GOOD_PG)
        config = settings(
            tmp_path,
            target(
                extra="""
  subject_column = "account_id"
  match = { status = "closed" }
"""
                + HISTORY
            ),
        )
        assert [] == paths(pg_engine, config)

    def test_missing_table(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """A table that does not exist is refused at the target's table path."""
        assert ["categories.support.sql[0].table"] == paths(pg_engine, settings(tmp_path, target("nope")))

    def test_missing_columns(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """Missing age, subject and match columns are each refused at their own path."""
        run_ddl(pg_engine, "CREATE TABLE tickets (id bigint PRIMARY KEY, created_at timestamptz)")
        config = settings(tmp_path, target(extra='  subject_column = "who"\n  match = { state = "x" }\n'))
        expected = [
            "categories.support.sql[0].age_column",
            "categories.support.sql[0].subject_column",
            "categories.support.sql[0].match.state",
        ]
        assert expected == paths(pg_engine, config)

    @pytest.mark.parametrize("column_type", ["text", "integer", "date", "timestamp"])
    def test_age_column_not_timestamptz(self, pg_engine: sa.Engine, tmp_path: Path, column_type: str) -> None:
        """Text, integer, date and naive timestamp age columns are refused without age_timezone."""
        run_ddl(pg_engine, f"CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at {column_type})")
        assert ["categories.support.sql[0].age_column"] == paths(pg_engine, settings(tmp_path, target()))

    def test_naive_timestamp_with_age_timezone(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """A naive timestamp is accepted when the target declares its zone."""
        run_ddl(pg_engine, "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamp)")
        assert [] == paths(pg_engine, settings(tmp_path, target(extra='  age_timezone = "Europe/Berlin"\n')))

    def test_text_age_with_age_timezone_still_refused(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """age_timezone does not make a text column a timestamp."""
        run_ddl(pg_engine, "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at text)")
        assert ["categories.support.sql[0].age_column"] == paths(
            pg_engine, settings(tmp_path, target(extra='  age_timezone = "UTC"\n'))
        )

    def test_key_not_primary_key(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """A key that is neither primary nor unique is refused; a missing key column is refused."""
        run_ddl(pg_engine, "CREATE TABLE tickets (id bigint, closed_at timestamptz)")
        assert ["categories.support.sql[0].key"] == paths(pg_engine, settings(tmp_path, target()))

    def test_unique_key_is_a_note(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """A unique, non-primary key is accepted with a note."""
        run_ddl(
            pg_engine, "CREATE TABLE tickets (pk serial PRIMARY KEY, id bigint NOT NULL UNIQUE, closed_at timestamptz)"
        )
        with pg_engine.connect() as conn:
            findings = inspect_sql_target(conn, settings(tmp_path, target()), "support", 0)
        assert ([], ["categories.support.sql[0].key"]) == (findings.issues, [n.path for n in findings.notes])

    def test_cascade_from_outside_table(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """ON DELETE CASCADE from a table outside the category is refused, also across schemas."""
        run_ddl(
            pg_engine,
            *GOOD_PG,
            "CREATE TABLE invoices (id bigint PRIMARY KEY, ticket_id bigint REFERENCES tickets(id) ON DELETE CASCADE)",
            "CREATE SCHEMA billing",
            "CREATE TABLE billing.notes (id bigint PRIMARY KEY, "
            "ticket_id bigint REFERENCES public.tickets(id) ON DELETE CASCADE)",
        )
        with pg_engine.connect() as conn:
            issues = check_sql_target(conn, settings(tmp_path, target()), "support", 0)
        assert ["categories.support.sql[0].table"] * 3 == [i.path for i in issues]
        assert 3 == sum("ON DELETE CASCADE" in i.message for i in issues)
        assert {"public.invoices", "billing.notes", "public.ticket_versions"} == {
            name
            for i in issues
            for name in ("public.invoices", "billing.notes", "public.ticket_versions")
            if name in i.message
        }

    def test_cascade_into_history_from_same_category_is_allowed(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """The history table's own cascade and a second target of the category are not refusals."""
        run_ddl(
            pg_engine,
            *GOOD_PG,
            "CREATE TABLE attachments (id bigint PRIMARY KEY, closed_at timestamptz, "
            "ticket_id bigint REFERENCES tickets(id) ON DELETE CASCADE)",
        )
        config = settings(
            tmp_path,
            target(
                extra=HISTORY
                + """  [[categories.support.sql]]
  store = "app"
  table = "attachments"
  key = ["id"]
  age_column = "closed_at"
"""
            ),
        )
        assert ([], []) == (paths(pg_engine, config, index=0), paths(pg_engine, config, index=1))

    def test_cascade_into_anonymized_table_is_not_refused(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """An anonymize target never deletes its rows, so a cascade into it is harmless."""
        run_ddl(
            pg_engine,
            *GOOD_PG,
            "CREATE TABLE invoices (id bigint PRIMARY KEY, ticket_id bigint REFERENCES tickets(id) ON DELETE CASCADE)",
        )
        config = settings(tmp_path, target(action="anonymize", extra='  anonymize = { account_id = "hmac" }\n'))
        assert [] == paths(pg_engine, config)

    def test_history_checks(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """Missing history table columns and a text superseded column are refused at their paths."""
        run_ddl(
            pg_engine,
            "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamptz)",
            "CREATE TABLE ticket_versions (version_id bigint PRIMARY KEY, superseded_at text)",
        )
        config = settings(
            tmp_path,
            target(extra=HISTORY),
        )
        expected = ["categories.support.sql[0].history.parent", "categories.support.sql[0].history.superseded_column"]
        assert expected == paths(pg_engine, config)

    def test_missing_history_table(self, pg_engine: sa.Engine, tmp_path: Path) -> None:
        """A history table that does not exist is refused."""
        run_ddl(pg_engine, "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamptz)")
        config = settings(
            tmp_path,
            target(
                extra="""
  history = { table = "versions", key = ["version_id"], parent = ["ticket_id"], superseded_column = "superseded_at" }
"""
            ),
        )
        assert ["categories.support.sql[0].history.table"] == paths(pg_engine, config)


class TestPostgresAnonymize:
    """Anonymize strategies against the column's type and nullability."""

    SCHEMA = (
        "CREATE TABLE invoices (id bigint PRIMARY KEY, closed_at timestamptz, email text NOT NULL, name varchar(200), "
        "short varchar(8), ref varchar(32), ip inet, ip_text varchar(45), amount integer, issued date, status text)"
    )

    @pytest.mark.parametrize(
        ("column", "strategy", "ok"),
        [
            ("name", "null", True),
            ("email", "null", False),
            ("email", "redact", True),
            ("short", "redact", False),
            ("amount", "redact", False),
            ("ref", "hmac", False),
            ("name", "hmac", True),
            ("short", "fixed:gone", True),
            ("short", "fixed:far too long", False),
            ("ip", "truncate_ip", True),
            ("ip_text", "truncate_ip", True),
            ("amount", "truncate_ip", False),
            ("issued", "year", True),
            ("name", "year", False),
            ("status", "month", False),
        ],
    )
    def test_strategy_fits_column(
        self, pg_engine: sa.Engine, tmp_path: Path, column: str, strategy: str, ok: bool
    ) -> None:
        """Each strategy is accepted exactly on the columns it can write."""
        run_ddl(pg_engine, self.SCHEMA)
        config = settings(
            tmp_path, target("invoices", action="anonymize", extra=f'  anonymize = {{ {column} = "{strategy}" }}\n')
        )
        expected = [] if ok else [f"categories.support.sql[0].anonymize.{column}"]
        assert expected == paths(pg_engine, config)

    def test_redact_marker_length(self) -> None:
        """The marker the length check assumes is the documented one."""
        assert "[redacted]" == REDACT_MARKER


class TestPostgresPrivileges:
    """The connected role needs the privileges its action uses."""

    def test_missing_delete_privilege(self, pg_engine: sa.Engine, pg_url: str, tmp_path: Path) -> None:
        """A role that may only SELECT is refused for a delete target."""
        import uuid

        role = f"rtd_ro_{uuid.uuid4().hex[:8]}"
        run_ddl(
            pg_engine,
            "CREATE TABLE tickets (id bigint PRIMARY KEY, closed_at timestamptz)",
            f'CREATE ROLE "{role}" LOGIN',
            f'GRANT SELECT ON tickets TO "{role}"',
        )
        engine = sa.create_engine(sa.make_url(pg_url).set(username=role))
        try:
            with engine.connect() as conn:
                issues = check_sql_target(conn, settings(tmp_path, target()), "support", 0)
            assert (
                ["categories.support.sql[0].table"] * 2,
                f"the connected role {role} lacks CREATE on schema public (the outbox table retentiond_outbox "
                "does not exist yet): have a DBA create it (`retentiond print-grants`) or "
                f"GRANT CREATE ON SCHEMA public TO {role};",
                f"the connected role {role} lacks DELETE on public.tickets: GRANT DELETE ON public.tickets TO {role};",
            ) == ([i.path for i in issues], *[i.message for i in issues])
        finally:
            engine.dispose()
            run_ddl(pg_engine, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"')


class TestSqliteTargets:
    """Targets checked against SQLite, which stores timestamps as text."""

    def test_datetime_is_accepted_as_utc(self, sqlite_engine: sa.Engine, tmp_path: Path) -> None:
        """A DATETIME age column passes with a note that values are taken as UTC."""
        run_ddl(sqlite_engine, "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at DATETIME, email TEXT)")
        with sqlite_engine.connect() as conn:
            findings = inspect_sql_target(conn, settings(tmp_path, target()), "support", 0)
        assert ([], ["categories.support.sql[0].age_column"]) == (findings.issues, [n.path for n in findings.notes])
        assert "UTC" in findings.notes[0].message

    @pytest.mark.parametrize("column_type", ["TEXT", "INTEGER", "DATE"])
    def test_non_timestamp_age_refused(self, sqlite_engine: sa.Engine, tmp_path: Path, column_type: str) -> None:
        """Text, integer and date age columns are refused on SQLite too."""
        run_ddl(sqlite_engine, f"CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at {column_type})")
        assert ["categories.support.sql[0].age_column"] == paths(sqlite_engine, settings(tmp_path, target()))

    def test_cascade_found_through_pragma(self, sqlite_engine: sa.Engine, tmp_path: Path) -> None:
        """A column-level ON DELETE CASCADE from an outside table is refused."""
        run_ddl(
            sqlite_engine,
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at TIMESTAMP)",
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, "
            "ticket_id INTEGER REFERENCES tickets(id) ON DELETE CASCADE)",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, ticket_id INTEGER, "
            "FOREIGN KEY (ticket_id) REFERENCES tickets(id))",
        )
        with sqlite_engine.connect() as conn:
            findings = inspect_sql_target(conn, settings(tmp_path, target()), "support", 0)
        assert (["categories.support.sql[0].table"], ["categories.support.sql[0].table"]) == (
            [i.path for i in findings.issues],
            [n.path for n in findings.notes if "notes" in n.message],
        )

    def test_null_on_not_null_column(self, sqlite_engine: sa.Engine, tmp_path: Path) -> None:
        """The null strategy on a NOT NULL column is refused."""
        run_ddl(sqlite_engine, "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at DATETIME, email TEXT NOT NULL)")
        config = settings(tmp_path, target(action="anonymize", extra='  anonymize = { email = "null" }\n'))
        assert ["categories.support.sql[0].anonymize.email"] == paths(sqlite_engine, config)

    def test_catalog_is_shared(self, sqlite_engine: sa.Engine, tmp_path: Path) -> None:
        """One catalog reflects a table once for every target using it."""
        run_ddl(sqlite_engine, "CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at DATETIME)")
        config = settings(tmp_path, target())
        with sqlite_engine.connect() as conn:
            catalog = SchemaCatalog(conn)
            first = catalog.table("tickets")
            check_sql_target(conn, config, "support", 0, catalog=catalog)
            assert first is catalog.table("tickets")
