"""An official-SDK MCP server with resources and prompts, guarded, on loopback.

``build_resource_server`` registers resources and prompts the way apps do:
most straight on the ``MCPServer`` (``@server.resource``, ``@server.prompt``),
guarded only by ``MCPGuard.protect`` and the policy, one each through
``MCPGuard.resource`` / ``MCPGuard.prompt`` with a code declaration, and a
few the policy does not declare (refused). ``running_resource_server``
serves it with uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

from aiinvariants import Guard, Policy, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.mcp import GuardTokenVerifier, MCPGuard
from mcp_support import free_port
from oauth_support import OAuthServer

POLICY_DATA: dict[str, Any] = {
    "app": "mcp-resources",
    "clearance": {
        "scopes": {
            "hr:read": "confidential",
            "kb:read": "internal",
            "notes:read": "internal",
            "incidents:write": "internal",
        }
    },
    "tools": {"search_kb": {"data": "public"}},
    "resources": {
        "docs://public/readme": {"data": "public", "untrusted_output": False},
        "docs://public/{name}": {"data": "public"},
        "docs://public/secret": {"scopes": ["hr:read"], "data": "confidential"},
        "docs://hr/{name}": {"scopes": ["hr:read"], "data": "confidential"},
        "file:///kb/{+path}": {"scopes": ["kb:read"], "data": "internal"},
        "mem://mislabelled": {"data": "public"},
        "mem://disabled": {"data": "public", "enabled": False},
        "vault://public/{name}": {"data": "public"},
        "vault://{area}/{name}": {"scopes": ["hr:read"], "data": "confidential"},
    },
    "prompts": {
        "summarise": {"data": "public"},
        "incident": {"scopes": ["incidents:write"], "data": "internal"},
    },
}
POLICY = Policy.from_dict(POLICY_DATA)

#: Every resource text carries the subject it was read for.
SECRET_TEXT = "salary table: CONFIDENTIAL-7731"


@dataclass
class ResourceServed:
    server: MCPServer[Any]
    mcp_guard: MCPGuard
    memory: MemorySink
    url: str = ""
    resource: str = ""


def build_resource_server(
    oauth: OAuthServer, resource: str, *, guarded: bool = True
) -> ResourceServed:
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    verifier = JWTVerifier(
        issuer=oauth.issuer, audience=resource, algorithms=["RS256"], jwks=oauth.jwks()
    )
    mcp_guard = MCPGuard(
        guard, token_verifier=GuardTokenVerifier(verifier, resource=resource)
    )
    server: MCPServer[Any] = MCPServer(
        "resources",
        token_verifier=mcp_guard.token_verifier,
        auth=mcp_guard.auth_settings(issuer_url=oauth.issuer),
        warn_on_duplicate_resources=False,
    )
    if guarded:
        mcp_guard.protect(server)

    @server.resource("docs://public/readme")
    def readme() -> str:
        return "welcome"

    @server.resource("docs://public/secret")
    def secret() -> str:
        return SECRET_TEXT

    @server.resource("docs://hr/{name}")
    def hr_doc(name: str) -> str:
        return f"hr {name} for {current_principal().subject}: {SECRET_TEXT}"

    @server.resource("docs://public/{name}")
    def public_doc(name: str) -> str:
        return f"public {name}"

    @server.resource("file:///kb/{+path}")
    def kb_file(path: str) -> str:
        return f"kb {path} for {current_principal().subject}"

    # The SDK routes vault://public/x to the handler that reads every area
    # (its only vault template), while the policy's most specific key for
    # that URI is the public vault://public/{name}: both entries decide.
    @server.resource("vault://{area}/{name}")
    def vault(area: str, name: str) -> str:
        return f"vault {area}/{name}: {SECRET_TEXT}"

    @server.resource("mem://mislabelled")
    def mislabelled() -> str:
        return json.dumps({"text": SECRET_TEXT, "classification": "confidential"})

    @server.resource("mem://disabled")
    def disabled() -> str:
        return "disabled"

    @server.resource("mem://undeclared")
    def undeclared() -> str:
        return "nobody declared me"

    @server.prompt(name="summarise")
    def summarise(text: str) -> str:
        return f"Summarise: {text}"

    @server.prompt(name="incident")
    def incident(system: str) -> str:
        return f"Incident report for {system} by {current_principal().subject}"

    @server.prompt(name="raw_prompt")
    def raw_prompt() -> str:
        return "an undeclared prompt"

    if guarded:
        notes = mcp_guard.resource(
            server, "notes://{user}", scopes=["notes:read"], data="internal"
        )
        notes(_notes)
        triage = mcp_guard.prompt(
            server, name="triage", scopes=["kb:read"], data="internal"
        )
        triage(_triage)
    return ResourceServed(server=server, mcp_guard=mcp_guard, memory=memory)


def _notes(user: str) -> str:
    return f"notes of {user}"


def _triage(ticket: str) -> str:
    return f"triage {ticket}"


@contextlib.contextmanager
def running_resource_server(
    oauth: OAuthServer, *, guarded: bool = True
) -> Iterator[ResourceServed]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    served = build_resource_server(oauth, resource, guarded=guarded)
    app: Any = served.server.streamable_http_app(json_response=True)
    outer = served.mcp_guard.asgi(app) if guarded else app
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
    served.url = served.resource = resource
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout=10)
