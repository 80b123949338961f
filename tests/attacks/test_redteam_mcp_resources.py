"""Red team: MCP resources, prompts and tools behind ``MCPGuard.protect``.

Attacks that got through the merged change, each asserting the secure
outcome and its stable code:

- a tool registered straight on the server (``@server.tool``,
  ``server.add_tool``) ran for any token: its ``tools:`` policy entry (scopes,
  data level) did not hold and an undeclared tool was not refused, while
  ``protect()`` refuses undeclared resources and prompts and FastMCP's guard
  refuses undeclared tools;
- a prompt or tool result embedding *another* resource (an
  ``EmbeddedResource`` whose URI the policy declares above the prompt's or
  tool's level) passed, since only labels were read;
- a listing that reached the guard as a pydantic model (an app middleware
  inside the guard answering from a cache) was returned unfiltered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from mcp import Client
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ListResourcesResult,
    ReadResourceResult,
    Resource,
    TextContent,
    TextResourceContents,
)

from aiinvariants import Guard, Policy, PolicyError
from aiinvariants.audit import MemorySink
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.mcp import GuardTokenVerifier, MCPGuard
from mcp_support import free_port
from oauth_support import OAuthServer, running_oauth_server

RESOURCE = "https://mcp.redteam.test/mcp"
SECRET = "salary table: CONFIDENTIAL-7731"

POLICY = Policy.from_dict(
    {
        "app": "mcp-redteam",
        "clearance": {"scopes": {"hr:read": "confidential"}},
        "tools": {
            "read_salary": {"scopes": ["hr:read"], "data": "confidential"},
            "lookup": {"data": "public"},
        },
        "resources": {
            "docs://public/{name}": {"data": "public"},
            "docs://hr/{name}": {"scopes": ["hr:read"], "data": "confidential"},
        },
        "prompts": {"summarise": {"data": "public"}},
    }
)


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def _build(
    oauth: OAuthServer, scopes: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[MCPServer[Any], MCPGuard, MemorySink]:
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    verifier = JWTVerifier(
        issuer=oauth.issuer, audience=RESOURCE, algorithms=["RS256"], jwks=oauth.jwks()
    )
    mcp_guard = MCPGuard(
        guard, token_verifier=GuardTokenVerifier(verifier, resource=RESOURCE)
    )
    server: MCPServer[Any] = MCPServer("redteam")
    monkeypatch.setenv(
        "REDTEAM_TOKEN", oauth.mint_user("eve", audience=RESOURCE, scopes=scopes)
    )
    mcp_guard.stdio_identity_from_env("REDTEAM_TOKEN")
    return server, mcp_guard, memory


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


async def _outcome(call: Any) -> str:
    try:
        result = await call
    except MCPError as exc:
        data = exc.data if isinstance(exc.data, dict) else {}
        return "denied:" + str(data.get("code", exc.code))
    dumped = json.dumps(result.model_dump(mode="json", by_alias=True))
    if getattr(result, "is_error", False):
        return "tool_error:" + dumped
    return "ok:" + dumped


def _code(outcome: str) -> str:
    return outcome if outcome.startswith("denied:") else "ran:" + outcome[:200]


# -- tools registered straight on a protected server --------------------------------


def _salary() -> str:
    return SECRET


def _with_direct_tools(server: MCPServer[Any]) -> None:
    @server.tool(name="read_salary")
    def read_salary() -> str:
        return SECRET

    server.add_tool(_salary, name="salary_undeclared")

    @server.tool(name="lookup")
    def lookup(term: str) -> str:
        return f"public answer for {term}"


@pytest.mark.parametrize("protect_first", [True, False])
def test_a_tool_added_straight_on_a_protected_server_is_decided(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, protect_first: bool
) -> None:
    server, mcp_guard, memory = _build(oauth, "", monkeypatch)
    if protect_first:
        mcp_guard.protect(server)
        _with_direct_tools(server)
    else:
        _with_direct_tools(server)
        mcp_guard.protect(server)

    async def go() -> dict[str, str]:
        async with Client(server) as client:
            return {
                name: await _outcome(client.call_tool(name, args))
                for name, args in (
                    ("read_salary", {}),
                    ("salary_undeclared", {}),
                    ("lookup", {"term": "x"}),
                )
            }

    got = run(go())
    assert _code(got["read_salary"]) == "denied:scope_missing"
    assert _code(got["salary_undeclared"]) == "denied:tool_unknown"
    assert got["lookup"].startswith("ok:")
    assert SECRET not in json.dumps(got)
    reasons = {e.reason for e in memory.events if e.decision == "deny"}
    assert {"scope_missing", "tool_unknown"} <= reasons


def test_the_scope_holder_calls_the_direct_tool_and_lists_only_what_it_may(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, mcp_guard, _ = _build(oauth, "hr:read", monkeypatch)
    mcp_guard.protect(server)
    _with_direct_tools(server)

    async def go() -> tuple[str, list[str]]:
        async with Client(server) as client:
            called = await _outcome(client.call_tool("read_salary", {}))
            listed = [t.name for t in (await client.list_tools()).tools]
            return called, listed

    called, listed = run(go())
    assert called.startswith("ok:")
    assert SECRET in called
    assert sorted(listed) == ["lookup", "read_salary"]


def test_direct_tools_a_caller_may_not_call_are_not_listed(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)
    _with_direct_tools(server)

    async def go() -> list[str]:
        async with Client(server) as client:
            return [t.name for t in (await client.list_tools()).tools]

    assert run(go()) == ["lookup"]


# -- results that embed another resource --------------------------------------------


def _embedded(uri: str) -> EmbeddedResource:
    return EmbeddedResource(
        type="resource", resource=TextResourceContents(uri=uri, text=SECRET)
    )


@pytest.mark.parametrize("uri", ["docs://hr/pay", "DOCS://hr/%70ay", "docs://HR/pay"])
def test_a_public_prompt_embedding_a_confidential_resource_is_withheld(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)

    @server.prompt(name="summarise")
    def summarise() -> list[UserMessage]:
        return [UserMessage(content=_embedded(uri))]

    async def go() -> str:
        async with Client(server) as client:
            return await _outcome(client.get_prompt("summarise", {}))

    got = run(go())
    assert got == "denied:mislabelled_source"
    assert SECRET not in got


def test_a_public_prompt_embedding_a_public_resource_passes(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)

    @server.prompt(name="summarise")
    def summarise() -> list[UserMessage]:
        return [UserMessage(content=_embedded("docs://public/readme"))]

    async def go() -> str:
        async with Client(server) as client:
            return await _outcome(client.get_prompt("summarise", {}))

    assert run(go()).startswith("ok:")


def test_a_public_tool_embedding_a_confidential_resource_is_withheld(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)

    @mcp_guard.tool(server, name="lookup", data="public")
    def lookup() -> list[EmbeddedResource]:
        return [_embedded("docs://hr/pay")]

    async def go() -> str:
        async with Client(server) as client:
            return await _outcome(client.call_tool("lookup", {}))

    got = run(go())
    assert SECRET not in got
    assert "mislabelled_source" in got


# -- listings ------------------------------------------------------------------------


def test_a_listing_answered_as_a_model_inside_the_guard_is_filtered(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)

    # An app middleware inside the guard answers the listing from its cache,
    # as a model (the SDK dumps it only after the whole chain).
    async def cached_listing(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "resources/list":
            return ListResourcesResult(
                resources=[
                    Resource(uri="docs://hr/pay", name="pay"),
                    Resource(uri="docs://public/readme", name="readme"),
                ]
            )
        return await call_next(ctx)

    server.middleware.append(cached_listing)

    async def go() -> list[str]:
        async with Client(server) as client:
            return [str(r.uri) for r in (await client.list_resources()).resources]

    assert run(go()) == ["docs://public/readme"]


# -- labels inside binary contents ---------------------------------------------------


@pytest.mark.parametrize("kind", ["resource", "prompt"])
def test_a_label_inside_a_blob_is_read(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)
    document = json.dumps({"text": SECRET, "classification": "confidential"})

    # The same mislabelled document a text read withholds, returned as
    # bytes: the SDK sends it base64-encoded in a ``blob``.
    @server.resource("docs://public/report", mime_type="application/json")
    def report() -> bytes:
        return document.encode()

    @server.prompt(name="summarise")
    def summarise() -> list[UserMessage]:
        return [
            UserMessage(
                content=EmbeddedResource(
                    type="resource",
                    resource=BlobResourceContents(
                        uri="docs://public/report",
                        blob=base64.b64encode(document.encode()).decode(),
                    ),
                )
            )
        ]

    async def go() -> str:
        async with Client(server) as client:
            if kind == "resource":
                return await _outcome(client.read_resource("docs://public/report"))
            return await _outcome(client.get_prompt("summarise", {}))

    got = run(go())
    assert got == "denied:mislabelled_source"


@pytest.mark.parametrize("swap", ["registered_first", "swapped_later"])
def test_a_guarded_name_the_server_runs_other_code_for_is_decided(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)

    def admin() -> str:
        return SECRET

    def guarded_admin() -> str:
        return "guarded"

    if swap == "registered_first":
        # The SDK keeps the first of two tools of one name: the unguarded one.
        server.add_tool(admin, name="admin_report")
        mcp_guard.tool(server, name="admin_report", scopes=["hr:read"])(guarded_admin)
    else:
        mcp_guard.tool(server, name="admin_report", scopes=["hr:read"])(guarded_admin)
        server.remove_tool("admin_report")
        server.add_tool(admin, name="admin_report")

    async def go() -> str:
        async with Client(server) as client:
            return await _outcome(client.call_tool("admin_report", {}))

    got = run(go())
    assert got == "denied:scope_missing"


# -- the stdio identity does not answer HTTP requests -------------------------------


def _serve_http(server: MCPServer[Any]) -> tuple[str, Any]:
    port = free_port()
    app: Any = server.streamable_http_app(json_response=True)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started:
        assert time.monotonic() < deadline
        assert thread.is_alive()
        time.sleep(0.01)

    def stop() -> None:
        runner.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}/mcp", stop


@pytest.mark.parametrize("protected", [True, False])
def test_an_http_request_without_a_token_is_not_the_stdio_identity(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, protected: bool
) -> None:
    # The same server module configured for stdio (an identity from the
    # environment) and served over HTTP without the SDK's auth: an HTTP
    # caller with no token must not act as the stdio identity.
    server, mcp_guard, _ = _build(oauth, "hr:read", monkeypatch)
    if protected:
        mcp_guard.protect(server)

        @server.resource("docs://hr/pay")
        def pay() -> str:
            return SECRET

        @server.tool(name="read_salary")
        def read_salary() -> str:
            return SECRET

    else:
        # Only guarded tools, no protect(): the wrapper decides alone.
        mcp_guard.tool(server, name="read_salary")(_salary)

    url, stop = _serve_http(server)

    async def go() -> dict[str, str]:
        async with Client(url) as client:
            got = {"call": await _outcome(client.call_tool("read_salary", {}))}
            if protected:
                got["read"] = await _outcome(client.read_resource("docs://hr/pay"))
            return got

    try:
        got = run(go())
    finally:
        stop()
    assert SECRET not in json.dumps(got)
    for outcome in got.values():
        assert "identity_missing" in outcome


# -- bounded cost ----------------------------------------------------------------------


def test_a_listing_does_not_copy_every_resource_per_entry(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Routing each listed resource by listing every resource again made a
    # listing quadratic: 2000 resources took 40 s of CPU per resources/list.
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.protect(server)
    for i in range(200):
        server.resource(f"docs://public/r{i}", name=f"r{i}")(_salary)
    calls = {"resources": 0, "templates": 0}
    list_resources = server.list_resources
    list_templates = server.list_resource_templates

    async def counted_resources() -> Any:
        calls["resources"] += 1
        return await list_resources()

    async def counted_templates() -> Any:
        calls["templates"] += 1
        return await list_templates()

    monkeypatch.setattr(server, "list_resources", counted_resources)
    monkeypatch.setattr(server, "list_resource_templates", counted_templates)

    async def go() -> int:
        async with Client(server) as client:
            listed = (await client.list_resources()).resources
            await client.read_resource("docs://public/r7")
            return len(listed)

    assert run(go()) == 200
    # The listing itself, and nothing per entry or per read.
    assert calls == {"resources": 1, "templates": 0}


@pytest.mark.parametrize("uri", ["notes://bob", "vault://public/x"])
def test_an_embedded_resource_is_held_to_the_level_a_read_of_it_has(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    # notes:// is declared in code only (MCPGuard.resource); the SDK routes
    # vault://public/x to vault://{area}/{name}, declared confidential in
    # code: a read of either is decided at that level, and so is a public
    # prompt handing out its contents.
    server, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard.resource(server, "notes://{user}", scopes=["hr:read"], data="internal")(
        _note
    )
    mcp_guard.resource(
        server, "vault://{area}/{name}", scopes=["hr:read"], data="confidential"
    )(_vault)

    @server.prompt(name="summarise")
    def summarise() -> list[UserMessage]:
        return [UserMessage(content=_embedded(uri))]

    async def go() -> str:
        async with Client(server) as client:
            return await _outcome(client.get_prompt("summarise", {}))

    assert run(go()) == "denied:mislabelled_source"


def _note(user: str) -> str:
    return f"notes of {user}"


def _vault(area: str, name: str) -> str:
    return f"{area}/{name}: {SECRET}"


def test_one_mcp_guard_for_two_servers_decides_each_servers_own_tool(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One MCPGuard guards a public server and an admin server. The admin
    # server's "report" is a guarded wrapper; the public server has a plain
    # tool of the same name: it is decided, not trusted to a wrapper that
    # runs on the other server.
    public, mcp_guard, _ = _build(oauth, "", monkeypatch)
    admin: MCPServer[Any] = MCPServer("admin")
    mcp_guard.protect(public)
    public.add_tool(_salary, name="report")
    mcp_guard.tool(admin, name="report", scopes=["hr:read"])(_salary)
    mcp_guard.protect(admin)

    async def go() -> str:
        async with Client(public) as client:
            return await _outcome(client.call_tool("report", {}))

    assert run(go()) == "denied:scope_missing"


# -- a low-level server -------------------------------------------------------------


def test_a_low_level_read_answering_another_resources_contents_is_withheld(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A low-level Server's read handler answers a public URI with contents
    # it labels as another, confidential, resource.
    _, mcp_guard, _ = _build(oauth, "", monkeypatch)

    async def read(ctx: Any, params: Any) -> ReadResourceResult:
        return ReadResourceResult(
            contents=[
                TextResourceContents(uri=params.uri, text="public intro"),
                TextResourceContents(uri="docs://hr/pay", text=SECRET),
            ]
        )

    async def call(ctx: Any, params: Any) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=SECRET)])

    server: Server[Any] = Server("lowlevel", on_read_resource=read, on_call_tool=call)
    mcp_guard.protect(server)

    async def go() -> dict[str, str]:
        async with Client(server) as client:
            return {
                "read": await _outcome(client.read_resource("docs://public/intro")),
                "call": await _outcome(client.call_tool("read_salary", {})),
            }

    got = run(go())
    assert got == {"read": "denied:mislabelled_source", "call": "denied:scope_missing"}


# -- a FastMCP server given to protect() ------------------------------------------


def test_protect_refuses_a_fastmcp_server(oauth: OAuthServer) -> None:
    # Its middleware list holds FastMCP middleware: a ReadGuard put there
    # answered every request (ping, tools) with an internal error.
    from fastmcp import FastMCP

    mcp_guard = MCPGuard(Guard(POLICY), allow_anonymous=True)
    server = FastMCP("fastmcp")
    before = list(server.middleware)
    with pytest.raises(PolicyError, match="guard_fastmcp"):
        mcp_guard.protect(server)
    assert server.middleware == before


def test_a_guarded_fastmcp_binary_read_still_answers() -> None:
    # The embedded-resource walk reads FastMCP's models with raw bytes too
    # (a JSON dump of them failed: every guarded binary read was an error).
    import fastmcp

    from fastmcp_conformance_server import build

    async def go() -> list[str]:
        async with fastmcp.Client(build(guarded=True)) as client:
            contents = await client.read_resource("test://static-binary")
            return [type(c).__name__ for c in contents]

    assert run(go()) == ["BlobResourceContents"]


def test_over_http_a_direct_tool_is_decided_and_hidden(oauth: OAuthServer) -> None:
    from mcp_resource_support import running_resource_server
    from mcp_support import mcp_session

    with running_resource_server(oauth) as served:
        served.server.add_tool(_salary, name="dump_salaries")
        token = oauth.mint_user(
            "ann", audience=served.resource, scopes="hr:read kb:read"
        )

        async def go() -> tuple[str, list[str]]:
            async with mcp_session(served.url, token) as session:
                called = await _outcome(session.call_tool("dump_salaries", {}))
                listed = [t.name for t in (await session.list_tools()).tools]
                return called, listed

        called, listed = run(go())
    assert called == "denied:tool_unknown"
    assert "dump_salaries" not in listed


# -- query templates -------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "docs://search?q=x&area=hr",
        "docs://search?area=hr",
        "docs://search?q=x&%61rea=hr",
        "docs://search?q=x&area",
    ],
)
def test_a_query_parameter_the_policy_key_does_not_name_is_not_its(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    # The policy declares the public search '{?q}'; the server's handler
    # takes '{?q,area}' too (not declared). A URI with 'area' was decided by
    # the public key while the handler searched the HR area.
    policy = Policy.from_dict(
        {
            "clearance": {"scopes": {"hr:read": "confidential"}},
            "resources": {"docs://search{?q}": {"data": "public"}},
        }
    )
    _, mcp_guard, _ = _build(oauth, "", monkeypatch)
    mcp_guard = MCPGuard(Guard(policy), token_verifier=mcp_guard.token_verifier)
    mcp_guard.stdio_identity_from_env("REDTEAM_TOKEN")
    server: MCPServer[Any] = MCPServer("search")
    mcp_guard.protect(server)

    @server.resource("docs://search{?q,area}")
    def search(q: str = "", area: str = "public") -> str:
        return SECRET if area == "hr" else f"public results for {q}"

    async def go() -> dict[str, str]:
        async with Client(server) as client:
            return {
                "attack": await _outcome(client.read_resource(uri)),
                "plain": await _outcome(client.read_resource("docs://search?q=x")),
            }

    got = run(go())
    assert got["attack"] == "denied:resource_unknown"
    assert got["plain"].startswith("ok:")
