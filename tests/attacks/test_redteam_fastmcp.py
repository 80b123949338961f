"""Red team of the FastMCP integration: routes its own attack tests left open.

By class: the request that really runs (a middleware after the guard swaps
the tool, URI or prompt it decided; the server's core called directly), the
route FastMCP really reads with (a template broader than the policy's best
key; a template listed or completed on an example URI), and every field of
what the client receives (a content block's ``_meta``, a resource link's
name and URI, base64 blobs, images and audio that are text).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import mcp_types as mt
import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.client.elicitation import ElicitResult
from fastmcp.prompts import Message, PromptResult
from fastmcp.server.middleware import Middleware
from fastmcp.server.transforms import Transform
from fastmcp.tools import Tool, ToolResult
from fastmcp.tools.tool_transform import ArgTransform
from mcp.shared.exceptions import MCPError

from aiinvariants import (
    Guard,
    Policy,
    PolicyError,
    Principal,
    acting_as,
    current_principal,
)
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.fastmcp import guard_fastmcp

GHP = "ghp_" + "aZ3kQ9" * 6

POLICY: dict[str, Any] = {
    "app": "fastmcp-redteam",
    "clearance": {"scopes": {"tickets:read": "internal", "hr:read": "confidential"}},
    "tools": {
        "search_kb": {"data": "public"},
        "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
        "leak": {"data": "public"},
    },
    "resources": {
        "docs://public/{name}": {"data": "public"},
        "docs://hr/{name}": {"scopes": ["hr:read"], "data": "confidential"},
        # The policy's best key for vault://public/x is public; the server
        # answers it with vault://{area}/{name}, which reads every area.
        "vault://public/{name}": {"data": "public"},
        "vault://{area}/{name}": {"scopes": ["hr:read"], "data": "confidential"},
        # notes://{owner}/{id} is scoped; a neutral example URI of it
        # (notes://x/x) would be decided by the public notes://x/{id}.
        "notes://x/{id}": {"data": "public"},
        "notes://{owner}/{id}": {"scopes": ["hr:read"], "data": "confidential"},
    },
    "prompts": {
        "summarise": {"data": "public"},
        "incident": {"scopes": ["hr:read"], "data": "confidential"},
        "leaky": {"data": "public"},
    },
}
MALLORY = Principal(subject="mallory", authenticated=True)
ALICE = Principal(
    subject="alice",
    authenticated=True,
    scopes=frozenset({"tickets:read", "hr:read"}),
)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def build() -> tuple[FastMCP[Any], MemorySink]:
    memory = MemorySink()
    server: FastMCP[Any] = FastMCP("redteam")

    @server.tool
    def search_kb(query: str) -> str:
        return f"kb:{query}"

    @server.tool
    def read_ticket(ticket_id: str) -> str:
        return f"ticket {ticket_id} for {current_principal().subject}"

    @server.tool
    def leak(kind: str) -> ToolResult:
        block: Any = {
            "text_meta": mt.TextContent(type="text", text="ok", _meta={"k": GHP}),
            "link": mt.ResourceLink(
                type="resource_link", uri="docs://public/a", name=GHP
            ),
            "link_uri": mt.ResourceLink(
                type="resource_link", uri=f"docs://public/{GHP}", name="a"
            ),
            "blob": mt.EmbeddedResource(
                type="resource",
                resource=mt.BlobResourceContents(
                    uri="docs://public/a", blob=b64(f"key {GHP}")
                ),
            ),
            "embedded_uri": mt.EmbeddedResource(
                type="resource",
                resource=mt.TextResourceContents(uri=f"docs://public/{GHP}", text="ok"),
            ),
            "image": mt.ImageContent(
                type="image", data=b64(f"key {GHP}"), mime_type="image/png"
            ),
            "audio": mt.AudioContent(
                type="audio", data=b64(f"key {GHP}"), mime_type="audio/wav"
            ),
        }[kind]
        return ToolResult(content=[block])

    @server.resource("docs://public/{name}")
    def public_doc(name: str) -> str:
        return f"public {name}"

    @server.resource("docs://hr/{name}")
    def hr_doc(name: str) -> str:
        return f"salary sheet {name}"

    @server.resource("vault://{area}/{name}")
    def vault(area: str, name: str) -> str:
        return f"vault {area}/{name}: salary sheet"

    @server.resource("notes://{owner}/{id}")
    def notes(owner: str, id: str) -> str:
        return f"notes of {owner}"

    @server.prompt
    def summarise(text: str = "") -> str:
        return f"Summarise: {text}"

    @server.prompt
    def incident(text: str = "") -> str:
        return "confidential incident report"

    @server.prompt
    def leaky() -> PromptResult:
        return PromptResult(
            [Message(mt.TextContent(type="text", text="ok", _meta={"k": GHP}))]
        )

    @server.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["value only the scoped may see"]

    guard_fastmcp(Guard(Policy.from_dict(POLICY), sinks=[memory]), server)
    return server, memory


# -- what really runs: a middleware after the guard swaps the request -------------


class Swap(Middleware):
    """An app middleware added after the guard that rewrites requests (an
    alias table, a router, a compatibility shim)."""

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        message = context.message
        if message.name == "search_kb":
            swapped = message.model_copy(
                update={"name": "read_ticket", "arguments": {"ticket_id": "T-9"}}
            )
            return await call_next(context.copy(message=swapped))
        return await call_next(context)

    async def on_read_resource(self, context: Any, call_next: Any) -> Any:
        swapped = context.message.model_copy(update={"uri": "docs://hr/pay"})
        return await call_next(context.copy(message=swapped))

    async def on_get_prompt(self, context: Any, call_next: Any) -> Any:
        swapped = context.message.model_copy(update={"name": "incident"})
        return await call_next(context.copy(message=swapped))


def test_a_later_middleware_cannot_swap_the_tool_decided() -> None:
    server, memory = build()
    server.add_middleware(Swap())

    async def go(who: Principal) -> Any:
        async with acting_as(who), Client(server) as client:
            return await client.call_tool(
                "search_kb", {"query": "q"}, raise_on_error=False
            )

    result = run(go(MALLORY))
    assert result.is_error
    assert "[I1/scope_missing]" in text(result)
    assert "ticket T-9" not in repr(result)
    assert any(
        e.decision == "deny" and e.resource == "tool.read_ticket" for e in memory.events
    )
    # The holder of the scope still gets what the rewritten call runs.
    assert text(run(go(ALICE))) == "ticket T-9 for alice"


def test_a_later_middleware_cannot_swap_the_resource_or_prompt() -> None:
    server, _ = build()
    server.add_middleware(Swap())

    async def go() -> tuple[str, str]:
        async with acting_as(MALLORY), Client(server) as client:
            try:
                read = str((await client.read_resource("docs://public/a"))[0].text)
            except MCPError as exc:
                read = f"error {exc.error.data}"
            try:
                got = repr(await client.get_prompt("summarise", {"text": "x"}))
            except MCPError as exc:
                got = f"error {exc.error.data}"
            return read, got

    read, got = run(go())
    assert "salary" not in read
    assert "'code': 'scope_missing'" in read
    assert "confidential incident" not in got
    assert "'code': 'scope_missing'" in got


def test_the_servers_core_called_directly_is_decided() -> None:
    server, _ = build()

    async def go() -> None:
        async with acting_as(MALLORY):
            await server.call_tool(
                "read_ticket", {"ticket_id": "T-1"}, run_middleware=False
            )

    with pytest.raises(Exception, match="scope_missing") as refused:
        run(go())
    assert "ticket T-1" not in repr(refused.value)


def test_a_mounted_servers_middleware_cannot_swap_what_the_parent_decided() -> None:
    policy = {
        **POLICY,
        "tools": {**POLICY["tools"], "sub_search_kb": {"data": "public"}},
        "resources": {**POLICY["resources"], "docs://sub/{+path}": {"data": "public"}},
    }
    server: FastMCP[Any] = FastMCP("parent")
    guard_fastmcp(Guard(Policy.from_dict(policy)), server)
    child, _ = build()
    server.mount(child, namespace="sub")
    child.add_middleware(Swap())  # the child's own middleware, after the mount

    async def go(who: Principal) -> tuple[str, str]:
        async with acting_as(who), Client(server) as client:
            called = await client.call_tool(
                "sub_search_kb", {"query": "q"}, raise_on_error=False
            )
            try:
                read = str((await client.read_resource("docs://sub/public/a"))[0].text)
            except MCPError as exc:
                read = f"error {exc.error.data}"
            return text(called), read

    called, read = run(go(MALLORY))
    assert "ticket T-9" not in called
    assert "[I1/scope_missing]" in called
    assert "salary" not in read
    assert "'code': 'scope_missing'" in read
    assert run(go(ALICE)) == ("ticket T-9 for alice", "salary sheet pay")


# -- what FastMCP really reads with ---------------------------------------------


def test_a_template_broader_than_the_policy_key_needs_both_entries() -> None:
    server, _ = build()

    async def go(who: Principal) -> tuple[str, list[str]]:
        async with acting_as(who), Client(server) as client:
            templates = [
                str(t.uri_template) for t in await client.list_resource_templates()
            ]
            try:
                read = str((await client.read_resource("vault://public/x"))[0].text)
            except MCPError as exc:
                read = f"error {exc.error.data}"
            return read, templates

    read, templates = run(go(MALLORY))
    assert "salary" not in read
    assert "'code': 'scope_missing'" in read
    assert "vault://{area}/{name}" not in templates
    read, templates = run(go(ALICE))
    assert read == "vault public/x: salary sheet"
    assert "vault://{area}/{name}" in templates


def test_a_template_is_listed_and_completed_by_its_own_entry() -> None:
    server, _ = build()
    ref = mt.ResourceTemplateReference(type="ref/resource", uri="notes://{owner}/{id}")

    async def go(who: Principal) -> tuple[list[str], str]:
        async with acting_as(who), Client(server) as client:
            templates = [
                str(t.uri_template) for t in await client.list_resource_templates()
            ]
            try:
                done = repr(await client.complete(ref, {"name": "owner", "value": "b"}))
            except MCPError as exc:
                done = f"error {exc.error.data}"
            return templates, done

    templates, done = run(go(MALLORY))
    assert "notes://{owner}/{id}" not in templates
    assert "only the scoped" not in done
    assert "'code': 'scope_missing'" in done
    templates, done = run(go(ALICE))
    assert "notes://{owner}/{id}" in templates
    assert "only the scoped" in done


# -- every field of what the client receives --------------------------------------


@pytest.mark.parametrize(
    "kind",
    ["text_meta", "link", "link_uri", "blob", "embedded_uri", "image", "audio"],
)
def test_every_field_of_a_content_block_is_filtered(kind: str) -> None:
    server, _ = build()

    async def go() -> Any:
        async with acting_as(ALICE), Client(server) as client:
            return await client.call_tool("leak", {"kind": kind}, raise_on_error=False)

    result = run(go())
    assert result.is_error, kind
    assert "output_blocked" in text(result), kind
    assert GHP not in repr(result)
    assert b64(f"key {GHP}") not in repr(result)


def test_a_prompt_messages_meta_is_filtered() -> None:
    server, _ = build()

    async def go() -> str:
        async with acting_as(ALICE), Client(server) as client:
            try:
                return repr(await client.get_prompt("leaky"))
            except MCPError as exc:
                return f"error {exc.error.message}"

    got = run(go())
    assert GHP not in got
    assert "output_blocked" in got


def test_binary_content_passes_unchanged() -> None:
    server, _ = build()

    @server.tool(name="search_kb")
    def png() -> ToolResult:
        data = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\xff").decode()
        return ToolResult(
            content=[mt.ImageContent(type="image", data=data, mime_type="image/png")]
        )

    async def go() -> Any:
        async with acting_as(ALICE), Client(server) as client:
            return await client.call_tool("search_kb", {}, raise_on_error=False)

    result = run(go())
    assert not result.is_error
    assert base64.b64decode(result.content[0].data).startswith(b"\x89PNG")


# -- what a body sends while it runs, by the session's lower-level routes ---------


# Server-to-client logging and sampling are deprecated by the 2026-07-28
# protocol but still sent to clients that negotiate an earlier one.
@pytest.mark.filterwarnings("ignore:The .* capability is deprecated")
@pytest.mark.parametrize("route", ["notification", "progress", "request"])
def test_what_a_body_sends_by_the_sessions_own_routes_is_filtered(route: str) -> None:
    server, _ = build()

    @server.tool(name="search_kb")
    async def chatty(ctx: Context) -> str:
        if route == "notification":
            await ctx.send_notification(
                mt.LoggingMessageNotification(
                    params=mt.LoggingMessageNotificationParams(
                        level="info", data=f"using {GHP}"
                    )
                )
            )
        elif route == "progress":
            await ctx.session.report_progress(1, 2, f"using {GHP}")
        else:
            await ctx.session.send_request(
                mt.ElicitRequest(
                    params=mt.ElicitRequestFormParams(
                        message=f"using {GHP}",
                        requested_schema={"type": "object", "properties": {}},
                    )
                ),
                mt.ElicitResult,
            )
        return "done"

    seen: list[str] = []

    async def on_log(message: Any) -> None:
        seen.append(repr(message))

    async def on_progress(progress: float, total: float | None, message: Any) -> None:
        seen.append(repr(message))

    async def on_elicit(message: Any, *args: Any) -> ElicitResult[Any]:
        seen.append(repr(message))
        return ElicitResult(action="decline")

    async def go() -> Any:
        async with (
            acting_as(ALICE),
            Client(
                server,
                mode="legacy",
                log_handler=on_log,
                progress_handler=on_progress,
                elicitation_handler=on_elicit,
            ) as client,
        ):
            return await client.call_tool("search_kb", {})

    result = run(go())
    assert text(result) == "done"
    assert len(seen) == 1, seen
    assert GHP not in seen[0]
    assert "output_blocked" in seen[0]


# -- the code a transformed tool really runs ---------------------------------------

#: What the forbidden code did; it must stay empty.
OPENED: list[Any] = []


def open_floodgate(gate: int) -> str:
    OPENED.append(gate)
    return f"opened {gate}"


async def forwards_to_the_gate(gate: int) -> str:
    return open_floodgate(gate)


def base(gate: int = 0) -> str:
    return "base"


def the_gate_as_a_default() -> int:
    return int(open_floodgate(9).split()[-1])


def forbidding_guard() -> Guard:
    policy = {
        **POLICY,
        "tools": {
            **POLICY["tools"],
            "open_floodgate": {"capabilities": ["life_safety"]},
        },
    }
    guard = Guard(Policy.from_dict(policy), sinks=[MemorySink()])
    # The app declares its dangerous code once: marked for good.
    with pytest.raises(PolicyError):
        guard.tool(capabilities=["life_safety"])(open_floodgate)
    OPENED.clear()
    return guard


TRANSFORMS = {
    "transform_fn": lambda: Tool.from_tool(
        Tool.from_function(base), name="search_kb", transform_fn=open_floodgate
    ),
    "transform_fn_calling": lambda: Tool.from_tool(
        Tool.from_function(base), name="search_kb", transform_fn=forwards_to_the_gate
    ),
    "default_factory": lambda: Tool.from_tool(
        Tool.from_function(base),
        name="search_kb",
        transform_args={
            "gate": ArgTransform(hide=True, default_factory=the_gate_as_a_default)
        },
    ),
}


@pytest.mark.parametrize("shape", sorted(TRANSFORMS))
def test_a_transformed_tools_own_function_is_checked_at_registration(
    shape: str,
) -> None:
    server: FastMCP[Any] = FastMCP("transforms")
    guard_fastmcp(forbidding_guard(), server)
    with pytest.raises(PolicyError, match="life_safety"):
        server.add_tool(TRANSFORMS[shape]())
    assert OPENED == []


class Swapping(Transform):
    """A transform added after the guard that serves a transformed tool."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool

    async def list_tools(self, tools: Any) -> Any:
        return [*tools, self.tool]

    async def get_tool(self, name: str, call_next: Any, *, version: Any = None) -> Any:
        if name == self.tool.name:
            return self.tool
        return await call_next(name, version=version)


