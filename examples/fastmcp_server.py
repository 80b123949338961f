"""A guarded FastMCP server: plain FastMCP tools, one policy, one call to guard.

Self-contained: it makes its own signing key (standing in for your identity
provider), serves a FastMCP server over streamable HTTP on 127.0.0.1, and
calls it with FastMCP's own ``Client`` as different users:

- ``search_kb``: public data, anyone with a token for this server;
- ``read_ticket``: needs the ``tickets:read`` scope the *user* delegated;
- ``send_reply``: leaks a credential in its answer, which the output
  filters block before it reaches the client;
- ``open_floodgate``: has the ``life_safety`` capability, which the policy
  forbids: FastMCP refuses to register it, so no one can ever call it.

The tools are ordinary ``@server.tool`` functions: the policy decides
scopes, data levels and capabilities, and ``guard_fastmcp`` enforces it on
every call, listing and registration.

Needs the ``fastmcp`` extra: ``pip install "aiinvariants[fastmcp]"``.
Run: ``python examples/fastmcp_server.py``
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
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastmcp import Client, FastMCP
from jwt.algorithms import RSAAlgorithm
from mcp.shared.exceptions import MCPError

from aiinvariants import Guard, Policy, PolicyError, current_principal
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.fastmcp import GuardAuthProvider, guard_fastmcp

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

# --- what the app writes to guard its FastMCP server -------------------------
POLICY = Policy.from_dict(
    {
        "app": "fastmcp-example",
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "tools": {
            "search_kb": {"data": "public"},
            "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
            "send_reply": {"data": "public"},
            "open_floodgate": {"capabilities": ["life_safety"]},
        },
    }
)


def build(resource: str) -> FastMCP[Any]:
    guard = Guard(POLICY)
    verifier = JWTVerifier(
        issuer=ISSUER, audience=resource, algorithms=["RS256"], jwks=JWKS
    )
    server: FastMCP[Any] = FastMCP(
        "example", auth=GuardAuthProvider(guard, verifier=verifier, resource=resource)
    )
    guard_fastmcp(guard, server)
    # --- end of what the app writes; the tools are plain FastMCP ------------

    @server.tool
    def search_kb(query: str) -> str:
        return f"3 articles about {query}"

    @server.tool
    def read_ticket(ticket_id: str) -> str:
        return f"ticket {ticket_id}, read for {current_principal().subject}"

    @server.tool
    def send_reply(text: str) -> str:
        return f"sent {text!r} with key ghp_{'aZ3kQ9' * 6}"

    try:

        @server.tool
        def open_floodgate(gate: int) -> str:
            return f"gate {gate} opened"

    except PolicyError:
        print("registration: open_floodgate refused (life_safety is forbidden)")
    return server


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


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """Serve the example server on a free loopback port; yield its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resource = f"http://127.0.0.1:{port}/mcp"
    app = build(resource).http_app(path="/mcp")
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


async def call_as(url: str, user: str, scopes: str, tool: str, args: Any) -> str:
    token = mint(user, audience=url, scopes=scopes)
    async with Client(url, auth=token) as client:
        try:
            result = await client.call_tool(tool, args, raise_on_error=False)
        except MCPError:
            # The server answered HTTP 403 insufficient_scope, naming the
            # scope to ask the user for (a step-up).
            return "refused (HTTP 403 insufficient_scope)"
    body = "".join(getattr(c, "text", "") for c in result.content)
    return f"error: {body}" if result.is_error else body


async def main_async(url: str) -> None:
    for user, scopes, tool, args in [
        ("alice", "tickets:read", "search_kb", {"query": "vpn"}),
        ("alice", "tickets:read", "read_ticket", {"ticket_id": "T-7"}),
        ("bob", "", "read_ticket", {"ticket_id": "T-7"}),
        ("alice", "", "send_reply", {"text": "hello"}),
        ("alice", "tickets:read", "open_floodgate", {"gate": 1}),
    ]:
        outcome = await call_as(url, user, scopes, tool, args)
        print(f"{user} -> {tool}: {outcome}")
    async with Client(url, auth=mint("bob", audience=url)) as client:
        names = sorted(t.name for t in await client.list_tools())
    print(f"bob sees: {names}")
    other = mint("mallory", audience="https://other.example.test/mcp")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "Authorization": f"Bearer {other}",
                "Accept": "application/json, text/event-stream",
            },
        )
    status = response.status_code
    print(f"token for another server: HTTP {status}")


def main() -> None:
    logging.disable(logging.WARNING)
    with serve() as url:
        asyncio.run(main_async(url))


if __name__ == "__main__":
    main()
