"""Agents SDK input and output guardrails backed by the guard (I5, I8, I9, I10).

Both run the guard's output pipeline (credentials, the agent's own
instructions, confidential tool outputs of the run, competitors, PII,
classifiers) and the model policy (I5: the agent's model name, decided by
:func:`aiinvariants.llm.decide_model`, the function the guarded clients use).
A blocking finding trips the wire; ``output_info`` carries the invariant, the
stable code and the rule ids, never a matched value. Redacting and flagging
findings do not trip (a guardrail cannot rewrite the text; the guarded
client and the guarded tools redact what they carry).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrail,
    OutputGuardrail,
    RunContextWrapper,
)
from agents.models import get_default_model
from pydantic import BaseModel
from pydantic_core import to_json

from aiinvariants._errors import InvariantViolation, ModelDenied, OutputBlocked
from aiinvariants._principal import current_principal
from aiinvariants.filters import ToolOutputLeakFilter
from aiinvariants.integrations._agents_history import mark_history
from aiinvariants.integrations._agents_pipelines import fresh_pipeline, shared_pipeline
from aiinvariants.llm import decide_model

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants.filters import OutputPipeline

__all__ = [
    "check_model",
    "is_policy_guardrail",
    "model_name",
    "policy_input_guardrail",
    "policy_output_guardrail",
    "remember_output",
    "texts_of",
]

_MAX_OUTPUTS_PER_RUN: Final = 256
_MAX_TEXTS: Final = 10_000
_MAX_NODES: Final = 200_000

# Confidential tool outputs of each run, kept on the run's ``Usage`` object,
# which the SDK shares between the run's context, every tool context and the
# runs of agents used as tools, and copies (deeply) into the state a run is
# resumed from after an approval: the outputs go wherever the run goes.
_OUTPUTS_ATTR: Final = "_aiinvariants_confidential_outputs"
_GUARD_ATTR: Final = "_aiinvariants_guard"  # the guard a guardrail decides with
_outputs_lock = threading.Lock()


def remember_output(ctx: Any, text: str) -> None:
    """Register a confidential tool output for the run ``ctx`` belongs to."""
    usage = getattr(ctx, "usage", None)
    if usage is None:
        return
    with _outputs_lock:
        kept = getattr(usage, _OUTPUTS_ATTR, None)
        if not isinstance(kept, list):
            kept = []
            setattr(usage, _OUTPUTS_ATTR, kept)
        if text in kept:
            return
        if len(kept) < _MAX_OUTPUTS_PER_RUN:
            kept.append(text)
        else:  # never dropped (a flood of small outputs would push one out):
            kept[-1] = f"{kept[-1]}\n{text}"  # joined to the last one


def _run_outputs(ctx: Any) -> list[str]:
    usage = getattr(ctx, "usage", None)
    with _outputs_lock:
        kept = getattr(usage, _OUTPUTS_ATTR, None)
        return list(kept) if isinstance(kept, list) else []


def model_name(agent: Any) -> str | None:
    """The model id an agent calls: its string, its model object's, or the default."""
    model = agent.model
    if model is None:
        return get_default_model()
    if isinstance(model, str):
        return model
    name = getattr(model, "model", None)
    return name if isinstance(name, str) else None


_NO_NAME: Final = object()


def _wire_model(agent: Any) -> object:
    """The model ``extra_body`` sends in place of the agent's, if it names one."""
    settings = getattr(agent, "model_settings", None)
    extra = getattr(settings, "extra_body", None)
    if isinstance(extra, Mapping) and "model" in extra:
        return extra["model"]
    return _NO_NAME


def check_model(guard: Guard, agent: Any) -> None:
    """Refuse (audited :class:`ModelDenied`) the models ``agent`` calls.

    The agent's model, and the one its ``model_settings.extra_body`` puts
    on the wire in its place (the request body is merged with it).
    """
    policy = guard.policy
    names: list[object] = [model_name(agent)]
    wire = _wire_model(agent)
    if wire is not _NO_NAME:
        names.append(wire)
    who = current_principal()
    try:
        for name in names:
            if not isinstance(name, str):
                raise ModelDenied(
                    f"agent {agent.name!r} uses a model object that names no model",
                    code="model_unknown",
                )
            target = policy.models.azure_deployments.get(name, name)
            decide_model(target, allow=policy.models.allow, deny=policy.models.deny)
    except InvariantViolation as denial:
        denial.subject = who.subject
        guard.audit.deny(
            denial, principal=who, resource=f"agents.agent.{agent.name}"[:200]
        )


def texts_of(value: Any, depth: int = 0, out: list[str] | None = None) -> list[str]:
    """Every string of an input or output, at any depth (bounded).

    ``depth`` is kept for callers of the old signature; see :func:`_walk_texts`.
    """
    found: list[str] = [] if out is None else out
    found += _walk_texts(value)[0]
    return found


