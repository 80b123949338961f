"""A guarded FastMCP server over streamable HTTP on loopback (uvicorn), with
FastMCP's own ``Client`` and the official SDK client, tokens from a real
loopback JWKS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastmcp import Client, FastMCP

from aiinvariants import Guard, PolicyError
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.fastmcp import GuardAuthProvider
from fastmcp_support import POLICY, Served, running_fastmcp
from mcp_support import mcp_session
from oauth_support import OAuthServer, running_oauth_server

ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(scope="module")
def served(oauth: OAuthServer) -> Iterator[Served]:
    with running_fastmcp(oauth) as served:
        yield served


def token(oauth: OAuthServer, served: Served, subject: str, scopes: str = "") -> str:
    return oauth.mint_user(subject, audience=served.resource, scopes=scopes)


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def metadata_of(served: Served) -> str:
    port = served.url.split(":")[2].split("/")[0]
    return f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"


def test_fastmcp_client_calls_as_the_token_user(
    oauth: OAuthServer, served: Served
) -> None:
    async def go(scopes: str) -> tuple[list[str], str]:
        async with Client(served.url, auth=token(oauth, served, "alice", scopes)) as c:
            names = sorted(t.name for t in await c.list_tools())
            who = text(await c.call_tool("whoami", {}))
            return names, who

    assert run(go("tickets:read")) == (["read_ticket", "search_kb", "whoami"], "alice")
    assert run(go("")) == (["search_kb", "whoami"], "alice")


def test_fastmcp_client_scoped_tool(oauth: OAuthServer, served: Served) -> None:
    async def go() -> str:
        user = token(oauth, served, "alice", "tickets:read")
        async with Client(served.url, auth=user) as c:
            return text(await c.call_tool("read_ticket", {"ticket_id": "T-1"}))

    assert run(go()) == "ticket T-1 for alice"


def test_sdk_client_calls_and_lists(oauth: OAuthServer, served: Served) -> None:
    async def go() -> tuple[list[str], str, Any]:
        async with mcp_session(
            served.url, token(oauth, served, "sam", "tickets:read")
        ) as s:
            names = sorted(t.name for t in (await s.list_tools()).tools)
            ticket = text(await s.call_tool("read_ticket", {"ticket_id": "T-2"}))
            undeclared = await s.call_tool("nope", {})
            return names, ticket, undeclared

    names, ticket, undeclared = run(go())
    assert names == ["read_ticket", "search_kb", "whoami"]
    assert ticket == "ticket T-2 for sam"
    assert undeclared.is_error


def test_concurrent_users_never_see_each_other(
    oauth: OAuthServer, served: Served
) -> None:
    async def one(subject: str) -> list[str]:
        async with Client(
            served.url, auth=token(oauth, served, subject, "tickets:read")
        ) as c:
            return [
                text(await c.call_tool("read_ticket", {"ticket_id": str(i)}))
                for i in range(3)
            ]

    async def go() -> list[list[str]]:
        return list(await asyncio.gather(*(one(f"user{n}") for n in range(4))))

    for n, texts in enumerate(run(go())):
        assert texts == [f"ticket {i} for user{n}" for i in range(3)]


def test_no_token_is_401_with_scope_and_metadata(served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(served.url, json=body, headers=ACCEPT, timeout=10)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'scope="tickets:read"' in challenge
    assert f'resource_metadata="{metadata_of(served)}"' in challenge


def test_metadata_lists_scopes_and_the_resource(
    oauth: OAuthServer, served: Served
) -> None:
    document = httpx.get(metadata_of(served), timeout=10).json()
    assert document["resource"] == served.resource
    assert document["scopes_supported"] == ["tickets:read"]
    assert [a.rstrip("/") for a in document["authorization_servers"]] == [oauth.issuer]


def test_scope_shortfall_is_a_403_step_up(oauth: OAuthServer, served: Served) -> None:
    user = token(oauth, served, "carol")
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "read_ticket", "arguments": {"ticket_id": "T-9"}},
    }
    response = httpx.post(
        served.url,
        json=call,
        headers={**ACCEPT, "Authorization": f"Bearer {user}"},
        timeout=10,
    )
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="tickets:read"' in challenge
    assert f'resource_metadata="{metadata_of(served)}"' in challenge
    assert user not in response.text
    assert any(
        e.reason == "scope_missing" and e.details.get("http") == 403
        for e in served.memory.events
    )


def test_a_non_string_method_does_not_break_the_step_up(
    oauth: OAuthServer, served: Served
) -> None:
    user = token(oauth, served, "carol")
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": ["tools/call"], "params": {}},
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "read_ticket", "arguments": {"ticket_id": "T-9"}},
        },
    ]
    response = httpx.post(
        served.url,
        json=batch,
        headers={**ACCEPT, "Authorization": f"Bearer {user}"},
        timeout=10,
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_expired_token_is_refused(oauth: OAuthServer, served: Served) -> None:
    stale = oauth.mint_user(
        "old", audience=served.resource, scopes="tickets:read", lifetime_s=-120
    )
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(
        served.url,
        json=body,
        headers={**ACCEPT, "Authorization": f"Bearer {stale}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert stale not in response.text


def test_provider_refuses_a_path_other_than_the_resource(oauth: OAuthServer) -> None:
    resource = "http://127.0.0.1:9/mcp"
    verifier = JWTVerifier(
        issuer=oauth.issuer, audience=resource, algorithms=["RS256"], jwks=oauth.jwks()
    )
    auth = GuardAuthProvider(Guard(POLICY), verifier=verifier, resource=resource)
    server: FastMCP[Any] = FastMCP("x", auth=auth)
    with pytest.raises(PolicyError, match="same path"):
        server.http_app(path="/other")
    with pytest.raises(PolicyError, match="resource URI"):
        GuardAuthProvider(
            Guard(POLICY), verifier=verifier, resource="http://127.0.0.1:9/else"
        )
    with pytest.raises(PolicyError, match="http"):
        GuardAuthProvider(Guard(POLICY), verifier=verifier, resource="mcp")
