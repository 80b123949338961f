"""A guarded FastMCP server on loopback, for the FastMCP integration tests.

``build_server`` makes a FastMCP server with a :class:`GuardAuthProvider`
(tokens from the loopback OAuth server of ``oauth_support``, whose JWK Set
the verifier fetches from its ``/jwks`` over HTTP) and three
plain FastMCP tools the policy declares; ``running_fastmcp`` serves its
``http_app()`` with uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastmcp import FastMCP

from aiinvariants import Guard, Policy, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.fastmcp import (
    FastMCPGuard,
    GuardAuthProvider,
    guard_fastmcp,
)
from mcp_support import free_port
from oauth_support import OAuthServer

POLICY_DICT: dict[str, Any] = {
    "app": "fastmcp-tools",
    "clearance": {"scopes": {"tickets:read": "internal"}},
    "tools": {
        "search_kb": {"data": "public"},
        "whoami": {"data": "public"},
        "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
        "open_floodgate": {"capabilities": ["life_safety"]},
    },
}
POLICY = Policy.from_dict(POLICY_DICT)


@dataclass
class Served:
    server: FastMCP[Any]
    guarded: FastMCPGuard
    memory: MemorySink
    url: str = ""
    resource: str = ""


def build_server(
    oauth: OAuthServer, resource: str, *, policy: Policy = POLICY
) -> Served:
    memory = MemorySink()
    guard = Guard(policy, sinks=[memory])
    verifier = JWTVerifier(
        issuer=oauth.issuer,
        audience=resource,
        algorithms=["RS256"],
        jwks_uri=oauth.jwks_uri,
    )
    auth = GuardAuthProvider(guard, verifier=verifier, resource=resource)
    server: FastMCP[Any] = FastMCP("guarded", auth=auth)

    @server.tool
    def search_kb(query: str) -> str:
        return f"kb:{query}"

    @server.tool
    async def read_ticket(ticket_id: str, scope: str = "") -> str:
        # ``scope`` is an attacker-controlled argument; it must not matter.
        await asyncio.sleep(0.005)  # let concurrent calls interleave
        return f"ticket {ticket_id} for {current_principal().subject}"

    @server.tool
    def whoami() -> str:
        return current_principal().subject

    guarded = guard_fastmcp(guard, server)
    return Served(server=server, guarded=guarded, memory=memory)


@contextlib.contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def running_fastmcp(oauth: OAuthServer) -> Iterator[Served]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    served = build_server(oauth, resource)
    app = served.server.http_app(path="/mcp")
    with serving(app, port):
        served.url = resource
        served.resource = resource
        yield served
