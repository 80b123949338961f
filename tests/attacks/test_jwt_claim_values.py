"""I1 attacks on claim values a validly signed token can carry.

Class 1 — absurd NumericDates: huge integers, ``1e308``, ``1e400`` (which
JSON parsers read as infinity), ``Infinity``/``NaN`` literals, negatives, in
``exp``, ``nbf`` and ``iat``, through the JWT verifier and through
introspection answers. Each is a :class:`TokenInvalid` with a reason code,
never an ``OverflowError`` or ``ValueError`` (hypothesis over numbers).

Class 2 — scope separators: RFC 6749 section 3.3 separates scopes with
U+0020 only. Any other white space (tab, line breaks, no-break and other
Unicode spaces), doubled, leading or trailing spaces refuse the token
(``scope_malformed``) instead of guessing scopes (hypothesis over
separators).

Class 3 — misleading messages: a wrong audience names the expected
audience, not the issuer; an http ``jwks_uri`` names the argument that
really exists.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import PolicyError, TokenInvalid
from aiinvariants.auth import JWTVerifier
from aiinvariants.auth._claims import MAX_NUMERIC_DATE, numeric_date
from auth_support import AUDIENCE, ISSUER, claims, mint, rsa_key, verifier


def signed_raw(payload: str) -> str:
    """A token whose payload is exactly ``payload`` (numbers as written)."""
    key = rsa_key()
    return jwt.api_jws.encode(
        payload.encode(),
        key.private,
        algorithm=key.alg,
        headers={"typ": "at+jwt", "kid": key.kid},
    )


def with_number(name: str, literal: str) -> str:
    base = json.dumps(claims())
    # Replace the claim's value by the literal text, as an attacker would.
    data = json.loads(base)
    data[name] = "__N__"
    return signed_raw(json.dumps(data).replace('"__N__"', literal))


ABSURD = [
    # The one strict JSON parser refuses a number literal over 400 characters
    # or one that overflows to infinity before any claim is read (malformed).
    ("10" + "0" * 400, "malformed"),
    ("10" + "0" * 300, "claim_range"),
    ("1e308", "claim_range"),
    ("1e400", "malformed"),
    ("-1e400", "malformed"),
    ("-1", "claim_range"),
    ("-" + "9" * 400, "malformed"),
    ("-" + "9" * 300, "claim_range"),
    ("253402300800", "claim_range"),
    ("Infinity", "malformed"),
    ("NaN", "malformed"),
    ("-Infinity", "malformed"),
]


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(("literal", "code"), ABSURD)
def test_absurd_numeric_dates_are_token_invalid(
    name: str, literal: str, code: str
) -> None:
    token = with_number(name, literal)
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(token)
    assert info.value.code == code
    assert code in TokenInvalid.__doc__ or code in _reason_codes()


def _reason_codes() -> set[str]:
    from aiinvariants.auth import REASON_CODES

    return set(REASON_CODES)


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.integers(min_value=-(10**500), max_value=10**500),
        st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_any_number_is_a_date_or_a_reason_code(value: float) -> None:
    in_range = isinstance(value, int) or value == value  # not NaN
    in_range = in_range and 0 <= value <= MAX_NUMERIC_DATE
    if in_range:
        assert numeric_date({"exp": value}, "exp", required=True) == float(value)
    else:
        with pytest.raises(TokenInvalid) as info:
            numeric_date({"exp": value}, "exp", required=True)
        assert info.value.code in ("claim_type", "claim_range")


def test_absurd_dates_in_an_introspection_answer_are_token_invalid() -> None:
    # Introspection reads exp/nbf with the same rule (no OverflowError).
    for value in (10**400, 1e308, -5):
        with pytest.raises(TokenInvalid) as info:
            numeric_date({"exp": value, "active": True}, "exp", required=False)
        assert info.value.code == "claim_range"


SEPARATORS = [
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\u00a0",
    "\u2003",
    "\u3000",
    "\u2028",
    "\u200b",
    "  ",
]


@pytest.mark.parametrize("sep", SEPARATORS, ids=repr)
def test_scope_split_on_anything_but_one_space_is_refused(sep: str) -> None:
    token = mint(scope=f"tickets:read{sep}admin:all")
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(token)
    assert info.value.code == "scope_malformed"


@pytest.mark.parametrize("scope", [" tickets:read", "tickets:read ", " "])
def test_leading_trailing_or_blank_scope_is_refused(scope: str) -> None:
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(mint(scope=scope))
    assert info.value.code == "scope_malformed"


def test_single_spaces_and_empty_scope_are_read() -> None:
    assert verifier().verify(mint(scope="a:b c:d")).scopes == {"a:b", "c:d"}
    assert verifier().verify(mint(scope="")).scopes == frozenset()


@settings(max_examples=100, deadline=None)
@given(
    words=st.lists(
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E)).filter(
            lambda w: w and '"' not in w and "\\" not in w
        ),
        min_size=2,
        max_size=4,
    ),
    sep=st.text(
        alphabet=st.characters(categories=["Zs", "Cc", "Zl", "Zp"]),
        min_size=1,
        max_size=3,
    ),
)
def test_scopes_are_exactly_the_space_separated_words(
    words: list[str], sep: str
) -> None:
    token = mint(scope=sep.join(words))
    if sep == " ":
        assert verifier().verify(token).scopes == frozenset(words)
    else:
        with pytest.raises(TokenInvalid) as info:
            verifier().verify(token)
        assert info.value.code == "scope_malformed"


def test_wrong_audience_names_the_expected_audience() -> None:
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(mint(aud="https://other.example.test"))
    assert info.value.code == "wrong_audience"
    assert AUDIENCE in str(info.value)
    assert ISSUER not in str(info.value)


def test_http_jwks_uri_error_names_the_real_argument() -> None:
    kwargs: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "jwks_uri": "http://keys.example.test/jwks",
    }
    with pytest.raises(PolicyError) as info:
        JWTVerifier(**kwargs)
    assert "unsafe_allow_http_jwks_uri=True" in str(info.value)
    assert "unsafe_allow_http=True" not in str(info.value)
