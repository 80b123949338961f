"""Attacks on guarded LangChain tools, by class.

1. Routes: every way LangChain can run a tool, wrapped or composed, reaches
   the one decision (``scope_missing`` for a user without the scope).
2. Code: swapping the tool's code after guarding, or reaching it under
   another name, never runs unchecked code.
3. Surface: nothing the guarded tool hands out (attributes, ``__dict__``,
   dumps, copies, pickles, direct construction, subclasses) is an unguarded
   path.
4. Identity: a principal smuggled through ``RunnableConfig`` in any shape
   but exactly a ``Principal`` is refused with a stable code.
5. Errors: the tool's own error handling never turns a denial into output.
6. Property: a guarded LangChain tool and ``guard.tool`` on the same
   function decide alike, for any principal and policy.
"""

from __future__ import annotations

import asyncio
import copy
import pickle
import types
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core._api.beta_decorator import LangChainBetaWarning
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import BaseTool, StructuredTool, tool

from aiinvariants import (
    AuthenticationRequired,
    Guard,
    InvariantViolation,
    OutputBlocked,
    Policy,
    PolicyError,
    Principal,
    ScopeDenied,
    ToolForbidden,
    acting_as,
)
from aiinvariants.integrations.langchain_tools import (
    GuardedLangChainTool,
    guard_tool,
)

POLICY = Policy.from_dict({"clearance": {"scopes": {"kb:read": "internal"}}})
ALICE = Principal(subject="alice", authenticated=True, scopes={"kb:read"})
MALLORY = Principal(subject="mallory", authenticated=True)


def lookup(query: str) -> str:
    return f"secret answer for {query}"


def guarded_lookup(guard: Guard | None = None) -> GuardedLangChainTool:
    inner = StructuredTool.from_function(
        func=lookup, name="lookup", description="Look up internal data."
    )
    return guard_tool(
        guard or Guard(POLICY), inner, scopes=["kb:read"], data="internal"
    )


ARGS = {"query": "q"}
CALL = {"name": "lookup", "args": ARGS, "id": "1", "type": "tool_call"}

ROUTES: dict[str, Callable[[BaseTool], Any]] = {
    "invoke": lambda t: t.invoke(ARGS),
    "invoke_tool_call": lambda t: t.invoke(CALL),
    "run": lambda t: t.run(ARGS),
    "run_string": lambda t: t.run("q"),
    "batch": lambda t: t.batch([ARGS, ARGS]),
    "batch_return_exceptions": lambda t: [
        r
        for r in t.batch([ARGS], return_exceptions=True)
        if not isinstance(r, InvariantViolation) or (_ for _ in ()).throw(r)
    ],
    "stream": lambda t: list(t.stream(ARGS)),
    "ainvoke": lambda t: asyncio.run(t.ainvoke(ARGS)),
    "ainvoke_tool_call": lambda t: asyncio.run(t.ainvoke(CALL)),
    "arun": lambda t: asyncio.run(t.arun(ARGS)),
    "abatch": lambda t: asyncio.run(t.abatch([ARGS])),
    "astream": lambda t: asyncio.run(_collect(t.astream(ARGS))),
    "with_config": lambda t: t.with_config(run_name="x").invoke(ARGS),
    "bind": lambda t: t.bind(start_color="blue").invoke(ARGS),
    "with_retry": lambda t: t.with_retry(stop_after_attempt=1).invoke(ARGS),
    "runnable_lambda_wrapper": lambda t: RunnableLambda(lambda x: t.invoke(x)).invoke(
        ARGS
    ),
    "pipe": lambda t: (RunnableLambda(lambda x: x) | t).invoke(ARGS),
    "map": lambda t: t.map().invoke([ARGS]),
    "as_tool": lambda t: _as_tool(t).invoke(ARGS),
    "assign": lambda t: RunnableLambda(lambda x: x).assign(out=t).invoke(ARGS),
}


def _as_tool(t: BaseTool) -> BaseTool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangChainBetaWarning)
        return t.as_tool()


