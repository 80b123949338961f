"""Guarded MCP tools: a server with three tools, called as different users.

Self-contained: it makes its own signing key (standing in for your identity
provider), serves an MCP server of the official SDK over streamable HTTP on
127.0.0.1, and calls it with the SDK's client as three users:

- ``search_kb``: public data, anyone with a token for this server;
- ``read_ticket``: needs the ``tickets:read`` scope the *user* delegated,
  and returns internal data, which the policy's ``clearance`` map lets
  holders of that scope read;
- ``open_floodgate``: has the ``life_safety`` capability, which the policy
  forbids: it is refused when registered, so no one can ever call it.

Needs the ``mcp`` extra: ``pip install "aiinvariants[mcp]"``.
Run: ``python examples/mcp_tools.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from aiinvariants import Guard, Policy, PolicyError, current_principal
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.mcp import GuardTokenVerifier, MCPGuard

ISSUER = "https://login.example.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWKS = {
    "keys": [
        {
            **json.loads(RSAAlgorithm.to_jwk(KEY.public_key())),
            "kid": "k1",
            "alg": "RS256",
            "use": "sig",
        }
    ]
}
POLICY = Policy.from_dict(
    {
        "app": "mcp-example",
        # A user's clearance comes from the policy: a ticket reader may read
        # internal data. Without this, read_ticket is refused to everyone.
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "tools": {
            "search_kb": {"data": "public"},
            "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
            "open_floodgate": {"capabilities": ["life_safety"]},
        },
    }
)


def mint(subject: str, *, audience: str, scopes: str = "") -> str:
    """A user's access token, as the identity provider would issue it."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + 600,
        "scope": scopes,
        "client_id": "example-agent",
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        claims, KEY, algorithm="RS256", headers={"typ": "at+jwt", "kid": "k1"}
    )


def build(resource: str, *, guarded: bool = True) -> tuple[MCPServer[Any], Any]:
    """The MCP server and the ASGI app that serves it."""
    verifier = JWTVerifier(
        issuer=ISSUER, audience=resource, algorithms=["RS256"], jwks=JWKS
    )
    mcp_guard = MCPGuard(
        Guard(POLICY), token_verifier=GuardTokenVerifier(verifier, resource=resource)
    )
    server: MCPServer[Any] = MCPServer(
        "example",
        token_verifier=mcp_guard.token_verifier,
        auth=mcp_guard.auth_settings(issuer_url=ISSUER),
    )

    def search_kb(query: str) -> str:
        return f"3 articles about {query}"

    def read_ticket(ticket_id: str) -> str:
        return f"ticket {ticket_id}, read for {current_principal().subject}"

    def open_floodgate(gate: int) -> str:
        return f"gate {gate} opened"

    if not guarded:
        server.add_tool(search_kb)
        server.add_tool(read_ticket)
        return server, server.streamable_http_app(json_response=True)
    mcp_guard.tool(server)(search_kb)
    mcp_guard.tool(server)(read_ticket)
    try:
        mcp_guard.tool(server)(open_floodgate)
    except PolicyError:
        print("registration: open_floodgate refused (life_safety is forbidden)")
    mcp_guard.filter_tools(server)
    app = server.streamable_http_app(json_response=True)
    return server, mcp_guard.asgi(app)


@contextlib.contextmanager
def serve(*, guarded: bool = True) -> Iterator[str]:
    """Serve the example server on a free loopback port; yield its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resource = f"http://127.0.0.1:{port}/mcp"
    _, app = build(resource, guarded=guarded)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield resource
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.asynccontextmanager
async def session_as(url: str, token: str) -> AsyncIterator[ClientSession]:
    """An initialised SDK client session sending ``token``."""
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call_as(url: str, user: str, scopes: str, tool: str, args: Any) -> str:
    token = mint(user, audience=url, scopes=scopes)
    try:
        async with session_as(url, token) as session:
            result = await session.call_tool(tool, args)
    except Exception:
        return "refused (HTTP 403 insufficient_scope)"
    body = "".join(getattr(c, "text", "") for c in result.content)
    return f"error: {body}" if result.is_error else body


async def main_async(url: str) -> None:
    for user, scopes, tool, args in [
        ("alice", "tickets:read", "search_kb", {"query": "vpn"}),
        ("alice", "tickets:read", "read_ticket", {"ticket_id": "T-7"}),
        ("bob", "", "read_ticket", {"ticket_id": "T-7"}),
        ("alice", "tickets:read", "open_floodgate", {"gate": 1}),
    ]:
        outcome = await call_as(url, user, scopes, tool, args)
        print(f"{user} -> {tool}: {outcome}")
    other = mint("mallory", audience="https://other.example.test/mcp")
    try:
        async with session_as(url, other) as session:
            await session.list_tools()
        print("token for another server: accepted")
    except Exception:
        print("token for another server: rejected (HTTP 401)")


def main() -> None:
    logging.disable(logging.WARNING)
    with serve() as url:
        asyncio.run(main_async(url))


if __name__ == "__main__":
    main()
