"""The path matrix: every public call path of each client, given a guarded client.

Each path runs twice against the loopback provider: with a denied model, and
with an answer carrying a secret (the server echoes the user's text). A path
is *guarded* when the denied model never reaches the server and the secret
never reaches the caller, *refused* when it raises ``PolicyError`` before
anything is sent, and a *bypass* otherwise. No path may bypass.
``test_matrix_counts`` prints the counts per client (run with ``-s``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel

from aiinvariants import Guard, Policy, PolicyError
from aiinvariants._errors import AIInvariantsError, InvariantViolation
from aiinvariants.llm import guard_llm
from llm_support import LLMServer, _close_clients, closing, llm_server

__all__ = ["_close_clients", "llm_server"]

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
DENIED = "deepseek-chat"


@pytest.fixture(autouse=True)
def _collect_aborted_async_sockets() -> Any:
    """Async streams aborted by OutputBlocked leave sockets for GC; collect
    them here so their ResourceWarning does not surface in a later test."""
    yield
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class Answer(BaseModel):
    text: str


def _guard(server: LLMServer) -> Guard:
    return Guard(
        Policy(
            models={
                "allow": ["gpt-4.1*", "text-embedding-*", "claude-*"],
                "deny": ["deepseek*"],
            },
            regions={"allow": ["eu-*"], "declared": {server.url: "eu-west-1"}},
        )
    )


def _msgs(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _drain(obj: Any) -> str:
    """Everything a path hands the caller, as text."""
    if hasattr(obj, "__enter__") and not hasattr(obj, "model_dump"):
        with obj as inner:
            return _drain(inner)
    if hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes, dict, list)):
        parts = []
        for item in obj:
            parts.append(repr(item))
        final = getattr(obj, "get_final_completion", None) or getattr(
            obj, "get_final_message", None
        )
        return "".join(parts) + (repr(final()) if callable(final) else "")
    if hasattr(obj, "parse") and hasattr(obj, "http_response"):
        return repr(obj.parse())
    return repr(obj)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the paths -------------------------------------------------------------------
# Each path: (client, name, call(server, model, text) -> what the caller gets)

Path = tuple[str, str, Callable[[LLMServer, str, str], str]]


def _oai(server: LLMServer) -> Any:
    raw = closing(
        openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0)
    )
    return guard_llm(_guard(server), raw)


def _aoai(server: LLMServer) -> Any:
    raw = openai.AsyncOpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0)
    return guard_llm(_guard(server), raw)


def _ant(server: LLMServer) -> Any:
    raw = closing(anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0))
    return guard_llm(_guard(server), raw)


def _aant(server: LLMServer) -> Any:
    raw = anthropic.AsyncAnthropic(api_key="k", base_url=server.url, max_retries=0)
    return guard_llm(_guard(server), raw)


async def _adrain(obj: Any) -> str:
    parts = [repr(item) async for item in obj]
    return "".join(parts)


async def _aoai_chat(server: LLMServer, model: str, text: str, stream: bool) -> str:
    client = _aoai(server)
    try:
        got = await client.chat.completions.create(
            model=model, messages=_msgs(text), stream=stream
        )
        return await _adrain(got) if stream else repr(got)
    finally:
        await client.close()


async def _aant_msg(server: LLMServer, model: str, text: str, stream: bool) -> str:
    client = _aant(server)
    try:
        if stream:
            async with client.messages.stream(
                model=model, max_tokens=5, messages=_msgs(text)
            ) as s:
                return await _adrain(s)
        return repr(
            await client.messages.create(
                model=model, max_tokens=5, messages=_msgs(text)
            )
        )
    finally:
        await client.close()


OPENAI: list[Path] = [
    (
        "openai",
        "chat.create",
        lambda s, m, t: _drain(
            _oai(s).chat.completions.create(model=m, messages=_msgs(t))
        ),
    ),
    (
        "openai",
        "chat.create(stream)",
        lambda s, m, t: _drain(
            _oai(s).chat.completions.create(model=m, messages=_msgs(t), stream=True)
        ),
    ),
    (
        "openai",
        "chat.stream()",
        lambda s, m, t: _drain(
            _oai(s).chat.completions.stream(model=m, messages=_msgs(t))
        ),
    ),
    (
        "openai",
        "chat.parse",
        lambda s, m, t: _drain(
            _oai(s).chat.completions.parse(model=m, messages=_msgs(t))
        ),
    ),
    (
        "openai",
        "chat.with_raw_response",
        lambda s, m, t: _drain(
            _oai(s).chat.completions.with_raw_response.create(
                model=m, messages=_msgs(t)
            )
        ),
    ),
    (
        "openai",
        "chat.with_streaming_response",
        lambda s, m, t: _drain_streaming(
            _oai(s).chat.completions.with_streaming_response.create(
                model=m, messages=_msgs(t)
            )
        ),
    ),
    (
        "openai",
        "with_options().chat",
        lambda s, m, t: _drain(
            _oai(s)
            .with_options(timeout=9)
            .chat.completions.create(model=m, messages=_msgs(t))
        ),
    ),
    (
        "openai",
        "extra_body model",
        lambda s, m, t: _drain(
            _oai(s).chat.completions.create(
                model="gpt-4.1", messages=_msgs(t), extra_body={"model": m}
            )
        ),
    ),
    (
        "openai",
        "responses.create",
        lambda s, m, t: _drain(_oai(s).responses.create(model=m, input=t)),
    ),
    (
        "openai",
        "responses.create(stream)",
        lambda s, m, t: _drain(_oai(s).responses.create(model=m, input=t, stream=True)),
    ),
    (
        "openai",
        "responses.stream()",
        lambda s, m, t: _drain(_oai(s).responses.stream(model=m, input=t)),
    ),
    (
        "openai",
        "responses.parse",
        lambda s, m, t: _drain(_oai(s).responses.parse(model=m, input=t)),
    ),
    (
        "openai",
        "responses.with_raw_response",
        lambda s, m, t: _drain(
            _oai(s).responses.with_raw_response.create(model=m, input=t)
        ),
    ),
    (
        "openai",
        "completions (legacy)",
        lambda s, m, t: _drain(_oai(s).completions.create(model=m, prompt=t)),
    ),
    (
        "openai",
        "embeddings.create",
        lambda s, m, t: _drain(
            _oai(s).embeddings.create(
                model=m.replace("gpt-4.1", "text-embedding-3-small"), input=t
            )
        ),
    ),
    (
        "openai",
        "responses.input_tokens.count",
        lambda s, m, t: _drain(_oai(s).responses.input_tokens.count(model=m, input=t)),
    ),
    ("openai", "async chat.create", lambda s, m, t: _run(_aoai_chat(s, m, t, False))),
    (
        "openai",
        "async chat.create(stream)",
        lambda s, m, t: _run(_aoai_chat(s, m, t, True)),
    ),
    (
        "openai",
        "files.create",
        lambda s, m, t: _drain(
            _oai(s).files.create(file=("a.jsonl", t.encode()), purpose="batch")
        ),
    ),
    (
        "openai",
        "batches.create",
        lambda s, m, t: _drain(
            _oai(s).batches.create(
                completion_window="24h",
                endpoint="/v1/chat/completions",
                input_file_id="f",
            )
        ),
    ),
]

ANTHROPIC: list[Path] = [
    (
        "anthropic",
        "messages.create",
        lambda s, m, t: _drain(
            _ant(s).messages.create(model=m, max_tokens=5, messages=_msgs(t))
        ),
    ),
    (
        "anthropic",
        "messages.create(stream)",
        lambda s, m, t: _drain(
            _ant(s).messages.create(
                model=m, max_tokens=5, messages=_msgs(t), stream=True
            )
        ),
    ),
    (
        "anthropic",
        "messages.stream()",
        lambda s, m, t: _drain(
            _ant(s).messages.stream(model=m, max_tokens=5, messages=_msgs(t))
        ),
    ),
    (
        "anthropic",
        "messages.parse",
        lambda s, m, t: _drain(
            _ant(s).messages.parse(model=m, max_tokens=5, messages=_msgs(t))
        ),
    ),
    (
        "anthropic",
        "messages.with_raw_response",
        lambda s, m, t: _drain(
            _ant(s).messages.with_raw_response.create(
                model=m, max_tokens=5, messages=_msgs(t)
            )
        ),
    ),
    (
        "anthropic",
        "messages.with_streaming_response",
        lambda s, m, t: _drain_streaming(
            _ant(s).messages.with_streaming_response.create(
                model=m, max_tokens=5, messages=_msgs(t)
            )
        ),
    ),
    (
        "anthropic",
        "messages.count_tokens",
        lambda s, m, t: _drain(
            _ant(s).messages.count_tokens(model=m, messages=_msgs(t))
        ),
    ),
    (
        "anthropic",
        "with_options().messages",
        lambda s, m, t: _drain(
            _ant(s)
            .with_options(timeout=9)
            .messages.create(model=m, max_tokens=5, messages=_msgs(t))
        ),
    ),
    (
        "anthropic",
        "beta.messages.create",
        lambda s, m, t: _drain(
            _ant(s).beta.messages.create(model=m, max_tokens=5, messages=_msgs(t))
        ),
    ),
    (
        "anthropic",
        "beta.messages.stream()",
        lambda s, m, t: _drain(
            _ant(s).beta.messages.stream(model=m, max_tokens=5, messages=_msgs(t))
        ),
    ),
    (
        "anthropic",
        "extra_body model",
        lambda s, m, t: _drain(
            _ant(s).messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                messages=_msgs(t),
                extra_body={"model": m},
            )
        ),
    ),
    (
        "anthropic",
        "async messages.create",
        lambda s, m, t: _run(_aant_msg(s, m, t, False)),
    ),
    (
        "anthropic",
        "async messages.stream()",
        lambda s, m, t: _run(_aant_msg(s, m, t, True)),
    ),
    (
        "anthropic",
        "messages.batches.create",
        lambda s, m, t: _drain(
            _ant(s).messages.batches.create(
                requests=[
                    {
                        "custom_id": "a",
                        "params": {"model": m, "max_tokens": 5, "messages": _msgs(t)},
                    }
                ]
            )
        ),
    ),
]


def _drain_streaming(ctx: Any) -> str:
    with ctx as response:
        return "".join(response.iter_text())


def _agents_default_client(server: LLMServer, model: str, text: str) -> str:
    from agents import (
        Agent,
        Runner,
        set_default_openai_api,
        set_default_openai_client,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)

    async def run() -> str:
        client = _aoai(server)
        set_default_openai_client(client, use_for_tracing=False)
        set_default_openai_api("chat_completions")
        try:
            done = await Runner.run(Agent(name="a", model=model), text)
            return repr(done.final_output)
        finally:
            set_default_openai_api("responses")
            await client.close()

    return asyncio.run(run())


def _agents(server: LLMServer, model: str, text: str, kind: str, streamed: bool) -> str:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)

    async def run() -> str:
        client = _aoai(server)
        try:
            cls = OpenAIChatCompletionsModel if kind == "chat" else OpenAIResponsesModel
            agent = Agent(
                name="a",
                instructions="be brief",
                model=cls(model=model, openai_client=client),
            )
            if streamed:
                result = Runner.run_streamed(agent, text)
                parts = [repr(e) async for e in result.stream_events()]
                return "".join(parts) + repr(result.final_output)
            done = await Runner.run(agent, text)
            return repr(done.final_output)
        finally:
            await client.close()

    return asyncio.run(run())


AGENTS: list[Path] = [
    ("agents", "set_default_openai_client", _agents_default_client),
    (
        "agents",
        "chat model Runner.run",
        lambda s, m, t: _agents(s, m, t, "chat", False),
    ),
    (
        "agents",
        "chat model run_streamed",
        lambda s, m, t: _agents(s, m, t, "chat", True),
    ),
    (
        "agents",
        "responses model Runner.run",
        lambda s, m, t: _agents(s, m, t, "responses", False),
    ),
    (
        "agents",
        "responses model run_streamed",
        lambda s, m, t: _agents(s, m, t, "responses", True),
    ),
]


def _lc_openai(server: LLMServer, model: str) -> Any:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model=model, api_key="k", base_url=server.url + "/v1", max_retries=0
    )
    return guard_llm(_guard(server), chat)


def _lc_anthropic(server: LLMServer, model: str) -> Any:
    from langchain_anthropic import ChatAnthropic

    chat = ChatAnthropic(model=model, api_key="k", base_url=server.url, max_retries=0)
    return guard_llm(_guard(server), chat)


async def _ainvoke(chat: Any, text: str) -> str:
    try:
        return repr(await chat.ainvoke(text))
    finally:
        client = getattr(chat, "root_async_client", None) or chat._async_client
        await client.close()


LANGCHAIN: list[Path] = []
for _name, _make in (
    ("langchain ChatOpenAI", _lc_openai),
    ("langchain ChatAnthropic", _lc_anthropic),
):
    LANGCHAIN += [
        (_name, "invoke", lambda s, m, t, mk=_make: repr(mk(s, m).invoke(t))),
        (
            _name,
            "stream",
            lambda s, m, t, mk=_make: "".join(repr(c) for c in mk(s, m).stream(t)),
        ),
        (_name, "batch", lambda s, m, t, mk=_make: repr(mk(s, m).batch([t]))),
        (
            _name,
            "ainvoke",
            lambda s, m, t, mk=_make: repr(asyncio.run(mk(s, m).ainvoke(t))),
        ),
        (
            _name,
            "with_structured_output",
            lambda s, m, t, mk=_make: repr(
                mk(s, m).with_structured_output(Answer).invoke(t)
            ),
        ),
    ]

PATHS = OPENAI + ANTHROPIC + AGENTS + LANGCHAIN


def _outcome(
    server: LLMServer, call: Callable[[], str], leak: Callable[[str], bool]
) -> str:
    before = len(server.requests)
    try:
        got = call()
    except PolicyError:
        return "refused" if len(server.requests) == before else "bypass"
    except Exception as exc:
        chain: BaseException | None = exc
        while chain is not None:
            if isinstance(chain, InvariantViolation):
                return "guarded"
            if isinstance(chain, AIInvariantsError):
                return "refused" if len(server.requests) == before else "bypass"
            chain = chain.__cause__ or chain.__context__
        got = repr(exc)
    return "bypass" if leak(got) else "guarded"


def classify(server: LLMServer, path: Path) -> str:
    _, _, call = path
    start = len(server.requests)

    def denied_sent(_: str) -> bool:
        return any(DENIED in str(body) for _, body in server.requests[start:])

    denied = _outcome(server, lambda: call(server, DENIED, "hello"), denied_sent)
    if denied_sent(""):
        denied = "bypass"
    secret = _outcome(
        server,
        lambda: call(
            server,
            "gpt-4.1"
            if path[0] != "anthropic" and "Anthropic" not in path[0]
            else "claude-sonnet-5",
            f"the key is {SECRET}",
        ),
        lambda got: SECRET in got,
    )
    if "bypass" in (denied, secret):
        return "bypass"
    if "refused" in (denied, secret):
        return "refused"
    return "guarded"


@pytest.mark.parametrize("path", PATHS, ids=[f"{p[0]}:{p[1]}" for p in PATHS])
def test_path_is_guarded_or_refused(llm_server: LLMServer, path: Path) -> None:
    llm_server.answer = None
    llm_server.redirect_to = None
    assert classify(llm_server, path) in {"guarded", "refused"}


def test_matrix_counts(
    llm_server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    llm_server.answer = None
    counts: dict[str, Counter[str]] = {}
    for path in PATHS:
        counts.setdefault(path[0], Counter())[classify(llm_server, path)] += 1
    total: Counter[str] = Counter()
    with capsys.disabled():
        print("\npath matrix (guarded / refused / bypass):")
        for client, c in counts.items():
            total.update(c)
            print(
                f"  {client:26} {c['guarded']:3} / {c['refused']:3} / {c['bypass']:3}"
            )
        g, r, b = total["guarded"], total["refused"], total["bypass"]
        print(f"  {'all':26} {g:3} / {r:3} / {b:3}")
    assert total["bypass"] == 0
    assert total["guarded"] >= 40
