"""An MCP stdio server with guarded tools, run as a subprocess by the tests.

Environment: ``TEST_JWKS`` (the authorization server's JWK Set, JSON),
``TEST_ISSUER``, ``TEST_RESOURCE``, and optionally ``MCP_ACCESS_TOKEN`` (the
stdio identity). Without ``MCP_ACCESS_TOKEN`` no identity is configured and
every guarded tool must fail closed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mcp.server.mcpserver import MCPServer

from aiinvariants import Guard, Policy, current_principal
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.mcp import GuardTokenVerifier, MCPGuard

POLICY = Policy.from_dict(
    {
        # Ticket readers may read internal data (the policy grants clearance).
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "tools": {
            "search_kb": {"data": "public", "exposure": "public"},
            "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
        },
    }
)


def main() -> None:
    resource = os.environ["TEST_RESOURCE"]
    verifier = JWTVerifier(
        issuer=os.environ["TEST_ISSUER"],
        audience=resource,
        algorithms=["RS256"],
        jwks=json.loads(os.environ["TEST_JWKS"]),
    )
    mcp_guard = MCPGuard(
        Guard(POLICY), token_verifier=GuardTokenVerifier(verifier, resource=resource)
    )
    if os.environ.get("MCP_ACCESS_TOKEN"):
        mcp_guard.stdio_identity_from_env("MCP_ACCESS_TOKEN")
    server: MCPServer[Any] = MCPServer("stdio-guarded")

    @mcp_guard.tool(server, name="search_kb")
    def search_kb(query: str) -> str:
        return f"kb:{query}"

    @mcp_guard.tool(server, name="read_ticket")
    def read_ticket(ticket_id: str, scope: str = "") -> str:
        return f"ticket {ticket_id} for {current_principal().subject}"

    mcp_guard.filter_tools(server)
    server.run("stdio")


if __name__ == "__main__":
    main()
