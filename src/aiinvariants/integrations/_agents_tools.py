"""The guarded invoker of an OpenAI Agents SDK ``FunctionTool``.

The SDK runs a function tool in one place only: ``tool.on_invoke_tool(ctx,
arguments_json)`` (``Runner.run``, ``run_sync``, ``run_streamed``, agents
used as tools, ``tool_use_behavior``...). :class:`GuardedInvoker` replaces
that attribute, so every route passes the one tool decision
(:func:`aiinvariants.tools.call_checked_tool`) with the call's parsed
arguments, then the declared data level (``capped_tool``) and the output
pipeline on what the model will read. The SDK copies a ``FunctionTool`` by
re-binding its invoker (``__agents_bind_function_tool__``); the guarded
invoker re-binds the one it wraps and keeps its guard, so a copy made with
``dataclasses.replace`` or ``copy.copy`` stays guarded.

A denial is returned to the model as a tool result ``[<invariant>/<code>]
<reason>`` (no argument, no secret): the run goes on, the model learns the
stable code, and calling again is decided again, so a retry never turns a
denial into success. The SDK's ``failure_error_function`` is never asked to
format a denial.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from agents import ToolOutputFileContent, ToolOutputImage, ToolOutputText
from agents.tool_context import ToolContext
from pydantic import BaseModel, TypeAdapter

from aiinvariants._errors import InvariantViolation, ToolForbidden
from aiinvariants._principal import current_principal
from aiinvariants.filters import OutputPipeline
from aiinvariants.integrations._agents_pipelines import shared_pipeline
from aiinvariants.taint import KINDS, AgentRun, current_run
from aiinvariants.tools import ToolSpec, call_checked_tool, capped_tool

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

#: Stable codes this integration adds to ``tools.TOOL_CODES`` (all I3).
AGENT_TOOL_CODES: Final[Mapping[str, str]] = {
    "tool_arguments_invalid": "I3",
    "tool_renamed": "I3",
}

_SYNC_MARKER: Final = "__agents_sync_function_tool__"
_SDK_ERROR_MARKER: Final = "_function_tool_default_failure_handled"
_STRUCTURED: Final = (ToolOutputText, ToolOutputImage, ToolOutputFileContent)
_STRUCTURED_TYPES: Final = frozenset({"text", "image", "file"})
_MAX_DEPTH: Final = 32
_JSON: Final[TypeAdapter[Any]] = TypeAdapter(Any)


@dataclass(frozen=True)
class ToolBinding:
    """What a guarded tool is decided with: the guard, the spec, the code."""

    guard: Guard
    spec: ToolSpec
    fn: Any
    confidential_output: bool = False
    hide_denied: bool = True

    def callable_now(self) -> bool:
        """Whether the current user may call the tool (decided, not recorded)."""
        try:
            call_checked_tool(self.guard, self.spec, self.fn, record=False)
        except InvariantViolation:
            return False
        return True


def denial_text(denial: InvariantViolation) -> str:
    """The tool result the model reads for a denial: code and reason only."""
    return str(denial)


def parse_arguments(raw: object, name: str) -> dict[str, Any]:
    """The call's arguments as the SDK will read them, or a denial.

    The SDK reads an empty string as ``{}`` and refuses any JSON that is not
    an object; the same reading is used here so the decision sees exactly
    what the tool body will receive.
    """
    if raw == "" or raw is None:
        return {}
    if isinstance(raw, str | bytes | bytearray):
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    who = current_principal()
    raise ToolForbidden(
        f"tool {name!r} was called with arguments that are not a JSON object; "
        "the call was not run",
        code="tool_arguments_invalid",
        subject=who.subject,
        resource=f"tool.{name}",
    )


def _check_schema_keys(tool: Any, arguments: Mapping[str, Any], name: str) -> None:
    """Refuse arguments a strict schema does not declare.

    The SDK validates with a model that drops unknown keys, so the body would
    never see them, but the decision would: a strict schema
    (``additionalProperties: false``) makes the two agree by refusing them.
    """
    schema = getattr(tool, "params_json_schema", None)
    if (
        not isinstance(schema, Mapping)
        or schema.get("additionalProperties") is not False
    ):
        return
    known = schema.get("properties")
    known = known if isinstance(known, Mapping) else {}
    if any(key not in known for key in arguments):
        who = current_principal()
        raise ToolForbidden(
            f"tool {name!r} was called with arguments its strict schema does not "
            "declare; the call was not run",
            code="tool_arguments_invalid",
            subject=who.subject,
            resource=f"tool.{name}",
        )


class GuardedInvoker:
    """``FunctionTool.on_invoke_tool`` that decides every call first.

    Attributes:
        binding: the guard, spec and code this invoker decides with.
    """

    def __init__(
        self,
        binding: ToolBinding,
        inner: Callable[[Any, str], Awaitable[Any]],
        tool: Any,
    ) -> None:
        self.binding = binding
        self._inner = inner
        self._tool = tool
        if getattr(inner, _SYNC_MARKER, False):
            setattr(self, _SYNC_MARKER, True)

    def __repr__(self) -> str:
        return f"GuardedInvoker(tool={self.binding.spec.name!r})"

    @property
    def inner(self) -> Callable[[Any, str], Awaitable[Any]]:
        """The invoker this one wraps (the SDK's, or another guard's)."""
        return self._inner

    def __agents_bind_function_tool__(self, function_tool: Any) -> GuardedInvoker:
        """Re-bind to a copy of the tool (the SDK calls this in ``__post_init__``)."""
        if function_tool is self._tool:
            return self
        inner = self._inner
        bind = getattr(inner, "__agents_bind_function_tool__", None)
        if callable(bind):
            inner = bind(function_tool)
        return GuardedInvoker(self.binding, inner, function_tool)

    def prepare_arguments(self, input: str, tool_name: str) -> Any:
        """Delegate the SDK's approval-time argument preparation."""
        prepare = getattr(self._inner, "prepare_arguments", None)
        return prepare(input, tool_name) if callable(prepare) else None

    def _decide(self, ctx: Any, input: object) -> None:
        binding = self.binding
        name = binding.spec.name
        try:
            arguments = parse_arguments(input, name)
            _check_schema_keys(self._tool, arguments, name)
        except ToolForbidden as denial:
            binding.guard.audit.deny(denial, principal=current_principal())
        # The name of the tool this invoker is bound to, and the name the SDK
        # dispatched the call by (an invoker assigned to another tool).
        shown = getattr(self._tool, "name", name)
        called = getattr(ctx, "tool_name", None)
        if shown == name and isinstance(called, str) and called != name:
            shown = called
        if shown != name:
            # The same code under another name would be decided by the
            # other name's declaration; refuse rather than guess which.
            who = current_principal()
            binding.guard.audit.deny(
                ToolForbidden(
                    f"tool {shown!r} runs the code guarded as {name!r}; guard "
                    "it under its own name",
                    code="tool_renamed",
                    subject=who.subject,
                    resource=f"tool.{shown}",
                ),
                principal=who,
            )
        run = current_run()
        _restore_taint(ctx, run)
        try:
            call_checked_tool(
                binding.guard, binding.spec, binding.fn, arguments=arguments
            )
        finally:
            _keep_taint(ctx, run)

    async def __call__(self, ctx: Any, input: str) -> Any:
        """Decide, run the wrapped invoker, screen its result."""
        try:
            self._decide(ctx, input)
        except InvariantViolation as denial:
            return _as_error(ctx, denial_text(denial))
        result = await self._inner(ctx, input)
        try:
            return screen_result(self.binding, result, ctx, self._tool)
        except InvariantViolation as denial:
            if denial.resource is None:
                denial.resource = f"tool.{self.binding.spec.name}"
            return _as_error(ctx, denial_text(denial))


