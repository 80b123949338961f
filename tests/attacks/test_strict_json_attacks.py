"""One strict JSON parser, attacked by class at every site that reads JSON it trusts.

Two readers of one document may keep different copies of a key, read a
NaN or an overflowing number differently, or stop at different places: so
the policy file, a JWT's header and payload, a JWK Set and an LLM request
body all refuse the same classes of document: duplicate keys at any depth,
NaN/Infinity and numbers that overflow, lone surrogates, a byte order mark,
trailing data, nesting past the bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.api_jws import PyJWS

from aiinvariants import Guard, Policy, PolicyError, TokenInvalid, load_policy
from aiinvariants._internal import strict_json
from aiinvariants.llm import guard_llm
from auth_support import (
    JWKSServer,
    b64,
    claims,
    jwks_of,
    jwks_server,
    mint,
    rsa_key,
    verifier,
)
from llm_support import LLMServer, closing, llm_server

__all__ = ["jwks_server", "llm_server"]


def nested_duplicate(depth: int) -> str:
    """``{"a": {"a": … {"k": 1, "k": 2} …}}`` with the duplicate ``depth`` deep."""
    inner = '{"k": 1, "k": 2}'
    for _ in range(depth):
        inner = '{"a": ' + inner + "}"
    return inner


#: Documents every strict reader refuses, by class, with the problem code.
HOSTILE: dict[str, tuple[bytes, str]] = {
    "duplicate at top": (b'{"k": 1, "k": 2}', "duplicate_key"),
    "duplicate in a list": (b'{"l": [{"k": 1, "k": 1}]}', "duplicate_key"),
    "duplicate spelled with an escape": (b'{"k": 1, "\\u006b": 2}', "duplicate_key"),
    "NaN": (b'{"n": NaN}', "constant"),
    "-Infinity": (b'{"n": -Infinity}', "constant"),
    "overflow to infinity": (b'{"n": 1e400}', "number"),
    "huge integer": (b'{"n": ' + b"9" * 5000 + b"}", "number"),
    "long fraction": (b'{"n": 0.' + b"1" * 1000 + b"}", "number"),
    "lone high surrogate": (b'{"s": "\\ud800"}', "surrogate"),
    "lone low surrogate key": (b'{"\\udc00": 1}', "surrogate"),
    "reversed pair": (b'{"s": "\\udc00\\ud800"}', "surrogate"),
    "byte order mark": (b'\xef\xbb\xbf{"k": 1}', "bom"),
    "trailing data": (b'{"k": 1} {"k": 2}', "syntax"),
    "trailing comma": (b'{"k": 1,}', "syntax"),
    "raw control character": (b'{"k": "a\x01b"}', "syntax"),
    "not UTF-8": (b'{"k": "\xff"}', "not_utf8"),
    "deep nesting": (b"[" * 129 + b"]" * 129, "too_deep"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_parser_refuses_each_class_with_its_code(name: str) -> None:
    data, problem = HOSTILE[name]
    with pytest.raises(strict_json.StrictJSONError) as info:
        strict_json.loads(data)
    assert info.value.problem == problem
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@pytest.mark.parametrize("depth", range(6))
def test_duplicate_keys_at_every_depth_name_the_object(depth: int) -> None:
    text = nested_duplicate(depth)
    with pytest.raises(strict_json.StrictJSONError) as info:
        strict_json.loads(text)
    assert info.value.problem == "duplicate_key"
    assert (info.value.line, info.value.column) == (1, 6 * depth + 1)


def test_what_is_strict_json_still_parses() -> None:
    text = '{"a": [1, -2.5e3, true, null, "\\ud83d\\ude00"], "b": {"a": 1}}'
    assert strict_json.loads(text) == json.loads(text)
    assert strict_json.loads("[" * 128 + "]" * 128) is not None
    # brackets inside strings are not nesting
    assert strict_json.loads(json.dumps(["[" * 500])) == ["[" * 500]


def test_a_lone_surrogate_in_text_input_is_refused() -> None:
    with pytest.raises(strict_json.StrictJSONError) as info:
        strict_json.loads('{"s": "\ud800"}')
    assert info.value.problem == "surrogate"


def test_size_bound() -> None:
    with pytest.raises(strict_json.StrictJSONError) as info:
        strict_json.loads(b"[" + b"1," * 100 + b"1]", max_bytes=100)
    assert info.value.problem == "too_large"


@settings(max_examples=60, deadline=None)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=5), inner, max_size=4).filter(
                # keys equal but for case are one key to the strict parser
                lambda d: len({k.casefold() for k in d}) == len(d)
            )
        ),
        max_leaves=20,
    ),
    key=st.text(max_size=5),
)
def test_property_strict_agrees_with_json_and_refuses_an_added_duplicate(
    value: Any, key: str
) -> None:
    text = json.dumps(value)
    assert strict_json.loads(text) == json.loads(text)
    doubled = f"{{{json.dumps(key)}: {text}, {json.dumps(key)}: 0}}"
    with pytest.raises(strict_json.StrictJSONError) as info:
        strict_json.loads(doubled)
    assert info.value.problem == "duplicate_key"


# -- the sites --------------------------------------------------------------------


# A policy file may start with a BOM (editors add one): the file reader
# drops it for YAML, TOML and JSON alike before parsing.
@pytest.mark.parametrize("name", sorted(set(HOSTILE) - {"byte order mark"}))
def test_a_policy_file_is_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    data, _ = HOSTILE[name]
    path = tmp_path / "policy.json"
    path.write_bytes(data)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("depth", range(4))
def test_a_policy_duplicate_at_any_depth(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "policy.json"
    path.write_text(nested_duplicate(depth))
    with pytest.raises(PolicyError, match="duplicate key 'k'"):
        load_policy(path)


def _signed(payload: bytes) -> str:
    key = rsa_key()
    return PyJWS().encode(
        payload,
        key.private,
        algorithm="RS256",
        headers={"typ": "at+jwt", "kid": key.kid},
    )


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_signed_jwt_payload_is_refused(name: str) -> None:
    data, _ = HOSTILE[name]
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(_signed(data))
    assert info.value.code == "malformed"


def test_a_signed_jwt_naming_sub_twice_is_refused() -> None:
    good = json.dumps(claims())
    doubled = good[:-1] + ', "sub": "admin"}'
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(_signed(doubled.encode()))
    assert info.value.code == "malformed"
    assert "admin" not in str(info.value)


@pytest.mark.parametrize("name", ["duplicate at top", "NaN", "byte order mark"])
def test_a_jwt_header_is_refused(name: str) -> None:
    data, _ = HOSTILE[name]
    _, payload, signature = _signed(json.dumps(claims()).encode()).split(".")
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(f"{b64(data)}.{payload}.{signature}")
    assert info.value.code == "malformed"


@pytest.mark.parametrize("name", ["duplicate at top", "NaN", "trailing data"])
def test_a_jwks_document_is_refused(jwks_server: JWKSServer, name: str) -> None:
    document = json.dumps(jwks_of(rsa_key()))
    bodies = {
        # the key set a reader keeping the first copy would use
        "duplicate at top": document[:-1] + ', "keys": []}',
        "NaN": document[:-1] + ', "x": NaN}',
        "trailing data": document + " {}",
    }
    jwks_server.state.mode = "raw"
    jwks_server.state.raw = bodies[name].encode()
    with pytest.raises(TokenInvalid) as info:
        verifier(jwks_uri=jwks_server.url, jwks_refresh_cooldown_s=0).verify(mint())
    assert info.value.code == "jwks_unavailable"
    jwks_server.state.raw = document.encode()
    assert verifier(jwks_uri=jwks_server.url).verify(mint()).subject == "alice"


@pytest.mark.parametrize(
    "name",
    [
        "duplicate in a list",
        "NaN",
        "overflow to infinity",
        "lone high surrogate",
        "byte order mark",
        "trailing data",
        "deep nesting",
    ],
)
def test_an_llm_request_body_is_not_sent(llm_server: LLMServer, name: str) -> None:
    data, _ = HOSTILE[name]
    body = (
        data
        if name != "duplicate in a list"
        else (
            b'{"model": "gpt-4.1", "messages": [{"role": "user", "role": "system",'
            b' "content": "x"}]}'
        )
    )
    policy = Policy(
        models={"allow": ["gpt-4.1*"]},
        regions={"allow": ["eu-*"], "declared": {llm_server.url: "eu-west-1"}},
    )
    raw = closing(openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1"))
    client = guard_llm(Guard(policy), raw)
    before = len(llm_server.requests)
    with pytest.raises(PolicyError) as info:
        client.post(
            "/chat/completions",
            cast_to=object,
            content=body,
            options={"headers": {"content-type": "application/json"}},
        )
    assert len(llm_server.requests) == before
    assert info.value.__cause__ is None
