"""Database errors are named by SQLSTATE and object names, never by the values they carry."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from retentiond.errors import ConfigError, ExitCode, TemporaryFailure
from retentiond.stores.sql.engine import make_engine
from retentiond.stores.sql.errors import connection_error, describe

SECRET = "alice@example.org"


def failure(engine: sa.Engine, *statements: str) -> sa.exc.DBAPIError:
    """Return the error the last of ``statements`` raises (the others prepare it)."""
    with engine.connect() as conn:
        for statement in statements[:-1]:
            conn.execute(sa.text(statement))
        conn.commit()
        with pytest.raises(sa.exc.DBAPIError) as raised:
            conn.execute(sa.text(statements[-1]))
    return raised.value


class TestDescribeStatementErrors:
    """Statement errors keep the SQLSTATE and the object names and drop any value."""

    def test_restricting_foreign_key(self, pg_engine: sa.Engine) -> None:
        """A RESTRICT foreign key names its constraint and the table; DETAIL's key never appears."""
        error = failure(
            pg_engine,
            "CREATE TABLE parent (id text PRIMARY KEY)",
            "CREATE TABLE child (id int PRIMARY KEY, parent text REFERENCES parent ON DELETE RESTRICT)",
            f"INSERT INTO parent VALUES ('{SECRET}')",
            f"INSERT INTO child VALUES (1, '{SECRET}')",
            f"DELETE FROM parent WHERE id = '{SECRET}'",
        )
        described = describe(error)
        assert ("23503", "child_parent_fkey", "child", True) == (
            described.sqlstate,
            described.constraint,
            described.table,
            described.caused_by_records,
        )
        assert SECRET not in described.render()

    def test_data_error_message_carries_the_value(self, pg_engine: sa.Engine) -> None:
        """Class 22 messages quote the input: only the SQLSTATE and the condition are kept."""
        described = describe(failure(pg_engine, f"SELECT '{SECRET}'::int"))
        assert "SQLSTATE 22P02 InvalidTextRepresentation" == described.render()

    def test_trigger_raise(self, pg_engine: sa.Engine) -> None:
        """A trigger's RAISE text is the application's (it may quote the row): dropped."""
        error = failure(
            pg_engine,
            "CREATE TABLE t (id text PRIMARY KEY)",
            f"INSERT INTO t VALUES ('{SECRET}')",
            "CREATE FUNCTION no_delete() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'cannot delete %', OLD.id; END $$",
            "CREATE TRIGGER keep BEFORE DELETE ON t FOR EACH ROW EXECUTE FUNCTION no_delete()",
            "DELETE FROM t",
        )
        described = describe(error)
        assert ("P0001", True) == (described.sqlstate, described.caused_by_records)
        assert SECRET not in described.render()

    def test_statement_timeout_is_transient(self, pg_engine: sa.Engine) -> None:
        """57014 is retried; it is not caused by records."""
        described = describe(failure(pg_engine, "SET statement_timeout = 50", "SELECT pg_sleep(1)"))
        assert ("57014", True, False) == (described.sqlstate, described.transient, described.caused_by_records)


class TestConnectionError:
    """A store that cannot be used: configuration (78) or temporary (75), with the server's reason."""

    def connect(self, url: sa.URL) -> sa.exc.DBAPIError:
        with pytest.raises(sa.exc.DBAPIError) as raised:
            make_engine(url).connect().close()
        return raised.value

    def test_missing_database_is_configuration(self, pg_url: str) -> None:
        """No such database: exit 78 naming stores.<name>.url, the SQLSTATE and the database."""
        error = connection_error("app", self.connect(sa.make_url(pg_url).set(database="retentiond_no_such_db")))
        assert isinstance(error, ConfigError)
        assert (ExitCode.CONFIG, "stores.app.url") == (error.exit_code, error.issues[0].path)
        assert "SQLSTATE 3D000" in str(error) and "retentiond_no_such_db" in str(error)

    def test_refused_role_is_configuration(self, pg_url: str) -> None:
        """A role the server does not know: exit 78."""
        error = connection_error("app", self.connect(sa.make_url(pg_url).set(username="retentiond_no_such_role")))
        assert (ConfigError, "28000") == (type(error), str(error).split("SQLSTATE ")[1][:5])

    def test_refused_connection_is_temporary(self, pg_url: str) -> None:
        """Nothing listening: exit 75, with libpq's reason instead of a bare class name."""
        error = connection_error("app", self.connect(sa.make_url(pg_url).set(port=1)))
        assert isinstance(error, TemporaryFailure)
        assert ExitCode.TEMPORARY == error.exit_code
        assert "Connection refused" in str(error)