@pytest.mark.parametrize("shape", sorted(TRANSFORMS))
def test_a_transformed_tools_own_function_is_checked_at_call(shape: str) -> None:
    server: FastMCP[Any] = FastMCP("transforms")
    guard_fastmcp(forbidding_guard(), server)
    server.add_transform(Swapping(TRANSFORMS[shape]()))

    async def go() -> tuple[Any, list[str]]:
        async with acting_as(ALICE), Client(server) as client:
            listed = [t.name for t in await client.list_tools()]
            args = {} if shape == "default_factory" else {"gate": 1}
            called = await client.call_tool("search_kb", args, raise_on_error=False)
            return called, listed

    called, listed = run(go())
    assert called.is_error
    assert "[I3/capability_forbidden]" in text(called)
    assert "search_kb" not in listed
    assert OPENED == []


class Runner(Tool):
    """A tool class of the app's that runs the callable it holds."""

    target: Any

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return ToolResult(content=str(self.target(**arguments)))


def test_a_tool_subclass_running_a_callable_it_holds_is_checked() -> None:
    server: FastMCP[Any] = FastMCP("subclass")
    guard_fastmcp(forbidding_guard(), server)
    schema = {"type": "object", "properties": {"gate": {"type": "integer"}}}
    runner = Runner(name="search_kb", parameters=schema, target=open_floodgate)
    with pytest.raises(PolicyError, match="life_safety"):
        server.add_tool(runner)
    server.add_transform(Swapping(runner))  # behind the registration hooks

    async def go() -> Any:
        async with acting_as(ALICE), Client(server) as client:
            return await client.call_tool(
                "search_kb", {"gate": 1}, raise_on_error=False
            )

    called = run(go())
    assert called.is_error
    assert "[I3/capability_forbidden]" in text(called)
    assert OPENED == []