def _as_error(ctx: Any, text: str) -> str:
    """Mark a denial as an error result, as the SDK marks its own.

    The SDK then sends the text as it is, not through the tool's output type
    or schema (which a denial does not match: the run would stop on a
    ``UserError`` instead of the model reading the denial).
    """
    if isinstance(ctx, ToolContext):
        setattr(ctx, _SDK_ERROR_MARKER, True)
    return text


# The run's taint, kept on the SDK run's ``Usage`` object as well: the SDK
# copies it into the state a run is resumed from (after an approval), and
# the resumed leg, served in a new ``agent_run``, starts with it again.
_TAINT_ATTR: Final = "_aiinvariants_taint"


def _restore_taint(ctx: Any, run: AgentRun | None) -> None:
    kept = getattr(getattr(ctx, "usage", None), _TAINT_ATTR, None)
    if run is None or not isinstance(kept, dict):
        return
    for kind in KINDS:
        for source in kept.get(kind, ()):
            run.mark(kind, source)


def _keep_taint(ctx: Any, run: AgentRun | None) -> None:
    usage = getattr(ctx, "usage", None)
    if run is None or usage is None:
        return
    with contextlib.suppress(AttributeError, TypeError):  # a usage with slots
        setattr(usage, _TAINT_ATTR, {kind: list(run.sources(kind)) for kind in KINDS})


