"""Red team (issue #11 A): routes to forbidden code the layer walk missed.

Registered with ``life_safety`` first, the function stayed reachable through
code that *calls* it rather than wraps it (a lambda, a closure, a
``functools.wraps`` wrapper whose ``__wrapped__`` was deleted, a coroutine
that hands it to ``asyncio.to_thread``), through a subclass of a forbidden
class or a metaclass ``__call__``, and through a wrapper chain deeper than
the walk's bound (the walk stopped and the call ran). Each is now refused at
registration (``PolicyError``) or at call (``capability_forbidden``).
"""

from __future__ import annotations

import functools
import types
from typing import Any

import pytest

from aiinvariants import Guard, Policy, PolicyError, Principal, ToolForbidden, acting_as
from aiinvariants.audit import MemorySink

POLICY = Policy.from_dict(
    {"tools": {"open_floodgate": {"capabilities": ["life_safety"]}}}
)
ADMIN = Principal(subject="root", authenticated=True, clearance="restricted")

SOURCE = """
import functools

def floodgate():
    return "opened"

def calls_it():
    return floodgate()

call_by_lambda = lambda: floodgate()

def closure():
    target = floodgate
    return lambda: target()

@functools.wraps(floodgate)
def wrapped_then_unlinked():
    return floodgate()

del wrapped_then_unlinked.__wrapped__

async def in_a_thread():
    return await asyncio.to_thread(floodgate)

class Valve:
    def __init__(self):
        self.state = "opened"

class SubValve(Valve):
    pass

class Meta(type):
    def __call__(cls):
        return floodgate()

class ViaMeta(metaclass=Meta):
    pass

class Gate:
    def __call__(self):
        return "opened"

class SubGate(Gate):
    def __call__(self):
        return super().__call__()

class Hop:
    def __init__(self, inner):
        self.inner = inner
        self.__wrapped__ = inner

    def __call__(self):
        return self.inner()
"""


def fresh() -> types.SimpleNamespace:
    namespace: dict[str, Any] = {}
    exec(compile(SOURCE, "<redteam-floodgate>", "exec"), namespace)  # noqa: S102 - fixed text
    return types.SimpleNamespace(**namespace)


def _routes(c: types.SimpleNamespace) -> dict[str, tuple[Any, Any]]:
    return {
        "function_calling_it": (c.floodgate, c.calls_it),
        "lambda": (c.floodgate, c.call_by_lambda),
        "closure": (c.floodgate, c.closure()),
        "wraps_without_wrapped": (c.floodgate, c.wrapped_then_unlinked),
        "to_thread": (c.floodgate, c.in_a_thread),
        "subclass_of_forbidden_class": (c.Valve, c.SubValve),
        "metaclass_call": (c.floodgate, c.ViaMeta),
        "subclass_overriding_call": (c.Gate(), c.SubGate()),
    }


ROUTES = sorted(_routes(fresh()))


@pytest.mark.parametrize("route", ROUTES)
def test_code_reaching_forbidden_code_is_refused(route: str) -> None:
    guard = Guard(POLICY)
    forbidden, other = _routes(fresh())[route]
    with pytest.raises(PolicyError):
        guard.tool(name="open_floodgate")(forbidden)
    with pytest.raises(PolicyError, match="life_safety"):
        guard.tool(name="check_level", data="public")(other)


@pytest.mark.parametrize("depth", [70, 600])
def test_wrapper_chain_deeper_than_the_walk_is_refused_at_call(depth: int) -> None:
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    c = fresh()
    chain: Any = c.floodgate
    for _ in range(depth):
        chain = c.Hop(chain)
    # Registered while nothing is known about the code: the call decides.
    tool = guard.tool(name="check_level", data="public")(functools.partial(chain))
    with pytest.raises(PolicyError):
        guard.tool(name="open_floodgate")(c.floodgate)
    with acting_as(ADMIN), pytest.raises(ToolForbidden) as caught:
        tool()
    assert caught.value.code == "capability_forbidden"
    assert [e.reason for e in memory.events][-1] == "capability_forbidden"


@pytest.mark.parametrize("route", ["function_calling_it", "lambda", "closure"])
def test_caller_registered_before_the_code_was_forbidden_is_refused_at_call(
    route: str,
) -> None:
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    forbidden, other = _routes(fresh())[route]
    tool = guard.tool(name="check_level", data="public")(other)
    with pytest.raises(PolicyError):
        guard.tool(name="open_floodgate")(forbidden)
    with acting_as(ADMIN), pytest.raises(ToolForbidden) as caught:
        tool()
    assert caught.value.code == "capability_forbidden"
