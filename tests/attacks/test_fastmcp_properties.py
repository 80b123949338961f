"""Properties of a guarded FastMCP server over whole input spaces (hypothesis).

- No tool name outside the policy runs anything, whatever its spelling
  (case, confusable letters, zero-width characters, namespace-like prefixes).
- No resource URI lets a caller without ``hr:read`` receive the HR document,
  whatever the spelling of the URI.
- Whatever a tool returns, a planted credential never reaches the caller.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.shared.exceptions import MCPError

from aiinvariants import Guard, Policy, Principal, acting_as

GHP = "ghp_" + "aZ3kQ9" * 6
DECLARED = {"search_kb", "echo"}
POLICY = Policy.from_dict(
    {
        "clearance": {"scopes": {"hr:read": "confidential"}},
        "tools": {name: {"data": "public"} for name in DECLARED},
        "resources": {
            "docs://public/{name}": {"data": "public"},
            "docs://hr/{name}": {"scopes": ["hr:read"], "data": "confidential"},
        },
    }
)
MALLORY = Principal(subject="mallory", authenticated=True)
RAN: list[str] = []

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def build() -> Any:
    from fastmcp import FastMCP

    from aiinvariants.integrations.fastmcp import guard_fastmcp

    server: Any = FastMCP("props")
    guard_fastmcp(Guard(POLICY), server)

    @server.tool
    def search_kb(query: str = "") -> str:
        return "kb"

    @server.tool
    def echo(text: str = "") -> str:
        return text

    for name in ("Search_KB", "search_kb_admin", "admin", "search-kb"):
        server.tool(lambda name=name: RAN.append(name) or "ran", name=name)

    @server.resource("docs://public/{name}")
    def public_doc(name: str) -> str:
        return f"public {name}"

    @server.resource("docs://hr/{name}")
    def hr_doc(name: str) -> str:
        return "HR-SALARY-SHEET"

    return server


SERVER = build()

names = st.one_of(
    st.sampled_from(["Search_KB", "search_kb_admin", "admin", "search-kb"]),
    st.builds(
        lambda base, extra: base + extra,
        st.sampled_from(sorted(DECLARED)),
        st.text(
            alphabet=st.sampled_from(["\u200b", "\u0435", "_", "A", " ", "\u00a0"]),
            min_size=1,
            max_size=3,
        ),
    ),
    st.text(min_size=1, max_size=20),
)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


@SETTINGS
@given(name=names)
def test_no_undeclared_name_runs_anything(name: str) -> None:
    from fastmcp.exceptions import FastMCPError

    async def go() -> str:
        async with acting_as(MALLORY):
            try:
                await SERVER.call_tool(name, {})
            except (FastMCPError, MCPError) as exc:
                return str(exc)
            except Exception as exc:  # FastMCP's own NotFoundError
                return type(exc).__name__
        return "ran"

    if name in DECLARED:
        return
    outcome = run(go())
    assert outcome != "ran"
    assert RAN == []


segment = st.lists(
    st.sampled_from(
        [
            *("hr", "HR", "h", "r", ".", "..", "%2e", "%2E", "%2F", "%2f", "%68r"),
            *("/", "_", "-", "x", "@", "#", "?", "=", "\u0445", "pay"),
        ]
    ),
    max_size=6,
).map("".join)
PREFIXES = st.sampled_from(["docs://", "DOCS://", "docs:/", "docs:", "docs://public/"])


@SETTINGS
@given(prefix=PREFIXES, a=segment, b=segment)
def test_no_uri_spelling_reads_hr_without_the_scope(
    prefix: str, a: str, b: str
) -> None:
    uri = f"{prefix}{a}/{b}"

    async def go() -> str:
        async with acting_as(MALLORY):
            try:
                result = await SERVER.read_resource(uri)
            except (MCPError, Exception) as exc:
                return type(exc).__name__
        return repr(result)

    assert "HR-SALARY-SHEET" not in run(go())


@SETTINGS
@given(
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    shape=st.sampled_from(["text", "json", "nested"]),
)
def test_a_planted_credential_never_leaves(before: str, after: str, shape: str) -> None:
    planted = f"{before} {GHP} {after}"
    text = {
        "text": planted,
        "json": f'{{"note": {planted!r}}}',
        "nested": f"[[{planted}]]",
    }[shape]

    async def go() -> str:
        async with acting_as(MALLORY):
            try:
                result = await SERVER.call_tool("echo", {"text": text})
            except Exception as exc:
                return str(exc)
        return repr(result)

    assert GHP not in run(go())
