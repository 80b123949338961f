"""Attacks on guarded tools (I1, I3): renaming, policy drift, argument scopes."""

from __future__ import annotations

import pytest

from aiinvariants import (
    Guard,
    InsecureUsageWarning,
    Policy,
    PolicyError,
    Principal,
    ScopeDenied,
    ToolForbidden,
    acting_as,
)
from aiinvariants.audit import MemorySink
from aiinvariants.tools import guarded_tool

POLICY = Policy.from_dict(
    {"tools": {"open_floodgate": {"capabilities": ["life_safety"]}}}
)


def admin() -> Principal:
    return Principal(
        subject="root",
        authenticated=True,
        scopes=frozenset({"ops:all", "x:y"}),
        clearance="restricted",
    )


def test_forbidden_tool_reached_by_renaming_is_refused() -> None:
    guard = Guard(POLICY)

    def floodgate() -> str:
        return "opened"

    with pytest.raises(PolicyError):
        guarded_tool(guard, name="open_floodgate")(floodgate)
    # Same callable, innocent name, no declared capability: still refused,
    # at registration and (if someone bypasses that) at call.
    with pytest.raises(PolicyError):
        guarded_tool(guard, name="check_water_level")(floodgate)


def test_rewrapping_a_guarded_tool_keeps_its_capabilities() -> None:
    with pytest.warns(InsecureUsageWarning):
        permissive = Guard(Policy.from_dict({"capabilities": {"forbidden": []}}))
    strict = Guard(POLICY)

    def pump() -> str:
        return "pumped"

    first = guarded_tool(
        permissive, name="pump", capabilities=["life_safety"], data="public"
    )(pump)
    with pytest.raises(PolicyError):
        guarded_tool(strict, name="helper")(first)


def test_policy_changed_after_registration_is_enforced_at_call() -> None:
    memory = MemorySink()
    relaxed = Policy.from_dict(
        {"tools": {"pump": {"capabilities": ["pressure"], "data": "public"}}}
    )
    guard = Guard(relaxed, sinks=[memory])

    @guarded_tool(guard, name="pump")
    def pump() -> str:
        return "pumped"

    with acting_as(admin()):
        assert pump() == "pumped"
    stricter = Policy.from_dict(
        {
            "tools": {"pump": {"capabilities": ["pressure"], "data": "public"}},
            "capabilities": {"forbidden": ["life_safety", "pressure"]},
        }
    )
    # The hot reload: the check reads the guard's policy at every call.
    guard.replace_policy(stricter)
    assert memory.events[-1].reason == "policy_replaced"
    with acting_as(admin()), pytest.raises(ToolForbidden) as info:
        pump()
    assert info.value.code == "capability_forbidden"
    assert memory.events[-1].reason == "capability_forbidden"


def test_scope_in_tool_arguments_is_ignored() -> None:
    guard = Guard(
        Policy.from_dict({"tools": {"refund": {"scopes": ["orders:refund"]}}})
    )

    @guarded_tool(guard, name="refund")
    def refund(order: str, scope: str = "", scopes: tuple[str, ...] = ()) -> str:
        return order

    user = Principal(
        subject="eve",
        authenticated=True,
        scopes=frozenset({"kb:read"}),
        clearance="restricted",
    )
    with acting_as(user), pytest.raises(ScopeDenied):
        refund("o-1", scope="orders:refund", scopes=("orders:refund",))
