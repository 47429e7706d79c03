"""Record refs, canonical key text and the typed events (no raw keys can reach the ledger)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentiond.audit import (
    Action,
    Batch,
    BatchId,
    HoldKind,
    HoldPlaced,
    Name,
    Outcome,
    RecordRef,
    RefMaker,
    RunStarted,
)
from retentiond.audit.canonical import canonical_dumps, entry_body
from retentiond.audit.refs import RefBlock, canonical_key

KEY = b"0123456789abcdef0123456789abcdef"


def _hmac(message: str) -> bytes:
    return hmac.new(KEY, message.encode(), hashlib.sha256).digest()


class TestCanonicalKey:
    """The canonical key text of docs/auditing.md."""

    def test_single_values(self) -> None:
        u = uuid.UUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
        when = datetime(2026, 1, 2, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))
        assert ["42", "abc", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "2026-01-02T03:05:06.000000Z", "2026-01-02"] == [
            canonical_key((42,)),
            canonical_key(("abc",)),
            canonical_key((u,)),
            canonical_key((when,)),
            canonical_key((date(2026, 1, 2),)),
        ]

    def test_composite_is_compact_json_array(self) -> None:
        assert '["7","x\\"y"]' == canonical_key((7, 'x"y'))

    @pytest.mark.parametrize("bad", [(1.5,), (True,), (None,), (b"x",), ()])
    def test_unsupported_values_refused(self, bad: tuple[object, ...]) -> None:
        with pytest.raises(TypeError):
            canonical_key(bad)

    def test_naive_datetime_refused(self) -> None:
        with pytest.raises(ValueError):
            canonical_key((datetime(2026, 1, 1),))


class TestRefMaker:
    """Refs are the HMAC of SPEC §5's canonical string."""

    def test_sql_ref(self) -> None:
        assert _hmac("v1|app|support_tickets|42") == bytes(RefMaker(KEY).sql("app", "support_tickets", (42,)))

    def test_s3_ref_with_and_without_version(self) -> None:
        maker = RefMaker(KEY)
        assert (_hmac("v1|files|bucket-a|t/a.pdf#v1"), _hmac("v1|files|bucket-a|t/a.pdf#null")) == (
            bytes(maker.s3("files", "bucket-a", "t/a.pdf", "v1")),
            bytes(maker.s3("files", "bucket-a", "t/a.pdf", None)),
        )

    def test_sql_many_equals_sql(self) -> None:
        maker = RefMaker(KEY)
        keys = [(i, f"k{i}") for i in range(50)]
        assert [maker.sql("app", "t", k) for k in keys] == maker.sql_many("app", "t", keys)
        assert all(type(r) is RecordRef for r in maker.sql_many("app", "t", keys))

    def test_raw_bytes_cannot_become_refs(self) -> None:
        with pytest.raises(TypeError):
            RecordRef(b"x" * 32)

    def test_short_key_refused(self) -> None:
        with pytest.raises(ValueError):
            RefMaker(b"short")

    def test_table_must_be_a_name(self) -> None:
        with pytest.raises(ValueError):
            RefMaker(KEY).sql("app", "t|x", (1,))


def _batch(**overrides: object) -> Batch:
    values: dict[str, object] = dict(
        batch_id=BatchId.new(),
        category="support",
        store="app",
        target="tickets",
        action=Action.DELETE,
        outcome=Outcome.DELETED,
        count=1,
        refs=(RefMaker(KEY).sql("app", "tickets", (1,)),),
    )
    values.update(overrides)
    return Batch(**values)  # type: ignore[arg-type]


