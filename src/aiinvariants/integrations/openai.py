"""Guarded clients for the official ``openai`` SDK (I5-I8).

``guard_openai(guard, client)`` (what ``guard.llm(client)`` calls for an
``openai`` client) returns a client whose ``chat.completions.create`` and
``responses.create`` check the model, the region and ``store=False`` before
the call, and pass answers, streamed deltas and tool-call arguments through
the guard's output pipeline. Sync and async clients, OpenAI and Azure
OpenAI are supported; for Azure the ``model`` (or the client's
``azure_deployment``) is a deployment name that ``models.azure_deployments``
must map to a model. Any other attribute of the guarded client raises
``PolicyError``: an unguarded path is never reached by accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiinvariants.errors import MissingIntegrationError, PolicyError

try:
    import openai
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import (
        Choice as ChunkChoice,
    )
    from openai.types.chat.chat_completion_chunk import (
        ChoiceDelta,
        ChoiceDeltaToolCall,
        ChoiceDeltaToolCallFunction,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="openai", package="openai") from exc

from aiinvariants.filters import StreamGuard
from aiinvariants.llm.classifiers import Classifier
from aiinvariants.llm.guarded import CallGuard
from aiinvariants.llm.regions import region_from_url
from aiinvariants.llm.streams import AsyncGuardedStream, GuardedStream

if TYPE_CHECKING:
    from aiinvariants.guard import Guard

__all__ = [
    "AsyncGuardedOpenAI",
    "GuardedOpenAI",
    "guard_openai",
]

_SYSTEM_ROLES = frozenset({"system", "developer"})


def guard_openai(
    guard: Guard,
    client: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> GuardedOpenAI | AsyncGuardedOpenAI:
    """Guard an ``openai.OpenAI``/``AsyncOpenAI``/``AzureOpenAI``/``AsyncAzureOpenAI``.

    Raises:
        PolicyError: ``client`` is not one of those.
    """
    azure = isinstance(client, (openai.AzureOpenAI, openai.AsyncAzureOpenAI))
    if isinstance(client, openai.OpenAI):
        is_async = False
    elif isinstance(client, openai.AsyncOpenAI):
        is_async = True
    else:
        raise PolicyError(
            f"guard_openai needs an openai client, got {type(client).__name__}"
        )
    policy = guard.policy
    base_url = str(client.base_url)
    placement = region_from_url(base_url, policy.regions.declared)
    checks = CallGuard(
        guard,
        provider="openai",
        placement=placement,
        system_prompt=system_prompt,
        classifiers=classifiers,
        deployments=dict(policy.models.azure_deployments) if azure else None,
        resource="openai.azure" if azure else "openai",
    )
    fixed = _url_deployment(base_url) if azure else None
    cls = AsyncGuardedOpenAI if is_async else GuardedOpenAI
    return cls(client, checks, deployment=fixed)


def _url_deployment(base_url: str) -> str | None:
    parts = [p for p in urlsplit(base_url).path.split("/") if p]
    if "deployments" in parts:
        at = parts.index("deployments")
        if at + 1 < len(parts):
            return parts[at + 1]
    return None


# -- request preparation -----------------------------------------------------


def _protect_content(checks: CallGuard, content: Any) -> Any:
    if isinstance(content, str):
        return checks.register_system(content)
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                part = {**part, "text": checks.register_system(part["text"])}
            out.append(part)
        return out
    return content


def _prepare_chat(
    checks: CallGuard, kwargs: dict[str, Any], deployment: str | None
) -> dict[str, Any]:
    params = checks.before(deployment or kwargs.get("model"), kwargs)
    messages = params.get("messages")
    if isinstance(messages, list):
        params["messages"] = [
            {**m, "content": _protect_content(checks, m.get("content"))}
            if isinstance(m, Mapping) and m.get("role") in _SYSTEM_ROLES
            else m
            for m in messages
        ]
    return params


def _prepare_responses(
    checks: CallGuard, kwargs: dict[str, Any], deployment: str | None
) -> dict[str, Any]:
    params = checks.before(deployment or kwargs.get("model"), kwargs)
    if isinstance(params.get("instructions"), str):
        params["instructions"] = checks.register_system(params["instructions"])
    items = params.get("input")
    if isinstance(items, list):
        params["input"] = [
            {**m, "content": _protect_content(checks, m.get("content"))}
            if isinstance(m, Mapping) and m.get("role") in _SYSTEM_ROLES
            else m
            for m in items
        ]
    return params


# -- answers -------------------------------------------------------------------


def check_chat_completion(checks: CallGuard, result: Any) -> Any:
    """Pass a ChatCompletion's texts and tool-call arguments through the pipeline."""
    for choice in result.choices:
        msg = choice.message
        if isinstance(msg.content, str):
            msg.content = checks.text(msg.content)
        if isinstance(getattr(msg, "refusal", None), str):
            msg.refusal = checks.text(msg.refusal)
        for call in msg.tool_calls or ():
            function = getattr(call, "function", None)
            if function is not None and isinstance(function.arguments, str):
                function.arguments = checks.text(function.arguments)
    return result