def _walk_texts(value: Any) -> tuple[list[str], bool]:
    """The strings of ``value``, and whether every one of them was reached.

    Walked without recursion, so nesting is no limit; at most ``_MAX_NODES``
    values and ``_MAX_TEXTS`` strings are visited.
    """
    found: list[str] = []
    todo: list[Any] = [value]
    visits = 0
    while todo and len(found) < _MAX_TEXTS and visits < _MAX_NODES:
        item = todo.pop()
        visits += 1
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, BaseModel):
            # What a dump shows, and what the caller reads: fields left out
            # of the dump (``exclude=True``) and extra fields are attributes.
            todo += [item.__pydantic_extra__, vars(item), item.model_dump(mode="json")]
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            # Every field, including those its repr leaves out (``repr=False``).
            todo.append(
                {f.name: getattr(item, f.name, None) for f in dataclasses.fields(item)}
            )
        elif isinstance(item, Mapping):
            for k, v in reversed(list(item.items())):
                todo += [v, k]
        elif isinstance(item, list | tuple | set | frozenset):
            todo += reversed(list(item))
        elif item is not None and not isinstance(item, bool | int | float):
            found.append(str(item))
    return found, not todo


def _text_of(value: Any) -> str:
    """The text a guardrail decides: every string of ``value``, none dropped."""
    if isinstance(value, str):
        return value
    texts, complete = _walk_texts(value)
    if isinstance(value, BaseModel):
        texts.insert(0, value.model_dump_json())
    if not complete:
        # Too many strings or values to walk one by one: the rest would go
        # unchecked, so the whole value is decided as its JSON as well.
        texts.append(to_json(value, fallback=str).decode("utf-8", "replace"))
    return "\n".join(texts)


def _tripped(denial: InvariantViolation) -> GuardrailFunctionOutput:
    rule_ids = list(denial.rule_ids) if isinstance(denial, OutputBlocked) else []
    return GuardrailFunctionOutput(
        output_info={
            "invariant": denial.invariant,
            "code": denial.code,
            "rule_ids": rule_ids,
        },
        tripwire_triggered=True,
    )


_PASSED: Final[dict[str, Any]] = {"invariant": None, "code": None, "rule_ids": []}


async def _pipeline_for(
    guard: Guard, ctx: RunContextWrapper[Any], agent: Any, *, output: bool
) -> OutputPipeline:
    if not output:
        return shared_pipeline(guard)
    prompt = await agent.get_system_prompt(ctx)
    hidden = prompt if isinstance(prompt, str) and prompt else None
    outputs = _run_outputs(ctx)
    if not outputs:
        return shared_pipeline(guard, hidden)
    pipeline = fresh_pipeline(guard, hidden)  # this run's outputs: its own
    try:
        raw: ToolOutputLeakFilter = pipeline.get(ToolOutputLeakFilter)
    except LookupError:
        return pipeline
    for text in outputs:
        raw.register(text)
    return pipeline


async def _decide(
    guard: Guard, ctx: RunContextWrapper[Any], agent: Any, value: Any, *, output: bool
) -> GuardrailFunctionOutput:
    try:
        if not output:
            # Tool results of earlier turns in the input (a session's
            # history) taint this run as they tainted theirs (I12).
            mark_history(guard, agent, value)
        check_model(guard, agent)
        pipeline = await _pipeline_for(guard, ctx, agent, output=output)
        pipeline.enforce(_text_of(value))
    except InvariantViolation as denial:
        return _tripped(denial)
    return GuardrailFunctionOutput(output_info=dict(_PASSED), tripwire_triggered=False)


def policy_input_guardrail(guard: Guard, /) -> InputGuardrail[Any]:
    """An input guardrail: the model policy and the output pipeline on the input.

    It runs *before* the agent (``run_in_parallel=False``): a parallel
    guardrail lets the first model request, carrying the input, leave
    before the wire trips.
    """

    async def aiinvariants_input(
        ctx: RunContextWrapper[Any], agent: Agent[Any], value: Any
    ) -> GuardrailFunctionOutput:
        return await _decide(guard, ctx, agent, value, output=False)

    setattr(aiinvariants_input, _GUARD_ATTR, guard)
    return InputGuardrail(
        guardrail_function=aiinvariants_input,
        name="aiinvariants_input",
        run_in_parallel=False,
    )


def policy_output_guardrail(guard: Guard, /) -> OutputGuardrail[Any]:
    """An output guardrail: the model policy and the output pipeline on the answer.

    The agent's instructions (``get_system_prompt``) and the confidential
    tool outputs of the run are protected too.
    """

    async def aiinvariants_output(
        ctx: RunContextWrapper[Any], agent: Agent[Any], value: Any
    ) -> GuardrailFunctionOutput:
        return await _decide(guard, ctx, agent, value, output=True)

    setattr(aiinvariants_output, _GUARD_ATTR, guard)
    return OutputGuardrail(
        guardrail_function=aiinvariants_output, name="aiinvariants_output"
    )


def is_policy_guardrail(value: Any, guard: Guard | None = None) -> bool:
    """Whether ``value`` is a guardrail made by this module (for ``guard``)."""
    fn = getattr(value, "guardrail_function", None)
    if getattr(fn, "__name__", "") not in ("aiinvariants_input", "aiinvariants_output"):
        return False
    return guard is None or getattr(fn, _GUARD_ATTR, None) is guard
