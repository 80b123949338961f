"""Guarded clients for the official ``anthropic`` SDK (I5-I8).

``guard_anthropic(guard, client)`` (what ``guard.llm(client)`` calls for an
``anthropic`` client) returns a client whose ``messages.create`` checks the
model and the region before the call and passes text, thinking and tool-use
input through the guard's output pipeline, streamed (``stream=True``) or
not. ``Anthropic``, ``AsyncAnthropic``, ``AnthropicBedrock`` (region: the
client's ``aws_region``) and ``AnthropicVertex`` (region: the client's
``region``) are supported. Anthropic has no per-request data-use switch
(see :mod:`aiinvariants.llm.optout`). ``messages.stream()`` and every other
attribute raise ``PolicyError``: use ``messages.create(stream=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiinvariants.errors import MissingIntegrationError, PolicyError

try:
    import anthropic
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="anthropic", package="anthropic") from exc

from aiinvariants.filters import StreamGuard
from aiinvariants.llm.classifiers import Classifier
from aiinvariants.llm.guarded import CallGuard
from aiinvariants.llm.regions import Placement, declared_region, region_from_url
from aiinvariants.llm.streams import AsyncGuardedStream, GuardedStream

if TYPE_CHECKING:
    from aiinvariants.guard import Guard

__all__ = ["AsyncGuardedAnthropic", "GuardedAnthropic", "guard_anthropic"]

_SYNC = (anthropic.Anthropic, anthropic.AnthropicBedrock, anthropic.AnthropicVertex)
_ASYNC = (
    anthropic.AsyncAnthropic,
    anthropic.AsyncAnthropicBedrock,
    anthropic.AsyncAnthropicVertex,
)
#: content block type -> (its text field, its delta type, the delta's field)
_TEXT_FIELDS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
}


def _placement(client: Any, declared: Mapping[str, str]) -> Placement:
    base_url = str(client.base_url)
    region = declared_region(base_url, declared)
    if region is not None:
        return Placement(region, source="declared")
    if isinstance(
        client, (anthropic.AnthropicBedrock, anthropic.AsyncAnthropicBedrock)
    ):
        aws = getattr(client, "aws_region", None)
        return Placement(aws.lower() if aws else None, source="client")
    if isinstance(client, (anthropic.AnthropicVertex, anthropic.AsyncAnthropicVertex)):
        location = str(getattr(client, "region", "") or "").lower()
        if location == "global":
            return Placement("global", routes=("*",), source="client")
        return Placement(location or None, source="client")
    return region_from_url(base_url, declared)


def guard_anthropic(
    guard: Guard,
    client: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> GuardedAnthropic | AsyncGuardedAnthropic:
    """Guard an ``anthropic`` client (direct, Bedrock or Vertex; sync or async).

    Raises:
        PolicyError: ``client`` is of another kind.
    """
    if isinstance(client, _SYNC):
        cls: type[GuardedAnthropic] = GuardedAnthropic
    elif isinstance(client, _ASYNC):
        cls = AsyncGuardedAnthropic
    else:
        raise PolicyError(
            f"guard_anthropic cannot guard a {type(client).__name__}; pass "
            "Anthropic, AsyncAnthropic, AnthropicBedrock or AnthropicVertex"
        )
    checks = CallGuard(
        guard,
        provider="anthropic",
        placement=_placement(client, guard.policy.regions.declared),
        system_prompt=system_prompt,
        classifiers=classifiers,
        resource="anthropic.messages",
    )
    return cls(client, checks)


def _prepare(checks: CallGuard, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = checks.before(kwargs.get("model"), kwargs)
    system = params.get("system")
    if isinstance(system, str):
        params["system"] = checks.register_system(system)
    elif isinstance(system, list):
        params["system"] = [
            {**b, "text": checks.register_system(b["text"])}
            if isinstance(b, Mapping) and isinstance(b.get("text"), str)
            else b
            for b in system
        ]
    return params


def check_message(checks: CallGuard, message: Any) -> Any:
    """Pass a Message's text, thinking and tool inputs through the pipeline."""
    for block in message.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            block.text = checks.text(block.text)
        elif kind == "thinking":
            block.thinking = checks.text(block.thinking)
        elif kind in {"tool_use", "server_tool_use"}:
            block.input = checks.json_args(block.input)
    return message