def check_response(
    checks: CallGuard, result: Any, done: Mapping[tuple[Any, ...], str] | None = None
) -> Any:
    """Pass a Response's output texts, summaries and arguments through the pipeline.

    ``done`` holds texts already released by a stream guard, keyed as
    :class:`ResponsesStream` keys them; those are used as they are.
    """
    done = done or {}
    for item in result.output or ():
        kind = getattr(item, "type", None)
        item_id = getattr(item, "id", None)
        if kind == "message":
            for j, part in enumerate(item.content or ()):
                for field, prefix in (
                    ("text", "response.output_text"),
                    ("refusal", "response.refusal"),
                ):
                    value = getattr(part, field, None)
                    if isinstance(value, str):
                        key: tuple[Any, ...] = (prefix, item_id, j)
                        setattr(part, field, done.get(key, None) or checks.text(value))
        elif kind == "function_call" and isinstance(item.arguments, str):
            key = ("response.function_call_arguments", item_id, None)
            item.arguments = done.get(key) or checks.text(item.arguments)
        elif kind == "reasoning":
            for j, summary in enumerate(getattr(item, "summary", None) or ()):
                key = ("response.reasoning_summary_text", item_id, j)
                summary.text = done.get(key) or checks.text(summary.text)
    return result


# -- streams -------------------------------------------------------------------


class ChatStream:
    """Event filter for chat-completion chunks: content and tool arguments."""

    def __init__(self, checks: CallGuard) -> None:
        self._checks = checks
        self._text: dict[int, StreamGuard] = {}
        self._tools: dict[tuple[int, int], StreamGuard] = {}
        self._refusals: dict[int, StreamGuard] = {}
        self._last: Any = None

    def process(self, chunk: Any) -> list[Any]:
        self._last = chunk
        for choice in chunk.choices:
            delta = choice.delta
            if isinstance(delta.content, str) and delta.content:
                sg = self._text.setdefault(choice.index, self._checks.stream())
                delta.content = sg.feed(delta.content)
            refusal = getattr(delta, "refusal", None)
            if isinstance(refusal, str) and refusal:
                sg = self._refusals.setdefault(choice.index, self._checks.stream())
                delta.refusal = sg.feed(refusal)
            for call in delta.tool_calls or ():
                fn = call.function
                if fn is not None and isinstance(fn.arguments, str) and fn.arguments:
                    key = (choice.index, call.index)
                    sg = self._tools.setdefault(key, self._checks.stream())
                    fn.arguments = sg.feed(fn.arguments)
            if choice.finish_reason is not None:
                self._close_choice(choice.index, delta)
        return [chunk]

    def _close_choice(self, index: int, delta: Any) -> bool:
        released = False
        sg = self._text.pop(index, None)
        if sg is not None:
            rest = sg.close()
            if rest:
                delta.content = (delta.content or "") + rest
                released = True
        sg = self._refusals.pop(index, None)
        if sg is not None:
            rest = sg.close()
            if rest:
                delta.refusal = (delta.refusal or "") + rest
                released = True
        for key in sorted(k for k in self._tools if k[0] == index):
            rest = self._tools.pop(key).close()
            if rest:
                calls = list(delta.tool_calls or ())
                calls.append(
                    ChoiceDeltaToolCall(
                        index=key[1],
                        function=ChoiceDeltaToolCallFunction(arguments=rest),
                    )
                )
                delta.tool_calls = calls
                released = True
        return released

    def finish(self) -> list[Any]:
        # The stream ended without a finish_reason: release what is safe.
        indexes = sorted({*self._text, *self._refusals, *(k[0] for k in self._tools)})
        if not indexes or self._last is None:
            return []
        choices = []
        for index in indexes:
            delta = ChoiceDelta()
            if self._close_choice(index, delta):
                choices.append(ChunkChoice(index=index, delta=delta))
        if not choices:
            return []
        tail: ChatCompletionChunk = self._last.model_copy(update={"choices": choices})
        return [tail]


_DONE_FIELDS = ("text", "arguments", "refusal", "input")


