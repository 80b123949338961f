"""Guarded resources and prompts on an MCP stdio server (a real subprocess)."""

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
from mcp.shared.exceptions import MCPError

from oauth_support import OAuthServer, running_oauth_server

SERVER = Path(__file__).resolve().parents[1] / "mcp_resource_stdio_server.py"
RESOURCE = "https://mcp.example.test/mcp"
URIS = ("docs://public/readme", "docs://hr/pay", "file:///kb/a", "mem://undeclared")


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def session_run(oauth: OAuthServer, token: str | None) -> dict[str, Any]:
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

    async def go() -> dict[str, Any]:
        got: dict[str, Any] = {}
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            got["resources"] = sorted(
                str(r.uri) for r in (await session.list_resources()).resources
            )
            got["prompts"] = sorted(
                p.name for p in (await session.list_prompts()).prompts
            )
            for uri in URIS:
                try:
                    result = await session.read_resource(uri)
                    got[uri] = "".join(getattr(c, "text", "") for c in result.contents)
                except MCPError as exc:
                    got[uri] = "denied:" + str((exc.data or {}).get("code"))
        return got

    return dict(asyncio.run(asyncio.wait_for(go(), timeout=30)))


def test_stdio_identity_decides_reads_and_listings(oauth: OAuthServer) -> None:
    token = oauth.mint_user("erin", audience=RESOURCE, scopes="kb:read")
    got = session_run(oauth, token)
    assert got["docs://public/readme"] == "welcome"
    assert got["file:///kb/a"] == "kb a for erin"
    assert got["docs://hr/pay"] == "denied:scope_missing"
    assert got["mem://undeclared"] == "denied:resource_unknown"
    assert "docs://public/secret" not in got["resources"]
    assert got["prompts"] == ["summarise", "triage"]
    assert all(token not in str(v) for v in got.values())


def test_stdio_without_identity_reads_nothing(oauth: OAuthServer) -> None:
    got = session_run(oauth, None)
    for uri in URIS:
        assert got[uri] == "denied:identity_missing", uri
    assert got["resources"] == []
    assert got["prompts"] == []
