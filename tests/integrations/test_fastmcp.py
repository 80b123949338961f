"""FastMCP servers guarded by one call, driven by FastMCP's own in-memory Client.

The fast cases: identity, scopes, listings, registration, run taint and the
output of tools. The same server over streamable HTTP with bearer tokens is
in ``test_fastmcp_http.py``; attacks are in ``tests/attacks``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastmcp import Client, FastMCP

from aiinvariants import (
    Guard,
    Policy,
    PolicyError,
    Principal,
    acting_as,
    current_principal,
)
from aiinvariants.audit import MemorySink
from aiinvariants.integrations import fastmcp as fastmcp_integration
from aiinvariants.integrations.fastmcp import FastMCPGuard, guard_fastmcp
from aiinvariants.taint import agent_run

GHP = "ghp_" + "aZ3kQ9" * 6

POLICY: dict[str, Any] = {
    "app": "fastmcp-unit",
    "clearance": {"scopes": {"tickets:read": "internal"}},
    "capabilities": {"forbidden": ["life_safety"], "confirm": ["sends_external"]},
    "tools": {
        "search_kb": {"data": "public"},
        "whoami": {"data": "public"},
        "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
        "send_email": {"data": "public", "capabilities": ["sends_external"]},
        "open_floodgate": {"capabilities": ["life_safety"]},
        "leak": {"data": "public"},
        "leak_structured": {"data": "public"},
        "leak_error": {"data": "public"},
        "email_of": {"data": "public"},
        "mislabelled": {"data": "public"},
    },
}

ALICE = Principal(
    subject="alice", authenticated=True, scopes=frozenset({"tickets:read"})
)
BOB = Principal(subject="bob", authenticated=True)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


class App:
    def __init__(self, policy: dict[str, Any] | None = None, **options: Any) -> None:
        self.memory = MemorySink()
        self.guard = Guard(Policy.from_dict(policy or POLICY), sinks=[self.memory])
        self.server: FastMCP[Any] = FastMCP("unit")
        self.sent: list[str] = []
        self.guarded = guard_fastmcp(self.guard, self.server, **options)
        server = self.server

        @server.tool
        def search_kb(query: str) -> str:
            return f"kb:{query}"

        @server.tool
        def whoami() -> str:
            return current_principal().subject

        @server.tool
        async def read_ticket(ticket_id: str) -> str:
            return f"ticket {ticket_id} for {current_principal().subject}"

        @server.tool
        def send_email(to: str) -> str:
            self.sent.append(to)
            return "sent"

    def reasons(self) -> list[tuple[str, str, str]]:
        return [(e.decision, e.reason, e.resource) for e in self.memory.events]

    async def call(
        self, who: Principal | None, name: str, args: dict[str, Any] | None = None
    ) -> Any:
        async def go() -> Any:
            async with Client(self.server) as client:
                return await client.call_tool(name, args or {}, raise_on_error=False)

        if who is None:
            return await go()
        async with acting_as(who):
            return await go()

    async def names(self, who: Principal | None) -> list[str]:
        async def go() -> list[str]:
            async with Client(self.server) as client:
                return sorted(t.name for t in await client.list_tools())

        if who is None:
            return await go()
        async with acting_as(who):
            return await go()


@pytest.fixture
def app() -> App:
    return App()


def test_tool_body_runs_as_the_caller(app: App) -> None:
    assert text(run(app.call(ALICE, "whoami"))) == "alice"
    result = run(app.call(ALICE, "read_ticket", {"ticket_id": "T-1"}))
    assert not result.is_error
    assert text(result) == "ticket T-1 for alice"
    assert ("allow", "tool_allowed", "tool.read_ticket") in app.reasons()


def test_policy_scopes_decide_the_call(app: App) -> None:
    result = run(app.call(BOB, "read_ticket", {"ticket_id": "T-1"}))
    assert result.is_error
    assert "[I1/scope_missing]" in text(result)
    assert "tickets:read" in text(result)
    assert ("deny", "scope_missing", "tool.read_ticket") in app.reasons()


def test_tools_list_shows_only_what_the_caller_may_call(app: App) -> None:
    everyone = ["search_kb", "send_email", "whoami"]
    assert run(app.names(ALICE)) == sorted(["read_ticket", *everyone])
    assert run(app.names(BOB)) == everyone
    assert run(app.names(None)) == []


def test_no_identity_fails_closed(app: App) -> None:
    result = run(app.call(None, "search_kb", {"query": "x"}))
    assert result.is_error
    assert "identity_missing" in text(result)
    assert ("deny", "identity_missing", "tool.search_kb") in app.reasons()


def test_allow_anonymous_reaches_public_tools_of_a_public_app() -> None:
    public = dict(POLICY, exposure="public")
    app = App(public, allow_anonymous=True)
    assert text(run(app.call(None, "search_kb", {"query": "vpn"}))) == "kb:vpn"
    denied = run(app.call(None, "read_ticket", {"ticket_id": "T-1"}))
    assert denied.is_error
    assert "authentication_required" in text(denied)
    assert run(app.names(None)) == ["search_kb", "send_email", "whoami"]


def test_undeclared_tool_is_refused_and_hidden(app: App) -> None:
    @app.server.tool
    def undeclared() -> str:
        return "ran"

    result = run(app.call(ALICE, "undeclared"))
    assert result.is_error
    assert "[I3/tool_unknown]" in text(result)
    assert "undeclared" not in run(app.names(ALICE))


def test_code_declaration_joins_the_policy(app: App) -> None:
    declare = app.guarded.tool(
        app.server, name="audit_log", scopes=["audit:read"], data="public"
    )

    @declare
    def audit_log() -> str:
        return "log"

    denied = run(app.call(ALICE, "audit_log"))
    assert "scope_missing" in text(denied)
    auditor = Principal(
        subject="ann", authenticated=True, scopes=frozenset({"audit:read"})
    )
    assert text(run(app.call(auditor, "audit_log"))) == "log"


def test_forbidden_capability_refused_at_registration(app: App) -> None:
    def open_floodgate(gate: int) -> str:
        return "opened"

    with pytest.raises(PolicyError, match="life_safety"):
        app.server.tool(open_floodgate)
    with pytest.raises(PolicyError, match="life_safety"):
        app.guarded.tool(app.server, name="gate", capabilities=["life_safety"])(
            open_floodgate
        )
    assert "open_floodgate" not in run(app.names(ALICE))


def test_install_refuses_a_server_that_already_holds_forbidden_code() -> None:
    def open_floodgate(gate: int) -> str:
        return "opened"

    server: FastMCP[Any] = FastMCP("prebuilt", tools=[open_floodgate])
    with pytest.raises(PolicyError, match="life_safety"):
        guard_fastmcp(Guard(Policy.from_dict(POLICY)), server)


def test_install_is_idempotent(app: App) -> None:
    again = guard_fastmcp(app.guard, app.server)
    assert again is app.guarded
    app.guarded.install(app.server)
    assert app.server.middleware.count(app.guarded.middleware) == 1
    with pytest.raises(PolicyError, match="another"):
        guard_fastmcp(Guard(Policy.from_dict(POLICY)), app.server)
    with pytest.raises(PolicyError, match="another"):
        FastMCPGuard(Guard(Policy.from_dict(POLICY))).install(app.server)


def test_install_fails_closed_on_an_unknown_shape() -> None:
    guard = Guard(Policy.from_dict(POLICY))
    with pytest.raises(PolicyError, match=r"fastmcp\.FastMCP"):
        guard_fastmcp(guard, object())
    server: FastMCP[Any] = FastMCP("odd")
    server.middleware = ()  # type: ignore[assignment]
    with pytest.raises(PolicyError, match="shape"):
        guard_fastmcp(guard, server)


def test_install_fails_closed_on_an_old_fastmcp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fastmcp

    monkeypatch.setattr(fastmcp, "__version__", "2.11.0")
    with pytest.raises(PolicyError, match="fastmcp>=4"):
        guard_fastmcp(Guard(Policy.from_dict(POLICY)), FastMCP("old"))


def test_a_foreign_auth_provider_is_refused() -> None:
    from fastmcp.server.auth import StaticTokenVerifier

    server: FastMCP[Any] = FastMCP(
        "foreign", auth=StaticTokenVerifier(tokens={"t": {"client_id": "c"}})
    )
    with pytest.raises(PolicyError, match="GuardAuthProvider"):
        guard_fastmcp(Guard(Policy.from_dict(POLICY)), server)


def test_mcp_guard_on_a_fastmcp_server_points_at_this_integration() -> None:
    from aiinvariants.integrations.mcp import MCPGuard

    guard = Guard(Policy.from_dict(POLICY))
    with pytest.raises(PolicyError, match=r"integrations\.fastmcp"):
        MCPGuard(guard).tool(FastMCP("x"), name="search_kb")(lambda: "x")


def test_the_call_arguments_reach_the_decision(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any] | None] = []
    real = fastmcp_integration.call_checked_tool

    def observed(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("arguments"))
        return real(*args, **kwargs)

    monkeypatch.setattr(fastmcp_integration, "call_checked_tool", observed)
    run(app.call(ALICE, "read_ticket", {"ticket_id": "T-7"}))
    assert {"ticket_id": "T-7"} in seen


def test_tool_output_marks_the_run_and_taint_needs_confirmation(app: App) -> None:
    async def go() -> tuple[Any, Any, bool, bool]:
        async with (
            acting_as(ALICE),
            agent_run() as agent,
            Client(app.server) as client,
        ):
            await client.call_tool("read_ticket", {"ticket_id": "T-1"})
            tainted = agent.private and agent.untrusted
            first = await client.call_tool(
                "send_email", {"to": "x@evil.test"}, raise_on_error=False
            )
        async with (
            acting_as(ALICE),
            agent_run(confirm=lambda request: True) as agent2,
            Client(app.server) as client,
        ):
            await client.call_tool("read_ticket", {"ticket_id": "T-1"})
            second = await client.call_tool("send_email", {"to": "ok@corp.test"})
        return first, second, tainted, agent2.tainted

    first, second, tainted, tainted2 = run(go())
    assert tainted
    assert tainted2
    assert first.is_error
    assert "tainted_run_needs_confirmation" in text(first)
    assert not second.is_error
    assert app.sent == ["ok@corp.test"]


def test_secret_in_tool_output_is_blocked(app: App) -> None:
    @app.server.tool
    def leak() -> str:
        return f"the key is {GHP}"

    result = run(app.call(ALICE, "leak"))
    assert result.is_error
    assert "output_blocked" in text(result)
    assert GHP not in repr(result)


def test_secret_in_structured_output_and_in_error_text_is_blocked(app: App) -> None:
    @app.server.tool
    def leak_structured() -> dict[str, str]:
        return {"note": "ok", "token": GHP}

    @app.server.tool
    def leak_error() -> str:
        raise ValueError(f"upstream said {GHP}")

    for name in ("leak_structured", "leak_error"):
        result = run(app.call(ALICE, name))
        assert result.is_error, name
        assert GHP not in repr(result), name


def test_pii_in_output_is_redacted_not_blocked(app: App) -> None:
    @app.server.tool
    def email_of() -> str:
        return "write to jane.doe@example.com please"

    result = run(app.call(ALICE, "email_of"))
    assert not result.is_error
    assert "jane.doe@example.com" not in text(result)
    assert "write to" in text(result)


def test_result_above_its_data_level_is_withheld(app: App) -> None:
    @app.server.tool
    def mislabelled() -> dict[str, Any]:
        return {"doc": {"classification": "confidential", "text": "salaries"}}

    result = run(app.call(ALICE, "mislabelled"))
    assert result.is_error
    assert "mislabelled_source" in text(result)
    assert "salaries" not in repr(result)