class ResponsesStream:
    """Event filter for Responses API stream events.

    Every ``*.delta`` event with a text ``delta`` passes a stream guard keyed
    by (event family, item, content/summary index); the matching ``*.done``
    event gets the released text (preceded by a delta carrying what the
    guard released at close), and items and responses in later events get
    the released texts too.
    """

    def __init__(self, checks: CallGuard) -> None:
        self._checks = checks
        self._guards: dict[tuple[Any, ...], StreamGuard] = {}
        self._released: dict[tuple[Any, ...], str] = {}
        self._last_delta: dict[tuple[Any, ...], Any] = {}

    @staticmethod
    def _key(event: Any, prefix: str) -> tuple[Any, ...]:
        index = getattr(event, "content_index", None)
        if index is None:
            index = getattr(event, "summary_index", None)
        return (prefix, getattr(event, "item_id", None), index)

    def process(self, event: Any) -> list[Any]:
        kind = getattr(event, "type", "")
        prefix, _, tail = kind.rpartition(".")
        if tail == "delta" and isinstance(getattr(event, "delta", None), str):
            key = self._key(event, prefix)
            sg = self._guards.get(key)
            if sg is None:
                sg = self._guards[key] = self._checks.stream()
                self._released[key] = ""
            event.delta = sg.feed(event.delta)
            self._released[key] += event.delta
            self._last_delta[key] = event
            return [event]
        out: list[Any] = []
        if tail == "done":
            key = self._key(event, prefix)
            sg = self._guards.pop(key, None)
            if sg is not None:
                rest = sg.close()
                self._released[key] += rest
                if rest:
                    out.append(self._last_delta[key].model_copy(update={"delta": rest}))
            for field in _DONE_FIELDS:
                value = getattr(event, field, None)
                if isinstance(value, str):
                    safe = self._released.get(key)
                    setattr(
                        event,
                        field,
                        safe if safe is not None else self._checks.text(value),
                    )
        part = getattr(event, "part", None)
        if part is not None and isinstance(getattr(part, "text", None), str):
            key = (
                "response.output_text",
                getattr(event, "item_id", None),
                getattr(event, "content_index", None),
            )
            part.text = self._released.get(key) or self._checks.text(part.text)
        item = getattr(event, "item", None)
        if item is not None and hasattr(item, "type"):
            holder = type("_Holder", (), {"output": [item]})()
            check_response(self._checks, holder, self._released)
        response = getattr(event, "response", None)
        if response is not None and getattr(response, "output", None):
            check_response(self._checks, response, self._released)
        out.append(event)
        return out

    def finish(self) -> list[Any]:
        out = []
        for key, sg in list(self._guards.items()):
            rest = sg.close()
            if rest:
                out.append(self._last_delta[key].model_copy(update={"delta": rest}))
        self._guards.clear()
        return out


# -- the guarded clients ---------------------------------------------------------


class _Unguarded:
    def __getattr__(self, name: str) -> Any:
        raise PolicyError(
            f"{type(self).__name__}.{name} is not guarded by aiinvariants; only "
            "chat.completions.create and responses.create are"
        )


class _Completions(_Unguarded):
    def __init__(self, client: Any, checks: CallGuard, deployment: str | None) -> None:
        self._client = client
        self._checks = checks
        self._deployment = deployment

    def create(self, **kwargs: Any) -> Any:
        """``chat.completions.create``, guarded (same arguments)."""
        params = _prepare_chat(self._checks, kwargs, self._deployment)
        result = self._client.chat.completions.create(**params)
        if params.get("stream"):
            return GuardedStream(result, ChatStream(self._checks))
        return check_chat_completion(self._checks, result)


class _AsyncCompletions(_Completions):
    async def create(self, **kwargs: Any) -> Any:
        """``chat.completions.create``, guarded (same arguments)."""
        params = _prepare_chat(self._checks, kwargs, self._deployment)
        result = await self._client.chat.completions.create(**params)
        if params.get("stream"):
            return AsyncGuardedStream(result, ChatStream(self._checks))
        return check_chat_completion(self._checks, result)


class _Responses(_Completions):
    def create(self, **kwargs: Any) -> Any:
        """``responses.create``, guarded (same arguments)."""
        params = _prepare_responses(self._checks, kwargs, self._deployment)
        result = self._client.responses.create(**params)
        if params.get("stream"):
            return GuardedStream(result, ResponsesStream(self._checks))
        return check_response(self._checks, result)


class _AsyncResponses(_Completions):
    async def create(self, **kwargs: Any) -> Any:
        """``responses.create``, guarded (same arguments)."""
        params = _prepare_responses(self._checks, kwargs, self._deployment)
        result = await self._client.responses.create(**params)
        if params.get("stream"):
            return AsyncGuardedStream(result, ResponsesStream(self._checks))
        return check_response(self._checks, result)


class _Chat(_Unguarded):
    def __init__(self, completions: _Completions) -> None:
        self.completions = completions


class GuardedOpenAI(_Unguarded):
    """A guarded ``openai.OpenAI`` (or ``AzureOpenAI``).

    Attributes:
        chat: ``chat.completions.create`` guarded.
        responses: ``responses.create`` guarded.
        system_prompt: the registered system prompt with its canary planted.
        checks: the :class:`~aiinvariants.llm.CallGuard` it runs.
    """

    _completions_cls: type[_Completions] = _Completions
    _responses_cls: type[_Completions] = _Responses

    def __init__(
        self, client: Any, checks: CallGuard, *, deployment: str | None
    ) -> None:
        self.client = client
        self.checks = checks
        self.system_prompt = checks.system_prompt
        self.chat = _Chat(self._completions_cls(client, checks, deployment))
        self.responses = self._responses_cls(client, checks, deployment)

    def __repr__(self) -> str:
        name = type(self.client).__name__
        return f"{type(self).__name__}({name}, region={self.checks.placement.home!r})"


class AsyncGuardedOpenAI(GuardedOpenAI):
    """A guarded ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``)."""

    _completions_cls = _AsyncCompletions
    _responses_cls = _AsyncResponses
