"""A guarded FastMCP stdio server, run as a subprocess by the tests.

Environment: ``TEST_JWKS`` (the authorization server's JWK Set, JSON),
``TEST_ISSUER``, ``TEST_RESOURCE``, and optionally ``MCP_ACCESS_TOKEN`` (the
stdio identity). Without it no identity is configured and every guarded
request must fail closed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastmcp import FastMCP

from aiinvariants import Guard, Policy, current_principal
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.fastmcp import FastMCPGuard, GuardAuthProvider

POLICY = Policy.from_dict(
    {
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "tools": {
            "search_kb": {"data": "public"},
            "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
        },
    }
)


def main() -> None:
    resource = os.environ["TEST_RESOURCE"]
    guard = Guard(POLICY)
    verifier = JWTVerifier(
        issuer=os.environ["TEST_ISSUER"],
        audience=resource,
        algorithms=["RS256"],
        jwks=json.loads(os.environ["TEST_JWKS"]),
    )
    guarded = FastMCPGuard(
        guard, auth=GuardAuthProvider(guard, verifier=verifier, resource=resource)
    )
    if os.environ.get("MCP_ACCESS_TOKEN"):
        guarded.stdio_identity_from_env()
    server: FastMCP[Any] = FastMCP("stdio")
    guarded.install(server)

    @server.tool
    def search_kb(query: str) -> str:
        return f"kb:{query}"

    @server.tool
    def read_ticket(ticket_id: str) -> str:
        return f"ticket {ticket_id} for {current_principal().subject}"

    server.run(transport="stdio", show_banner=False)


if __name__ == "__main__":
    main()
