from __future__ import annotations

import base64
import binascii
import re
import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from aiinvariants import ANONYMOUS, Principal
from aiinvariants.testing import strategies as ais

SECRET = "sk-test-EXAMPLEabc123XYZ"
ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


@given(ais.principals())
def test_principals_are_valid_and_include_anonymous(who: Principal) -> None:
    assert isinstance(who, Principal)
    if who is not ANONYMOUS:
        assert who.authenticated
        assert who.scopes <= {"crm:read", "crm:write", "tickets:read", "mail:send"}


@given(ais.principals(scopes=["a:b"], groups=[], anonymous=False))
def test_principals_respect_their_options(who: Principal) -> None:
    assert who.authenticated
    assert who.groups == frozenset()
    assert who.scopes <= {"a:b"}


@given(st.text(max_size=200).flatmap(lambda t: st.tuples(st.just(t), ais.chunkings(t))))
def test_chunkings_always_join_back(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    assert "".join(chunks) == text


@given(ais.obfuscations(SECRET, kinds=["base64", "base64url", "hex", "url"]))
def test_encodings_decode_back(variant: str) -> None:
    candidates = []
    for decode in (
        lambda v: base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_"),
        lambda v: base64.b64decode(v + "=" * (-len(v) % 4)),
        bytes.fromhex,
        lambda v: urllib.parse.unquote(v).encode(),
    ):
        try:
            candidates.append(decode(variant))
        except (ValueError, binascii.Error):
            continue
    assert SECRET.encode() in candidates


@given(ais.obfuscations(SECRET, kinds=["spaced", "separated", "zero_width"]))
def test_inserted_characters_can_be_removed(variant: str) -> None:
    assert variant != SECRET
    stripped = ZERO_WIDTH.sub("", variant)
    stripped = re.sub(r"[\s\-._|/,]", "", stripped)
    assert stripped == SECRET.replace("-", "")


@given(ais.obfuscations("password", kinds=["homoglyph"]))
def test_homoglyphs_look_alike_but_differ(variant: str) -> None:
    assert variant != "password"
    assert len(variant) == len("password")
    assert not variant.isascii()


@given(ais.injection_payloads(marker="MARK-1"), ais.extraction_payloads())
def test_payloads_are_text(injection: str, extraction: str) -> None:
    assert injection.strip()
    assert extraction.strip()
    assert "{" not in injection
    assert "{" not in extraction


@given(ais.labelled_documents(), ais.principals())
def test_labelled_documents_are_decidable_and_anonymous_sees_public_only(
    corpus: list[tuple[str, dict[str, object]]], who: Principal
) -> None:
    from aiinvariants import Policy
    from aiinvariants._classification import CLASSIFICATION, decide

    policy = Policy()
    assert len({text for text, _ in corpus}) == len(corpus)
    for _, meta in corpus:
        verdict = decide(who, meta, policy=policy)
        if meta.get(CLASSIFICATION) not in policy.classifications:
            assert not verdict.allowed
        if who is ANONYMOUS and verdict.allowed:
            assert meta[CLASSIFICATION] == "public"
