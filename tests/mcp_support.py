"""An MCP server of the official SDK with guarded tools, on loopback.

``build_server`` registers three guarded tools (public, scoped, and a
``life_safety`` one that the policy refuses) plus one unguarded tool, and
``running_http_server`` serves it with uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from aiinvariants import Guard, Policy, PolicyError, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.mcp import GuardTokenVerifier, MCPGuard
from oauth_support import OAuthServer

POLICY = Policy.from_dict(
    {
        "app": "mcp-tools",
        # A user's clearance comes from the policy: a ticket reader may read
        # internal data. Without this, read_ticket is refused to everyone.
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "tools": {
            "search_kb": {"data": "public", "exposure": "public"},
            "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
            "open_floodgate": {"capabilities": ["life_safety"]},
        },
    }
)


@dataclass
class Served:
    server: MCPServer[Any]
    mcp_guard: MCPGuard
    memory: MemorySink
    url: str = ""
    resource: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_server(oauth: OAuthServer, resource: str, *, guarded: bool = True) -> Served:
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    verifier = JWTVerifier(
        issuer=oauth.issuer,
        audience=resource,
        algorithms=["RS256"],
        jwks=oauth.jwks(),
    )
    mcp_guard = MCPGuard(
        guard, token_verifier=GuardTokenVerifier(verifier, resource=resource)
    )
    server: MCPServer[Any] = MCPServer(
        "guarded",
        token_verifier=mcp_guard.token_verifier,
        auth=mcp_guard.auth_settings(issuer_url=oauth.issuer),
        warn_on_duplicate_tools=False,
    )

    def search_kb(query: str) -> str:
        return f"kb:{query}"

    async def read_ticket(ticket_id: str, scope: str = "") -> str:
        # ``scope`` is an attacker-controlled argument; it must not matter.
        await asyncio.sleep(0.005)  # let concurrent calls interleave
        return f"ticket {ticket_id} for {current_principal().subject}"

    def open_floodgate(gate: int) -> str:
        return f"opened {gate}"

    def whoami() -> str:
        return current_principal().subject

    if guarded:
        mcp_guard.tool(server, name="search_kb")(search_kb)
        mcp_guard.tool(server, name="read_ticket")(read_ticket)
        with contextlib.suppress(PolicyError):
            mcp_guard.tool(server, name="open_floodgate")(open_floodgate)
        mcp_guard.filter_tools(server)
    else:
        server.add_tool(search_kb, name="search_kb")
        server.add_tool(read_ticket, name="read_ticket")
    server.add_tool(whoami, name="whoami")
    return Served(server=server, mcp_guard=mcp_guard, memory=memory)


@contextlib.contextmanager
def running_http_server(
    oauth: OAuthServer, *, guarded: bool = True, wrapped: bool = True
) -> Iterator[Served]:
    """Serve ``build_server``; ``wrapped=False`` leaves out ``MCPGuard.asgi``
    (the SDK then reads the Authorization header itself)."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    served = build_server(oauth, resource, guarded=guarded)
    app: Any = served.server.streamable_http_app(json_response=True)
    outer = served.mcp_guard.asgi(app) if guarded and wrapped else app
    config = uvicorn.Config(
        outer, host="127.0.0.1", port=port, log_level="error", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    served.url = resource
    served.resource = resource
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.asynccontextmanager
async def mcp_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session
