"""RFC 8693 token exchange against a real authorization server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import jwt
import pytest

from aiinvariants import (
    AuthenticationRequired,
    Principal,
    ScopeDenied,
    TokenInvalid,
    acting_as,
)
from aiinvariants.audit import AuditLog, MemorySink
from aiinvariants.auth import JWTVerifier, TokenExchanger
from oauth_support import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server

API = "https://agent.example.test"
BILLING = "https://billing.example.test"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


@pytest.fixture
def exchanger(oauth: OAuthServer, memory: MemorySink) -> TokenExchanger:
    return TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        audit=AuditLog(sinks=[memory]),
        timeout_s=3,
    )


def alice(oauth: OAuthServer, scopes: str = "billing:read tickets:read") -> Principal:
    token = oauth.mint_user("alice", audience=API, scopes=scopes)
    verifier = JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    )
    return verifier.verify(token)


def test_exchange_binds_audience_scopes_and_actor(
    oauth: OAuthServer, exchanger: TokenExchanger, memory: MemorySink
) -> None:
    who = alice(oauth)
    with acting_as(who):
        issued = exchanger.exchange(audience=BILLING, scopes=["billing:read"])
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert claims["aud"] == BILLING
    assert claims["scope"] == "billing:read"
    assert claims["act"] == {"sub": CLIENT_ID}
    assert issued.actor == CLIENT_ID
    assert issued.scopes == frozenset({"billing:read"})
    assert issued.access_token != who.raw_token()
    assert issued.access_token not in repr(issued)
    event = memory.events[-1]
    assert (event.invariant, event.reason) == ("I4", "token_exchanged")
    assert event.details["actor"] == CLIENT_ID
    assert issued.access_token not in repr(memory.events)
    assert oauth.state.last_form["audience"] == BILLING


def test_exchange_is_cached_per_subject_audience_scopes(
    oauth: OAuthServer, exchanger: TokenExchanger
) -> None:
    who = alice(oauth)
    with acting_as(who):
        first = exchanger.exchange(audience=BILLING, scopes=["billing:read"])
        again = exchanger.exchange(audience=BILLING, scopes=["billing:read"])
        other = exchanger.exchange(audience=BILLING, scopes=["tickets:read"])
    assert first is again
    assert other is not first
    assert oauth.state.exchanges == 2
    bob = oauth.mint_user("bob", audience=API, scopes="billing:read")
    verifier = JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    )
    with acting_as(verifier.verify(bob)):
        bobs = exchanger.exchange(audience=BILLING, scopes=["billing:read"])
    assert bobs.subject == "bob"
    assert oauth.state.exchanges == 3


def test_cache_renews_shortly_before_expiry(oauth: OAuthServer) -> None:
    oauth.state.token_lifetime_s = 20
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_margin_s=30,
    )
    with acting_as(alice(oauth)):
        exchanger.exchange(audience=BILLING)
        exchanger.exchange(audience=BILLING)
    assert oauth.state.exchanges == 2


def test_cache_is_bounded(oauth: OAuthServer) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        cache_size=2,
    )
    with acting_as(alice(oauth)):
        for n in range(4):
            exchanger.exchange(audience=f"https://api{n}.example.test")
        exchanger.exchange(audience="https://api0.example.test")
    assert oauth.state.exchanges == 5
    assert "cached=2" in repr(exchanger)


def test_scope_not_delegated_is_refused_before_any_request(
    oauth: OAuthServer, exchanger: TokenExchanger
) -> None:
    with acting_as(alice(oauth, "tickets:read")), pytest.raises(ScopeDenied) as info:
        exchanger.exchange(audience=BILLING, scopes=["billing:write"])
    assert info.value.code == "exchange_scope_not_delegated"
    assert oauth.state.exchanges == 0


def test_no_verified_token_is_refused(exchanger: TokenExchanger) -> None:
    hand_made = Principal(subject="alice", authenticated=True)
    with acting_as(hand_made), pytest.raises(AuthenticationRequired) as info:
        exchanger.exchange(audience=BILLING)
    assert info.value.code == "exchange_no_subject_token"


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("error", "exchange_refused"),
        ("garbage", "exchange_bad_response"),
        ("echo", "exchange_bad_response"),
        ("wrong_audience", "exchange_audience_mismatch"),
        ("wide_scope", "exchange_scope_widened"),
    ],
)
def test_bad_answers_are_refused(
    oauth: OAuthServer,
    exchanger: TokenExchanger,
    memory: MemorySink,
    mode: str,
    code: str,
) -> None:
    oauth.state.mode = mode
    who = alice(oauth)
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        exchanger.exchange(audience=BILLING, scopes=["billing:read"])
    assert info.value.code == code
    assert info.value.invariant == "I4"
    assert who.raw_token() not in str(info.value)
    assert memory.events[-1].reason == code


def test_wrong_client_secret_is_refused(oauth: OAuthServer) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint, client_id=CLIENT_ID, client_secret="no"
    )
    with acting_as(alice(oauth)), pytest.raises(TokenInvalid) as info:
        exchanger.exchange(audience=BILLING)
    assert info.value.code == "exchange_refused"


def test_endpoint_down_is_refused() -> None:
    exchanger = TokenExchanger(
        token_endpoint="http://127.0.0.1:9/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        timeout_s=1,
    )
    who = Principal(
        subject="a",
        authenticated=True,
        token="x.y.z",  # type: ignore[arg-type]
    )
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        exchanger.exchange(audience=BILLING)
    assert info.value.code == "exchange_unavailable"


def test_async_exchange(oauth: OAuthServer, exchanger: TokenExchanger) -> None:
    async def run() -> str:
        async with acting_as(alice(oauth)):
            issued = await exchanger.aexchange(
                audience=BILLING, scopes=["billing:read"]
            )
            return issued.audience

    assert asyncio.run(run()) == BILLING


def test_misconfiguration_fails_early() -> None:
    from aiinvariants import PolicyError

    with pytest.raises(PolicyError):
        TokenExchanger(token_endpoint="http://login.example.com/token", client_id="c")
    with pytest.raises(PolicyError):
        TokenExchanger(token_endpoint="https://login.example.com/token", client_id="")
    assert httpx  # imported for transports in other tests
