"""The JWKS over HTTP: a real server on loopback, made slow, down or garbled."""

from __future__ import annotations

import asyncio
import time

import pytest

from aiinvariants import PolicyError, TokenInvalid
from aiinvariants.auth import HTTPJWKS, JWKSet
from auth_support import (
    JWKSServer,
    jwks_of,
    mint,
    rsa_key,
    verifier,
)


def code_of(v: object, token: str) -> str:
    with pytest.raises(TokenInvalid) as info:
        v.verify(token)  # type: ignore[attr-defined]
    return info.value.code


def test_keys_are_fetched_once_and_cached(jwks_server: JWKSServer) -> None:
    v = verifier(jwks_uri=jwks_server.url, cache_size=0)
    for _ in range(5):
        assert v.verify(mint()).subject == "alice"
    assert jwks_server.state.requests == 1


def test_ttl_expiry_refetches(jwks_server: JWKSServer) -> None:
    v = verifier(jwks_uri=jwks_server.url, cache_size=0, jwks_cache_ttl_s=1)
    v.verify(mint())
    source = v.key_source
    assert isinstance(source, HTTPJWKS)
    source._fetched_at -= 2  # the TTL has passed
    v.verify(mint())
    assert jwks_server.state.requests == 2


def test_key_rotation_new_kid_appears_old_one_removed(jwks_server: JWKSServer) -> None:
    old, new = rsa_key("old"), rsa_key("new")
    jwks_server.state.document = jwks_of(old)
    v = verifier(jwks_uri=jwks_server.url, jwks_refresh_cooldown_s=0)
    old_token = mint(old)
    assert v.verify(old_token).subject == "alice"
    # The issuer rotates: the new key is published, the old one removed.
    jwks_server.state.document = jwks_of(new)
    assert v.verify(mint(new)).subject == "alice"  # unknown kid -> one refetch
    assert jwks_server.state.requests == 2
    # The old token was cached, but its key left the key set: refused.
    assert code_of(v, old_token) == "unknown_kid"


def test_unknown_kid_refetch_is_rate_limited(jwks_server: JWKSServer) -> None:
    v = verifier(jwks_uri=jwks_server.url, jwks_refresh_cooldown_s=60)
    v.verify(mint())
    for n in range(20):
        assert code_of(v, mint(headers={"kid": f"random-{n}"})) == "unknown_kid"
    assert jwks_server.state.requests == 1


@pytest.mark.parametrize("mode", ["down", "garbage", "not_json", "huge"])
def test_unusable_jwks_fails_closed(jwks_server: JWKSServer, mode: str) -> None:
    jwks_server.state.mode = mode
    v = verifier(jwks_uri=jwks_server.url, jwks_timeout_s=2)
    start = time.perf_counter()
    assert code_of(v, mint()) == "jwks_unavailable"
    assert time.perf_counter() - start < 2.5


def test_slow_jwks_fails_closed_within_the_timeout(jwks_server: JWKSServer) -> None:
    jwks_server.state.mode = "slow"
    jwks_server.state.delay_s = 3
    v = verifier(jwks_uri=jwks_server.url, jwks_timeout_s=0.3)
    start = time.perf_counter()
    assert code_of(v, mint()) == "jwks_unavailable"
    assert time.perf_counter() - start < 1.0


def test_retries_then_gives_up(jwks_server: JWKSServer) -> None:
    jwks_server.state.mode = "down"
    source = HTTPJWKS(jwks_server.url, algorithms=["RS256"], retries=2)
    with pytest.raises(TokenInvalid):
        source.get_keys()
    assert jwks_server.state.requests == 3


def test_after_a_failure_requests_are_denied_without_waiting(
    jwks_server: JWKSServer,
) -> None:
    jwks_server.state.mode = "down"
    v = verifier(jwks_uri=jwks_server.url, jwks_refresh_cooldown_s=30)
    assert code_of(v, mint()) == "jwks_unavailable"
    seen = jwks_server.state.requests
    start = time.perf_counter()
    assert code_of(v, mint()) == "jwks_unavailable"
    # No request is made during the cooldown; the time bound only catches a
    # hang (a retry would take at least the server's timeout).
    assert time.perf_counter() - start < 0.5
    assert jwks_server.state.requests == seen


def test_recovers_when_the_jwks_comes_back(jwks_server: JWKSServer) -> None:
    jwks_server.state.mode = "down"
    v = verifier(jwks_uri=jwks_server.url, jwks_refresh_cooldown_s=0)
    assert code_of(v, mint()) == "jwks_unavailable"
    jwks_server.state.mode = "ok"
    assert v.verify(mint()).subject == "alice"


def test_async_fetch(jwks_server: JWKSServer) -> None:
    v = verifier(jwks_uri=jwks_server.url, cache_size=0)

    async def main() -> list[str]:
        results = await asyncio.gather(*(v.averify(mint()) for _ in range(10)))
        return [p.subject for p in results]

    assert asyncio.run(main()) == ["alice"] * 10
    assert jwks_server.state.requests == 1


def test_async_slow_jwks_fails_closed(jwks_server: JWKSServer) -> None:
    jwks_server.state.mode = "slow"
    jwks_server.state.delay_s = 3
    v = verifier(jwks_uri=jwks_server.url, jwks_timeout_s=0.3)

    async def main() -> str:
        with pytest.raises(TokenInvalid) as info:
            await v.averify(mint())
        return info.value.code

    start = time.perf_counter()
    assert asyncio.run(main()) == "jwks_unavailable"
    assert time.perf_counter() - start < 1.0


def test_async_rotation(jwks_server: JWKSServer) -> None:
    old, new = rsa_key("old"), rsa_key("new")
    jwks_server.state.document = jwks_of(old)
    v = verifier(jwks_uri=jwks_server.url, jwks_refresh_cooldown_s=0)

    async def main() -> None:
        assert (await v.averify(mint(old))).subject == "alice"
        jwks_server.state.document = jwks_of(new)
        assert (await v.averify(mint(new))).subject == "alice"

    asyncio.run(main())


def test_plain_http_off_loopback_is_refused() -> None:
    with pytest.raises(PolicyError, match="https"):
        HTTPJWKS("http://login.example.test/jwks", algorithms=["RS256"])


def test_plain_http_off_loopback_by_name_warns() -> None:
    from aiinvariants._errors import InsecureUsageWarning

    with pytest.warns(InsecureUsageWarning):
        HTTPJWKS(
            "http://login.example.test/jwks",
            algorithms=["RS256"],
            unsafe_allow_http=True,
        )


def test_fetched_set_skips_private_and_symmetric_keys() -> None:
    good = rsa_key().public_jwk()
    keys = JWKSet(
        {"keys": [good, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]},
        algorithms=["RS256"],
        strict=False,
    )
    assert keys.kids == {"rsa-1"}
    with pytest.raises(PolicyError, match="private or symmetric"):
        JWKSet({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, algorithms=["RS256"])
