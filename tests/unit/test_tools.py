from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiinvariants import (
    ANONYMOUS,
    AccessDenied,
    AuthenticationRequired,
    Guard,
    Policy,
    PolicyError,
    Principal,
    ScopeDenied,
    ToolForbidden,
    acting_as,
)
from aiinvariants.audit import MemorySink
from aiinvariants.tools import TOOL_CODES, check_tool, guarded_tool


def user(
    *scopes: str, subject: str = "alice", clearance: str | None = "restricted"
) -> Principal:
    return Principal(
        subject=subject,
        authenticated=True,
        scopes=frozenset(scopes),
        clearance=clearance,
    )


POLICY = Policy.from_dict(
    {
        "exposure": "public",
        "tools": {
            "search_kb": {"data": "public", "untrusted_output": False},
            "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
            "send_email": {
                "scopes": ["mail:send"],
                "capabilities": ["sends_external"],
                "data": "public",
            },
            "open_floodgate": {"capabilities": ["life_safety"], "data": "public"},
            "old_tool": {"enabled": False, "data": "public"},
        },
    }
)


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


@pytest.fixture
def guard(memory: MemorySink) -> Guard:
    return Guard(POLICY, sinks=[memory])


def test_public_tool_reachable_anonymously(guard: Guard) -> None:
    @guarded_tool(guard, name="search_kb")
    def search(q: str) -> str:
        return f"found {q}"

    with acting_as(ANONYMOUS):
        assert search("x") == "found x"
    assert search.spec.name == "search_kb"
    assert search.resource == "tool.search_kb"


def test_scoped_tool_needs_delegated_scope(guard: Guard, memory: MemorySink) -> None:
    @guarded_tool(guard, name="read_ticket")
    def read(ticket_id: str) -> str:
        return ticket_id

    with acting_as(user("tickets:read")):
        assert read("T-1") == "T-1"
    with acting_as(user("kb:read")), pytest.raises(ScopeDenied) as info:
        read("T-1")
    assert info.value.required == ("tickets:read",)
    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired) as anon:
        read("T-1")
    assert anon.value.invariant == "I2"
    reasons = [e.reason for e in memory.events if e.resource == "tool.read_ticket"]
    assert reasons[-1] == "authentication_required"


def test_undeclared_data_is_highest_label_and_needs_auth(guard: Guard) -> None:
    @guarded_tool(guard, name="mystery", exposure="public")
    def mystery() -> int:
        return 1

    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired):
        mystery()
    with acting_as(user()):
        assert mystery() == 1


def test_internal_exposure_refuses_anonymous_even_for_public_data(
    guard: Guard,
) -> None:
    @guarded_tool(guard, name="status", data="public", exposure="internal")
    def status() -> str:
        return "ok"

    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired):
        status()


def test_clearance_below_data_is_denied(guard: Guard) -> None:
    @guarded_tool(guard, name="payroll", data="confidential")
    def payroll() -> int:
        return 1

    with acting_as(user(clearance="internal")), pytest.raises(AccessDenied) as info:
        payroll()
    assert info.value.code == "clearance_below_data"
    with acting_as(user(clearance="confidential")):
        assert payroll() == 1


def test_forbidden_capability_refused_at_registration(
    guard: Guard, memory: MemorySink
) -> None:
    with pytest.raises(PolicyError, match="life_safety"):

        @guarded_tool(guard, name="valve", capabilities=["life_safety"])
        def valve() -> None: ...

    # Declared in the policy only: the name alone carries the capability.
    with pytest.raises(PolicyError):

        @guarded_tool(guard, name="open_floodgate")
        def floodgate() -> None: ...

    assert any(
        e.reason == "capability_forbidden" and e.details.get("at") == "register"
        for e in memory.events
    )


def test_disabled_and_unknown_tools_are_refused(guard: Guard) -> None:
    @guarded_tool(guard, name="old_tool")
    def old() -> None: ...

    with acting_as(user()), pytest.raises(ToolForbidden) as info:
        old()
    assert info.value.code == "tool_disabled"
    with acting_as(user()), pytest.raises(ToolForbidden) as unknown:
        check_tool(guard, "never_declared")
    assert unknown.value.code == "tool_unknown"


def test_policy_tool_scopes_cannot_be_weakened_by_code(guard: Guard) -> None:
    # The code declares no scopes; the policy's entry still applies.
    @guarded_tool(guard, name="read_ticket", data="public", exposure="public")
    def read() -> str:
        return "t"

    with acting_as(user()), pytest.raises(ScopeDenied):
        read()
    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired):
        read()  # policy says internal data: the higher label wins


def test_async_tool(guard: Guard) -> None:
    @guarded_tool(guard, name="read_ticket")
    async def read(ticket_id: str) -> str:
        await asyncio.sleep(0)
        return ticket_id

    with acting_as(user("tickets:read")):
        assert asyncio.run(read("T-2")) == "T-2"
    with acting_as(user()), pytest.raises(ScopeDenied):
        asyncio.run(read("T-2"))


def test_codes_are_documented() -> None:
    assert TOOL_CODES["capability_forbidden"] == "I3"
    assert TOOL_CODES["tainted_run_needs_confirmation"] == "I12"


def test_bad_declarations_fail_early(guard: Guard) -> None:
    def fn() -> None: ...

    with pytest.raises(PolicyError):
        guarded_tool(guard, name="x", scopes="a b")(fn)  # type: ignore[arg-type]
    with pytest.raises(PolicyError):
        guarded_tool(guard, name="x", data="top-secret")(fn)
    with pytest.raises(PolicyError):
        guarded_tool(guard, name="x", exposure="world")(fn)
    with pytest.raises(PolicyError):
        guarded_tool(guard, name="x")(42)  # type: ignore[arg-type]


def test_default_guard_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = Guard(POLICY)
    monkeypatch.setattr("aiinvariants._guard._installed", installed)

    @guarded_tool(name="search_kb")
    def search() -> str:
        return "ok"

    assert search.guard is installed  # type: ignore[attr-defined]
    assert search() == "ok"


def test_allowed_call_is_audited(guard: Guard, memory: MemorySink) -> None:
    @guarded_tool(guard, name="read_ticket")
    def read() -> str:
        return "t"

    with acting_as(user("tickets:read", subject="bob")):
        read()
    allowed = [e for e in memory.events if e.decision == "allow"]
    assert any(
        e.reason == "tool_allowed" and e.subject == "bob" and e.invariant == "I3"
        for e in allowed
    )


def test_generator_tool_checked_at_start(guard: Guard) -> None:
    @guarded_tool(guard, name="read_ticket")
    def rows() -> Any:
        yield 1
        yield 2

    with acting_as(user("tickets:read")):
        assert list(rows()) == [1, 2]
    gen = rows()
    with acting_as(user()), pytest.raises(ScopeDenied):
        next(gen)
