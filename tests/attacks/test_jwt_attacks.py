"""One test per known JWT attack: each is rejected with a stable reason code.

The verifier under attack is strict by default (RFC 8725, RFC 9068). Every
rejection is a ``TokenInvalid`` whose text never contains the token.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from aiinvariants import TokenInvalid
from aiinvariants.auth import JWTVerifier
from auth_support import (
    AUDIENCE,
    ISSUER,
    JWKSServer,
    b64,
    b64json,
    claims,
    ec_key,
    mint,
    rsa_key,
    verifier,
)
from secret_graph import assert_no_secret_reachable


def rejected(token: str, code: str, v: JWTVerifier | None = None) -> TokenInvalid:
    v = v or verifier()
    with pytest.raises(TokenInvalid) as info:
        v.verify(token)
    exc = info.value
    assert exc.code == code, (exc.code, code)
    # The token, or any segment of it, never appears in what the error shows.
    for text in (str(exc), repr(exc), exc.reason, exc.www_authenticate):
        for segment in token.split(".")[:3]:
            if len(segment) >= 8:
                assert segment not in text
    # Nor anywhere reachable from it: chained exceptions, args, attributes.
    segments = [s for s in token.split(".")[:3] if len(s) >= 8]
    assert_no_secret_reachable(exc, token, *segments)
    return exc


def unsigned(header: dict[str, object], payload: dict[str, object]) -> str:
    return f"{b64json(header)}.{b64json(payload)}."


def test_valid_token_is_accepted() -> None:
    principal = verifier().verify(mint())
    assert principal.subject == "alice"
    assert principal.authenticated


def test_alg_none() -> None:
    token = unsigned({"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}, claims())
    rejected(token, "alg_not_allowed")


def test_alg_none_with_signature_segment() -> None:
    token = unsigned({"alg": "none", "typ": "at+jwt"}, claims()) + "c2ln"
    rejected(token, "alg_not_allowed")


def test_hs256_signed_with_the_rsa_public_key() -> None:
    # The classic key confusion: the attacker HMACs with the public PEM.
    header = b64json({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"})
    payload = b64json(claims(sub="mallory"))
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(rsa_key().public_pem(), signing_input, hashlib.sha256).digest()
    rejected(f"{header}.{payload}.{b64(mac)}", "alg_not_allowed")


def test_expired() -> None:
    now = int(time.time())
    rejected(mint(exp=now - 120, iat=now - 3600, nbf=now - 3600), "expired")


def test_expired_within_leeway_is_accepted() -> None:
    now = int(time.time())
    assert verifier(leeway_s=30).verify(mint(exp=now - 5)).subject == "alice"


def test_future_nbf() -> None:
    rejected(mint(nbf=int(time.time()) + 3600), "not_yet_valid")


def test_future_iat() -> None:
    rejected(mint(iat=int(time.time()) + 3600), "issued_in_future")


def test_missing_exp() -> None:
    rejected(mint(exp=None), "missing_claim")


def test_exp_as_a_string() -> None:
    rejected(mint(exp=str(int(time.time()) + 600)), "claim_type")


def test_exp_as_a_bool() -> None:
    rejected(mint(exp=True), "claim_type")


def test_missing_iat() -> None:
    rejected(mint(iat=None), "missing_claim")


def test_wrong_audience() -> None:
    rejected(mint(aud="https://other-api.example.test"), "wrong_audience")


def test_missing_audience() -> None:
    rejected(mint(aud=None), "missing_claim")


def test_audience_list_without_ours() -> None:
    rejected(
        mint(aud=["https://a.example.test", "https://b.example.test"]), "wrong_audience"
    )


def test_audience_list_with_ours_is_accepted() -> None:
    assert verifier().verify(mint(aud=["https://a.example.test", AUDIENCE]))


def test_wrong_issuer() -> None:
    rejected(mint(iss="https://login.evil.test"), "wrong_issuer")


def test_issuer_prefix_is_not_the_issuer() -> None:
    rejected(mint(iss=ISSUER + "/"), "wrong_issuer")


def test_missing_sub() -> None:
    rejected(mint(sub=None), "missing_claim")


def test_typ_jwt() -> None:
    rejected(mint(headers={"typ": "JWT"}), "wrong_type")


def test_missing_typ() -> None:
    rejected(mint(headers={"typ": None}), "wrong_type")


def test_application_at_jwt_typ_is_accepted() -> None:
    assert verifier().verify(mint(headers={"typ": "application/at+jwt"}))


def test_unknown_crit() -> None:
    rejected(mint(headers={"crit": ["exp"], "exp": 1}), "unknown_crit")


def test_crit_b64_false() -> None:
    rejected(mint(headers={"crit": ["b64"], "b64": False}), "unknown_crit")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://evil.test/jwks.json"),
        ("x5u", "https://evil.test/cert.pem"),
        ("jwk", {"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        ("x5c", ["MIIB"]),
    ],
)
def test_key_carrying_headers(name: str, value: object) -> None:
    rejected(mint(headers={name: value}), "forbidden_header")


def test_embedded_jwk_signed_by_the_attacker() -> None:
    attacker = ec_key("attacker")
    token = mint(attacker, headers={"jwk": attacker.public_jwk(), "kid": "attacker"})
    rejected(token, "forbidden_header")


@pytest.mark.parametrize(
    "kid", ["../../../../dev/null", "/etc/passwd", "rsa-1/../rsa-1", "rsa-1'OR'1'='1"]
)
def test_kid_path_traversal_and_injection(kid: str) -> None:
    rejected(mint(headers={"kid": kid}), "unknown_kid")


def test_kid_with_control_characters() -> None:
    rejected(mint(headers={"kid": "rsa-1\x00"}), "malformed")


def test_tampered_payload() -> None:
    header, _, signature = mint().split(".")
    forged = b64json(claims(sub="admin", scope="admin:all"))
    rejected(f"{header}.{forged}.{signature}", "bad_signature")


def test_signed_by_an_unknown_key_under_a_known_kid() -> None:
    stranger = rsa_key("stranger")
    token = mint(stranger, headers={"kid": "rsa-1"})
    rejected(token, "bad_signature")


def test_five_megabyte_token_is_rejected_fast() -> None:
    header, payload, signature = mint().split(".")
    huge = f"{header}.{payload}{'A' * (5 * 1024 * 1024)}.{signature}"
    v = verifier()
    start = time.perf_counter()
    with pytest.raises(TokenInvalid):
        v.verify(huge)
    elapsed = time.perf_counter() - start
    rejected(huge, "too_large", v)
    assert elapsed < 0.25  # "well under a second"


def test_unknown_kid_with_the_jwks_down(jwks_server: JWKSServer) -> None:
    v = verifier(
        jwks_uri=jwks_server.url, jwks_timeout_s=1.0, jwks_refresh_cooldown_s=0
    )
    assert v.verify(mint())  # keys fetched while the server is up
    jwks_server.state.mode = "down"
    start = time.perf_counter()
    rejected(mint(rsa_key("rotated-in")), "jwks_unavailable", v)
    assert time.perf_counter() - start < 1.5


def test_id_token_presented_as_an_access_token() -> None:
    # An OIDC ID token: typ JWT, audience = a client id, nonce, auth_time.
    id_token = mint(
        headers={"typ": "JWT"},
        aud=AUDIENCE,
        nonce="n-0S6_WzA2Mj",
        auth_time=int(time.time()) - 60,
        scope=None,
    )
    rejected(id_token, "wrong_type")


def test_jwe_shaped_token() -> None:
    rejected("a.b.c.d.e", "malformed")


def test_duplicate_header_members() -> None:
    header = b64(b'{"alg":"RS256","typ":"at+jwt","alg":"none"}')
    _, payload, signature = mint().split(".")
    rejected(f"{header}.{payload}.{signature}", "malformed")


def test_padding_or_non_base64url_characters() -> None:
    header, payload, signature = mint().split(".")
    rejected(f"{header}=.{payload}.{signature}", "malformed")
    rejected(f"{header}.{payload}.{signature.replace('-', '+')}x+", "malformed")


def test_es256_token_with_rs256_header_alg() -> None:
    # A token whose header claims RS256 but whose kid names the EC key.
    token = mint(ec_key(), headers={"kid": "ec-1"})
    header = b64json({"alg": "RS256", "typ": "at+jwt", "kid": "ec-1"})
    _, payload, signature = token.split(".")
    rejected(f"{header}.{payload}.{signature}", "unknown_kid")
