"""Attacks on the LLM guard that change the request after the arguments are read,
or hide text in the answer where a field-by-field filter would not look.

Each test runs the real SDK against the loopback provider and asserts on what
the server received (a denied request never arrives) and on what the caller
got (a secret never reaches it).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import (
    Guard,
    InsecureUsageWarning,
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
MSGS = [{"role": "user", "content": "hello"}]


def _policy(server: LLMServer, **kw: Any) -> Policy:
    doc: dict[str, Any] = {
        "models": {"allow": ["gpt-4.1*", "claude-*"], "deny": ["deepseek*"]},
        "regions": {"allow": ["eu-*"], "declared": {server.url: "eu-west-1"}},
        "data_use": {"require_opt_out": True},
    }
    doc.update(kw)
    return Policy(**doc)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def oai(llm_server: LLMServer, sink: MemorySink) -> Any:
    llm_server.answer = None
    llm_server.redirect_to = None
    raw = closing(
        openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1", max_retries=2)
    )
    return guard_llm(Guard(_policy(llm_server), sinks=[sink]), raw)


@pytest.fixture
def ant(llm_server: LLMServer) -> Any:
    llm_server.answer = None
    llm_server.redirect_to = None
    raw = closing(anthropic.Anthropic(api_key="k", base_url=llm_server.url))
    return guard_llm(Guard(_policy(llm_server)), raw)


def _denied_nothing_sent(server: LLMServer, call: Any, error: type[Exception]) -> Any:
    before = len(server.requests)
    with pytest.raises(error) as info:
        call()
    assert len(server.requests) == before, "the denied request reached the server"
    return info.value


# -- the request as sent ------------------------------------------------------------


def test_extra_body_model_override_is_denied(oai: Any, llm_server: LLMServer) -> None:
    err = _denied_nothing_sent(
        llm_server,
        lambda: oai.chat.completions.create(
            model="gpt-4.1", messages=MSGS, extra_body={"model": "deepseek-chat"}
        ),
        ModelDenied,
    )
    assert err.code == "model_denied"


def test_extra_body_store_override_is_denied(oai: Any, llm_server: LLMServer) -> None:
    for call in (
        lambda: oai.chat.completions.create(
            model="gpt-4.1", messages=MSGS, extra_body={"store": True}
        ),
        lambda: oai.responses.create(
            model="gpt-4.1", input="hi", extra_body={"store": True}
        ),
    ):
        err = _denied_nothing_sent(llm_server, call, ModelDenied)
        assert (err.invariant, err.code) == ("I7", "data_use_opt_in")


def test_anthropic_extra_body_model_is_denied(ant: Any, llm_server: LLMServer) -> None:
    for call in (
        lambda: ant.messages.create(
            model="claude-sonnet-5",
            max_tokens=5,
            messages=MSGS,
            extra_body={"model": "deepseek-chat"},
        ),
        lambda: ant.messages.count_tokens(
            model="claude-sonnet-5", messages=MSGS, extra_body={"model": "deepseek-r1"}
        ),
        lambda: ant.messages.stream(
            model="claude-sonnet-5",
            max_tokens=5,
            messages=MSGS,
            extra_body={"model": "deepseek-chat"},
        ).__enter__(),
    ):
        assert (
            _denied_nothing_sent(llm_server, call, ModelDenied).code == "model_denied"
        )


def test_with_options_and_copies_stay_guarded(oai: Any, llm_server: LLMServer) -> None:
    for client in (oai.with_options(timeout=5), oai.copy(max_retries=0)):
        _denied_nothing_sent(
            llm_server,
            lambda c=client: c.chat.completions.create(
                model="deepseek-chat", messages=MSGS
            ),
            ModelDenied,
        )


def test_extra_query_and_headers_do_not_change_the_decision(
    oai: Any, llm_server: LLMServer
) -> None:
    _denied_nothing_sent(
        llm_server,
        lambda: oai.chat.completions.create(
            model="deepseek-chat",
            messages=MSGS,
            extra_query={"model": "gpt-4.1"},
            extra_headers={"x-model": "gpt-4.1", "content-type": "application/json"},
        ),
        ModelDenied,
    )


def test_base_url_changed_after_wrapping_is_checked_again(
    oai: Any, llm_server: LLMServer
) -> None:
    oai.base_url = "http://localhost:" + llm_server.url.rsplit(":", 1)[1] + "/v1"
    err = _denied_nothing_sent(
        llm_server,
        lambda: oai.chat.completions.create(model="gpt-4.1", messages=MSGS),
        RegionDenied,
    )
    assert err.code == "region_unknown"


def test_redirect_to_another_region_is_checked(oai: Any, llm_server: LLMServer) -> None:
    other = LLMServer()
    try:
        llm_server.redirect_to = other.url.replace("127.0.0.1", "localhost")
        with pytest.raises(RegionDenied):
            oai.chat.completions.create(model="gpt-4.1", messages=MSGS)
        assert other.requests == []
    finally:
        llm_server.redirect_to = None
        other.close()


def test_positional_model_of_a_callable_is_checked() -> None:
    calls: list[str] = []

    def complete(model: str, prompt: str) -> str:
        calls.append(model)
        return "ok"

    guard = Guard(Policy(models={"allow": ["gpt-4.1"], "deny": ["deepseek*"]}))
    guarded = guard_llm(guard, complete, model="gpt-4.1")
    with pytest.raises(ModelDenied):
        guarded("deepseek-chat", "hi")
    assert calls == []
    assert guarded("gpt-4.1", "hi") == "ok"


def test_unknown_endpoints_and_websockets_are_refused(
    oai: Any, ant: Any, llm_server: LLMServer
) -> None:
    for call in (
        lambda: oai.files.list(),
        lambda: oai.images.generate(prompt="x", model="gpt-image-1"),
        lambda: oai.post("/chat/completions/../../files", cast_to=object, body={}),
        lambda: ant.beta.files.list(),
        lambda: ant.messages.batches.create(requests=[]),
    ):
        _denied_nothing_sent(llm_server, call, PolicyError)
    with pytest.raises(PolicyError):
        oai.responses.connect().__enter__()


def test_refused_endpoint_is_audited(oai: Any, sink: MemorySink) -> None:
    with pytest.raises(PolicyError):
        oai.files.list()
    denial = sink.events[-1]
    assert (denial.invariant, denial.decision, denial.reason) == (
        "I5",
        "deny",
        "endpoint_not_guarded",
    )


# -- no raw client ---------------------------------------------------------------


def test_raw_client_is_not_handed_out(oai: Any, sink: MemorySink) -> None:
    with pytest.raises(PolicyError):
        _ = oai.client
    with pytest.raises(PolicyError):
        oai.with_options(http_client=httpx2.Client())
    with pytest.raises(PolicyError):
        oai.copy(http_client=httpx2.Client())
    with pytest.warns(InsecureUsageWarning):
        raw = oai.unsafe_raw_client
    assert type(raw) is openai.OpenAI
    assert ("I5", "unsafe_raw_client") in {(e.invariant, e.reason) for e in sink.events}


def test_swapped_http_client_is_refused(oai: Any, llm_server: LLMServer) -> None:
    oai._client = httpx2.Client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        _denied_nothing_sent(
            llm_server,
            lambda: oai.chat.completions.create(model="gpt-4.1", messages=MSGS),
            PolicyError,
        )


# -- every text of the answer -------------------------------------------------------


def _chat(message: dict[str, Any], **choice: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "stop", **choice}
        ],
    }


ESCAPED = json.dumps({"q": SECRET}).replace("ghp_", "\\u0067\\u0068\\u0070_")


@pytest.mark.parametrize(
    "answer",
    [
        _chat({"role": "assistant", "content": "x", "reasoning_content": SECRET}),
        _chat(
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "f", "arguments": ESCAPED},
            }
        ),
        _chat(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t",
                        "type": "function",
                        "function": {"name": "f", "arguments": ESCAPED},
                    }
                ],
            }
        ),
        _chat(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t",
                        "type": "custom",
                        "custom": {"name": "f", "input": SECRET},
                    }
                ],
            }
        ),
        _chat({"role": "assistant", "content": "x", "brand_new_field": SECRET}),
        _chat(
            {"role": "assistant", "content": "x"},
            logprobs={
                "content": [
                    {"token": t, "logprob": -0.1, "bytes": None, "top_logprobs": []}
                    for t in (SECRET[:6], SECRET[6:20], SECRET[20:])
                ]
            },
        ),
    ],
    ids=[
        "reasoning_content",
        "legacy_function_call_escaped",
        "tool_call_escaped",
        "custom_tool",
        "unknown_field",
        "logprobs_split",
    ],
)
def test_chat_answer_fields_are_filtered(
    oai: Any, llm_server: LLMServer, answer: dict[str, Any]
) -> None:
    llm_server.answer = answer
    try:
        with pytest.raises(OutputBlocked):
            oai.chat.completions.create(model="gpt-4.1", messages=MSGS)
        with pytest.raises(OutputBlocked):
            oai.chat.completions.with_raw_response.create(
                model="gpt-4.1", messages=MSGS
            ).parse()
    finally:
        llm_server.answer = None


def test_escaped_secret_in_streamed_tool_arguments(
    oai: Any, llm_server: LLMServer
) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    pieces = [ESCAPED[i : i + 3] for i in range(0, len(ESCAPED), 3)]
    events = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "t",
                                "type": "function",
                                "function": {"name": "f", "arguments": ""},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        },
        *(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [{"index": 0, "function": {"arguments": p}}]
                        },
                        "finish_reason": None,
                    }
                ],
            }
            for p in pieces
        ),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    llm_server.answer = events
    seen: list[str] = []
    try:
        stream = oai.chat.completions.create(
            model="gpt-4.1", messages=MSGS, stream=True
        )
        with pytest.raises(OutputBlocked):
            seen.extend(
                call.function.arguments or ""
                for chunk in stream
                for call in chunk.choices[0].delta.tool_calls or ()
            )
    finally:
        llm_server.answer = None
    assert "".join(seen) == "", "tool arguments were emitted before they were checked"


def _message(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5",
        "content": list(blocks),
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


@pytest.mark.parametrize(
    "answer",
    [
        _message(
            {
                "type": "web_search_tool_result",
                "tool_use_id": "s",
                "content": [
                    {
                        "type": "web_search_result",
                        "title": "t",
                        "url": "https://example.org",
                        "encrypted_content": "e",
                        "page_age": None,
                    },
                    {
                        "type": "web_search_result",
                        "title": SECRET,
                        "url": "https://example.org",
                        "encrypted_content": "e",
                        "page_age": None,
                    },
                ],
            }
        ),
        _message(
            {
                "type": "text",
                "text": "see",
                "citations": [
                    {
                        "type": "char_location",
                        "cited_text": SECRET,
                        "document_index": 0,
                        "document_title": None,
                        "start_char_index": 0,
                        "end_char_index": 1,
                    }
                ],
            }
        ),
        _message(
            {
                "type": "bash_code_execution_tool_result",
                "tool_use_id": "b",
                "content": {
                    "type": "bash_code_execution_result",
                    "stdout": SECRET,
                    "stderr": "",
                    "return_code": 0,
                    "content": [],
                },
            }
        ),
        _message({"type": "tool_use", "id": "t", "name": "f", "input": {SECRET: 1}}),
        _message({"type": "a_block_from_the_future", "payload": SECRET}),
    ],
    ids=["web_search", "citation", "bash_result", "tool_input_key", "unknown_block"],
)
def test_anthropic_answer_blocks_are_filtered(
    ant: Any, llm_server: LLMServer, answer: dict[str, Any]
) -> None:
    llm_server.answer = answer
    try:
        with pytest.raises(OutputBlocked):
            ant.messages.create(model="claude-sonnet-5", max_tokens=5, messages=MSGS)
    finally:
        llm_server.answer = None


def test_responses_mcp_and_custom_tool_items_are_filtered(
    oai: Any, llm_server: LLMServer
) -> None:
    for item in (
        {
            "type": "mcp_call",
            "id": "m",
            "server_label": "s",
            "name": "n",
            "arguments": ESCAPED,
            "output": "fine",
        },
        {
            "type": "mcp_call",
            "id": "m",
            "server_label": "s",
            "name": "n",
            "arguments": "{}",
            "output": SECRET,
        },
        {
            "type": "custom_tool_call",
            "id": "c",
            "call_id": "c",
            "name": "n",
            "input": SECRET,
        },
    ):
        llm_server.answer = {
            "id": "r",
            "object": "response",
            "created_at": 1,
            "model": "gpt-4.1",
            "status": "completed",
            "output": [item],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
        try:
            with pytest.raises(OutputBlocked):
                oai.responses.create(model="gpt-4.1", input="hi")
        finally:
            llm_server.answer = None


def test_retrieving_a_stored_answer_is_filtered(
    oai: Any, llm_server: LLMServer
) -> None:
    llm_server.answer = _chat({"role": "assistant", "content": SECRET})
    try:
        with pytest.raises(OutputBlocked):
            oai.chat.completions.retrieve("c1")
    finally:
        llm_server.answer = None


# -- models in the path (Bedrock, Vertex) -------------------------------------------


def test_bedrock_and_vertex_models_are_read_from_the_path(
    llm_server: LLMServer,
) -> None:
    guard = Guard(
        _policy(llm_server, models={"allow": ["*claude*"], "deny": ["deepseek*"]})
    )
    bedrock = guard_llm(
        guard,
        closing(
            anthropic.AnthropicBedrock(
                aws_region="eu-west-1",
                aws_access_key="a",
                aws_secret_key="b",
                base_url=llm_server.url,
            )
        ),
    )
    vertex = guard_llm(
        guard,
        closing(
            anthropic.AnthropicVertex(
                region="europe-west1",
                project_id="p",
                access_token="t",
                base_url=llm_server.url,
            )
        ),
    )
    for client in (bedrock, vertex):
        _denied_nothing_sent(
            llm_server,
            lambda c=client: c.messages.create(
                model="deepseek.r1-v1:0", max_tokens=5, messages=MSGS
            ),
            ModelDenied,
        )
        _denied_nothing_sent(
            llm_server,
            lambda c=client: c.messages.create(
                model="anthropic.claude-sonnet-5",
                max_tokens=5,
                messages=MSGS,
                extra_body={"model": "deepseek-chat"},
            ),
            ModelDenied,
        )
    # Bedrock's event-stream answers are not rewritten: refused, not sent.
    _denied_nothing_sent(
        llm_server,
        lambda: bedrock.messages.create(
            model="anthropic.claude-sonnet-5", max_tokens=5, messages=MSGS, stream=True
        ),
        PolicyError,
    )


# -- streamed fields ---------------------------------------------------------------


def _chunks(deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
        for d in deltas
    ]
    out.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    return out


def test_streamed_reasoning_content_is_guarded(oai: Any, llm_server: LLMServer) -> None:
    pieces = [SECRET[i : i + 4] for i in range(0, len(SECRET), 4)]
    llm_server.answer = _chunks([{"reasoning_content": p} for p in pieces])
    seen: list[str] = []
    try:
        stream = oai.chat.completions.create(
            model="gpt-4.1", messages=MSGS, stream=True
        )
        with pytest.raises(OutputBlocked):
            seen.extend(
                str(getattr(c.choices[0].delta, "reasoning_content", "") or "")
                for c in stream
            )
    finally:
        llm_server.answer = None
    assert SECRET[:8] not in "".join(seen)


def test_streamed_logprobs_are_held_until_checked(
    oai: Any, llm_server: LLMServer
) -> None:
    pieces = [SECRET[i : i + 4] for i in range(0, len(SECRET), 4)]
    events = _chunks([{"content": p} for p in pieces])
    for event, piece in zip(events, pieces, strict=False):
        event["choices"][0]["logprobs"] = {
            "content": [
                {
                    "token": piece,
                    "logprob": -0.1,
                    "bytes": list(piece.encode()),
                    "top_logprobs": [],
                }
            ]
        }
    llm_server.answer = events
    tokens: list[str] = []
    try:
        stream = oai.chat.completions.create(
            model="gpt-4.1", messages=MSGS, stream=True, logprobs=True
        )
        with pytest.raises(OutputBlocked):
            tokens.extend(
                t.token
                for chunk in stream
                if chunk.choices[0].logprobs
                for t in chunk.choices[0].logprobs.content or ()
            )
    finally:
        llm_server.answer = None
    assert tokens == []


def test_anthropic_streamed_server_tool_result_is_filtered(
    ant: Any, llm_server: LLMServer
) -> None:
    message = _message()
    message["stop_reason"] = None
    llm_server.answer = [
        {"type": "message_start", "message": message},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "code_execution_tool_result",
                "tool_use_id": "x",
                "content": {
                    "type": "code_execution_result",
                    "stdout": SECRET,
                    "stderr": "",
                    "return_code": 0,
                    "content": [],
                },
            },
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_stop"},
    ]
    try:
        with (
            pytest.raises(OutputBlocked),
            ant.messages.stream(
                model="claude-sonnet-5", max_tokens=5, messages=MSGS
            ) as stream,
        ):
            stream.get_final_message()
    finally:
        llm_server.answer = None


def test_raw_bodies_are_checked_as_sent(oai: Any, llm_server: LLMServer) -> None:
    allowed = {"model": "gpt-4.1", "messages": MSGS}
    duplicate = b'{"model": "deepseek-chat", "model": "gpt-4.1", "messages": []}'
    for content, error in (
        (duplicate, PolicyError),  # a provider may read the first "model"
        (b"model=deepseek-chat", PolicyError),  # not JSON
        (b"[1, 2]", PolicyError),  # not an object
        (iter([b'{"model": "deepseek', b'-chat", "messages": []}']), ModelDenied),
        (json.dumps({**allowed, "store": True}).encode(), ModelDenied),
    ):
        _denied_nothing_sent(
            llm_server,
            lambda c=content: oai.post(
                "/chat/completions",
                cast_to=object,
                content=c,
                options={"headers": {"content-type": "application/json"}},
            ),
            error,
        )
    assert oai.post("/chat/completions", cast_to=object, body=allowed) is not None
    assert llm_server.last["store"] is False


@settings(max_examples=25, deadline=None)
@given(
    where=st.sampled_from(["model", "extra_body", "both"]),
    spelling=st.sampled_from(["deepseek-chat", "DeepSeek-R1", "deepseek-v3.1"]),
    options=st.sampled_from([{}, {"timeout": 5}, {"max_retries": 0}]),
    stream=st.booleans(),
    api=st.sampled_from(["chat", "responses"]),
)
def test_a_denied_model_never_leaves_however_it_is_placed(
    llm_server: LLMServer,
    where: str,
    spelling: str,
    options: dict[str, Any],
    stream: bool,
    api: str,
) -> None:
    raw = closing(openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1"))
    client = guard_llm(Guard(_policy(llm_server)), raw).with_options(**options)
    model = spelling if where in {"model", "both"} else "gpt-4.1"
    extra = {"model": spelling} if where in {"extra_body", "both"} else None
    if api == "chat":
        call = lambda: client.chat.completions.create(  # noqa: E731
            model=model, messages=MSGS, stream=stream, extra_body=extra
        )
    else:
        call = lambda: client.responses.create(  # noqa: E731
            model=model, input="hi", stream=stream, extra_body=extra
        )
    _denied_nothing_sent(llm_server, call, ModelDenied)