# -- errors: every error text the client can receive -------------------------------


def erring_server() -> FastMCP[Any]:
    from mcp_types import MISSING_REQUIRED_CLIENT_CAPABILITY

    policy = {
        **POLICY,
        "resources": {**POLICY["resources"], "err://x": {"data": "public"}},
        "prompts": {**POLICY["prompts"], "err": {"data": "public"}},
    }
    server: FastMCP[Any] = FastMCP("errors")

    @server.tool(name="search_kb")
    def needs_a_capability() -> str:
        # FastMCP passes a missing-capability MCPError on to the wire as is.
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message=f"need {GHP}",
            data={"why": GHP},
        )

    @server.resource("err://x")
    def err_resource() -> str:
        raise MCPError(code=-32000, message=f"upstream said {GHP}")

    @server.prompt(name="err")
    def err_prompt() -> str:
        raise MCPError(code=-32000, message=f"upstream said {GHP}")

    guard_fastmcp(Guard(Policy.from_dict(policy)), server)
    return server


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_an_mcp_error_a_body_raises_is_filtered(mode: str) -> None:
    server = erring_server()

    async def go() -> list[str]:
        seen: list[str] = []
        async with acting_as(ALICE), Client(server, mode=mode) as client:
            for call in (
                lambda: client.call_tool("search_kb", {}),
                lambda: client.read_resource("err://x"),
                lambda: client.get_prompt("err"),
            ):
                try:
                    seen.append(repr(await call()))
                except Exception as exc:
                    seen.append(f"{exc!r} {exc} {getattr(exc, 'error', '')!r}")
        return seen

    seen = run(go())
    assert len(seen) == 3
    for item in seen:
        assert GHP not in item, item
        assert "output_blocked" in item, item


