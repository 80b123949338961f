"""I3 follows the code, not the name: every route to a forbidden function.

A function registered with a forbidden capability (``life_safety``) must stay
unreachable through every other callable that runs its code: a
``functools.partial`` (nested or not), a new bound method, a new instance of
a forbidden callable class or its bound ``__call__``, a ``__wrapped__`` chain,
a ``staticmethod``/``classmethod``, a copy of the function made from its code
object, and any chain of these - at registration (``PolicyError``) and at
call (``ToolForbidden``/``capability_forbidden``), in process and on an MCP
server of the official SDK.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import Guard, Policy, PolicyError, Principal, ToolForbidden, acting_as
from aiinvariants.audit import MemorySink

POLICY = Policy.from_dict(
    {
        "tools": {
            "open_floodgate": {"capabilities": ["life_safety"]},
            "check_level": {"data": "public"},
        }
    }
)
ADMIN = Principal(
    subject="root",
    authenticated=True,
    scopes=frozenset({"ops:all"}),
    clearance="restricted",
)


# Capabilities stick to code for the life of the process: every test builds
# its own code (compiled afresh), so one test's forbidden function is not
# another's.
SOURCE = """
def floodgate(gate=1):
    return f"opened {gate}"

class Floodgate:
    def __call__(self, gate=1):
        return f"opened {gate}"

    def open(self, gate=1):
        return f"opened {gate}"

class Plant:
    def open(self, gate=1):
        return f"opened {gate}"

    @staticmethod
    def static_open(gate=1):
        return f"opened {gate}"
