"""Resources and prompts of a guarded FastMCP server, with tokens of each
scope set: in memory (FastMCP's Client) and over streamable HTTP (FastMCP's
Client and the official SDK client on uvicorn)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError

from aiinvariants import Guard, Policy, Principal, acting_as, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.fastmcp import GuardAuthProvider, guard_fastmcp
from fastmcp_support import serving
from mcp_support import free_port, mcp_session
from oauth_support import OAuthServer, running_oauth_server

GHP = "ghp_" + "aZ3kQ9" * 6
ACCEPT = {"Accept": "application/json, text/event-stream"}

POLICY = Policy.from_dict(
    {
        "app": "fastmcp-reads",
        "clearance": {"scopes": {"hr:read": "confidential", "kb:read": "internal"}},
        "resources": {
            "docs://public/{name}": {"data": "public"},
            "docs://hr/{name}": {"scopes": ["hr:read"], "data": "confidential"},
            "kb://{+path}": {"scopes": ["kb:read"], "data": "internal"},
            "status://now": {"data": "public"},
            "leaky://key": {"data": "public"},
        },
        "prompts": {
            "summarise": {"data": "public"},
            "incident": {"scopes": ["kb:read"], "data": "internal"},
            "leaky": {"data": "public"},
        },
    }
)

#: (subject, scopes) -> what each scope set may read and get.
SCOPE_SETS = {
    "": ({"status://now"}, {"summarise"}),
    "kb:read": ({"status://now"}, {"summarise", "incident"}),
    "hr:read kb:read": ({"status://now"}, {"summarise", "incident"}),
}


def build(policy: Policy = POLICY, **auth: Any) -> tuple[FastMCP[Any], MemorySink]:
    memory = MemorySink()
    guard = Guard(policy, sinks=[memory])
    server: FastMCP[Any] = FastMCP("reads", **auth)

    @server.resource("docs://public/{name}")
    def public_doc(name: str) -> str:
        return f"public {name}"

    @server.resource("docs://hr/{name}")
    def hr_doc(name: str) -> str:
        return f"hr {name} for {current_principal().subject}"

    @server.resource("kb://{path*}")
    def kb_page(path: str) -> str:
        return f"kb {path}"

    @server.resource("status://now")
    def status() -> str:
        return "ok"

    @server.resource("leaky://key")
    def leaky_resource() -> str:
        return f"key={GHP}"

    @server.resource("hidden://x")
    def undeclared() -> str:
        return "hidden"

    @server.prompt
    def summarise(text: str) -> str:
        return f"Summarise: {text}"

    @server.prompt
    def incident(ticket: str) -> str:
        return f"Incident {ticket} by {current_principal().subject}"

    @server.prompt
    def leaky() -> str:
        return f"use {GHP}"

    guard_fastmcp(guard, server)
    return server, memory


def user(scopes: str) -> Principal:
    return Principal(
        subject="ann", authenticated=True, scopes=frozenset(scopes.split())
    )


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def test_reads_follow_the_policy_for_each_scope_set() -> None:
    server, memory = build()

    async def go(scopes: str) -> dict[str, Any]:
        async with acting_as(user(scopes)), Client(server) as client:
            out: dict[str, Any] = {}
            for uri in ("docs://public/faq", "docs://hr/pay", "kb://a/b", "hidden://x"):
                try:
                    out[uri] = (await client.read_resource(uri))[0].text
                except MCPError as exc:
                    out[uri] = exc.error.data["code"]
            return out

    assert run(go("")) == {
        "docs://public/faq": "public faq",
        "docs://hr/pay": "scope_missing",
        "kb://a/b": "scope_missing",
        "hidden://x": "resource_unknown",
    }
    assert run(go("hr:read kb:read")) == {
        "docs://public/faq": "public faq",
        "docs://hr/pay": "hr pay for ann",
        "kb://a/b": "kb a/b",
        "hidden://x": "resource_unknown",
    }
    assert any(e.reason == "scope_missing" for e in memory.events)


@pytest.mark.parametrize("scopes", sorted(SCOPE_SETS))
def test_listings_show_only_what_each_scope_set_may_use(scopes: str) -> None:
    server, _ = build()

    async def go() -> tuple[set[str], set[str], set[str]]:
        async with acting_as(user(scopes)), Client(server) as client:
            resources = {str(r.uri) for r in await client.list_resources()}
            templates = {
                str(t.uri_template) for t in await client.list_resource_templates()
            }
            prompts = {p.name for p in await client.list_prompts()}
            return resources, templates, prompts

    resources, templates, prompts = run(go())
    expected_resources, expected_prompts = SCOPE_SETS[scopes]
    assert resources == {*expected_resources, "leaky://key"}
    assert prompts == {*expected_prompts, "leaky"}
    assert "docs://public/{name}" in templates
    assert ("docs://hr/{name}" in templates) == ("hr:read" in scopes)
    assert ("kb://{path*}" in templates) == ("kb:read" in scopes)


def test_prompts_follow_the_policy_and_run_as_the_caller() -> None:
    server, _ = build()

    async def go(scopes: str) -> Any:
        async with acting_as(user(scopes)), Client(server) as client:
            try:
                result = await client.get_prompt("incident", {"ticket": "T-1"})
            except MCPError as exc:
                return exc.error.data["code"]
            return result.messages[0].content.text

    assert run(go("")) == "scope_missing"
    assert run(go("kb:read")) == "Incident T-1 by ann"


def test_secrets_in_resources_and_prompts_are_blocked() -> None:
    server, _ = build()

    async def go() -> list[str]:
        errors = []
        async with acting_as(user("")), Client(server) as client:
            for action in (
                client.read_resource("leaky://key"),
                client.get_prompt("leaky"),
            ):
                try:
                    await action
                except MCPError as exc:
                    errors.append(str(exc.error.message))
        return errors

    errors = run(go())
    assert len(errors) == 2
    assert all("output_blocked" in e for e in errors)
    assert not any(GHP in e for e in errors)


def test_no_identity_reads_nothing() -> None:
    server, _ = build()

    async def go() -> tuple[Any, list[Any]]:
        async with Client(server) as client:
            try:
                await client.read_resource("docs://public/faq")
            except MCPError as exc:
                code = exc.error.data["code"]
            return code, await client.list_resources()

    assert run(go()) == ("identity_missing", [])


def test_tool_error_is_not_confused_with_reads() -> None:
    # A read denial is a JSON-RPC error; a tool denial stays a tool result.
    server, _ = build()

    async def go() -> None:
        async with acting_as(user("")), Client(server) as client:
            await client.call_tool("nope", {})

    with pytest.raises(ToolError, match="tool_unknown"):
        run(go())


# -- over HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(scope="module")
def http(oauth: OAuthServer) -> Iterator[tuple[str, MemorySink]]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    verifier = JWTVerifier(
        issuer=oauth.issuer,
        audience=resource,
        algorithms=["RS256"],
        jwks_uri=oauth.jwks_uri,
    )
    auth = GuardAuthProvider(Guard(POLICY), verifier=verifier, resource=resource)
    server, memory = build(auth=auth)
    with serving(server.http_app(path="/mcp"), port):
        yield resource, memory


def test_http_reads_with_each_client(
    oauth: OAuthServer, http: tuple[str, MemorySink]
) -> None:
    url, _ = http
    token = oauth.mint_user("ann", audience=url, scopes="hr:read kb:read")

    async def go() -> tuple[str, str, str]:
        async with Client(url, auth=token) as client:
            fast = (await client.read_resource("docs://hr/pay"))[0].text
            prompt = (
                (await client.get_prompt("incident", {"ticket": "T-2"}))
                .messages[0]
                .content.text
            )
        async with mcp_session(url, token) as session:
            sdk = (await session.read_resource("kb://x")).contents[0].text
        return fast, prompt, sdk

    assert run(go()) == ("hr pay for ann", "Incident T-2 by ann", "kb x")


def test_http_metadata_and_step_up_cover_reads(
    oauth: OAuthServer, http: tuple[str, MemorySink]
) -> None:
    url, _ = http
    port = url.split(":")[2].split("/")[0]
    meta = httpx.get(
        f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp", timeout=10
    ).json()
    assert meta["scopes_supported"] == ["hr:read", "kb:read"]
    token = oauth.mint_user("bob", audience=url, scopes="")
    for method, params, scope in (
        ("resources/read", {"uri": "docs://hr/pay"}, "hr:read"),
        ("resources/read", {"uri": "kb://a/b"}, "kb:read"),
        ("prompts/get", {"name": "incident", "arguments": {"ticket": "1"}}, "kb:read"),
    ):
        response = httpx.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers={**ACCEPT, "Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 403, method
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert f'scope="{scope}"' in challenge