class TestEventTypes:
    """Events accept names, counts, enums, refs, datetimes — nothing else."""

    @pytest.mark.parametrize("raw", [b"x" * 32, "a" * 64, "12345"])
    def test_raw_ref_is_type_error(self, raw: object) -> None:
        with pytest.raises(TypeError):
            _batch(refs=(raw,))

    def test_refs_not_a_tuple_is_type_error(self) -> None:
        with pytest.raises(TypeError):
            _batch(refs=b"x" * 32)

    @pytest.mark.parametrize("bad", ["alice@example.com", "John Smith", "x" * 201, "", "a;drop"])
    def test_names_refuse_free_text(self, bad: str) -> None:
        with pytest.raises(ValueError):
            _batch(category=bad)

    def test_name_refuses_bytes(self) -> None:
        with pytest.raises(TypeError):
            _batch(store=b"app")

    def test_counts_are_non_negative_ints(self) -> None:
        with pytest.raises(TypeError):
            _batch(count=1.0)
        with pytest.raises(ValueError):
            _batch(count=-1, refs=())

    def test_count_matches_refs(self) -> None:
        with pytest.raises(ValueError):
            _batch(count=2)

    def test_outcome_enum(self) -> None:
        with pytest.raises(ValueError):
            _batch(outcome="vanished")
        assert Outcome.HELD == _batch(outcome="held", refs=(), count=0).outcome

    def test_batch_id_must_be_uuid(self) -> None:
        with pytest.raises(ValueError):
            _batch(batch_id="batch-1")

    def test_naive_datetime_refused(self) -> None:
        with pytest.raises(ValueError):
            RunStarted(run_start=datetime(2026, 1, 1), cutoffs={})

    def test_hold_subjects_are_refs(self) -> None:
        maker = RefMaker(KEY)
        hold = HoldPlaced(
            hold_id="LIT-2026-014",
            kind=HoldKind.LEGAL,
            categories=("support",),
            placed_at=datetime.now(UTC),
            expires_at=None,
            hold_sha256="0" * 64,
            subject_refs=(maker.subject("acct_1042"),),
        )
        assert 32 == len(hold.refs_blob())
        with pytest.raises(TypeError):
            HoldPlaced(
                hold_id="LIT-1",
                kind="legal",
                categories=("support",),
                placed_at=datetime.now(UTC),
                expires_at=None,
                hold_sha256="0" * 64,
                subject_refs=("acct_1042",),
            )

    def test_name_type(self) -> None:
        assert "app.support_tickets" == Name("app.support_tickets")


class TestCanonicalEntry:
    """The spliced entry body is exactly the canonical JSON of the entry."""

    def test_body_equals_canonical_dumps(self) -> None:
        fields = {"b": [1, "x"], "a": {"z": None, "é": "ü"}}
        kwargs = dict(
            seq=3,
            time="2026-01-01T00:00:00.000000Z",
            event="batch",
            run_id="r",
            category='c"q',
            batch_id=None,
            refs=b"\x01" * 64,
        )
        body = entry_body(fields=canonical_dumps(fields), **kwargs)  # type: ignore[arg-type]
        expected = canonical_dumps({**kwargs, "fields": fields, "refs": (b"\x01" * 64).hex()})
        assert expected.encode() == body

    def test_floats_refused(self) -> None:
        with pytest.raises(TypeError):
            canonical_dumps({"a": 1.0})


class TestBulkRefs:
    """Bulk refs (copied SHA-256 states) are the HMAC of the documented message, for any key length."""

    @settings(max_examples=60, deadline=None)
    @given(
        key=st.binary(min_size=16, max_size=160),
        texts=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=20),
    )
    def test_sql_texts_is_hmac_sha256(self, key: bytes, texts: list[str]) -> None:
        """sql_texts(store, table, texts) equals HMAC-SHA256(key, "v1|store|table|" + text) of each."""
        expected = [hmac.new(key, f"v1|app|t|{t}".encode(), hashlib.sha256).digest() for t in texts]

        assert expected == [bytes(r) for r in RefMaker(key).sql_texts("app", "t", texts)]

    @settings(max_examples=60, deadline=None)
    @given(
        key=st.binary(min_size=16, max_size=160),
        texts=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=20),
    )
    def test_text_block_equals_sql_texts(self, key: bytes, texts: list[str]) -> None:
        """sql_text_block holds exactly sql_texts' refs, in order."""
        maker = RefMaker(key)
        expected = tuple(maker.sql_texts("app", "t", texts))
        block = maker.sql_text_block("app", "t", texts)

        assert (expected, len(expected)) == (block.refs(), len(block))

    def test_block_cannot_be_made_from_raw_bytes(self) -> None:
        """A RefBlock comes from RefMaker only."""
        with pytest.raises(TypeError):
            RefBlock(b"\0" * 64)
