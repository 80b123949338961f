"""Routes to a guarded FastMCP server's resources and prompts past the policy.

By class: the URI spelled another way, a namespace of a mounted server that
the policy declares looser than the original, completions of a prompt or
template the caller may not use, and what a read returns (secrets in text,
bytes, error text and ``_meta``; data above the declared level).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.resources import ResourceContent, ResourceResult
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.fastmcp import guard_fastmcp

GHP = "ghp_" + "aZ3kQ9" * 6

POLICY: dict[str, Any] = {
    "app": "fastmcp-read-attacks",
    "clearance": {"scopes": {"hr:read": "confidential"}},
    "resources": {
        "docs://public/{name}": {"data": "public"},
        "docs://hr/{name}": {"scopes": ["hr:read"], "data": "confidential"},
        # A namespace the policy declares public, with the mounted server's
        # own entries still declared under their original URIs.
        "docs://pub/{+path}": {"data": "public"},
        "leak://{kind}": {"data": "public"},
    },
    "prompts": {
        "summarise": {"data": "public"},
        "incident": {"scopes": ["hr:read"], "data": "confidential"},
        "pub_incident": {"data": "public"},
    },
}
NOBODY = Principal(subject="mallory", authenticated=True)
HR = Principal(subject="hana", authenticated=True, scopes=frozenset({"hr:read"}))


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def server_with_docs() -> FastMCP[Any]:
    server: FastMCP[Any] = FastMCP("docs")

    @server.resource("docs://public/{name}")
    def public_doc(name: str) -> str:
        return f"public {name}"

    @server.resource("docs://hr/{name}")
    def hr_doc(name: str) -> str:
        return f"salary sheet {name}"

    @server.prompt
    def incident(ticket: str) -> str:
        return f"confidential incident {ticket}"

    return server


def guarded() -> FastMCP[Any]:
    server = server_with_docs()

    @server.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["T-1 (confidential)"]

    guard_fastmcp(Guard(Policy.from_dict(POLICY), sinks=[MemorySink()]), server)
    return server


async def read(server: FastMCP[Any], who: Principal, uri: str) -> str:
    async with acting_as(who), Client(server) as client:
        try:
            return str((await client.read_resource(uri))[0].text)
        except MCPError as exc:
            return f"error {exc.error.message}"


@pytest.mark.parametrize(
    "uri",
    [
        "docs://hr/pay",
        "DOCS://hr/pay",
        "docs://HR/pay",
        "docs://public/../hr/pay",
        "docs://public/%2e%2e/hr/pay",
        "docs://public/pay/../../hr/pay",
        "docs://public/x%2Fhr",
        "docs://hr/pay#top",
        "docs://user@hr/pay",
        "docs://hr//pay",
        "docs://hr/pay?x=1",
        "docs:/hr/pay",
    ],
)
def test_the_uri_spelled_another_way_never_reads_hr(uri: str) -> None:
    text = run(read(guarded(), NOBODY, uri))
    assert "salary" not in text
    assert text.startswith("error [I1/")


def test_a_looser_namespace_does_not_shed_the_original_scopes() -> None:
    server: FastMCP[Any] = FastMCP("parent")
    guard_fastmcp(Guard(Policy.from_dict(POLICY)), server)
    server.mount(server_with_docs(), namespace="pub")

    async def go(who: Principal) -> tuple[str, str]:
        async with acting_as(who), Client(server) as client:
            try:
                doc = (await client.read_resource("docs://pub/hr/pay"))[0].text
            except MCPError as exc:
                doc = str(exc.error.data["code"])
            try:
                got = await client.get_prompt("pub_incident", {"ticket": "1"})
                prompt = got.messages[0].content.text
            except MCPError as exc:
                prompt = str(exc.error.data["code"])
            return doc, prompt

    assert run(go(NOBODY)) == ("scope_missing", "scope_missing")
    assert run(go(HR)) == ("salary sheet pay", "confidential incident 1")


@pytest.mark.parametrize(
    "ref",
    [
        PromptReference(type="ref/prompt", name="incident"),
        ResourceTemplateReference(type="ref/resource", uri="docs://hr/{name}"),
    ],
    ids=["prompt", "template"],
)
def test_completions_only_for_what_the_caller_may_use(ref: Any) -> None:
    server = guarded()

    async def go(who: Principal) -> Any:
        async with acting_as(who), Client(server) as client:
            try:
                return (await client.complete(ref, {"name": "x", "value": "T"})).values
            except MCPError as exc:
                return exc.error.data["code"]

    assert run(go(NOBODY)) == "scope_missing"
    assert run(go(HR)) == ["T-1 (confidential)"]


def test_what_a_read_returns_is_filtered_by_every_route() -> None:
    server = guarded()

    @server.resource("leak://{kind}")
    def leak(kind: str) -> Any:
        if kind == "raise":
            raise RuntimeError(f"db said {GHP}")
        if kind == "bytes":
            return ResourceResult([ResourceContent(f"k={GHP}".encode())])
        if kind == "meta":
            return ResourceResult([ResourceContent("ok", meta={"debug": GHP})])
        if kind == "labelled":
            return '{"classification": "restricted", "text": "merger"}'
        return f"k={GHP}"

    for kind in ("text", "bytes", "meta", "raise", "labelled"):
        text = run(read(server, HR, f"leak://{kind}"))
        assert text.startswith("error "), kind
        assert GHP not in text, kind
        assert "merger" not in text, kind


def test_resources_and_prompts_as_tools_are_decided_per_read() -> None:
    from fastmcp.server.transforms import PromptsAsTools, ResourcesAsTools

    policy = dict(POLICY)
    policy["tools"] = {
        name: {"data": "public"}
        for name in ("read_resource", "list_resources", "get_prompt", "list_prompts")
    }
    server = server_with_docs()
    guard_fastmcp(Guard(Policy.from_dict(policy)), server)
    server.add_transform(ResourcesAsTools(server))
    server.add_transform(PromptsAsTools(server))

    async def go(who: Principal) -> dict[str, str]:
        async with acting_as(who), Client(server) as client:
            out = {}
            for tool, args in (
                ("read_resource", {"uri": "docs://hr/pay"}),
                ("list_resources", {}),
                ("get_prompt", {"name": "incident", "arguments": {"ticket": "1"}}),
            ):
                result = await client.call_tool(tool, args, raise_on_error=False)
                out[tool] = "".join(getattr(c, "text", "") for c in result.content)
            return out

    refused = run(go(NOBODY))
    assert "salary" not in refused["read_resource"]
    assert "scope_missing" in refused["read_resource"]
    assert "docs://hr" not in refused["list_resources"]
    assert "confidential incident" not in refused["get_prompt"]
    allowed = run(go(HR))
    assert "salary sheet pay" in allowed["read_resource"]
    assert "confidential incident 1" in allowed["get_prompt"]
