"""Guarded MCP resources and prompts: one policy, three users, the real SDK.

Self-contained: it makes its own signing key (standing in for your identity
provider), serves an MCP server of the official SDK over streamable HTTP on
127.0.0.1, and reads it with the SDK's client as three users. The server
registers its resources and prompts the usual way (``@server.resource``,
``@server.prompt``); ``MCPGuard.protect`` makes the policy's ``resources:``
and ``prompts:`` decide every read, listing, subscription and completion:

- ``docs://handbook/{page}``: public, anyone with a token for this server;
- ``docs://hr/{employee}``: needs the ``hr:read`` scope the *user* delegated
  (a 403 ``insufficient_scope`` with ``scope="hr:read"`` tells the client
  what to ask for), and returns confidential data;
- ``docs://drafts``: served by the code but declared nowhere: refused;
- the prompt ``incident_report`` needs ``incidents:write``.

A request without a token gets a 401 whose challenge names the scopes, and
the RFC 9728 metadata lists every scope the policy names.

Needs the ``mcp`` extra: ``pip install "aiinvariants[mcp]"``.
Run: ``python examples/mcp_server.py``
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
import httpx2
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from aiinvariants import Guard, Policy, current_principal
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
        "app": "mcp-resources-example",
        # Holders of hr:read may read confidential data.
        "clearance": {"scopes": {"hr:read": "confidential"}},
        "resources": {
            "docs://handbook/{page}": {"data": "public"},
            "docs://hr/{employee}": {"scopes": ["hr:read"], "data": "confidential"},
        },
        "prompts": {
            "summarise": {"data": "public"},
            "incident_report": {"scopes": ["incidents:write"], "data": "public"},
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


def build(resource: str) -> Any:
    """The guarded MCP server's ASGI app."""
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

    @server.resource("docs://handbook/{page}")
    def handbook(page: str) -> str:
        return f"handbook page {page}"

    @server.resource("docs://hr/{employee}")
    def hr_file(employee: str) -> str:
        return f"salary of {employee}, read for {current_principal().subject}"

    @server.resource("docs://drafts")
    def drafts() -> str:
        return "unreleased plans"

    @server.prompt(name="summarise")
    def summarise(text: str) -> str:
        return f"Summarise this: {text}"

    @server.prompt(name="incident_report")
    def incident_report(system: str) -> str:
        return f"Write the incident report for {system}"

    mcp_guard.protect(server)  # every resource and prompt, now and later
    return mcp_guard.asgi(server.streamable_http_app(json_response=True))


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """Serve the example server on a free loopback port; yield its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resource = f"http://127.0.0.1:{port}/mcp"
    server = uvicorn.Server(
        uvicorn.Config(build(resource), host="127.0.0.1", port=port, log_level="error")
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


async def as_user(url: str, user: str, scopes: str) -> None:
    token = mint(user, audience=url, scopes=scopes)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        templates = await session.list_resource_templates()
        listed = sorted(t.uri_template for t in templates.resource_templates)
        prompts = sorted(p.name for p in (await session.list_prompts()).prompts)
        print(f"{user} sees: {listed} {prompts}")
        for uri in ("docs://handbook/vpn", "docs://hr/carol", "docs://drafts"):
            try:
                result = await session.read_resource(uri)
                text = "".join(getattr(c, "text", "") for c in result.contents)
                print(f"{user} reads {uri}: {text}")
            except Exception as exc:
                data = getattr(exc, "data", None)
                code = data.get("code") if isinstance(data, dict) else None
                why = code or "HTTP 403 insufficient_scope"
                print(f"{user} reads {uri}: refused ({why})")


def main() -> None:
    logging.disable(logging.WARNING)
    with serve() as url:
        asyncio.run(as_user(url, "alice", "hr:read"))
        asyncio.run(as_user(url, "bob", ""))
        hr_read = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "resources/read",
            "params": {"uri": "docs://hr/carol"},
        }
        bob = mint("bob", audience=url)
        answer = httpx.post(
            url,
            json=hr_read,
            headers={
                "Authorization": f"Bearer {bob}",
                "Accept": "application/json, text/event-stream",
            },
        )
        challenge = answer.headers["www-authenticate"]
        print(f"bob, raw JSON-RPC: {answer.status_code} {challenge}")
        anonymous = httpx.post(
            url, json=hr_read, headers={"Accept": "application/json"}
        )
        print(
            f"no token: {anonymous.status_code} {anonymous.headers['www-authenticate']}"
        )
        metadata = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        print("scopes_supported:", httpx.get(metadata).json()["scopes_supported"])


if __name__ == "__main__":
    main()
