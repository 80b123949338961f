"""A guarded FastMCP server on stdio (a real subprocess), called by the SDK
client: the identity comes only from a verified token in its environment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from oauth_support import OAuthServer, running_oauth_server

SERVER = Path(__file__).resolve().parents[1] / "fastmcp_stdio_server.py"
RESOURCE = "https://mcp.example.test/mcp"


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def session_run(oauth: OAuthServer, token: str | None) -> tuple[list[str], Any, Any]:
    env = {
        "TEST_JWKS": json.dumps(oauth.jwks()),
        "TEST_ISSUER": oauth.issuer,
        "TEST_RESOURCE": RESOURCE,
        "PYTHONPATH": os.pathsep.join(
            [str(SERVER.parent.parent / "src"), str(SERVER.parent)]
        ),
    }
    if token is not None:
        env["MCP_ACCESS_TOKEN"] = token
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)], env=env)

    async def go() -> tuple[list[str], Any, Any]:
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = sorted(t.name for t in (await session.list_tools()).tools)
            ticket = await session.call_tool("read_ticket", {"ticket_id": "T-1"})
            kb = await session.call_tool("search_kb", {"query": "vpn"})
            return listed, ticket, kb

    return asyncio.run(asyncio.wait_for(go(), timeout=60))


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_stdio_identity_from_the_environment_is_verified_and_used(
    oauth: OAuthServer,
) -> None:
    token = oauth.mint_user("sam", audience=RESOURCE, scopes="tickets:read")
    listed, ticket, kb = session_run(oauth, token)
    assert listed == ["read_ticket", "search_kb"]
    assert text(ticket) == "ticket T-1 for sam"
    assert text(kb) == "kb:vpn"


def test_stdio_without_identity_fails_closed(oauth: OAuthServer) -> None:
    listed, ticket, kb = session_run(oauth, None)
    assert listed == []
    assert ticket.is_error
    assert "identity_missing" in text(ticket)
    assert kb.is_error


def test_stdio_token_for_another_server_does_not_start(oauth: OAuthServer) -> None:
    token = oauth.mint_user("eve", audience="https://other.test/mcp")
    # The server refuses the token at start (TokenInvalid, wrong_audience) and
    # exits: the client sees the connection close before initialize.
    with pytest.raises(Exception) as raised:  # noqa: PT011 - a task group
        session_run(oauth, token)
    assert "Connection closed" in repr(raised.value)
