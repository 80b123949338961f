"""Attacks on an MCP server of the official SDK with guarded tools."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer

from aiinvariants import Guard, PolicyError
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.mcp import GuardTokenVerifier, MCPGuard
from mcp_support import Served, mcp_session, running_http_server
from oauth_support import OAuthServer, running_oauth_server

STDIO_SERVER = Path(__file__).resolve().parents[1] / "mcp_stdio_server.py"


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(scope="module")
def served(oauth: OAuthServer) -> Iterator[Served]:
    with running_http_server(oauth) as served:
        yield served


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_token_for_another_audience_is_rejected(
    oauth: OAuthServer, served: Served
) -> None:
    # Same issuer, valid signature, scopes held: but minted for another server.
    other = oauth.mint_user(
        "mallory", audience="http://127.0.0.1:1/mcp", scopes="tickets:read"
    )
    response = httpx.post(
        served.url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "read_ticket", "arguments": {"ticket_id": "T"}},
        },
        headers={
            "Authorization": f"Bearer {other}",
            "Accept": "application/json, text/event-stream",
        },
        timeout=5,
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_verifier_must_be_bound_to_the_resource(oauth: OAuthServer) -> None:
    verifier = JWTVerifier(
        issuer=oauth.issuer,
        audience="https://other.example.test",
        algorithms=["RS256"],
        jwks=oauth.jwks(),
    )
    with pytest.raises(PolicyError):
        GuardTokenVerifier(verifier, resource="https://mcp.example.test/mcp")


def test_multi_audience_verifier_still_checks_the_resource(
    oauth: OAuthServer,
) -> None:
    resource = "https://mcp.example.test/mcp"
    verifier = JWTVerifier(
        issuer=oauth.issuer,
        audience=[resource, "https://other.example.test"],
        algorithms=["RS256"],
        jwks=oauth.jwks(),
    )
    bound = GuardTokenVerifier(verifier, resource=resource)
    other = oauth.mint_user("mallory", audience="https://other.example.test")
    mine = oauth.mint_user("mallory", audience=resource)
    assert asyncio.run(bound.verify_token(other)) is None
    access = asyncio.run(bound.verify_token(mine))
    assert access is not None
    assert access.resource == resource


def test_forbidden_tool_reached_by_renaming_on_mcp(oauth: OAuthServer) -> None:
    from mcp_support import POLICY

    resource = "https://mcp.example.test/mcp"
    verifier = JWTVerifier(
        issuer=oauth.issuer, audience=resource, algorithms=["RS256"], jwks=oauth.jwks()
    )
    mcp_guard = MCPGuard(
        Guard(POLICY), token_verifier=GuardTokenVerifier(verifier, resource=resource)
    )
    server: MCPServer[Any] = MCPServer("x")

    def open_floodgate(gate: int) -> str:
        return "opened"

    with pytest.raises(PolicyError):
        mcp_guard.tool(server, name="open_floodgate")(open_floodgate)
    with pytest.raises(PolicyError):
        mcp_guard.tool(server, name="check_water_level")(open_floodgate)
    assert server._tool_manager.list_tools() == []


def test_scope_in_tool_arguments_is_ignored_over_http(
    oauth: OAuthServer, served: Served
) -> None:
    user = oauth.mint_user("eve", audience=served.resource, scopes="kb:read")
    response = httpx.post(
        served.url,
        json={
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {
                "name": "read_ticket",
                "arguments": {"ticket_id": "T-1", "scope": "tickets:read"},
            },
        },
        headers={
            "Authorization": f"Bearer {user}",
            "Accept": "application/json, text/event-stream",
        },
        timeout=5,
    )
    assert response.status_code == 403


def test_identity_missing_on_stdio_fails_closed(oauth: OAuthServer) -> None:
    env = {
        "TEST_JWKS": json.dumps(oauth.jwks()),
        "TEST_ISSUER": oauth.issuer,
        "TEST_RESOURCE": "https://mcp.example.test/mcp",
        "PYTHONPATH": str(STDIO_SERVER.parent),
    }
    params = StdioServerParameters(
        command=sys.executable, args=[str(STDIO_SERVER)], env=env
    )

    async def go() -> tuple[list[str], Any, Any]:
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = [t.name for t in (await session.list_tools()).tools]
            public = await session.call_tool("search_kb", {"query": "x"})
            scoped = await session.call_tool("read_ticket", {"ticket_id": "T"})
            return listed, public, scoped

    listed, public, scoped = asyncio.run(asyncio.wait_for(go(), timeout=30))
    assert listed == []
    assert public.is_error
    assert scoped.is_error
    assert "identity_missing" in text(public)
    assert "identity_missing" in text(scoped)


def test_two_users_interleaved_never_mix_scopes(
    oauth: OAuthServer, served: Served
) -> None:
    alice = oauth.mint_user("alice", audience=served.resource, scopes="tickets:read")
    bob = oauth.mint_user("bob", audience=served.resource, scopes="kb:read")

    async def alice_calls() -> list[str]:
        async with mcp_session(served.url, alice) as s:
            out = []
            for n in range(15):
                result = await s.call_tool("read_ticket", {"ticket_id": f"A{n}"})
                assert not result.is_error
                out.append(text(result))
            return out

    async def bob_calls() -> list[str]:
        async with mcp_session(served.url, bob) as s:
            out = []
            for _ in range(15):
                out.append(text(await s.call_tool("whoami", {})))
                out.append(text(await s.call_tool("search_kb", {"query": "q"})))
            listed = [t.name for t in (await s.list_tools()).tools]
            assert "read_ticket" not in listed
            return out

    async def both() -> tuple[list[str], ...]:
        return tuple(
            await asyncio.gather(alice_calls(), bob_calls(), alice_calls(), bob_calls())
        )

    a1, b1, a2, b2 = asyncio.run(asyncio.wait_for(both(), timeout=30))
    assert all(line.endswith("for alice") for line in a1 + a2)
    # ``whoami`` is unguarded: it sees no principal of ours (anonymous),
    # never alice's.
    assert "alice" not in " ".join(b1 + b2)
    assert not [
        e
        for e in served.memory.events
        if e.subject == "bob"
        and e.decision == "allow"
        and "read_ticket" in str(e.resource)
    ]