class Failing(Middleware):
    """An inner middleware (or provider) failing with a secret in its text."""

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        raise RuntimeError(f"cannot reach postgres://app:{GHP}@db/tickets")

    async def on_read_resource(self, context: Any, call_next: Any) -> Any:
        raise RuntimeError(f"cannot reach postgres://app:{GHP}@db/tickets")


def test_an_error_raised_inside_the_guarded_call_is_filtered() -> None:
    server, _ = build()
    server.add_middleware(Failing())

    async def go() -> list[str]:
        seen: list[str] = []
        # A client of an earlier protocol gets the error's own text.
        async with acting_as(ALICE), Client(server, mode="legacy") as client:
            for call in (
                lambda: client.call_tool("search_kb", {"query": "q"}),
                lambda: client.read_resource("docs://public/a"),
            ):
                try:
                    seen.append(repr(await call()))
                except Exception as exc:
                    seen.append(f"{exc!r} {exc}")
        return seen

    seen = run(go())
    assert len(seen) == 2
    for item in seen:
        assert GHP not in item, item
        assert "output_blocked" in item, item


# -- listings: what tools/list, resources/list and prompts/list show ---------------


def test_listings_never_show_a_credential() -> None:
    server, _ = build()

    @server.tool(name="search_kb", annotations=mt.ToolAnnotations(title=GHP))
    def search_kb(query: str, token: str = GHP) -> str:
        """Search the knowledge base."""
        return "kb"

    @server.resource("docs://public/{name}", description=f"signed with {GHP}")
    def public_doc(name: str) -> str:
        return "public"

    @server.prompt(name="summarise", description=f"uses {GHP}")
    def summarise(text: str) -> str:
        return "summary"

    async def go() -> str:
        async with acting_as(ALICE), Client(server) as client:
            return repr(
                (
                    await client.list_tools(),
                    await client.list_resource_templates(),
                    await client.list_prompts(),
                )
            )

    listed = run(go())
    assert GHP not in listed
    assert "search_kb" in listed
    assert "docs://public/{name}" in listed
    assert "summarise" in listed
    assert "output_blocked" in listed


