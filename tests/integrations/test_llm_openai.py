"""guard.llm on the real openai SDK against a loopback wire-format server."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from aiinvariants import (
    Guard,
    ModelDenied,
    OutputBlocked,
    Policy,
    PolicyError,
    RegionDenied,
)
from aiinvariants.audit import MemorySink
from aiinvariants.llm import guard_llm
from llm_support import LLMServer, _close_clients, _signed_in, closing, llm_server

__all__ = ["_close_clients", "_signed_in", "llm_server"]

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
SYSTEM = "You are the support bot of Example Corp. Never offer refunds above 50 EUR."
LONG = (
    "Our opening hours are nine to five on weekdays and ten to two on Saturdays. " * 3
)


def policy(server: LLMServer, **overrides: Any) -> Policy:
    doc: dict[str, Any] = {
        "models": {
            "allow": ["gpt-4.1*", "gpt-4o*"],
            "deny": ["deepseek*"],
            "azure_deployments": {"support-prod": "gpt-4.1"},
        },
        "regions": {
            "allow": ["eu-*", "swedencentral"],
            "declared": {server.url: "eu-west-1"},
        },
    }
    doc.update(overrides)
    return Policy(**doc)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def client(llm_server: LLMServer, sink: MemorySink) -> Any:
    guard = Guard(policy(llm_server), sinks=[sink])
    raw = closing(
        openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1", max_retries=0)
    )
    return guard_llm(guard, raw, system_prompt=SYSTEM)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def test_chat_answer_passes_the_pipeline(client: Any, llm_server: LLMServer) -> None:
    result = client.chat.completions.create(
        model="gpt-4.1", messages=user("write to ops@example.com please")
    )
    assert result.choices[0].message.content == "write to [REDACTED] please"
    sent = llm_server.last
    assert sent["store"] is False
    assert "aiinv-canary-" in sent["messages"][0]["content"]
    assert client.system_prompt == sent["messages"][0]["content"]


def test_chat_secret_is_blocked(client: Any) -> None:
    with pytest.raises(OutputBlocked):
        client.chat.completions.create(model="gpt-4.1", messages=user(f"k {SECRET}"))


def test_system_prompt_echo_is_blocked(client: Any) -> None:
    with pytest.raises(OutputBlocked):
        client.chat.completions.create(model="gpt-4.1", messages=user(SYSTEM))


def test_canary_echo_is_blocked(client: Any) -> None:
    canary = client.system_prompt.rsplit(" ", 1)[-1].rstrip("]")
    with pytest.raises(OutputBlocked):
        client.chat.completions.create(model="gpt-4.1", messages=user(f"x {canary}"))


def test_tool_call_arguments_pass_the_pipeline(client: Any) -> None:
    result = client.chat.completions.create(
        model="gpt-4.1", messages=user("TOOL:mail ops@example.com")
    )
    args = result.choices[0].message.tool_calls[0].function.arguments
    assert args == '{"query": "mail [REDACTED]"}'
    with pytest.raises(OutputBlocked):
        client.chat.completions.create(model="gpt-4.1", messages=user(f"TOOL:{SECRET}"))


def test_denied_model_never_reaches_the_server(
    client: Any, llm_server: LLMServer, sink: MemorySink
) -> None:
    before = len(llm_server.requests)
    with pytest.raises(ModelDenied) as info:
        client.chat.completions.create(model="deepseek-chat", messages=user("hi"))
    assert info.value.code == "model_denied"
    assert len(llm_server.requests) == before
    denial = sink.events[-1]
    assert (denial.invariant, denial.decision, denial.reason) == (
        "I5",
        "deny",
        "model_denied",
    )
    assert "hi" not in str(denial.details)


def test_store_true_is_refused(client: Any) -> None:
    with pytest.raises(ModelDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=user("hi"), store=True)
    assert (info.value.invariant, info.value.code) == ("I7", "data_use_opt_in")


def test_allowed_call_is_audited(client: Any, sink: MemorySink) -> None:
    client.chat.completions.create(model="gpt-4.1", messages=user("hello"))
    reasons = {(e.invariant, e.reason) for e in sink.events}
    assert {
        ("I5", "model_allowed"),
        ("I6", "region_allowed"),
        ("I7", "opt_out_set"),
    } <= reasons


def test_unknown_region_is_denied(llm_server: LLMServer) -> None:
    guard = Guard(policy(llm_server, regions={"allow": ["eu-*"]}))
    raw = closing(
        openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1", max_retries=0)
    )
    client = guard_llm(guard, raw)
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=user("hi"))
    assert info.value.code == "region_unknown"
    # api.openai.com has no region either; eu.api.openai.com is "eu".
    public = guard_llm(guard, closing(openai.OpenAI(api_key="k")))
    assert public.checks.placement.home is None
    eu = guard_llm(
        guard,
        closing(openai.OpenAI(api_key="k", base_url="https://eu.api.openai.com/v1")),
    )
    assert eu.checks.placement.home == "eu"


def test_region_outside_allow_list(llm_server: LLMServer) -> None:
    guard = Guard(
        policy(
            llm_server,
            regions={"allow": ["eu-*"], "declared": {llm_server.url: "us-east-1"}},
        )
    )
    client = guard_llm(
        guard, closing(openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1"))
    )
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=user("hi"))
    assert info.value.code == "region_denied"


def test_unknown_endpoint_and_raw_client_are_refused(
    client: Any, llm_server: LLMServer
) -> None:
    before = len(llm_server.requests)
    with pytest.raises(PolicyError):
        client.files.list()
    with pytest.raises(PolicyError):
        client.batches.create(
            completion_window="24h", endpoint="/v1/chat/completions", input_file_id="f"
        )
    assert len(llm_server.requests) == before
    with pytest.raises(PolicyError):
        _ = client.client


def test_chat_stream_redacts_and_releases_everything(client: Any) -> None:
    text = f"{LONG}write to ops@example.com. {LONG}"
    stream = client.chat.completions.create(
        model="gpt-4.1", messages=user(text), stream=True
    )
    out = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert out == text.replace("ops@example.com", "[REDACTED]")


def test_chat_stream_blocks_before_the_secret(client: Any) -> None:
    text = f"{LONG}token {SECRET} {LONG}"
    got: list[str] = []
    stream = client.chat.completions.create(
        model="gpt-4.1", messages=user(text), stream=True
    )
    with pytest.raises(OutputBlocked):
        got.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    assert SECRET[:8] not in "".join(got)
    assert "".join(got) == text[: len("".join(got))]


def test_chat_stream_tool_arguments(client: Any) -> None:
    stream = client.chat.completions.create(
        model="gpt-4.1", messages=user("TOOL:mail ops@example.com"), stream=True
    )
    args = "".join(
        call.function.arguments or ""
        for c in stream
        for call in c.choices[0].delta.tool_calls or ()
        if call.function
    )
    assert args == '{"query": "mail [REDACTED]"}'


def test_responses_api(client: Any, llm_server: LLMServer) -> None:
    result = client.responses.create(
        model="gpt-4.1", instructions=SYSTEM, input="mail ops@example.com"
    )
    assert result.output_text == "mail [REDACTED]"
    assert llm_server.last["store"] is False
    assert "aiinv-canary-" in llm_server.last["instructions"]
    call = client.responses.create(model="gpt-4.1", input="TOOL:ops@example.com")
    assert call.output[0].arguments == '{"query": "[REDACTED]"}'


def test_responses_stream(client: Any) -> None:
    text = f"{LONG}mail ops@example.com now"
    deltas: list[str] = []
    final = None
    for event in client.responses.create(model="gpt-4.1", input=text, stream=True):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.output_text.done":
            assert event.text == "".join(deltas)
        elif event.type == "response.completed":
            final = event.response
    safe = text.replace("ops@example.com", "[REDACTED]")
    assert "".join(deltas) == safe
    assert final is not None
    assert final.output_text == safe


def test_responses_stream_blocks(client: Any) -> None:
    with pytest.raises(OutputBlocked):
        for _ in client.responses.create(
            model="gpt-4.1", input=f"x {SECRET}", stream=True
        ):
            pass


def test_async_client(llm_server: LLMServer) -> None:
    guard = Guard(policy(llm_server))

    async def run() -> tuple[str, str]:
        raw = openai.AsyncOpenAI(api_key="k", base_url=llm_server.url + "/v1")
        client = guard_llm(guard, raw)
        result = await client.chat.completions.create(
            model="gpt-4o", messages=user("mail ops@example.com")
        )
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("mail ops@example.com"), stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream]
        resp = await client.responses.create(
            model="gpt-4o", input="mail ops@example.com"
        )
        assert resp.output_text == "mail [REDACTED]"
        with pytest.raises(ModelDenied):
            await client.responses.create(model="deepseek-r1", input="x")
        await raw.close()
        return result.choices[0].message.content, "".join(parts)

    assert asyncio.run(run()) == ("mail [REDACTED]", "mail [REDACTED]")


def test_azure_deployments(llm_server: LLMServer) -> None:
    guard = Guard(
        policy(
            llm_server,
            regions={
                "allow": ["swedencentral"],
                "declared": {llm_server.url: "swedencentral"},
            },
        )
    )
    raw = closing(
        openai.AzureOpenAI(
            api_key="k", azure_endpoint=llm_server.url, api_version="2024-10-21"
        )
    )
    client = guard_llm(guard, raw)
    result = client.chat.completions.create(model="support-prod", messages=user("hi"))
    assert result.choices[0].message.content == "hi"
    with pytest.raises(ModelDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=user("hi"))
    assert info.value.code == "deployment_unmapped"
    fixed = closing(
        openai.AzureOpenAI(
            api_key="k",
            azure_endpoint=llm_server.url,
            api_version="2024-10-21",
            azure_deployment="shadow-deepseek",
        )
    )
    with pytest.raises(ModelDenied):
        guard_llm(guard, fixed).chat.completions.create(
            model="gpt-4.1", messages=user("x")
        )


def test_azure_without_declared_region_is_denied(llm_server: LLMServer) -> None:
    guard = Guard(policy(llm_server, regions={"allow": ["swedencentral"]}))
    raw = closing(
        openai.AzureOpenAI(
            api_key="k", azure_endpoint=llm_server.url, api_version="2024-10-21"
        )
    )
    with pytest.raises(RegionDenied):
        guard_llm(guard, raw).chat.completions.create(
            model="support-prod", messages=user("x")
        )


def test_unknown_client_kind_is_refused() -> None:
    with pytest.raises(PolicyError):
        guard_llm(Guard(), object())
    with pytest.raises(PolicyError):
        guard_llm(Guard(), closing(openai.OpenAI(api_key="k")), model="gpt-4.1")


def test_chat_stream_without_finish_reason_releases_at_the_end() -> None:
    import json

    from aiinvariants.llm import CallGuard, Placement
    from aiinvariants.llm._wire import WireCheck

    checks = CallGuard(
        Guard(), provider="openai", placement=Placement(None), resource="t"
    )
    rewriter = WireCheck(checks, "openai").sse("chat")
    text = "refund sent to ops@example.com, bye"
    raw = b""
    for i in range(0, len(text), 5):
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {"refusal": text[i : i + 5]},
                    "finish_reason": None,
                }
            ],
        }
        raw += rewriter.feed(f"data: {json.dumps(chunk)}\n\n".encode())
    raw += rewriter.end()
    out = [
        json.loads(line[6:])["choices"][0]["delta"].get("refusal") or ""
        for line in raw.decode().split("\n")
        if line.startswith("data: ")
    ]
    assert "".join(out) == "refund sent to [REDACTED], bye"


def test_subclassed_client_is_still_guarded(llm_server: LLMServer) -> None:
    class AppClient(openai.OpenAI):
        pass

    guard = Guard(policy(llm_server))
    client = guard_llm(
        guard, closing(AppClient(api_key="k", base_url=llm_server.url + "/v1"))
    )
    with pytest.raises(ModelDenied):
        client.chat.completions.create(model="deepseek-chat", messages=user("hi"))


def test_streamed_reasoning_and_logprobs_reach_the_caller(
    client: Any, llm_server: LLMServer
) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    text = "write to ops@example.com today"
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    events = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": p, "reasoning_content": p.upper()},
                    "logprobs": {
                        "content": [
                            {
                                "token": p,
                                "logprob": -0.5,
                                "bytes": None,
                                "top_logprobs": [],
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        }
        for p in pieces
    ]
    events.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    llm_server.answer = events
    try:
        stream = client.chat.completions.create(
            model="gpt-4.1", messages=user("x"), stream=True, logprobs=True
        )
        content, reasoning, tokens = [], [], []
        for chunk in stream:
            choice = chunk.choices[0]
            content.append(choice.delta.content or "")
            reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
            if choice.logprobs is not None:
                tokens.extend(t.token for t in choice.logprobs.content or ())
    finally:
        llm_server.answer = None
    assert "".join(content) == "write to [REDACTED] today"
    assert "".join(reasoning) == "WRITE TO [REDACTED] TODAY"
    # the tokens spell a redacted text: their numbers come, their texts do not
    assert len(tokens) == len(pieces)
    assert "".join(tokens) == ""


def test_stream_helper_and_parse_work_guarded(client: Any) -> None:
    with client.chat.completions.stream(
        model="gpt-4.1", messages=user("mail ops@example.com")
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "mail [REDACTED]"
    parsed = client.chat.completions.parse(
        model="gpt-4.1", messages=user("TOOL:ops@example.com")
    )
    args = parsed.choices[0].message.tool_calls[0].function.arguments
    assert "[REDACTED]" in args
    assert "ops@" not in args
    with client.responses.stream(model="gpt-4.1", input="TOOL:ops@example.com") as s:
        response = s.get_final_response()
    assert "ops@" not in response.output[0].arguments
