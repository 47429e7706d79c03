"""HMAC-SHA256 made by PostgreSQL's built-in sha256 equals Python's, and the key stays out of statements."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentiond.audit.refs import canonical_key
from retentiond.stores.sql.engine import statement_engine
from retentiond.stores.sql.keyed import KeyedHash, json_texts, key_text_sql, pads

pytestmark = pytest.mark.pg

# PostgreSQL text cannot hold NUL; everything else (any plane, combining marks, quotes) must match.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80)
KEYS = st.binary(min_size=16, max_size=130)


def _digest(engine: sa.Engine, key: bytes, message: sa.ColumnElement[Any]) -> bytes:
    keyed = KeyedHash({"k": key})
    with engine.begin() as conn:
        keyed.load(conn)
        return bytes(conn.execute(sa.select(keyed.digest("k", message))).scalar_one())


class TestPads:
    """The padded keys are RFC 2104's."""

    def test_long_key_is_hashed_first(self) -> None:
        """A key longer than the block is replaced by its SHA-256 before padding."""
        key = b"k" * 100
        expected = pads(hashlib.sha256(key).digest())

        assert expected == pads(key)


class TestDigest:
    """The statement's HMAC is Python's HMAC, byte for byte."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(key=KEYS, message=TEXT)
    def test_text_messages(self, pg_engine: sa.Engine, key: bytes, message: str) -> None:
        """Any key length and any text give the same digest."""
        expected = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()

        assert expected == _digest(pg_engine, key, sa.literal(message, sa.Text))

    def test_keys_are_gone_after_commit(self, pg_engine: sa.Engine) -> None:
        """The temporary table is empty once the transaction that loaded the keys commits."""
        keyed = KeyedHash({"k": b"s" * 32})
        with pg_engine.connect() as conn:
            with conn.begin():
                keyed.load(conn)
            with conn.begin():
                left = conn.execute(sa.text("SELECT count(*) FROM pg_temp.retentiond_hmac_keys")).scalar_one()

        assert 0 == left

    def test_session_keys_follow_the_hash_in_use(self, pg_url: str) -> None:
        """On an autocommit connection the keys stay for the session and are replaced by another KeyedHash's."""
        first, second = KeyedHash({"k": b"a" * 32}), KeyedHash({"k": b"b" * 32})
        message = sa.literal("m", sa.Text)
        engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                made = []
                for keyed in (first, first, second, first):
                    keyed.load_session(conn)
                    made.append(bytes(conn.execute(sa.select(keyed.digest("k", message))).scalar_one()))
                rows = conn.execute(sa.text("SELECT count(*) FROM pg_temp.retentiond_hmac_keys")).scalar_one()
        finally:
            engine.dispose()
        expected = [hmac.new(k * 32, b"m", hashlib.sha256).digest() for k in (b"a", b"a", b"b", b"a")]

        assert (expected, 1) == (made, rows)

    def test_key_is_not_a_statement_parameter(self, pg_engine: sa.Engine) -> None:
        """Neither the key nor its pads appear in the compiled statement or its parameters."""
        key = b"secret-key-bytes-0123456789"
        keyed = KeyedHash({"k": key})
        compiled = sa.select(keyed.digest("k", sa.literal("m", sa.Text))).compile(pg_engine)
        inner, outer = pads(key)
        params = list(compiled.params.values())

        assert [] == [p for p in params if isinstance(p, bytes) and p in (key, inner, outer)]
        assert key.hex() not in str(compiled)


class TestStatementEngine:
    """One-statement batches run on connections that start with the store's settings."""

    def test_settings_and_autocommit(self, pg_url: str) -> None:
        """Lock and statement timeouts, custom plans and UTC are set at connect; nothing is in a transaction."""
        engine = statement_engine(sa.create_engine(pg_url), timedelta(seconds=2), timedelta(minutes=5))
        try:
            with engine.connect() as conn:
                shown = [
                    conn.execute(sa.text(f"SHOW {name}")).scalar_one()
                    for name in ("lock_timeout", "statement_timeout", "plan_cache_mode", "TimeZone")
                ]
                conn.execute(sa.text("CREATE TEMPORARY TABLE committed_probe (i int)"))
                in_tx = conn.execute(sa.text("SELECT now() <> statement_timestamp()")).scalar_one()
        finally:
            engine.dispose()

        assert (["2s", "5min", "force_custom_plan", "UTC"], False) == (shown, in_tx)


class TestKeyText:
    """The canonical key text a batch statement returns is audit.refs.canonical_key's."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ident=st.integers(min_value=-(2**63), max_value=2**63 - 1), text=TEXT, u=st.uuids())
    def test_integer_text_and_uuid_keys(self, pg_engine: sa.Engine, ident: int, text: str, u: uuid.UUID) -> None:
        """bigint, text and uuid keys aggregated with json_agg come back as their canonical texts."""
        table = sa.Table(
            "keyed_probe",
            sa.MetaData(),
            sa.Column("i", sa.BigInteger),
            sa.Column("t", sa.Text),
            sa.Column("u", sa.Uuid),
            prefixes=["TEMPORARY"],
        )
        names = ("i", "t", "u")
        with pg_engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert().values(i=ident, t=text, u=u))
            made = {
                name: json.loads(
                    conn.execute(
                        sa.select(sa.cast(sa.func.json_agg(key_text_sql(table.c[name])), sa.Text))
                    ).scalar_one()
                )
                for name in names
            }
            table.drop(conn)
        expected = {name: [canonical_key((value,))] for name, value in zip(names, (ident, text, u), strict=True)}

        assert expected == made

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        idents=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=5),
        u=st.lists(st.uuids(), max_size=5),
    )
    def test_plain_joined_arrays_equal_json_agg(
        self, pg_engine: sa.Engine, idents: list[int], u: list[uuid.UUID]
    ) -> None:
        """json_texts' string_agg form of integer and UUID keys parses to json_agg's array (NULL when empty)."""
        ints = sa.Table("ints_probe", sa.MetaData(), sa.Column("i", sa.BigInteger), prefixes=["TEMPORARY"])
        uuids = sa.Table("uuids_probe", sa.MetaData(), sa.Column("u", sa.Uuid), prefixes=["TEMPORARY"])
        with pg_engine.begin() as conn:
            made = []
            for table, values in ((ints, idents), (uuids, u)):
                column = next(iter(table.c))
                table.create(conn)
                if values:
                    conn.execute(table.insert(), [{column.name: v} for v in values])
                texts = key_text_sql(column)
                assert texts is not None
                plain, agg = conn.execute(
                    sa.select(json_texts(texts, [column]), sa.cast(sa.func.json_agg(texts), sa.Text))
                ).one()
                made.append((None if plain is None else json.loads(plain), None if agg is None else json.loads(agg)))
                table.drop(conn)
        expected = [(e, e) for e in ([canonical_key((v,)) for v in vs] or None for vs in (idents, u))]

        assert expected == made

    def test_types_without_sql_text_are_refused(self) -> None:
        """Timestamps, dates, char(n) and enums keep Python's canonical text (None)."""
        columns = [
            sa.Column("a", sa.DateTime(timezone=True)),
            sa.Column("b", sa.Date),
            sa.Column("c", sa.CHAR(4)),
            sa.Column("d", sa.Enum("x", "y", name="e")),
            sa.Column("e", sa.Numeric),
        ]

        assert [None] * 5 == [key_text_sql(c) for c in columns]