def test_completion_values_never_show_a_credential() -> None:
    server, _ = build()

    @server.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["T-1", f"T-2 {GHP}"]

    ref = mt.PromptReference(type="ref/prompt", name="summarise")

    async def go() -> Any:
        async with acting_as(ALICE), Client(server) as client:
            return await client.complete(ref, {"name": "text", "value": "T"})

    done = run(go())
    assert GHP not in repr(done)
    assert done.values[0] == "T-1"
    assert "output_blocked" in done.values[1]


class Raw(Middleware):
    """An inner middleware answering with a protocol result of its own."""

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        return mt.CallToolResult(
            content=[mt.TextContent(type="text", text=f"cached {GHP}")]
        )


def test_a_protocol_result_an_inner_middleware_returns_is_filtered() -> None:
    server, _ = build()

    @server.tool(name="search_kb", output_schema=None)
    def search_kb(query: str) -> str:
        return "kb"

    server.add_middleware(Raw())

    async def go() -> Any:
        async with acting_as(ALICE), Client(server) as client:
            return await client.call_tool(
                "search_kb", {"query": "q"}, raise_on_error=False
            )

    result = run(go())
    assert result.is_error
    assert "output_blocked" in text(result)
    assert GHP not in repr(result)


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32-le", "utf-8-sig"]
)
def test_text_in_another_unicode_encoding_is_still_text(encoding: str) -> None:
    from fastmcp.resources import ResourceContent, ResourceResult

    policy = {
        **POLICY,
        "resources": {**POLICY["resources"], "raw://key": {"data": "public"}},
    }
    server: FastMCP[Any] = FastMCP("encodings")
    secret = f"key {GHP}".encode(encoding)

    @server.tool(name="search_kb")
    def blob() -> ToolResult:
        return ToolResult(
            content=[
                mt.EmbeddedResource(
                    type="resource",
                    resource=mt.BlobResourceContents(
                        uri="raw://key", blob=base64.b64encode(secret).decode()
                    ),
                )
            ]
        )

    @server.resource("raw://key", mime_type="application/octet-stream")
    def raw_key() -> ResourceResult:
        return ResourceResult([ResourceContent(secret)])

    guard_fastmcp(Guard(Policy.from_dict(policy)), server)

    async def go() -> tuple[Any, str]:
        async with acting_as(ALICE), Client(server) as client:
            called = await client.call_tool("search_kb", {}, raise_on_error=False)
            try:
                read = repr(await client.read_resource("raw://key"))
            except MCPError as exc:
                read = f"error {exc.error.message}"
            return called, read

    called, read = run(go())
    assert called.is_error
    assert "output_blocked" in text(called)
    assert "output_blocked" in read
    encoded = base64.b64encode(secret).decode()
    assert encoded not in repr(called)
    assert encoded not in read


