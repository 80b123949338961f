"""I4 attacks on token exchange: no token in any exception, no shared cache.

Class 1 — a token reachable from an exception: every way the exchange can
fail (endpoint down, transport error carrying the request, refusal echoing
the subject token, garbage, audit down) is walked by
:func:`secret_graph.assert_no_secret_reachable`, chained exceptions, httpx
request objects and the library's own frames included.

Class 2 — one cached exchanged token served to another identity: every
part of the identity (issuer, subject, tenant, delegated scopes, inbound
token, audience, resource, requested scopes) separates cache entries.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aiinvariants import Principal, TokenInvalid, acting_as
from aiinvariants.audit import AuditLog, MemorySink
from aiinvariants.auth import JWTVerifier, TokenExchanger
from oauth_support import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server
from secret_graph import assert_no_secret_reachable, reachable

API = "https://agent.example.test"
BILLING = "https://billing.example.test"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def user(oauth: OAuthServer, subject: str = "alice", **claims: Any) -> Principal:
    scopes = claims.pop("scopes", "billing:read tickets:read")
    token = oauth.mint_user(subject, audience=API, scopes=scopes, **claims)
    return JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    ).verify(token)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_helper_finds_a_token_in_a_chained_request() -> None:
    # The helper itself must be able to fail: a ConnectError whose request
    # body holds the token, two levels down the chain.
    request = httpx.Request(
        "POST", "http://127.0.0.1:1/t", data={"subject_token": "tok-SECRET-1"}
    )
    try:
        try:
            raise httpx.ConnectError("down", request=request)
        except httpx.ConnectError:
            raise TokenInvalid("exchange failed", code="x") from None
    except TokenInvalid as exc:
        caught = exc
    assert any("tok-SECRET-1" in text for _, text in reachable(caught))
    with pytest.raises(AssertionError, match="__context__"):
        assert_no_secret_reachable(caught, "tok-SECRET-1")


@pytest.mark.parametrize("asynchronous", [False, True])
def test_endpoint_down_leaks_no_token(oauth: OAuthServer, asynchronous: bool) -> None:
    exchanger = TokenExchanger(
        token_endpoint=f"http://127.0.0.1:{closed_port()}/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        timeout_s=2,
    )
    who = user(oauth)

    async def aexchange() -> Any:
        return await exchanger.aexchange(audience=BILLING)

    def go() -> Any:
        if asynchronous:
            return asyncio.run(aexchange())
        return exchanger.exchange(audience=BILLING)

    with acting_as(who), pytest.raises(TokenInvalid) as info:
        go()
    assert info.value.code == "exchange_unavailable"
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    assert_no_secret_reachable(info.value, who.raw_token(), CLIENT_SECRET, frames=True)


class Failing(httpx.BaseTransport):
    """A transport that fails the way real ones do, carrying the request."""

    def __init__(self, how: str) -> None:
        self.how = how

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.how == "connect":
            raise httpx.ConnectError("refused", request=request)
        if self.how == "message":
            # A proxy or custom transport that puts the body in its message.
            raise RuntimeError(f"cannot send {request.content!r}")
        if self.how == "chained":
            cause = httpx.ReadTimeout("t", request=request)
            raise RuntimeError("pool broke") from cause
        if self.how == "echo":
            return httpx.Response(400, content=request.content, request=request)
        if self.how == "garbage":
            return httpx.Response(200, content=b"not json " + request.content)
        raise AssertionError(self.how)


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("connect", "exchange_unavailable"),
        ("message", "exchange_unavailable"),
        ("chained", "exchange_unavailable"),
        ("echo", "exchange_refused"),
        ("garbage", "exchange_bad_response"),
    ],
)
def test_transport_failures_leak_no_token(
    oauth: OAuthServer, how: str, code: str
) -> None:
    memory = MemorySink()
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        transport=Failing(how),
        audit=AuditLog(sinks=[memory]),
    )
    who = user(oauth)
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        exchanger.exchange(audience=BILLING, scopes=["billing:read"])
    assert info.value.code == code
    assert_no_secret_reachable(info.value, who.raw_token(), CLIENT_SECRET, frames=True)
    assert memory.events[-1].reason == code
    assert who.raw_token() not in repr(memory.events)


def test_refusals_of_a_live_server_leak_no_token(oauth: OAuthServer) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    who = user(oauth)
    for mode in ("error", "garbage", "echo", "wrong_audience", "wide_scope"):
        oauth.state.mode = mode
        with acting_as(who), pytest.raises(TokenInvalid) as info:
            exchanger.exchange(audience=BILLING, scopes=["billing:read"])
        assert_no_secret_reachable(info.value, who.raw_token(), CLIENT_SECRET)


def test_audit_down_leaks_no_token(oauth: OAuthServer) -> None:
    class Broken:
        def write(self, event: Any) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            pass

    exchanger = TokenExchanger(
        token_endpoint=f"http://127.0.0.1:{closed_port()}/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        audit=AuditLog(sinks=[Broken()]),  # type: ignore[list-item]
        timeout_s=2,
    )
    who = user(oauth)
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        exchanger.exchange(audience=BILLING)
    assert info.value.code == "exchange_unavailable"
    assert_no_secret_reachable(info.value, who.raw_token(), CLIENT_SECRET)


def issued(exchanger: TokenExchanger, who: Principal, **kwargs: Any) -> str:
    with acting_as(who):
        return exchanger.exchange(
            audience=kwargs.pop("audience", BILLING), **kwargs
        ).access_token


def test_cache_is_keyed_by_the_whole_identity(oauth: OAuthServer) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    base = user(oauth, tid="tenant-a")
    first = issued(exchanger, base, scopes=["billing:read"])
    # The same principal again: served from the cache.
    assert issued(exchanger, base, scopes=["billing:read"]) == first
    assert oauth.state.exchanges == 1
    others = {
        "another tenant": user(oauth, tid="tenant-b"),
        "no tenant": user(oauth),
        "another subject": user(oauth, "bob", tid="tenant-a"),
        "fewer delegated scopes": user(oauth, tid="tenant-a", scopes="billing:read"),
        "another inbound token": user(oauth, tid="tenant-a"),
    }
    seen = {first}
    for why, who in others.items():
        token = issued(exchanger, who, scopes=["billing:read"])
        assert token not in seen, f"cache shared across {why}"
        seen.add(token)
    for why, kwargs in {
        "another audience": {"audience": "https://crm.example.test"},
        "another resource": {"resource": "https://billing.example.test/v2"},
        "other scopes": {"scopes": ["tickets:read"]},
        "no scopes": {},
    }.items():
        token = issued(exchanger, base, **kwargs)
        assert token not in seen, f"cache shared across {why}"
        seen.add(token)
    assert oauth.state.last_form.get("resource") is None
    issued(exchanger, base, resource="https://billing.example.test/v3")
    assert oauth.state.last_form["resource"] == "https://billing.example.test/v3"


def test_one_subject_of_two_issuers_shares_nothing() -> None:
    with running_oauth_server() as one, running_oauth_server() as two:
        exchanger_one = TokenExchanger(
            token_endpoint=one.token_endpoint,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
        )
        a = issued(exchanger_one, user(one, "sam"))
        # A principal built by hand with the same subject and another issuer.
        forged = Principal(
            subject="sam",
            authenticated=True,
            issuer=two.issuer,
            token=user(two, "sam").raw_token(),  # type: ignore[arg-type]
        )
        with acting_as(forged), pytest.raises(TokenInvalid):
            # one's token endpoint does not accept two's token: no cache hit.
            exchanger_one.exchange(audience=BILLING)
        assert one.state.exchanges == 2
        assert a
