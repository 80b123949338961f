"""Guarded tools and guardrails for the OpenAI Agents SDK (I1-I3, I5, I8-I12).

``guard_function_tool(guard, tool, ...)`` guards a ``FunctionTool`` (what
``@function_tool`` returns) in place and returns it: its ``on_invoke_tool``,
the one place the SDK runs a function tool from (``Runner.run``,
``run_sync``, ``run_streamed``, agents used as tools, every
``tool_use_behavior``), decides each call with
:func:`aiinvariants.tools.call_checked_tool` given the parsed JSON
arguments, then applies the declared data level and the output pipeline to
the result. Registration goes through :func:`aiinvariants.tools.register_tool`
with the Python function the tool runs (``FunctionTool.__wrapped__``), so
forbidden code is refused under any name. ``is_enabled`` hides a tool the
current user may not call. A denial reaches the model as the tool result
``[<invariant>/<code>] <reason>``, is audited, and is decided again at every
call. See ``_agents_tools`` for the invoker.

``guard_agent(guard, agent)`` guards every tool of an agent, of the agents it
hands off to and of the agents it uses as tools, and refuses (``PolicyError``)
a tool the policy does not declare. The agent's class becomes a subclass
that guards again whatever it is given later: ``agent.clone(tools=...)``,
``dataclasses.replace``, tools appended to ``agent.tools``, MCP servers'
tools (checked in ``get_all_tools``) and handoffs added afterwards.

``policy_input_guardrail(guard)`` and ``policy_output_guardrail(guard)``
trip the SDK's wire on the model policy and on blocking output-pipeline
findings (see ``_agents_guardrails``).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    from agents import (
        Agent,
        FunctionTool,
        GuardrailFunctionOutput,
        Handoff,
        InputGuardrail,
        RunContextWrapper,
        function_tool,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(
        extra="openai-agents", package="openai-agents"
    ) from exc

from aiinvariants._options import ToolDeclaration
from aiinvariants.integrations._agents_guardrails import (
    check_model,
    is_policy_guardrail,
    policy_input_guardrail,
    policy_output_guardrail,
)
from aiinvariants.integrations._agents_history import HistoryHooks
from aiinvariants.integrations._agents_tools import (
    AGENT_TOOL_CODES,
    GuardedInvoker,
    ToolBinding,
)
from aiinvariants.taint import current_run

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "AGENT_TOOL_CODES",
    "GuardedInvoker",
    "guard_agent",
    "guard_declared",
    "guard_function_tool",
    "guarded_function_tool",
    "policy_input_guardrail",
    "policy_output_guardrail",
    "user_request_guardrail",
]

A = TypeVar("A", bound=Agent[Any])

_GUARD_ATTR: Final = "_aiinvariants_guard"
_GUARDRAILS_ATTR: Final = "_aiinvariants_guardrails"
_CLASS_CACHE_SIZE: Final = 256
_classes: dict[tuple[type[Any], int], tuple[Guard, type[Any]]] = {}
_classes_lock = threading.Lock()


# -- one tool ---------------------------------------------------------------------


def _code_of(tool: FunctionTool) -> Any:
    """The Python code a FunctionTool runs, for the registration check."""
    invoker = tool.on_invoke_tool
    if isinstance(invoker, GuardedInvoker):
        return invoker.binding.fn
    try:
        return tool.__wrapped__  # the callable given to @function_tool
    except AttributeError:
        return invoker  # a hand-built tool: its invoker is its code


def _binding_of(tool: FunctionTool, guard: Guard) -> ToolBinding | None:
    invoker: Any = tool.on_invoke_tool
    while isinstance(invoker, GuardedInvoker):
        if invoker.binding.guard is guard:
            return invoker.binding
        invoker = invoker.inner
    return None


def _guarded_by(tool: FunctionTool, guard: Guard) -> bool:
    binding = _binding_of(tool, guard)
    return binding is not None and binding.spec.name == tool.name


def guard_function_tool(
    guard: Guard,
    tool: FunctionTool,
    /,
    *,
    scopes: Iterable[str] = (),
    any_scopes: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    data: str | None = None,
    exposure: str | None = None,
    untrusted_output: bool | None = None,
    confidential_output: bool = False,
    hide_denied: bool = True,
) -> FunctionTool:
    """Guard an Agents SDK ``FunctionTool`` in place, and return it.

    Stops a model from calling a tool with the application's authority
    (scopes and clearance come from the current principal, never from the
    arguments), an anonymous user from reaching non-public data (I2),
    forbidden code under any name (I3), a tainted run from exfiltrating
    without confirmation (I12), and a tool result from carrying data above
    its declared level, a credential or the system prompt back to the model
    (I1/I8). The declaration here is joined with ``policy.tools[tool.name]``.

    Args:
        guard: the guard whose policy decides and whose audit log records.
        tool: what ``@function_tool`` (or ``agent.as_tool``) returned.
        scopes: scopes that are all needed.
        any_scopes: scopes of which one is needed as well.
        capabilities: what the tool can do (``sends_external``...).
        data: the highest classification the tool returns.
        exposure: ``"public"`` or ``"internal"``.
        untrusted_output: the output may carry injected instructions (I12).
        confidential_output: the raw output must never be echoed in the
            agent's answer (checked by :func:`policy_output_guardrail`);
            also taken from the policy's ``confidential_output``.
        hide_denied: ``is_enabled`` hides the tool from the model when the
            current user may not call it (decided without recording).

    Raises:
        PolicyError: not a ``FunctionTool``, a malformed declaration, or a
            capability the policy forbids.
    """
    declaration = ToolDeclaration(
        scopes=scopes,
        any_scopes=any_scopes,
        capabilities=capabilities,
        data=data,
        exposure=exposure,
        untrusted_output=untrusted_output,
    )
    return _guarded(guard, tool, declaration, confidential_output, hide_denied)


def guard_declared(
    guard: Guard, tool: FunctionTool, declaration: ToolDeclaration
) -> FunctionTool:
    """:func:`guard_function_tool` with its declaration already checked (the
    dispatch's entry point for ``guard.tool(...)(tool)``).

    Raises:
        PolicyError: ``name=`` differs from the tool's own name (rename it
            with ``function_tool(name_override=...)``), or as
            :func:`guard_function_tool`.
    """
    if declaration.name is not None and declaration.name != tool.name:
        raise PolicyError(
            f"guard.tool(name={declaration.name!r}) on the FunctionTool "
            f"{tool.name!r}: the model calls it by its own name; rename it "
            "with function_tool(name_override=...)",
            code="declared_name_differs",
        )
    return _guarded(guard, tool, declaration.named(tool.name), False, True)


def _guarded(
    guard: Guard,
    tool: FunctionTool,
    declaration: ToolDeclaration,
    confidential_output: bool,
    hide_denied: bool,
) -> FunctionTool:
    if not isinstance(tool, FunctionTool):
        raise PolicyError(
            f"guard_function_tool takes an agents.FunctionTool, got "
            f"{type(tool).__name__}; hosted and local shell/computer tools "
            "cannot be guarded"
        )
    declaration = declaration.named(tool.name)
    if _guarded_by(tool, guard):
        # Idempotent for the same declaration; a different one would be
        # silently ignored or doubled, so it is refused.
        asked = declaration.spec()
        bound = _binding_of(tool, guard)
        if bound is not None and asked == bound.spec:
            return tool
        raise PolicyError(
            f"tool {tool.name!r} is already guarded by this guard with another "
            "declaration; declare it once"
        )
    fn = _code_of(tool)
    spec = declaration.register(guard, fn)
    declared = guard.policy.tools.get(tool.name)
    binding = ToolBinding(
        guard,
        spec,
        fn,
        confidential_output=confidential_output
        or bool(declared is not None and declared.confidential_output),
        hide_denied=hide_denied,
    )
    tool.on_invoke_tool = GuardedInvoker(binding, tool.on_invoke_tool, tool)
    if hide_denied:
        tool.is_enabled = _enabled_for_caller(binding, tool.is_enabled)
    agent = getattr(tool, "_agent_instance", None)
    if isinstance(agent, Agent):
        guard_agent(guard, agent, guardrails=False)
    return tool


def _enabled_for_caller(
    binding: ToolBinding, original: Any
) -> Callable[[Any, Any], Awaitable[bool]]:
    async def is_enabled(ctx: Any, agent: Any) -> bool:
        allowed = original
        if callable(original):
            allowed = original(ctx, agent)
            if hasattr(allowed, "__await__"):
                allowed = await allowed
        return bool(allowed) and binding.callable_now()

    return is_enabled


def guarded_function_tool(
    guard: Guard,
    /,
    *,
    scopes: Iterable[str] = (),
    any_scopes: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    data: str | None = None,
    exposure: str | None = None,
    untrusted_output: bool | None = None,
    confidential_output: bool = False,
    hide_denied: bool = True,
    **function_tool_options: Any,
) -> Callable[[Callable[..., Any]], FunctionTool]:
    """``@function_tool(...)`` and :func:`guard_function_tool` in one decorator.

    ``function_tool_options`` go to ``agents.function_tool`` (e.g.
    ``name_override``, ``failure_error_function``).
    """

    declaration = ToolDeclaration(
        scopes=scopes,
        any_scopes=any_scopes,
        capabilities=capabilities,
        data=data,
        exposure=exposure,
        untrusted_output=untrusted_output,
    )

    def decorate(fn: Callable[..., Any]) -> FunctionTool:
        tool = function_tool(fn, **function_tool_options)
        return _guarded(guard, tool, declaration, confidential_output, hide_denied)

    return decorate


def _visible(guard: Guard, tool: FunctionTool) -> bool:
    binding = _binding_of(tool, guard)
    return binding is None or not binding.hide_denied or binding.callable_now()


def _ensure_tool(guard: Guard, tool: Any) -> Any:
    """A tool of a guarded agent: guarded by ``guard``, or refused."""
    if not isinstance(tool, FunctionTool):
        raise PolicyError(
            f"agent tool {getattr(tool, 'name', type(tool).__name__)!r} is a "
            f"{type(tool).__name__}, which the guard cannot decide call by call; "
            "remove it or wrap the work in a function tool"
        )
    if _guarded_by(tool, guard):
        agent = getattr(tool, "_agent_instance", None)
        if isinstance(agent, Agent):
            _adopt(guard, agent)
        return tool
    if tool.name not in guard.policy.tools:
        raise PolicyError(
            f"agent tool {tool.name!r} is not declared in the policy (tools:) "
            "and was not guarded with guard_function_tool; declare it or guard it"
        )
    return guard_function_tool(guard, tool)


# -- agents -------------------------------------------------------------------------


def _guard_handoff(guard: Guard, item: Any, *, guardrails: bool) -> Any:
    """Guard the agent a handoff leads to; give it the guardrails if asked."""
    if isinstance(item, Agent):
        _adopt(guard, item)
        if guardrails:
            _add_guardrails(guard, item)
        return item
    if isinstance(item, Handoff):
        invoke = item.on_invoke_handoff
        if getattr(invoke, _GUARD_ATTR, None) is guard and (
            getattr(invoke, _GUARDRAILS_ATTR, False) or not guardrails
        ):
            return item

        async def on_invoke_handoff(ctx: Any, raw: str) -> Any:
            agent = await invoke(ctx, raw)
            if isinstance(agent, Agent):
                _adopt(guard, agent)
                for tool in agent.tools:
                    _ensure_tool(guard, tool)
                if guardrails:
                    _add_guardrails(guard, agent)
            return agent

        setattr(on_invoke_handoff, _GUARD_ATTR, guard)
        setattr(on_invoke_handoff, _GUARDRAILS_ATTR, guardrails)
        item.on_invoke_handoff = on_invoke_handoff
        return item
    raise PolicyError(
        f"an agent's handoffs hold a {type(item).__name__}; expected an Agent "
        "or a Handoff"
    )


def _has_policy_guardrails(agent: Any, guard: Guard) -> bool:
    return any(
        is_policy_guardrail(g, guard)
        for g in (*agent.input_guardrails, *agent.output_guardrails)
    )


def _has_guard(cls: type[Any], guard: Guard) -> bool:
    return any(c.__dict__.get(_GUARD_ATTR) is guard for c in cls.__mro__)


def _guarded_class(guard: Guard, cls: type[Any]) -> type[Any]:
    if _has_guard(cls, guard):
        return cls
    key = (cls, id(guard))
    with _classes_lock:
        hit = _classes.get(key)
        if hit is not None and hit[0] is guard:
            return hit[1]
    base_post_init = getattr(cls, "__post_init__", None)
    base_get_all_tools = cls.get_all_tools

    def post_init(self: Any) -> None:
        if base_post_init is not None:
            base_post_init(self)
        for tool in list(self.__dict__.get("tools", ())):
            _ensure_tool(guard, tool)

    async def get_all_tools(self: Any, run_context: Any) -> list[Any]:
        # The SDK asks every turn, before calling the agent's model: the
        # input guardrail decides the first agent's model only, so an agent
        # handed off to (or run as a tool) is decided here.
        if _has_policy_guardrails(self, guard):
            check_model(guard, self)
        # Tools first seen here (MCP servers' tools, appended ones) were
        # filtered by their old is_enabled: hide those the user may not call.
        tools = [
            _ensure_tool(guard, tool)
            for tool in await base_get_all_tools(self, run_context)
        ]
        return [tool for tool in tools if _visible(guard, tool)]

    # A class guarded by another guard already has the property: chain it.
    inherited = inspect.getattr_static(cls, "handoffs", None)
    outer = inherited if isinstance(inherited, property) else None

    def _get_handoffs(self: Any) -> list[Any]:
        items: list[Any] = (
            outer.fget(self) if outer and outer.fget else self.__dict__["handoffs"]
        )
        # An agent that has the policy guardrails passes them on: the SDK
        # runs the output guardrails of the agent a handoff ends with.
        wanted = any(is_policy_guardrail(g, guard) for g in self.output_guardrails)
        for item in items:
            _guard_handoff(guard, item, guardrails=wanted)
        return items

    def _set_handoffs(self: Any, value: list[Any]) -> None:
        if outer is not None and outer.fset is not None:
            outer.fset(self, value)
        else:
            self.__dict__["handoffs"] = value

    # The hooks mark the run with what each model call reads (I12): the
    # agent's own hooks are wrapped, whoever sets them (clone() included).
    inherited_hooks = inspect.getattr_static(cls, "hooks", None)
    outer_hooks = inherited_hooks if isinstance(inherited_hooks, property) else None

    def _get_hooks(self: Any) -> Any:
        inner = (
            outer_hooks.fget(self)
            if outer_hooks and outer_hooks.fget
            else self.__dict__.get("hooks")
        )
        if isinstance(inner, HistoryHooks) and inner.guard is guard:
            return inner
        return HistoryHooks(guard, inner)

    def _set_hooks(self: Any, value: Any) -> None:
        if isinstance(value, HistoryHooks) and value.guard is guard:
            value = value.inner
        if outer_hooks is not None and outer_hooks.fset is not None:
            outer_hooks.fset(self, value)
        else:
            self.__dict__["hooks"] = value

    guarded = type(
        cls.__name__,
        (cls,),
        {
            _GUARD_ATTR: guard,
            "hooks": property(_get_hooks, _set_hooks),
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__post_init__": post_init,
            "get_all_tools": get_all_tools,
            "handoffs": property(_get_handoffs, _set_handoffs),
        },
    )
    with _classes_lock:
        if len(_classes) >= _CLASS_CACHE_SIZE:
            _classes.clear()
        _classes[key] = (guard, guarded)
    return guarded


def _adopt(guard: Guard, agent: Any) -> None:
    """Make ``agent`` (and every copy of it) guard what it is given."""
    if _has_guard(type(agent), guard):
        return
    agent.__class__ = _guarded_class(guard, type(agent))


def guard_agent(guard: Guard, agent: A, /, *, guardrails: bool = True) -> A:
    """Guard every tool of ``agent``, its handoffs and its agents-as-tools.

    A tool already guarded with :func:`guard_function_tool` keeps its
    declaration; any other function tool must be declared in the policy
    (``tools:``) and is guarded with that declaration. With ``guardrails``,
    :func:`policy_input_guardrail` and :func:`policy_output_guardrail` are
    added to every agent reached (the SDK runs the first agent's input
    guardrails and the last agent's output guardrails).

    Raises:
        PolicyError: a tool the policy does not declare, a tool type that
            cannot be guarded, or a forbidden capability (I3).
    """
    if not isinstance(agent, Agent):
        raise PolicyError(
            f"guard_agent takes an agents.Agent, got {type(agent).__name__}; "
            "guard a single tool with guard_function_tool"
        )
    seen: set[int] = set()
    todo: list[Any] = [agent]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        _adopt(guard, current)
        for tool in current.tools:
            _ensure_tool(guard, tool)
            nested = getattr(tool, "_agent_instance", None)
            if isinstance(nested, Agent):
                todo.append(nested)
        if guardrails:  # before reading handoffs: they pass the guardrails on
            _add_guardrails(guard, current)
        for item in current.handoffs:
            if isinstance(item, Agent):
                todo.append(item)
    return agent


def _add_guardrails(guard: Guard, agent: Any) -> None:
    # This guard's guardrails: another guard's decide with another policy.
    if not any(is_policy_guardrail(g, guard) for g in agent.input_guardrails):
        agent.input_guardrails = [
            policy_input_guardrail(guard),
            *agent.input_guardrails,
        ]
    if not any(is_policy_guardrail(g, guard) for g in agent.output_guardrails):
        agent.output_guardrails = [
            policy_output_guardrail(guard),
            *agent.output_guardrails,
        ]


_REQUEST_GUARDRAIL: Final = "aiinvariants_user_request"


def _user_texts(value: Any) -> list[str]:
    """The texts of the ``user`` messages of a run's input: a string is the
    user's message; in a list of input items, only items with role ``user``
    count (never a tool's output, a model turn or a system prompt)."""
    if isinstance(value, str):
        return [value]
    texts: list[str] = []
    for item in value[:1000] if isinstance(value, list) else []:
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        if item.get("type", "message") != "message":
            continue
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content if isinstance(content, list) else []:
            if (
                isinstance(part, dict)
                and part.get("type") in ("input_text", "text")
                and isinstance(part.get("text"), str)
            ):
                texts.append(part["text"])
    return texts


def user_request_guardrail() -> InputGuardrail[Any]:
    """An input guardrail that gives the current ``agent_run`` the user's
    request: the run's input text, or its ``user`` messages (I12 provenance).

    A consequential call whose arguments all come from what the person
    typed then runs without asking, and one whose argument came from
    untrusted content only is refused (an injected recipient, account or
    URL). It runs before the agent (``run_in_parallel=False``) and never
    trips. Add it only where the ``user`` messages of the input hold what
    the person typed: an app that pastes retrieved documents or tool output
    into a user message would vouch for an injection.

        agent.input_guardrails.append(user_request_guardrail())
        with agent_run(confirm=ask):
            await Runner.run(agent, "Mail bob@example.com the notes")
    """

    async def aiinvariants_user_request(
        ctx: RunContextWrapper[Any], agent: Agent[Any], value: Any
    ) -> GuardrailFunctionOutput:
        run = current_run()
        if run is not None:
            for text in _user_texts(value):
                # Late (once the run read untrusted content: an agent used
                # as a tool gets its parent model's text) it vouches less.
                run.add_user_request(text)
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    return InputGuardrail(
        guardrail_function=aiinvariants_user_request,
        name=_REQUEST_GUARDRAIL,
        run_in_parallel=False,
    )
