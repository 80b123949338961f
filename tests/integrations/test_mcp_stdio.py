"""Guarded tools on an MCP stdio server (a real subprocess), called by the SDK."""

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

SERVER = Path(__file__).resolve().parents[1] / "mcp_stdio_server.py"
RESOURCE = "https://mcp.example.test/mcp"


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def call(oauth: OAuthServer, token: str | None, tool: str, args: dict[str, Any]) -> Any:
    env = {
        "TEST_JWKS": json.dumps(oauth.jwks()),
        "TEST_ISSUER": oauth.issuer,
        "TEST_RESOURCE": RESOURCE,
        # The checkout's own sources first, as in the test process itself.
        "PYTHONPATH": os.pathsep.join(
            [str(SERVER.parent.parent / "src"), str(SERVER.parent)]
        ),
    }
    if token is not None:
        env["MCP_ACCESS_TOKEN"] = token
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)], env=env)

    async def go() -> Any:
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = sorted(t.name for t in (await session.list_tools()).tools)
            return listed, await session.call_tool(tool, args)

    return asyncio.run(asyncio.wait_for(go(), timeout=30))


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_stdio_identity_from_environment_is_verified_and_used(
    oauth: OAuthServer,
) -> None:
    token = oauth.mint_user("erin", audience=RESOURCE, scopes="tickets:read")
    listed, result = call(oauth, token, "read_ticket", {"ticket_id": "T-3"})
    assert not result.is_error
    assert text(result) == "ticket T-3 for erin"
    assert listed == ["read_ticket", "search_kb"]


def test_scope_shortfall_on_stdio_is_a_tool_error(oauth: OAuthServer) -> None:
    token = oauth.mint_user("frank", audience=RESOURCE, scopes="kb:read")
    listed, result = call(
        oauth, token, "read_ticket", {"ticket_id": "T-3", "scope": "tickets:read"}
    )
    assert result.is_error
    assert "scope_missing" in text(result)
    assert token not in text(result)
    assert listed == ["search_kb"]
