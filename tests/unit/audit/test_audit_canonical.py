"""RFC 8785 canonical JSON, checked against the independent ``rfc8785`` package."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinvariants.audit import canonical_json
from aiinvariants.audit._canonical import canonical_number

rfc8785 = pytest.importorskip("rfc8785")

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_json)
def test_equals_the_independent_implementation(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(st.integers(0, 2**64 - 1))
def test_every_double_is_written_as_ecmascript_does(bits: int) -> None:
    value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    if math.isfinite(value):
        assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (123.456, "123.456"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2**53 - 1, "9007199254740991"),
    ],
)
def test_known_numbers(value: float, text: str) -> None:
    assert canonical_number(value) == text


def test_keys_sort_by_utf16_code_units() -> None:
    # U+10000 is D800 DC00 in UTF-16: before U+FB33, unlike in code points.
    data = {"\ufb33": 1, "\U00010000": 2, "\u20ac": 3, "\r": 4, "1": 5}
    assert canonical_json(data) == rfc8785.dumps(data)
    assert list(canonical_json(data).decode()).index("\U00010000") < list(
        canonical_json(data).decode()
    ).index("\ufb33")


@pytest.mark.parametrize(
    "bad", [math.nan, math.inf, -math.inf, 2**53 + 1, "a\ud800", {1: 2}, b"x", object()]
)
def test_values_without_a_canonical_form_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical_json(bad)


def test_nesting_is_bounded() -> None:
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        canonical_json(deep)


_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)


@given(
    top=st.dictionaries(st.text(max_size=4), _scalar, max_size=3),
    event=st.dictionaries(st.text(max_size=4), _scalar, max_size=3),
    details=st.dictionaries(
        st.text(max_size=4), _scalar | st.lists(_scalar), max_size=3
    ),
)
def test_the_fast_path_is_canonical_json_or_declines(
    top: dict[str, object], event: dict[str, object], details: dict[str, object]
) -> None:
    from aiinvariants.audit._records import _fast_canonical

    record = {**top, "event": {**event, "details": details}}
    fast = None
    try:
        fast = _fast_canonical(record)
    except UnicodeEncodeError:  # a lone surrogate: no canonical form either
        with pytest.raises(UnicodeEncodeError):
            canonical_json(record)
        return
    if fast is not None:
        assert fast == canonical_json(record)
