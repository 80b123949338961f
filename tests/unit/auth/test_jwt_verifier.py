"""JWTVerifier: construction rules, opt-outs, claim mapping, cache, audit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import Policy, PolicyError, TokenInvalid
from aiinvariants._errors import InsecureUsageWarning
from aiinvariants.audit import capture
from aiinvariants.auth import REASON_CODES, JWTVerifier
from auth_support import AUDIENCE, ISSUER, ec_key, jwks_of, mint, rsa_key, verifier

BASE: dict[str, Any] = {
    "issuer": ISSUER,
    "audience": AUDIENCE,
    "algorithms": ["RS256"],
    "jwks": jwks_of(rsa_key()),
}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"issuer": ""}, "issuer"),
        ({"audience": []}, "audience"),
        ({"algorithms": []}, "algorithms"),
        ({"algorithms": ["none"]}, "none"),
        ({"algorithms": ["RS256", "HS256"]}, "HMAC"),
        ({"algorithms": ["HS256"]}, "HMAC"),
        ({"algorithms": "RS256"}, "algorithms"),
        ({"leeway_s": 61}, "leeway"),
        ({"leeway_s": -1}, "leeway"),
        ({"jwks": None}, "exactly one"),
        ({"jwks_uri": "https://login.example.test/jwks"}, "exactly one"),
        ({"max_token_bytes": 10**7}, "max_token_bytes"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "private or symmetric"),
    ],
)
def test_refuses_to_be_built_unsafely(change: dict[str, Any], match: str) -> None:
    options = {**BASE, **change}
    options = {k: v for k, v in options.items() if v is not None}
    with pytest.raises(PolicyError, match=match):
        JWTVerifier(**options)


def test_missing_typ_opt_out_warns_and_then_accepts() -> None:
    with pytest.warns(InsecureUsageWarning, match="unsafe_allow_missing_typ"):
        v = verifier(unsafe_allow_missing_typ=True)
    assert v.verify(mint(headers={"typ": None})).subject == "alice"
    with pytest.raises(TokenInvalid) as info:
        v.verify(mint(headers={"typ": "JWT"}))  # a wrong typ is still refused
    assert info.value.code == "wrong_type"


def test_scope_string_and_scp_list() -> None:
    v = verifier()
    assert v.verify(mint(scope="a:read b:write")).scopes == {"a:read", "b:write"}
    token = mint(scope=None, scp=["x:read", "y:read"])
    assert v.verify(token).scopes == {"x:read", "y:read"}


def test_groups_roles_tenant_and_custom_claims() -> None:
    v = verifier(groups_claims=("roles",), tenant_claim="org", scope_claims=("perm",))
    p = v.verify(mint(roles=["admin"], org="acme", perm=["p:1"], scope=None))
    assert p.groups == {"admin"}
    assert p.tenant == "acme"
    assert p.scopes == {"p:1"}
    assert p.raw_token() is not None
    assert p.issuer == ISSUER


@pytest.mark.parametrize(
    "change",
    [
        {"groups": "admins"},
        {"scope": 42},
        {"scp": [1, 2], "scope": None},
        {"tid": 7},
        {"sub": ""},
        {"aud": 5},
        {"scope": 'a"b'},
    ],
)
def test_claims_of_the_wrong_type(change: dict[str, Any]) -> None:
    with pytest.raises(TokenInvalid) as info:
        verifier().verify(mint(**change))
    assert info.value.code in ("claim_type", "missing_claim", "scope_malformed")


def test_clearance_comes_from_the_policy() -> None:
    policy = Policy.from_dict(
        {
            "clearance": {
                "groups": {"employees": "internal", "finance": "confidential"},
                "default_authenticated": "public",
            },
            "identity": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["RS256", "ES256"],
                "jwks": jwks_of(rsa_key(), ec_key()),
            },
        }
    )
    v = JWTVerifier.from_policy(policy)
    assert v.verify(mint(groups=["employees"])).clearance == "internal"
    assert v.verify(mint(groups=["finance"], sub="bob")).clearance == "confidential"
    assert v.verify(mint(groups=None, sub="carol")).clearance == "public"


def test_from_policy_refuses_introspection_identities() -> None:
    policy = Policy.from_dict(
        {
            "identity": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["RS256"],
                "introspection_endpoint": "https://login.example.test/introspect",
            }
        }
    )
    with pytest.raises(PolicyError, match="IntrospectionVerifier"):
        JWTVerifier.from_policy(policy)


def test_cache_hit_returns_the_same_principal_and_never_past_exp() -> None:
    v = verifier()
    token = mint(exp=int(time.time()) + 2)
    first = v.verify(token)
    assert v.verify(token) is first
    assert v.cache is not None
    assert v.cache.hits == 1
    entry = v.cache.get(next(iter(v.cache._entries)))
    assert entry is not None
    assert entry.expires_at <= time.time() + 2
    # Past exp the cache drops the entry, and verification proper refuses
    # once the leeway is gone too.
    assert v.cache.get(next(iter(v.cache._entries)), now=time.time() + 3) is None


def test_cache_disabled() -> None:
    v = verifier(cache_size=0)
    token = mint()
    assert v.verify(token) is not v.verify(token)
    assert v.cache is None


def test_cache_is_bounded() -> None:
    v = verifier(cache_size=3)
    for n in range(10):
        v.verify(mint(sub=f"user-{n}"))
    assert v.cache is not None
    assert len(v.cache) == 3


def test_every_decision_is_audited_without_the_token() -> None:
    from aiinvariants.audit import AuditLog, MemorySink

    sink = MemorySink()
    v = verifier(audit=AuditLog([sink]))
    good = mint()
    v.verify(good)
    v.verify(good)
    bad = mint(aud="https://other.example.test")
    with pytest.raises(TokenInvalid):
        v.verify(bad)
    events = sink.events
    assert [(e.decision, e.reason) for e in events] == [
        ("allow", "token_valid"),
        ("allow", "token_valid"),
        ("deny", "wrong_audience"),
    ]
    assert events[0].subject == "alice"
    assert all(e.invariant == "I1" and e.resource == ISSUER for e in events)
    dump = repr([e.model_dump() if hasattr(e, "model_dump") else e for e in events])
    for token in (good, bad):
        assert token.split(".")[1] not in dump
        assert token.split(".")[2] not in dump


def test_capture_sees_denials() -> None:
    from aiinvariants.audit import AuditLog

    with capture() as events, pytest.raises(TokenInvalid):
        verifier(audit=AuditLog()).verify("not-a-token")
    assert [e.reason for e in events] == ["malformed"]


def test_averify_matches_verify() -> None:
    v = verifier()

    async def main() -> None:
        assert (await v.averify(mint())).subject == "alice"
        with pytest.raises(TokenInvalid) as info:
            await v.averify(mint(iss="https://evil.test"))
        assert info.value.code == "wrong_issuer"

    asyncio.run(main())


def test_es256_tokens() -> None:
    assert verifier().verify(mint(ec_key())).subject == "alice"


def test_token_without_kid_uses_the_only_matching_key() -> None:
    v = verifier(algorithms=["RS256"], jwks=jwks_of(rsa_key()))
    assert v.verify(mint(headers={"kid": None})).subject == "alice"


def test_reason_codes_are_documented() -> None:
    assert {"expired", "bad_signature", "wrong_audience", "inactive"} <= set(
        REASON_CODES
    )


def test_non_string_tokens() -> None:
    for value in (None, b"abc", 42):
        with pytest.raises(TokenInvalid) as info:
            verifier().verify(value)  # type: ignore[arg-type]
        assert info.value.code == "malformed"


def test_importing_auth_loads_no_framework() -> None:
    code = (
        "import sys, aiinvariants.auth\n"
        "print(' '.join(m for m in ('starlette', 'fastapi', 'pytest', 'hypothesis')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == []
    core = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, aiinvariants; print('aiinvariants.auth' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert core == "False"


# -- properties ------------------------------------------------------------------

_TOKEN = mint()
_VERIFIER = verifier(cache_size=0)
_REQUIRED = ("iss", "sub", "aud", "exp", "iat")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, len(_TOKEN) - 1), char=st.sampled_from("AQgw_-.x0"))
def test_any_single_character_tampering_is_rejected(position: int, char: str) -> None:
    if _TOKEN[position] == char:
        return
    tampered = _TOKEN[:position] + char + _TOKEN[position + 1 :]
    try:
        _VERIFIER.verify(tampered)
    except TokenInvalid:
        return
    # Base64url's last character may carry unused bits: a change there can
    # decode to the same bytes. Anything accepted must be byte-identical.
    import base64

    def raw(t: str) -> list[bytes]:
        return [base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in t.split(".")]

    assert raw(tampered) == raw(_TOKEN)


@settings(max_examples=60, deadline=None)
@given(missing=st.sets(st.sampled_from(_REQUIRED), min_size=1))
def test_any_claim_set_missing_a_required_claim_is_rejected(missing: set[str]) -> None:
    token = mint(**dict.fromkeys(missing))
    with pytest.raises(TokenInvalid) as info:
        _VERIFIER.verify(token)
    assert info.value.code in ("missing_claim",)
