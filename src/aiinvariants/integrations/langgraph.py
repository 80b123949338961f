"""A guarded LangGraph ``ToolNode`` (I1, I2, I3, I8, I12).

``guard_tool_node(guard, tools, ...)`` returns a :class:`GuardedToolNode`, a
real ``langgraph.prebuilt.ToolNode`` whose every tool is a
:class:`~aiinvariants.integrations.langchain_tools.GuardedLangChainTool`:

- a plain tool or function is guarded with the policy's declaration of its
  name (``tools.<name>``); a tool the policy does not declare must be
  guarded with ``guard_tool(...)`` first (refused otherwise, at
  construction);
- every call the node runs, whatever brought it there (the last
  ``AIMessage``'s tool calls, parallel calls, a ``Send`` with a
  ``ToolCallWithContext``, a ``Command(goto=Send(...))``, a
  ``wrap_tool_call`` middleware), is refused with ``tool_unknown`` unless
  the tool that would run is one of the node's guarded tools: a name the
  model invents, or a tool a middleware swapped in;
- injected arguments (``InjectedState``, ``InjectedStore``, ``ToolRuntime``,
  ``InjectedToolArg``) are filled by LangGraph after it strips any value the
  model forged for them; they are not part of ``arguments=`` given to the
  decision, which carries what the model chose.

**Confirmation by interrupt** (``confirm="interrupt"``): before any tool of
a step runs, each call of a tool with a capability the policy lists under
``capabilities.confirm``, in a run that is tainted (I12), raises LangGraph's
``interrupt()`` in tool-call order, with a payload that names the tool, its
call id, the capabilities, the subject and the taint sources (never the
arguments or a token). The graph resumes with ``Command(resume=True)`` or
``Command(resume=False)``; only exactly ``True`` approves that one call.
Nothing runs before every confirmation of the step is answered, so a resume
never runs a tool twice. The run's taint lives in the ``agent_run`` the app
enters around the graph's invocations, and travels with the graph: each
``ToolMessage`` the node returns carries the run's taint sources in
``response_metadata[TAINT_KEY]``, and each step marks the current run with
those found in the state, so a graph resumed by another worker in a new
``agent_run`` is still tainted (marks only add taint). Messages do not
last (a summarization step or history trimming drops them), so each step
also keeps the run's taint under the conversation's ``thread_id``: in the
graph's store when it is compiled with one (shared by every worker),
otherwise in this process (see ``_langgraph_threads``).
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool
    from langchain_core.tools import tool as as_langchain_tool
    from langgraph.prebuilt import ToolNode
    from langgraph.types import Command, interrupt
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="langgraph", package="langgraph") from exc

from pydantic import Field

from aiinvariants import ToolForbidden
from aiinvariants.integrations import _langgraph_threads as _threads
from aiinvariants.integrations._langchain_config import principal_for_call
from aiinvariants.integrations.langchain_tools import GuardedLangChainTool, guard_tool
from aiinvariants.taint import ConfirmationRequest, agent_run, current_run
from aiinvariants.tools import record_tool_result

if TYPE_CHECKING:
    from aiinvariants import Guard, Principal

__all__ = ["CONFIRMATION_KIND", "TAINT_KEY", "GuardedToolNode", "guard_tool_node"]

#: The ``response_metadata`` key of a ToolMessage that carries the run's taint.
TAINT_KEY: Final = "aiinvariants_taint"
#: ``kind`` of the interrupt payload a confirmation raises.
CONFIRMATION_KIND: Final = "aiinvariants.confirmation"
_ASKED_MAX: Final = 4096
#: Where LangGraph keeps a task's interrupt answers (``interrupt()`` reads it).
_SCRATCHPAD: Final = "__pregel_scratchpad"
#: ``additional_kwargs["lc_source"]`` of the summary LangChain's
#: ``SummarizationMiddleware`` puts in place of the history it trims.
_SUMMARY_SOURCE: Final = "summarization"

#: The answers of this step's confirmations, by tool call id.
_APPROVALS: contextvars.ContextVar[Mapping[str, bool] | None] = contextvars.ContextVar(
    "aiinvariants.langgraph.approvals", default=None
)
#: The tool call being executed in this thread or task.
_CALL: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "aiinvariants.langgraph.call", default=None
)


def _approve(request: ConfirmationRequest) -> bool:
    """The confirmation callback of a step: the person's answer, or no."""
    call, approvals = _CALL.get(), _APPROVALS.get()
    if call is None or approvals is None:
        return False
    call_id, name = call
    return request.tool == name and approvals.get(call_id) is True