"""


def fresh() -> types.SimpleNamespace:
    namespace: dict[str, Any] = {}
    exec(compile(SOURCE, "<floodgate>", "exec"), namespace)  # noqa: S102 - fixed text
    return types.SimpleNamespace(**namespace)


def _wraps(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def _forbid(guard: Guard, fn: Callable[..., Any]) -> None:
    with pytest.raises(PolicyError):
        guard.tool(name="open_floodgate")(fn)


# Each route: (forbidden callable registered first, other callable reaching it)
def _routes(c: types.SimpleNamespace) -> dict[str, tuple[Any, Any]]:
    plant = c.Plant()
    return {
        "partial": (c.floodgate, functools.partial(c.floodgate, 2)),
        "nested_partial": (
            c.floodgate,
            functools.partial(functools.partial(c.floodgate), gate=3),
        ),
        "wraps_chain": (c.floodgate, _wraps(_wraps(c.floodgate))),
        "partial_of_wrapper": (c.floodgate, functools.partial(_wraps(c.floodgate))),
        "code_copy": (
            c.floodgate,
            types.FunctionType(c.floodgate.__code__, c.floodgate.__globals__, "ok"),
        ),
        "new_instance": (c.Floodgate(), c.Floodgate()),
        "bound_call_of_new_instance": (c.Floodgate(), c.Floodgate().__call__),
        "new_bound_method": (plant.open, plant.open),
        "bound_method_of_new_object": (c.Plant().open, c.Plant().open),
        "method_bound_by_hand": (
            c.Plant.open,
            types.MethodType(c.Plant.open, object()),
        ),
        "staticmethod": (c.Plant.static_open, c.Plant.__dict__["static_open"]),
        "partial_of_bound_method": (
            c.Floodgate().open,
            functools.partial(c.Floodgate().open, 4),
        ),
    }


ROUTES = sorted(_routes(fresh()))


def route_pair(route: str) -> tuple[Any, Any]:
    return _routes(fresh())[route]


@pytest.mark.parametrize("route", ROUTES)
def test_forbidden_code_is_refused_under_another_callable(route: str) -> None:
    guard = Guard(POLICY)
    forbidden, other = route_pair(route)
    _forbid(guard, forbidden)
    with pytest.raises(PolicyError, match="life_safety"):
        guard.tool(name="check_level", data="public")(other)


@pytest.mark.parametrize("route", ROUTES)
def test_registered_before_the_forbidden_declaration_is_refused_at_call(
    route: str,
) -> None:
    # The benign-looking wrapper is registered first, while nothing is known
    # about the code it runs; the call is refused once the code is forbidden.
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    forbidden, other = route_pair(route)
    sneaky = guard.tool(name="check_level", data="public")(other)
    _forbid(guard, forbidden)
    with acting_as(ADMIN), pytest.raises(ToolForbidden) as info:
        sneaky()
    assert info.value.code == "capability_forbidden"
    assert memory.events[-1].reason == "capability_forbidden"


def test_code_swapped_into_a_registered_function_is_refused_at_call() -> None:
    guard = Guard(POLICY)

    def check_level() -> str:
        return "level 3"

    tool = guard.tool(name="check_level", data="public")(check_level)
    code = fresh()
    _forbid(guard, code.floodgate)
    check_level.__code__ = code.floodgate.__code__
    with acting_as(ADMIN), pytest.raises(ToolForbidden) as info:
        tool()
    assert info.value.code == "capability_forbidden"


def test_a_shared_decorator_does_not_spread_a_capability() -> None:
    # A decorator's inner function shares one code object with everything it
    # decorates; forbidding one decorated tool must not forbid the others.
    guard = Guard(POLICY)

    def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return inner

    _forbid(guard, logged(fresh().floodgate))

    def level() -> str:
        return "level 3"

    tool = guard.tool(name="check_level", data="public")(logged(level))
    with acting_as(ADMIN):
        assert tool() == "level 3"


def test_a_guarded_tool_does_not_spread_a_capability_to_other_guarded_tools() -> None:
    guard = Guard(POLICY)

    def level() -> str:
        return "level 3"

    benign = guard.tool(name="check_level", data="public")(level)
    with pytest.raises(PolicyError):
        guard.tool(name="open_floodgate")(fresh().floodgate)
    with acting_as(ADMIN):
        assert benign() == "level 3"


# -- a property over wrapper chains ----------------------------------------------

WRAPPERS: list[tuple[str, Callable[[Any], Any]]] = [
    ("partial", lambda f: functools.partial(f)),
    ("wraps", _wraps),
    ("method", lambda f: types.MethodType(f, object())),
    ("staticmethod", staticmethod),
    ("classmethod", classmethod),
    ("partialmethod", functools.partialmethod),
]


def _reach(obj: Any) -> Any:
    # staticmethod/classmethod/partialmethod objects are descriptors: reach
    # the callable a class hands out for them.
    if callable(obj) and not isinstance(obj, functools.partialmethod):
        return obj
    return type("Holder", (), {"attr": obj})().attr


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(WRAPPERS), min_size=1, max_size=6), st.booleans())
def test_property_any_wrapper_chain_of_forbidden_code_is_refused(
    chain: list[tuple[str, Callable[[Any], Any]]], instance: bool
) -> None:
    guard = Guard(POLICY)
    code = fresh()
    base: Any = code.Floodgate() if instance else code.floodgate
    _forbid(guard, base)
    wrapped: Any = code.Floodgate() if instance else base
    for _, wrap in chain:
        wrapped = _reach(wrap(wrapped))
    with pytest.raises(PolicyError, match="life_safety"):
        guard.tool(name="check_level", data="public")(wrapped)


# -- on an MCP server ---------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_forbidden_code_is_refused_on_an_mcp_server(route: str) -> None:
    from mcp.server.mcpserver import MCPServer

    from aiinvariants.integrations.mcp import MCPGuard

    guard = Guard(POLICY)
    mcp_guard = MCPGuard(guard)
    server: MCPServer[Any] = MCPServer("x")
    forbidden, other = route_pair(route)
    with pytest.raises(PolicyError):
        mcp_guard.tool(server, name="open_floodgate")(forbidden)
    with pytest.raises(PolicyError, match="life_safety"):
        mcp_guard.tool(server, name="check_level")(other)
    assert server._tool_manager.list_tools() == []


def test_forbidden_in_process_is_forbidden_on_mcp_and_back() -> None:
    from mcp.server.mcpserver import MCPServer

    from aiinvariants.integrations.mcp import MCPGuard

    guard = Guard(POLICY)
    server: MCPServer[Any] = MCPServer("x")
    code = fresh()
    _forbid(guard, code.floodgate)  # refused in process...
    with pytest.raises(PolicyError):  # ...so refused on MCP under another name
        MCPGuard(guard).tool(server, name="check_level")(
            functools.partial(code.floodgate)
        )
    other: MCPServer[Any] = MCPServer("y")
    with pytest.raises(PolicyError):
        MCPGuard(guard).tool(other, name="open_floodgate")(code.Floodgate())
    with pytest.raises(PolicyError):  # and a new instance back in process
        guard.tool(name="check_level", data="public")(code.Floodgate())