async def _collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_reaches_the_decision(route: str) -> None:
    guarded = guarded_lookup()
    with acting_as(MALLORY), pytest.raises(ScopeDenied) as info:
        ROUTES[route](guarded)
    assert info.value.code == "scope_missing"


@pytest.mark.parametrize("route", ["invoke", "ainvoke", "as_tool", "map"])
def test_the_allowed_user_gets_through_every_route(route: str) -> None:
    with acting_as(ALICE):
        result = ROUTES[route](guarded_lookup())
    assert "secret answer for q" in repr(result)


# -- 2. code -----------------------------------------------------------------------


def test_swapping_the_original_tools_func_has_no_effect() -> None:
    inner = StructuredTool.from_function(func=lookup, name="lookup", description="d")
    guarded = guard_tool(Guard(POLICY), inner, scopes=["kb:read"], data="internal")
    inner.func = lambda query: "unchecked code ran"
    with acting_as(ALICE):
        assert guarded.invoke(ARGS) == "secret answer for q"


def test_code_swapped_into_the_captured_function_is_refused() -> None:
    guard = Guard(POLICY)

    def harmless(query: str) -> str:
        return "harmless"

    def open_floodgate(query: str) -> str:
        return "floodgate opened"

    guard.tool(name="floodgate", capabilities=["public_safety"])(open_floodgate)
    strict = Policy.from_dict(
        {
            "clearance": {"scopes": {"kb:read": "internal"}},
            "capabilities": {"forbidden": ["life_safety", "public_safety"]},
        }
    )
    guard = Guard(strict)
    inner = StructuredTool.from_function(func=harmless, name="h", description="d")
    guarded = guard_tool(guard, inner, data="internal")
    harmless.__code__ = open_floodgate.__code__
    with acting_as(ALICE), pytest.raises(ToolForbidden) as info:
        guarded.invoke(ARGS)
    assert info.value.code == "capability_forbidden"


def test_replacing_the_wrapped_tools_code_is_refused() -> None:
    guarded = guarded_lookup()
    guarded._inner.func = lambda query: "unchecked"
    with acting_as(ALICE), pytest.raises(PolicyError, match="code changed"):
        guarded.invoke(ARGS)


def test_forbidden_code_under_another_tool_is_refused_at_wrap_time() -> None:
    guard = Guard(POLICY)

    def vent(gate: int) -> str:
        return "vented"

    with pytest.raises(PolicyError):
        guard_tool(
            guard,
            StructuredTool.from_function(func=vent, name="vent", description="d"),
            capabilities=["life_safety"],
        )
    for name in ("status", "check"):
        renamed = StructuredTool.from_function(func=vent, name=name, description="d")
        with pytest.raises(PolicyError, match="life_safety"):
            guard_tool(guard, renamed)
    # A bound method around a lambda that calls the forbidden code: the
    # references are followed.
    method_tool = StructuredTool.from_function(
        func=types.MethodType(lambda self, gate: vent(gate), object()),
        name="m",
        description="d",
    )
    with pytest.raises(PolicyError, match="life_safety"):
        guard_tool(guard, method_tool, data="public")


# -- 3. surface ----------------------------------------------------------------------


def test_no_public_attribute_hands_out_the_wrapped_tool_or_its_code() -> None:
    guarded = guarded_lookup()
    for name in ("func", "coroutine", "tool", "inner", "wrapped"):
        assert not hasattr(guarded, name)
    values = list(vars(guarded).values()) + list(guarded.model_dump().values())
    assert not any(isinstance(v, BaseTool) or v is lookup for v in values)
    assert "lookup at 0x" not in repr(guarded.model_dump())


def test_pickling_is_refused() -> None:
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(guarded_lookup())


def test_copies_stay_guarded_and_cannot_be_repointed() -> None:
    guarded = guarded_lookup()
    for clone in (copy.copy(guarded), guarded.model_copy(update={"name": "lookup"})):
        with acting_as(MALLORY), pytest.raises(ScopeDenied):
            clone.invoke(ARGS)
    other = StructuredTool.from_function(func=lookup, name="x", description="d")
    with pytest.raises(PolicyError):
        guarded.model_copy(update={"_inner": other})


