"""Canonical JSON is RFC 8785 (JCS): the RFC's published examples, and the ledger's old encoding equals it."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retentiond.audit.canonical import MAX_SAFE_INTEGER, canonical_dumps, canonical_text, entry_body, jcs_dumps
from tools.verify_ledger import jcs as standalone_jcs

# RFC 8785 section 3.2.2: the sample input and its canonical form.
RFC_SAMPLE_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], '
    '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", '
    '"literals": [null, true, false]}'
)
RFC_SAMPLE_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)

# RFC 8785 section 3.2.3: property sorting by UTF-16 code units (the emoji sorts before U+FB33).
RFC_SORT_INPUT = (
    '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", '
    '"1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", '
    '"\\u00f6": "Latin Small Letter O With Diaeresis"}'
)
RFC_SORT_ORDER = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]

# RFC 8785 appendix B: IEEE 754 double (hex) -> canonical number text.
RFC_NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


def _double(hex_text: str) -> float:
    return float(struct.unpack(">d", bytes.fromhex(hex_text))[0])


class TestRfc8785Examples:
    """The encoder reproduces the examples RFC 8785 publishes."""

    def test_sample(self) -> None:
        assert RFC_SAMPLE_OUTPUT == jcs_dumps(json.loads(RFC_SAMPLE_INPUT))

    def test_sorting_by_utf16(self) -> None:
        text = jcs_dumps(json.loads(RFC_SORT_INPUT))
        assert RFC_SORT_ORDER == list(json.loads(text, object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
        assert text.startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')

    @pytest.mark.parametrize("hex_text", sorted(RFC_NUMBERS))
    def test_numbers(self, hex_text: str) -> None:
        assert RFC_NUMBERS[hex_text] == jcs_dumps(_double(hex_text))

    @pytest.mark.parametrize("hex_text", ["7fffffffffffffff", "7ff0000000000000"])
    def test_nan_and_infinity_refused(self, hex_text: str) -> None:
        with pytest.raises(ValueError):
            jcs_dumps(_double(hex_text))

    def test_standalone_verifier_sorts_the_same(self) -> None:
        value = json.loads(RFC_SORT_INPUT)
        assert jcs_dumps(value) == standalone_jcs(value)


NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,12}", fullmatch=True)
SCALARS = st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(max_size=20)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4), max_leaves=12
)


class TestLedgerDomain:
    """On what the ledger can hold, the ledger's encoder, the old encoding and JCS are the same bytes."""

    @given(st.dictionaries(NAMES, VALUES, max_size=6))
    def test_old_encoding_is_jcs(self, fields: dict[str, object]) -> None:
        old = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert (jcs_dumps(fields), jcs_dumps(fields)) == (old, canonical_dumps(fields))
        assert jcs_dumps(fields) == canonical_text(fields) == standalone_jcs(fields)

    @given(
        seq=st.integers(1, MAX_SAFE_INTEGER),
        event=NAMES,
        run_id=st.none() | NAMES,
        text=st.text(max_size=30),
        refs=st.binary(max_size=96),
    )
    def test_entry_body_is_jcs(self, seq: int, event: str, run_id: str | None, text: str, refs: bytes) -> None:
        fields = {"reason": text, "count": seq}
        body = entry_body(
            seq=seq,
            time="2026-01-01T00:00:00.000000Z",
            event=event,
            run_id=run_id,
            category=None,
            batch_id=None,
            fields=canonical_dumps(fields),
            refs=refs,
        )
        entry = {
            "batch_id": None,
            "category": None,
            "event": event,
            "fields": fields,
            "refs": refs.hex(),
            "run_id": run_id,
            "seq": seq,
            "time": "2026-01-01T00:00:00.000000Z",
        }
        assert jcs_dumps(entry).encode() == body

    def test_non_bmp_keys_sorted_as_jcs(self) -> None:
        """Where plain sorted keys would differ (not in any ledger: names are ASCII), JCS wins."""
        value = {"\ufb33": 1, "\U0001f600": 2}
        assert '{"\U0001f600":2,"\ufb33":1}' == canonical_dumps(value)

    @pytest.mark.parametrize("bad", [1.5, 2**53, -(2**53), {"x": [0.1]}])
    def test_floats_and_unsafe_integers_refused(self, bad: object) -> None:
        with pytest.raises((TypeError, ValueError)):
            canonical_dumps(bad)
