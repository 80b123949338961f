"""The taint of earlier turns, read from a run's input history (I12, Agents SDK).

A conversation carried on with a ``Session`` (``Runner.run(..., session=)``)
or with the previous result's ``to_input_list()`` starts each new run with
the earlier turns' items as input: the tool results the model read then are
read again now. The run of the new turn, in a new ``agent_run``, never saw
those tools come back, so without this it would be untainted while its model
reads the same injected page. The policy's input guardrail therefore marks
the run as each tool result in the input would have marked it:

- a ``function_call_output``: as its tool is declared (the agent's guarded
  tool, else the policy's ``tools.<name>``): private unless its data level is
  public, untrusted when its output is; a tool neither declares is both
  (fail closed). What it said is recorded for argument provenance, so a
  value injected in an earlier turn is still ``injected_argument``;
- the items of hosted tools (web or file search, MCP, code interpreter,
  computer and shell calls and their outputs) and any item that is not a
  message, a reasoning item or a function call (an MCP server's tool list,
  a compaction, a reference to a stored item, a ``role: tool`` message):
  private and untrusted, as is a history longer than is read. A handoff's
  own output (``transfer_to_<agent>``, the SDK's ``{"assistant": name}``)
  is nobody's content and marks nothing.

A call id names every call that used it: providers that number calls per
response reuse ids across turns, so an output is marked as each of them,
and recorded as untrusted content (not as any one tool's trusted data).

:class:`HistoryHooks` marks the run the same way with what each model call
of a guarded agent really reads (``on_llm_start``): a run resumed from a
``RunState`` (no input guardrail runs), an agent handed off to with an
input filter, an agent guarded with ``guardrails=False``.

Marks only add taint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from agents.lifecycle import AgentHooksBase

from aiinvariants.taint import current_run
from aiinvariants.tools import _effective, record_tool_result

if TYPE_CHECKING:
    from aiinvariants import Guard
    from aiinvariants.tools import ToolSpec

__all__ = ["HistoryHooks", "mark_history"]

#: Items read from the input, at most (a history is bounded by its session).
_MAX_ITEMS: Final = 10_000
#: Item types that carry no tool's result; any other item is one (or content
#: the marker cannot vouch for): fail closed.
_NOT_RESULTS: Final = frozenset({"function_call", "message", "reasoning"})
#: The name the SDK gives a handoff's call (``Handoff.default_tool_name``).
_HANDOFF_PREFIX: Final = "transfer_to_"
#: Roles of a message item written without a ``type``.
_MESSAGE_ROLES: Final = frozenset({"user", "assistant", "system", "developer"})


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _spec_of(agent: Any, name: str) -> ToolSpec | None:
    for tool in getattr(agent, "tools", None) or ():
        if getattr(tool, "name", None) != name:
            continue
        binding = getattr(getattr(tool, "on_invoke_tool", None), "binding", None)
        spec = getattr(binding, "spec", None)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


def mark_history(guard: Guard, agent: Any, value: Any) -> None:
    """Mark the current run with the tool results in a run's input ``value``."""
    run = current_run()
    if run is None or not isinstance(value, list):
        return
    if len(value) > _MAX_ITEMS:
        run.mark_private("history.unread")
        run.mark_untrusted("history.unread")
    items = value[:_MAX_ITEMS]
    names: dict[str, list[str]] = {}
    for item in items:
        if _field(item, "type") == "function_call":
            called = names.setdefault(str(_field(item, "call_id")), [])
            if str(_field(item, "name")) not in called:
                called.append(str(_field(item, "name")))
    for item in items:
        kind = _field(item, "type")
        if kind is None and _field(item, "role") in _MESSAGE_ROLES:
            continue
        if kind in _NOT_RESULTS:
            continue
        if kind == "function_call_output":
            called = names.get(str(_field(item, "call_id")), [""])
            for name in called:
                _mark_function_result(
                    guard, agent, name, called, _field(item, "output")
                )
        else:
            shown = kind if isinstance(kind, str) else "unknown"
            run.mark_private(f"history.{shown}")
            run.mark_untrusted(f"history.{shown}")


def _is_transfer(name: str, output: Any) -> bool:
    """The output of a handoff call: the SDK writes ``{"assistant": name}``."""
    if not name.startswith(_HANDOFF_PREFIX) or not isinstance(output, str):
        return False
    if len(output) > len(name) + 32:  # an agent's name, nothing more
        return False
    try:
        parsed = json.loads(output)
    except ValueError:
        return False
    return (
        isinstance(parsed, dict)
        and list(parsed) == ["assistant"]
        and isinstance(parsed["assistant"], str)
    )


def _mark_function_result(
    guard: Guard, agent: Any, name: str, called: list[str], output: Any
) -> None:
    run = current_run()
    if run is None:
        return
    spec = _spec_of(agent, name) if name else None
    tool = _effective(guard.policy, name, spec, frozenset()) if name else None
    if tool is None and len(called) == 1 and _is_transfer(name, output):
        return  # the SDK's own handoff message: nobody's content
    source = f"tool.{name}" if name else "history.function_call_output"
    if tool is None or tool.data != guard.policy.public_label:
        run.mark_private(source)
    if tool is None or tool.untrusted_output:
        run.mark_untrusted(source)
    if len(called) > 1:
        # Which call returned it is unknown: never trusted data (provenance).
        record_tool_result(guard, "<unknown>", output, named=None)
    else:
        record_tool_result(guard, name or "<unknown>", output, spec=spec, named=None)


class HistoryHooks(AgentHooksBase[Any, Any]):
    """An agent's hooks (``Agent.hooks``) that first mark the run with the
    input of each model call (:func:`mark_history`); every hook then calls
    the agent's own (``inner``)."""

    def __init__(self, guard: Guard, inner: Any) -> None:
        self.guard = guard
        self.inner = inner

    async def on_llm_start(
        self, context: Any, agent: Any, system_prompt: Any, input_items: Any
    ) -> None:
        mark_history(self.guard, agent, input_items)
        if self.inner is not None:
            await self.inner.on_llm_start(context, agent, system_prompt, input_items)

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        if self.inner is not None:
            await self.inner.on_llm_end(context, agent, response)

    async def on_start(self, context: Any, agent: Any) -> None:
        if self.inner is not None:
            await self.inner.on_start(context, agent)

    async def on_end(self, context: Any, agent: Any, output: Any) -> None:
        if self.inner is not None:
            await self.inner.on_end(context, agent, output)

    async def on_handoff(self, context: Any, agent: Any, source: Any) -> None:
        if self.inner is not None:
            await self.inner.on_handoff(context, agent, source)

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        if self.inner is not None:
            await self.inner.on_tool_start(context, agent, tool)

    async def on_tool_end(
        self, context: Any, agent: Any, tool: Any, result: Any
    ) -> None:
        if self.inner is not None:
            await self.inner.on_tool_end(context, agent, tool, result)

    def __getattr__(self, name: str) -> Any:
        # A hook of a later SDK: the agent's own.
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