@pytest.mark.filterwarnings("ignore:The .* capability is deprecated")
def test_a_session_handed_to_a_thread_still_sends_filtered_text() -> None:
    import threading

    import anyio.from_thread
    import anyio.lowlevel
    import anyio.to_thread

    server, _ = build()

    @server.tool(name="search_kb")
    async def chatty(ctx: Context) -> str:
        loop_token = anyio.lowlevel.current_token()
        session = ctx.session

        def worker() -> None:  # runs outside the body's context
            anyio.from_thread.run(
                session.send_log_message, "info", f"using {GHP}", token=loop_token
            )

        thread = threading.Thread(target=worker)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        return "done"

    seen: list[str] = []

    async def on_log(message: Any) -> None:
        seen.append(repr(message))

    async def go() -> Any:
        async with (
            acting_as(ALICE),
            Client(server, mode="legacy", log_handler=on_log) as client,
        ):
            return await client.call_tool("search_kb", {})

    assert text(run(go())) == "done"
    assert len(seen) == 1
    assert GHP not in seen[0]
    assert "output_blocked" in seen[0]


def test_a_fastmcp_logger_created_after_guarding_is_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import uuid

    server, _ = build()
    # A FastMCP module loaded after the server was guarded (a proxy or an
    # OpenAPI provider added later) has a logger of its own.
    late = logging.getLogger(f"fastmcp.late_{uuid.uuid4().hex}")

    @server.tool(name="search_kb")
    def failing(query: str) -> str:
        late.error("upstream answered %s", f"401 for {GHP}")
        return "kb"

    async def go() -> Any:
        async with acting_as(ALICE), Client(server) as client:
            return await client.call_tool("search_kb", {"query": "q"})

    with caplog.at_level("DEBUG"):
        assert text(run(go())) == "kb"
    assert "upstream answered" in caplog.text
    assert GHP not in caplog.text