class GuardedToolNode(ToolNode):
    """A ``ToolNode`` that runs only guarded tools, each call decided.

    Build it with :func:`guard_tool_node`.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]],
        *,
        guard: Guard,
        confirm: Literal["interrupt"] | None = None,
        principal_from_config: bool = False,
        user_request: Literal["human_messages"] | None = None,
        **options: Any,
    ) -> None:
        if confirm not in (None, "interrupt"):
            raise PolicyError('confirm= must be None or "interrupt"')
        if user_request not in (None, "human_messages"):
            raise PolicyError('user_request= must be None or "human_messages"')
        guarded = [_guarded(guard, t, principal_from_config) for t in tools]
        super().__init__(guarded, **options)
        self._guard = guard
        self._confirm = confirm
        self._user_request = user_request
        self._principal_from_config = principal_from_config
        # The tools themselves, not only their ids: an id is reused once its
        # object is freed (a guarded tool dropped from tools_by_name).
        self._ours: dict[int, BaseTool] = {id(t): t for t in guarded}
        self._asked: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._asked_lock = threading.Lock()

    # -- who and what -----------------------------------------------------------

    def _who(self, config: RunnableConfig | None, resource: str) -> Principal:
        return principal_for_call(
            self._guard,
            config,
            enabled=self._principal_from_config,
            resource=resource,
            where="guard_tool_node(...)",
        )

    def _refuse_unknown(self, request: Any, config: RunnableConfig) -> Any:
        """The request, or one whose tool refuses: not one of ours.

        A name the model invented, or a tool a middleware swapped in, is
        refused with ``tool_unknown``; the refusal runs as the tool, inside
        ToolNode's own error handling (``handle_tool_errors``).
        """
        tool = request.tool
        if tool is not None and self._ours.get(id(tool)) is tool:
            return request
        return self._refused(
            request, config, "is not one of this node's guarded tools", "tool_unknown"
        )

    def _declined(self, request: Any, config: RunnableConfig) -> Any:
        if isinstance(request.tool, _Refusal):
            return request
        """The request, or one whose tool refuses: the person said no.

        The refusal runs as the tool, inside ToolNode's own error handling,
        so ``handle_tool_errors`` treats it like any other denial.
        """
        approvals = _APPROVALS.get()
        call_id = str(request.tool_call.get("id"))
        if approvals is None or approvals.get(call_id, True) is True:
            return request
        return self._refused(
            request,
            config,
            "was not confirmed",
            "tainted_run_needs_confirmation",
            invariant="I12",
        )

    def _refused(
        self,
        request: Any,
        config: RunnableConfig,
        why: str,
        code: str,
        *,
        invariant: str | None = None,
    ) -> Any:
        """``request`` with its tool swapped for one that refuses (``code``)."""
        name = str(request.tool_call.get("name"))
        resource = f"tool.{name}"
        who = self._who(config, resource)
        denial = ToolForbidden(
            f"tool {name!r} {why}",
            code=code,
            invariant=invariant,
            subject=who.subject,
            resource=resource,
        )
        return request.override(
            tool=_Refusal(name=name, denial=denial, guard=self._guard, who=who)
        )

    # -- execution: every call the node runs ends here ---------------------------

    def _begin(self, request: Any, config: RunnableConfig) -> tuple[Any, Any]:
        """The request as it may run (unknown tools and declined calls
        swapped for refusals) and the token marking it as the current call."""
        request = self._declined(self._refuse_unknown(request, config), config)
        call = (str(request.tool_call.get("id")), str(request.tool_call.get("name")))
        return request, _CALL.set(call)

    def _execute_tool_sync(
        self, request: Any, input_type: Any, config: RunnableConfig
    ) -> Any:
        request, token = self._begin(request, config)
        try:
            if self._confirm is None:
                result = super()._execute_tool_sync(request, input_type, config)
            else:
                with agent_run(confirm=_approve):
                    result = super()._execute_tool_sync(request, input_type, config)
        finally:
            _CALL.reset(token)
        return _with_taint(result)

    async def _execute_tool_async(
        self, request: Any, input_type: Any, config: RunnableConfig
    ) -> Any:
        request, token = self._begin(request, config)
        try:
            if self._confirm is None:
                result = await super()._execute_tool_async(request, input_type, config)
            else:
                async with agent_run(confirm=_approve):
                    result = await super()._execute_tool_async(
                        request, input_type, config
                    )
        finally:
            _CALL.reset(token)
        return _with_taint(result)

    # -- confirmation by interrupt, before any tool of the step runs ---------------

    def _thread(self, config: RunnableConfig | None) -> str:
        configurable = (config or {}).get("configurable") or {}
        return str(configurable.get("thread_id", ""))

    def _needs_asking(
        self, tool: BaseTool, key: tuple[str, str], resuming: bool
    ) -> bool:
        with self._asked_lock:
            if key in self._asked:
                return True  # asked before this resume: ask (consume) again
        if not isinstance(tool, GuardedLangChainTool):
            return False
        run = current_run()
        policy = self._guard.policy
        # The gate check_tool applies: a tainted run, or (a policy that says
        # so) any run that read untrusted content. Asking too often only
        # asks; asking too rarely is refused by check_tool (fail closed).
        # A task resumed after its questions (maybe by another worker, or a
        # rebuilt node, in a run not tainted yet) asks them again, in the
        # same order, so every answer given is consumed and a "no" holds.
        when = getattr(policy.capabilities, "confirm_when", "tainted")
        gated = run is not None and (
            run.untrusted if when == "untrusted" else run.tainted
        )
        if not (gated or resuming):
            return False
        declared = policy.tools.get(tool.spec.name)
        caps = set(tool.spec.capabilities)
        if declared is not None:
            caps |= set(declared.capabilities)
        return bool(caps & set(policy.capabilities.confirm))

    def _remember(self, key: tuple[str, str]) -> None:
        with self._asked_lock:
            self._asked[key] = None
            while len(self._asked) > _ASKED_MAX:
                self._asked.popitem(last=False)

    def _confirmations(self, input: Any, config: RunnableConfig) -> dict[str, bool]:
        tool_calls, _ = self._parse_input(input)
        thread = self._thread(config)
        resuming = _resuming(config)
        approvals: dict[str, bool] = {}
        for call in tool_calls:
            tool = self.tools_by_name.get(call["name"])
            call_id = str(call.get("id"))
            key = (thread, call_id)
            if tool is None or not self._needs_asking(tool, key, resuming):
                continue
            self._remember(key)
            answer = interrupt(self._payload(tool, call_id, config))
            # Calls sharing an id share one approval: it holds only if
            # every one of them was approved.
            approvals[call_id] = approvals.get(call_id, True) and answer is True
        return approvals

    def _payload(
        self, tool: BaseTool, call_id: str, config: RunnableConfig
    ) -> dict[str, Any]:
        name = tool.name
        who = self._who(config, f"tool.{name}")
        policy = self._guard.policy
        caps: set[str] = set()
        if isinstance(tool, GuardedLangChainTool):
            caps |= set(tool.spec.capabilities)
            declared = policy.tools.get(tool.spec.name)
            if declared is not None:
                caps |= set(declared.capabilities)
        run = current_run()
        return {
            "kind": CONFIRMATION_KIND,
            "tool": name,
            "tool_call_id": call_id,
            "capabilities": sorted(caps & set(policy.capabilities.confirm)),
            "subject": who.subject,
            "private_sources": list(run.private_sources) if run else [],
            "untrusted_sources": list(run.untrusted_sources) if run else [],
        }

    def _func(self, input: Any, config: RunnableConfig, runtime: Any) -> Any:
        # The request first: a resumed run re-reads earlier tool results as
        # untrusted content, after which a request would count as late.
        if self._user_request is not None:
            _supply_request(input, self._messages_key)
        _restore_taint(input, self._messages_key, self._guard)
        _threads.restore(self._guard, config, runtime)
        try:
            if self._confirm is None:
                return super()._func(input, config, runtime)
            token = _APPROVALS.set(self._confirmations(input, config))
            try:
                return super()._func(input, config, runtime)
            finally:
                _APPROVALS.reset(token)
        finally:
            _threads.remember(self._guard, config, runtime)

    async def _afunc(self, input: Any, config: RunnableConfig, runtime: Any) -> Any:
        # The request first: a resumed run re-reads earlier tool results as
        # untrusted content, after which a request would count as late.
        if self._user_request is not None:
            _supply_request(input, self._messages_key)
        _restore_taint(input, self._messages_key, self._guard)
        await _threads.arestore(self._guard, config, runtime)
        try:
            if self._confirm is None:
                return await super()._afunc(input, config, runtime)
            token = _APPROVALS.set(self._confirmations(input, config))
            try:
                return await super()._afunc(input, config, runtime)
            finally:
                _APPROVALS.reset(token)
        finally:
            await _threads.aremember(self._guard, config, runtime)


def _resuming(config: RunnableConfig | None) -> bool:
    """True when this task runs again with answers to its interrupts."""
    configurable = (config or {}).get("configurable") or {}
    scratchpad = configurable.get(_SCRATCHPAD)
    if scratchpad is None:
        return False  # not inside a graph task: there is nothing to resume
    try:
        resume = scratchpad.resume
        null = scratchpad.get_null_resume(False)
    except Exception:
        return True  # cannot tell: ask (fail closed)
    return bool(resume) or null is not None


# -- the run's taint, kept in the graph's own messages ---------------------------
#
# The taint of a run lives in the ``agent_run`` of the process. So that a graph
# resumed elsewhere (another request, another worker) keeps it, each ToolMessage
# the node returns carries the run's taint sources in ``response_metadata``, and
# every step first marks the current run with the sources found in the state's
# messages. Marks only add taint: a forged entry can only make the run stricter.


def _with_taint(result: Any) -> Any:
    run = current_run()
    if run is None or not (run.private or run.untrusted):
        return result
    taint = {
        "private": list(run.private_sources),
        "untrusted": list(run.untrusted_sources),
    }
    _stamp(result, taint, 0)
    return result


def _stamp(value: Any, taint: Mapping[str, Any], depth: int) -> None:
    """Put ``taint`` on every ToolMessage of a result, in a Command's update too."""
    if depth > 4:
        return
    if isinstance(value, ToolMessage):
        value.response_metadata = {**value.response_metadata, TAINT_KEY: taint}
    elif isinstance(value, Command):
        _stamp(value.update, taint, depth + 1)
    elif isinstance(value, Mapping):
        for item in value.values():
            _stamp(item, taint, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _stamp(item, taint, depth + 1)


def _state_messages(input: Any, messages_key: str) -> Sequence[Any]:
    """The messages of the state a step of the node receives."""
    if isinstance(input, Mapping):
        messages = input.get(messages_key) or []
        if not messages and input.get("__type") == "tool_call_with_context":
            state = input.get("state")
            if isinstance(state, Mapping):
                messages = state.get(messages_key) or []
    elif isinstance(input, list):
        messages = input
    else:
        messages = getattr(input, messages_key, None) or []
    return messages if isinstance(messages, Sequence) else []


def _supply_request(input: Any, messages_key: str) -> None:
    """What the person typed (the state's ``HumanMessage`` texts) becomes the
    current run's user request (I12 provenance). Only ``HumanMessage``:
    model turns, tool results and system prompts never vouch. Nor does a
    ``HumanMessage`` with a ``name`` (an agent's answer posted as one), or
    one inside a tool loop (after a model turn that calls
    tools, or a tool result, before the model's next answer): that is a
    tool's output carried as a user message (a page, a file, an image's
    text), not a turn of the person. Nor does LangChain's summary of a
    trimmed history (``additional_kwargs["lc_source"] == "summarization"``):
    a model wrote it from the tool results it replaces, so its texts are
    the run's untrusted content. A request supplied once the run has
    read untrusted content (a sub-agent's task its parent's model wrote)
    vouches less: see ``AgentRun.add_user_request``."""
    run = current_run()
    if run is None:
        return
    in_tool_loop = False
    summaries: list[str] = []
    for message in _state_messages(input, messages_key)[:1000]:
        if isinstance(message, ToolMessage):
            in_tool_loop = True
        elif isinstance(message, AIMessage):
            in_tool_loop = bool(message.tool_calls or message.invalid_tool_calls)
        if type(message) is not HumanMessage or in_tool_loop or message.name:
            # A named HumanMessage is an agent's output posted as one
            # (LangGraph's multi-agent pattern), not the person's turn.
            continue
        if message.additional_kwargs.get("lc_source") == _SUMMARY_SOURCE:
            # LangChain's summarization: a model wrote it from the trimmed
            # history (tool results included). Untrusted content, not a turn
            # of the person: recorded after the person's turns (below).
            summaries.extend(_texts(message.content))
            continue
        for text in _texts(message.content):
            run.add_user_request(text)
    for text in summaries:
        run.add_untrusted(text, "history.summary")


def _texts(content: Any) -> list[str]:
    """The texts of a message's content: a string, or its text blocks."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            text = block.get("text")
            if isinstance(text, str):
                texts.append(text)
    return texts


def _restore_taint(input: Any, messages_key: str, guard: Guard) -> None:
    run = current_run()
    if run is None:
        return
    messages = _state_messages(input, messages_key)
    for message in messages:
        if not isinstance(message, ToolMessage):
            continue
        taint = message.response_metadata.get(TAINT_KEY)
        if not isinstance(taint, Mapping):
            continue
        for kind, mark in (
            ("private", run.mark_private),
            ("untrusted", run.mark_untrusted),
        ):
            sources = taint.get(kind)
            if isinstance(sources, list):
                for source in sources[:32]:
                    mark(str(source))
        if taint.get("untrusted"):
            # What the tool said, for argument provenance (I12): a run that
            # resumes the graph did not see the result come back, and a value
            # injected there would otherwise count as made up.
            name = message.name if isinstance(message.name, str) else ""
            record_tool_result(guard, name, message.content)


class _Refusal(BaseTool):
    """Stands in for a refused call (unknown tool, declined): audits, raises."""

    description: str = "declined"
    args_schema: Any = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    denial: Any
    guard: Any
    who: Any

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        self.guard.audit.deny(self.denial, principal=self.who)


def _guarded(guard: Guard, tool: Any, principal_from_config: bool) -> BaseTool:
    if isinstance(tool, GuardedLangChainTool):
        if tool._guard is not guard:
            raise PolicyError(f"tool {tool.name!r} is guarded by another guard")
        if tool.principal_from_config != principal_from_config:
            raise PolicyError(
                f"tool {tool.name!r} was guarded with principal_from_config="
                f"{tool.principal_from_config}; pass the same to guard_tool_node"
            )
        return tool
    base = tool if isinstance(tool, BaseTool) else as_langchain_tool(tool)
    if base.name not in guard.policy.tools:
        raise PolicyError(
            f"tool {base.name!r} is not declared in the policy (tools.{base.name}); "
            "declare it there or guard it with guard_tool(guard, tool, ...)"
        )
    return guard_tool(guard, base, principal_from_config=principal_from_config)


def guard_tool_node(
    guard: Guard,
    tools: Iterable[BaseTool | Callable[..., Any]] | ToolNode,
    *,
    confirm: Literal["interrupt"] | None = None,
    principal_from_config: bool = False,
    user_request: Literal["human_messages"] | None = None,
    **options: Any,
) -> GuardedToolNode:
    """A guarded ``ToolNode`` over ``tools`` (or over a ``ToolNode``'s tools).

    Args:
        guard: whose policy decides and whose audit log records.
        tools: guarded tools (``guard_tool``), or tools and functions the
            policy declares by name; or a ``ToolNode`` whose tools to take.
        confirm: ``"interrupt"``: a confirmation-needing tool in a tainted
            run asks the person through LangGraph's ``interrupt()``; None:
            the current ``agent_run``'s callback decides (refused without
            one). Stops a prompt-injected agent from exfiltrating data
            without the user's say (I12).
        principal_from_config: act for a ``Principal`` given in
            ``config["configurable"]["principal"]`` (only exactly a
            ``Principal``; a different ambient principal is refused).
        user_request: ``"human_messages"``: the texts of the state's
            ``HumanMessage`` objects are added to the current ``agent_run``
            as the user's request (I12 provenance): a consequential call
            whose arguments all come from what the person typed runs
            without asking, one whose argument came from untrusted content
            only is refused. Only for graphs whose ``HumanMessage`` objects
            hold what the person typed: an app that pastes retrieved
            documents or tool output into a ``HumanMessage`` would vouch
            for an injection. None (the default): the run's own
            ``user_request=`` alone.
        options: ``ToolNode`` options (``name``, ``handle_tool_errors``,
            ``messages_key``, ``wrap_tool_call``...).

    Raises:
        PolicyError: a tool neither guarded nor declared in the policy, a
            forbidden capability, or a bad option.
    """
    if isinstance(tools, ToolNode):
        tools = list(tools.tools_by_name.values())
    return GuardedToolNode(
        list(tools),
        guard=guard,
        confirm=confirm,
        principal_from_config=principal_from_config,
        user_request=user_request,
        **options,
    )