@pytest.mark.parametrize("how", ["construct", "model_construct", "model_validate"])
def test_a_guarded_tool_not_built_by_guard_tool_refuses_to_run(how: str) -> None:
    fields = {"name": "lookup", "description": "d"}
    if how == "construct":
        built: BaseTool = GuardedLangChainTool(**fields)
    elif how == "model_construct":
        built = GuardedLangChainTool.model_construct(**fields)
    else:
        built = GuardedLangChainTool.model_validate(fields)
    with acting_as(ALICE), pytest.raises(PolicyError, match="guard_tool"):
        built.invoke({"query": "q"})


def test_a_subclass_of_the_guarded_tool_gets_no_unguarded_state() -> None:
    class Sneaky(GuardedLangChainTool):
        pass

    sneaky = Sneaky(name="lookup", description="d")
    with acting_as(ALICE), pytest.raises(PolicyError):
        sneaky.invoke(ARGS)
    with pytest.raises(PolicyError, match="guarded already"):
        guard_tool(Guard(POLICY), guarded_lookup())


# -- 4. identity through RunnableConfig ---------------------------------------------


class ForgedPrincipal(Principal):
    """A subclass that claims authentication by default."""

    authenticated: bool = True


FORGERIES = {
    "string": "alice",
    "dict": {"subject": "alice", "authenticated": True, "scopes": ["kb:read"]},
    "subclass": ForgedPrincipal(subject="alice", scopes={"kb:read"}),
    "object": types.SimpleNamespace(subject="alice", authenticated=True),
    "bytes": b"alice",
}


@pytest.mark.parametrize("kind", sorted(FORGERIES))
def test_anything_but_a_principal_in_config_is_refused(kind: str) -> None:
    guarded = guard_tool(
        Guard(POLICY),
        StructuredTool.from_function(func=lookup, name="lookup", description="d"),
        scopes=["kb:read"],
        data="internal",
        principal_from_config=True,
    )
    config: Any = {"configurable": {"principal": FORGERIES[kind]}}
    with pytest.raises(AuthenticationRequired) as info:
        guarded.invoke(ARGS, config)
    assert info.value.code == "principal_invalid"
    with pytest.raises(AuthenticationRequired):
        guarded.with_config(config).invoke(ARGS)


def test_a_config_principal_never_overrides_a_different_ambient_one() -> None:
    guarded = guard_tool(
        Guard(POLICY),
        StructuredTool.from_function(func=lookup, name="lookup", description="d"),
        scopes=["kb:read"],
        data="internal",
        principal_from_config=True,
    )
    with acting_as(MALLORY), pytest.raises(InvariantViolation) as info:
        guarded.invoke(ARGS, {"configurable": {"principal": ALICE}})
    assert info.value.code == "principal_conflict"


def test_a_config_principal_is_never_silently_ignored() -> None:
    guarded = guarded_lookup()
    with acting_as(MALLORY), pytest.raises(PolicyError, match="principal_from_config"):
        guarded.invoke(ARGS, {"configurable": {"principal": ALICE}})


# -- 5. the tool's own error handling ------------------------------------------------


@pytest.mark.parametrize("flag", [True, "tool failed", lambda e: "handled"])
def test_handle_tool_error_never_turns_a_denial_into_output(flag: Any) -> None:
    inner = StructuredTool.from_function(
        func=lookup,
        name="lookup",
        description="d",
        handle_tool_error=flag,
        handle_validation_error=True,
    )
    guarded = guard_tool(Guard(POLICY), inner, scopes=["kb:read"], data="internal")
    with acting_as(MALLORY), pytest.raises(ScopeDenied):
        guarded.invoke(CALL)


# -- 6. property: the same decision as guard.tool -----------------------------------

LABELS = ["public", "internal", "confidential", "restricted"]