class MessageStream:
    """Event filter for raw message stream events (``stream=True``)."""

    def __init__(self, checks: CallGuard) -> None:
        self._checks = checks
        self._guards: dict[int, StreamGuard] = {}
        self._last: dict[int, Any] = {}

    def process(self, event: Any) -> list[Any]:
        kind = getattr(event, "type", None)
        if kind == "content_block_start":
            block = event.content_block
            if isinstance(getattr(block, "text", None), str) and block.text:
                block.text = self._guard(event.index).feed(block.text)
            if getattr(block, "type", None) in {"tool_use", "server_tool_use"} and (
                block.input
            ):
                block.input = self._checks.json_args(block.input)
            return [event]
        if kind == "content_block_delta":
            field = _TEXT_FIELDS.get(getattr(event.delta, "type", ""))
            if field is not None:
                value = getattr(event.delta, field)
                setattr(event.delta, field, self._guard(event.index).feed(value))
                self._last[event.index] = event
            return [event]
        if kind == "content_block_stop":
            return [*self._release(event.index), event]
        if kind == "message_stop":
            return [*self.finish(), event]
        return [event]

    def _guard(self, index: int) -> StreamGuard:
        sg = self._guards.get(index)
        if sg is None:
            sg = self._guards[index] = self._checks.stream()
        return sg

    def _release(self, index: int) -> list[Any]:
        sg = self._guards.pop(index, None)
        if sg is None:
            return []
        rest = sg.close()
        last = self._last.pop(index, None)
        if not rest:
            return []
        if last is None:
            # Only a start block carried text: send the rest as a text delta.
            delta = anthropic.types.TextDelta(type="text_delta", text=rest)
            return [
                anthropic.types.RawContentBlockDeltaEvent(
                    type="content_block_delta", index=index, delta=delta
                )
            ]
        field = _TEXT_FIELDS[last.delta.type]
        delta = last.delta.model_copy(update={field: rest})
        return [last.model_copy(update={"delta": delta})]

    def finish(self) -> list[Any]:
        out: list[Any] = []
        for index in sorted(self._guards):
            out.extend(self._release(index))
        return out


class _Unguarded:
    def __getattr__(self, name: str) -> Any:
        raise PolicyError(
            f"{type(self).__name__}.{name} is not guarded by aiinvariants; only "
            "messages.create (with or without stream=True) is"
        )


class _Messages(_Unguarded):
    def __init__(self, client: Any, checks: CallGuard) -> None:
        self._client = client
        self._checks = checks

    def create(self, **kwargs: Any) -> Any:
        """``messages.create``, guarded (same arguments)."""
        params = _prepare(self._checks, kwargs)
        result = self._client.messages.create(**params)
        if params.get("stream"):
            return GuardedStream(result, MessageStream(self._checks))
        return check_message(self._checks, result)


class _AsyncMessages(_Messages):
    async def create(self, **kwargs: Any) -> Any:
        """``messages.create``, guarded (same arguments)."""
        params = _prepare(self._checks, kwargs)
        result = await self._client.messages.create(**params)
        if params.get("stream"):
            return AsyncGuardedStream(result, MessageStream(self._checks))
        return check_message(self._checks, result)


class GuardedAnthropic(_Unguarded):
    """A guarded sync ``anthropic`` client.

    Attributes:
        messages: ``messages.create`` guarded.
        system_prompt: the registered system prompt with its canary planted.
        checks: the :class:`~aiinvariants.llm.CallGuard` it runs.
    """

    _messages_cls: type[_Messages] = _Messages

    def __init__(self, client: Any, checks: CallGuard) -> None:
        self.client = client
        self.checks = checks
        self.system_prompt = checks.system_prompt
        self.messages = self._messages_cls(client, checks)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.client).__name__})"


class AsyncGuardedAnthropic(GuardedAnthropic):
    """A guarded async ``anthropic`` client."""

    _messages_cls = _AsyncMessages