def _identity(value: Any) -> Any:
    return value


def screen_result(
    binding: ToolBinding, result: Any, ctx: Any = None, tool: Any = None
) -> Any:
    """The data-level ceiling, then the output pipeline on what the model reads.

    Raises:
        AccessDenied: ``mislabelled_source`` (audited).
        OutputBlocked: a blocking finding (audited by the pipeline).
    """
    guard = binding.guard
    capped_tool(guard, binding.spec, _identity)(result)
    if result is None or isinstance(result, bool | int | float):
        return result
    pipeline = shared_pipeline(guard)
    text = result if isinstance(result, str) else str(result)
    if _is_structured(result):
        safe = _walk(pipeline, result, 0)
        # The SDK sends str() of what it cannot read as structured (a list
        # with one other item, a dict its models refuse), which shows each
        # item's repr: that text is decided too.
        shown = str(safe)
        checked = pipeline.enforce(shown)
        if checked != shown:
            safe = checked
    else:
        # Decide on the text the SDK sends: str(result), or the JSON it
        # dumps for a typed or programmatic call. A clean result keeps its
        # type; a redacted one is sent as the safe text.
        text = wire_text(tool, ctx, result)
        checked = pipeline.enforce(text)
        safe = result if checked == text else checked
    if ctx is not None and _confidential(binding):
        from aiinvariants.integrations._agents_guardrails import remember_output

        remember_output(ctx, text)  # what the model read
    return safe


def _confidential(binding: ToolBinding) -> bool:
    """Declared confidential here, or by the policy in force (reloads follow)."""
    declared = binding.guard.policy.tools.get(binding.spec.name)
    return binding.confidential_output or bool(
        declared is not None and declared.confidential_output
    )


def _programmatic(ctx: Any) -> bool:
    """Whether the call was made by a hosted program (its result goes as JSON)."""
    caller = getattr(getattr(ctx, "tool_call", None), "caller", None)
    if isinstance(caller, Mapping):
        return caller.get("type") == "program"
    return getattr(caller, "type", None) == "program"


def wire_text(tool: Any, ctx: Any, result: Any) -> str:
    """The text the SDK sends the model for a plain (not structured) result.

    ``str(result)``, except for a tool with an output type or schema, or a
    call made by a hosted program: the SDK then sends the result's JSON,
    which holds what ``str`` may hide (``Field(repr=False)``, serializers,
    aliases) and decodes what a JSON string escapes.
    """
    plain = result if isinstance(result, str) else str(result)
    adapter = getattr(tool, "_output_type_adapter", None)
    typed = adapter is not None or getattr(tool, "output_json_schema", None)
    if not typed and (isinstance(result, str) or not _programmatic(ctx)):
        return plain
    try:
        if adapter is not None:
            value = (
                adapter.validate_json(result)
                if isinstance(result, str)
                else adapter.validate_python(result)
            )
            dumped = adapter.dump_python(value, mode="json", by_alias=True)
        elif isinstance(result, str):
            dumped = json.loads(result)
        else:
            dumped = _JSON.dump_python(result, mode="json")
        return json.dumps(dumped, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError):
        return plain  # the SDK refuses what it cannot dump: nothing is sent


def _is_structured(value: Any) -> bool:
    if isinstance(value, _STRUCTURED):
        return True
    if isinstance(value, Mapping):
        return value.get("type") in _STRUCTURED_TYPES
    if isinstance(value, list | tuple):
        return any(_is_structured(v) for v in value)
    return False


def _walk(pipeline: OutputPipeline, value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return pipeline.enforce(value)
    if depth > _MAX_DEPTH:
        text = str(value)  # too deep to rebuild: decide on its whole text
        safe = pipeline.enforce(text)
        return value if safe == text else safe
    if isinstance(value, BaseModel):
        update = {
            key: _walk(pipeline, getattr(value, key), depth + 1)
            for key in type(value).model_fields
        }
        return value.model_copy(update=update)
    if isinstance(value, Mapping):
        return {
            _walk(pipeline, k, depth + 1): _walk(pipeline, v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_walk(pipeline, v, depth + 1) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    safe = pipeline.enforce(text)
    return value if safe == text else safe