def _outcome(fn: Callable[[], Any]) -> tuple[str, str]:
    try:
        return ("ok", repr(fn()))
    except InvariantViolation as exc:
        return (type(exc).__name__, exc.code)
    except PolicyError:
        return ("PolicyError", "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    authenticated=st.booleans(),
    held=st.frozensets(st.sampled_from(["a", "b"])),
    clearance=st.sampled_from([None, *LABELS]),
    exposure=st.sampled_from(["public", "internal"]),
    declared=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {
                "scopes": st.lists(st.sampled_from(["a", "b"]), max_size=2),
                "data": st.sampled_from(LABELS),
            }
        ),
    ),
    scopes=st.lists(st.sampled_from(["a", "b"]), max_size=2),
    data=st.sampled_from([None, *LABELS]),
    tool_exposure=st.sampled_from([None, "public", "internal"]),
    capabilities=st.lists(
        st.sampled_from(["sends_external", "life_safety"]), max_size=1
    ),
)
def test_property_decides_like_guard_tool(
    authenticated: bool,
    held: frozenset[str],
    clearance: str | None,
    exposure: str,
    declared: dict[str, Any] | None,
    scopes: list[str],
    data: str | None,
    tool_exposure: str | None,
    capabilities: list[str],
) -> None:
    policy: dict[str, Any] = {"exposure": exposure}
    if declared is not None:
        policy["tools"] = {"probe": declared}
    guard = Guard(Policy.from_dict(policy))
    if authenticated:
        who = Principal(
            subject="p", authenticated=True, scopes=held, clearance=clearance
        )
    else:
        who = Principal(subject="anonymous")

    def probe(x: str) -> str:
        return f"probe {x}"

    options: dict[str, Any] = {
        "name": "probe",
        "scopes": scopes,
        "data": data,
        "exposure": tool_exposure,
        "capabilities": capabilities,
    }
    plain = _outcome(lambda: guard.tool(**options)(probe))
    wrapped = _outcome(
        lambda: guard_tool(
            guard,
            StructuredTool.from_function(func=probe, name="probe", description="d"),
            **options,
        )
    )
    assert plain[0] == wrapped[0]
    if plain[0] != "ok":
        return
    decorated = guard.tool(**options)(probe)
    lc_tool = guard_tool(
        guard,
        StructuredTool.from_function(func=probe, name="probe", description="d"),
        **options,
    )
    with acting_as(who):
        assert _outcome(lambda: decorated("x")) == _outcome(
            lambda: lc_tool.invoke({"x": "x"})
        )


def test_at_tool_decorated_functions_are_guarded_too() -> None:
    @tool
    def read_notes(topic: str) -> str:
        """Read notes."""
        return f"notes on {topic}"

    guarded = guard_tool(Guard(POLICY), read_notes, scopes=["kb:read"], data="internal")
    with acting_as(MALLORY), pytest.raises(ScopeDenied):
        guarded.invoke({"topic": "t"})


# -- 7. result shapes the output pipeline must still see -----------------------------

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"

RESULT_SHAPES: dict[str, Any] = {
    "str": f"token {GITHUB_TOKEN}",
    "bytes": f"token {GITHUB_TOKEN}".encode(),
    "list": ["ok", f"token {GITHUB_TOKEN}"],
    "nested_dict": {"a": {"b": [f"token {GITHUB_TOKEN}"]}},
    "tuple_in_list": [("x", GITHUB_TOKEN)],
    "object": types.SimpleNamespace(note=f"token {GITHUB_TOKEN}"),
}


@pytest.mark.parametrize("shape", sorted(RESULT_SHAPES))
def test_a_secret_in_any_result_shape_is_blocked(shape: str) -> None:
    value = RESULT_SHAPES[shape]

    def leak(query: str) -> Any:
        return value

    guarded = guard_tool(
        Guard(POLICY),
        StructuredTool.from_function(func=leak, name="leak", description="d"),
        data="public",
    )
    with acting_as(ALICE), pytest.raises(OutputBlocked) as info:
        guarded.invoke({"query": "q"})
    assert GITHUB_TOKEN not in str(info.value) + repr(info.value)


def test_a_card_number_returned_as_an_int_is_not_passed_through() -> None:
    def card(query: str) -> int:
        return 4111111111111111

    guarded = guard_tool(
        Guard(POLICY),
        StructuredTool.from_function(func=card, name="card", description="d"),
        data="public",
    )
    with acting_as(ALICE), pytest.raises(OutputBlocked):
        guarded.invoke({"query": "q"})
