"""Red team of the LLM guard at the wire (issue #12 part A).

Each test runs the real SDK against a loopback server and asserts the secure
outcome: a denied request never reaches the server, a secret never reaches
the caller, and the refusal or block carries its stable code.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import openai
import pydantic
import pytest

from aiinvariants import Guard, OutputBlocked, Policy, PolicyError, RegionDenied
from aiinvariants.audit import MemorySink
from aiinvariants.llm import guard_llm
from llm_support import LLMServer, _close_clients, _signed_in, closing, llm_server

__all__ = ["_close_clients", "_signed_in", "llm_server"]

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
PIN = "8302915547162093"
MSGS = [{"role": "user", "content": "hello"}]


def _policy(url: str, **kw: Any) -> Policy:
    doc: dict[str, Any] = {
        "models": {"allow": ["gpt-4.1*", "claude-*"], "deny": ["deepseek*"]},
        "regions": {"allow": ["eu-*"], "declared": {url: "eu-west-1"}},
        "data_use": {"require_opt_out": True},
        "outputs": {"secrets": {"action": "block", "registered_env": ["RT_DB_PIN"]}},
    }
    doc.update(kw)
    return Policy(**doc)


@pytest.fixture(autouse=True)
def _pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RT_DB_PIN", PIN)


@pytest.fixture
def oai(llm_server: LLMServer) -> Any:
    llm_server.answer = None
    llm_server.redirect_to = None
    raw = closing(
        openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1", max_retries=0)
    )
    return guard_llm(Guard(_policy(llm_server.url)), raw)


@pytest.fixture
def ant(llm_server: LLMServer) -> Any:
    llm_server.answer = None
    llm_server.redirect_to = None
    raw = closing(
        anthropic.Anthropic(api_key="k", base_url=llm_server.url, max_retries=0)
    )
    return guard_llm(Guard(_policy(llm_server.url)), raw)


def _chat(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def _tool_call(arguments: str) -> dict[str, Any]:
    call = {
        "id": "t",
        "type": "function",
        "function": {"name": "lookup", "arguments": arguments},
    }
    return _chat({"role": "assistant", "content": None, "tool_calls": [call]})


def _blocked(call: Any) -> OutputBlocked:
    got: list[Any] = []
    with pytest.raises(OutputBlocked) as info:
        got.append(call())
    assert not got, "the secret reached the caller"
    assert info.value.code == "output_blocked"
    return info.value


# -- websockets: the Agents SDK's Responses websocket mode -------------------------


class _WSServer:
    """A loopback websocket server recording every handshake and frame."""

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.seen: list[Any] = []

        def handler(ws: Any) -> None:
            self.seen.append(("connect", ws.request.path))
            for frame in ws:
                self.seen.append(("frame", frame))
                ws.close()

        self.server = serve(handler, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def ws_server() -> Iterator[_WSServer]:
    server = _WSServer()
    yield server
    server.close()


def test_agents_responses_websocket_model_is_refused(ws_server: _WSServer) -> None:
    from agents import Agent, Runner, set_tracing_disabled
    from agents.models.openai_responses import OpenAIResponsesWSModel

    set_tracing_disabled(True)
    sink = MemorySink()
    guard = Guard(_policy(ws_server.url), sinks=[sink])

    async def run() -> None:
        raw = openai.AsyncOpenAI(
            api_key="k", base_url=ws_server.url + "/v1", max_retries=0
        )
        client = guard_llm(guard, raw)
        try:
            model = OpenAIResponsesWSModel("deepseek-chat", client)
            await Runner.run(Agent(name="a", model=model), "hi")
        finally:
            await raw.close()

    with pytest.raises(PolicyError, match="websocket"):
        asyncio.run(run())
    assert ws_server.seen == [], "the websocket reached the server"
    assert ("I5", "deny", "endpoint_not_guarded") in {
        (e.invariant, e.decision, e.reason) for e in sink.events
    }


def test_beta_realtime_websocket_is_refused(ws_server: _WSServer) -> None:
    async def run() -> None:
        raw = openai.AsyncOpenAI(
            api_key="k", base_url=ws_server.url + "/v1", max_retries=0
        )
        client = guard_llm(Guard(_policy(ws_server.url)), raw)
        try:
            async with client.beta.realtime.connect(model="deepseek-chat"):
                pass
        finally:
            await raw.close()

    with pytest.raises(PolicyError, match="websocket"):
        asyncio.run(run())
    assert ws_server.seen == [], "the websocket reached the server"


# -- answers: model-written JSON ------------------------------------------------------


def test_duplicate_key_in_tool_arguments_is_checked(
    oai: Any, llm_server: LLMServer
) -> None:
    llm_server.answer = _tool_call('{"q": "' + SECRET + '", "q": "x"}')
    _blocked(
        lambda: (
            oai.chat.completions.create(model="gpt-4.1", messages=MSGS)
            .choices[0]
            .message.tool_calls[0]
            .function.arguments
        )
    )


def test_numeric_secret_in_tool_arguments_is_checked(
    oai: Any, ant: Any, llm_server: LLMServer
) -> None:
    llm_server.answer = _tool_call('{"pin": ' + PIN + "}")
    _blocked(
        lambda: (
            oai.chat.completions.create(model="gpt-4.1", messages=MSGS)
            .choices[0]
            .message.tool_calls[0]
            .function.arguments
        )
    )
    llm_server.answer = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "content": [
            {"type": "tool_use", "id": "tu", "name": "f", "input": {"pin": int(PIN)}}
        ],
    }
    _blocked(
        lambda: (
            ant.messages.create(model="claude-x", max_tokens=5, messages=MSGS)
            .content[0]
            .input
        )
    )


class _Out(pydantic.BaseModel):
    q: str


ESCAPED = json.dumps({"q": SECRET}).replace("ghp_", "\\u0067\\u0068\\u0070_")


def test_structured_output_decoded_by_parse_is_checked(
    oai: Any, llm_server: LLMServer
) -> None:
    llm_server.answer = _chat({"role": "assistant", "content": ESCAPED})
    _blocked(
        lambda: (
            oai.chat.completions.parse(
                model="gpt-4.1", messages=MSGS, response_format=_Out
            )
            .choices[0]
            .message.parsed
        )
    )
    llm_server.answer = {
        "id": "r",
        "object": "response",
        "created_at": 1,
        "model": "gpt-4.1",
        "status": "completed",
        "output": [
            {
                "id": "o",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": ESCAPED, "annotations": []}
                ],
            }
        ],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
    }
    _blocked(
        lambda: (
            oai.responses.parse(
                model="gpt-4.1", input="hi", text_format=_Out
            ).output_parsed
        )
    )


# -- answers: a streamed answer whose content type does not say so --------------------


class _RawServer:
    """Answers every POST with a fixed content type and body."""

    def __init__(self) -> None:
        self.reply: tuple[str, bytes] = ("application/json", b"{}")
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                ctype, body = state.reply
                self.send_response(200)
                if ctype:
                    self.send_header("content-type", ctype)
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def raw_server() -> Iterator[_RawServer]:
    server = _RawServer()
    yield server
    server.close()


def _chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1",
        "choices": [
            {"index": 0, "delta": {"content": content}, "finish_reason": finish}
        ],
    }


def _split_stream() -> bytes:
    events = [_chunk(SECRET[:12]), _chunk(SECRET[12:]), _chunk(None, "stop")]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + b"data: [DONE]\n\n"


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", ""])
def test_stream_with_another_content_type_is_read_as_events(
    raw_server: _RawServer, ctype: str
) -> None:
    raw_server.reply = (ctype, _split_stream())
    raw = closing(
        openai.OpenAI(api_key="k", base_url=raw_server.url + "/v1", max_retries=0)
    )
    client = guard_llm(Guard(_policy(raw_server.url)), raw)

    def drain() -> str:
        stream = client.chat.completions.create(
            model="gpt-4.1", messages=MSGS, stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    _blocked(drain)


# -- requests that name no model -------------------------------------------------


def test_reads_to_an_unknown_region_are_denied(oai: Any, llm_server: LLMServer) -> None:
    other = oai.with_options(
        base_url=llm_server.url.replace("127.0.0.1", "localhost") + "/v1"
    )
    for call in (
        lambda: other.chat.completions.retrieve("abc"),
        lambda: other.models.list(),
        lambda: other.responses.cancel("abc"),
    ):
        before = len(llm_server.requests)
        with pytest.raises(RegionDenied) as info:
            call()
        assert info.value.code == "region_unknown"
        assert len(llm_server.requests) == before, "the request reached the server"


def test_a_body_on_a_read_endpoint_is_refused(oai: Any, llm_server: LLMServer) -> None:
    before = len(llm_server.requests)
    with pytest.raises(PolicyError, match="carries a body"):
        oai.post(
            "/responses/x/cancel",
            cast_to=object,
            body={"model": "deepseek-chat", "input": "hi", "store": True},
        )
    assert len(llm_server.requests) == before, "the request reached the server"


# -- a secret split over two text parts the SDK joins for the caller --------------

HEAD, TAIL = SECRET[:14], SECRET[14:]


def _message(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": blocks,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def _response(parts: list[str]) -> dict[str, Any]:
    content = [{"type": "output_text", "text": t, "annotations": []} for t in parts]
    item = {
        "id": "o",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": content,
    }
    return {
        "id": "r",
        "object": "response",
        "created_at": 1,
        "model": "gpt-4.1",
        "status": "completed",
        "output": [item],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
    }


def test_secret_split_over_text_blocks_is_blocked(
    oai: Any, ant: Any, llm_server: LLMServer
) -> None:
    llm_server.answer = _message(
        [{"type": "text", "text": HEAD}, {"type": "text", "text": TAIL}]
    )
    _blocked(
        lambda: "".join(
            b.text
            for b in ant.messages.create(
                model="claude-x", max_tokens=5, messages=MSGS
            ).content
        )
    )
    llm_server.answer = _response([HEAD, TAIL])
    _blocked(lambda: oai.responses.create(model="gpt-4.1", input="hi").output_text)


def test_secret_split_over_streamed_text_blocks_is_blocked(
    ant: Any, llm_server: LLMServer
) -> None:
    start = {**_message([]), "stop_reason": None}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, text in enumerate([HEAD, TAIL]):
        delta = {"type": "text_delta", "text": text}
        events += [
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
            {"type": "content_block_delta", "index": index, "delta": delta},
            {"type": "content_block_stop", "index": index},
        ]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    llm_server.answer = events

    def drain() -> str:
        got: list[str] = []
        with ant.messages.stream(
            model="claude-x", max_tokens=5, messages=MSGS
        ) as stream:
            got.extend(stream.text_stream)
        return "".join(got)

    _blocked(drain)


def test_secret_split_over_streamed_output_text_parts_is_blocked(
    oai: Any, llm_server: LLMServer
) -> None:
    created = {**_response([]), "status": "in_progress", "output": []}
    item = {
        "id": "o",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": created, "sequence_number": 0},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": item,
            "sequence_number": 1,
        },
    ]
    at = {"item_id": "o", "output_index": 0}
    for index, text in enumerate([HEAD, TAIL]):
        part = {"type": "output_text", "text": "", "annotations": []}
        n = 2 + 3 * index
        events += [
            {
                "type": "response.content_part.added",
                **at,
                "content_index": index,
                "part": part,
                "sequence_number": n,
            },
            {
                "type": "response.output_text.delta",
                **at,
                "content_index": index,
                "delta": text,
                "logprobs": [],
                "sequence_number": n + 1,
            },
            {
                "type": "response.output_text.done",
                **at,
                "content_index": index,
                "text": text,
                "logprobs": [],
                "sequence_number": n + 2,
            },
        ]
    llm_server.answer = events
    got: list[str] = []

    def drain() -> str:
        stream = oai.responses.create(model="gpt-4.1", input="hi", stream=True)
        for event in stream:
            if event.type == "response.output_text.delta":
                got.append(event.delta)
            elif event.type == "response.output_text.done":
                got.append(event.text)
        return "".join(got)

    _blocked(drain)
    assert TAIL not in "".join(got), "half of the secret reached the caller"


# -- streamed chat fields that an SDK accumulates ----------------------------------


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _call(**function: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, "function": function}]}


def test_tool_name_split_over_deltas_is_blocked(
    oai: Any, llm_server: LLMServer
) -> None:
    first = {"index": 0, "id": "t", "type": "function"}
    first["function"] = {"name": HEAD, "arguments": ""}
    llm_server.answer = [
        _delta({"role": "assistant", "tool_calls": [first]}),
        _delta(_call(name=TAIL)),
        _delta(_call(arguments="{}")),
        _delta({}, "tool_calls"),
    ]

    def name() -> str:
        with oai.chat.completions.stream(model="gpt-4.1", messages=MSGS) as stream:
            done = stream.get_final_completion()
        return str(done.choices[0].message.tool_calls[0].function.name)

    _blocked(name)


def test_escaped_secret_in_streamed_structured_output_is_blocked(
    oai: Any, llm_server: LLMServer
) -> None:
    text = ESCAPED
    llm_server.answer = [
        _delta({"role": "assistant", "content": text[i : i + 6]})
        for i in range(0, len(text), 6)
    ] + [_delta({}, "stop")]
    parsed: list[str] = []

    def drain() -> str:
        with oai.chat.completions.stream(
            model="gpt-4.1", messages=MSGS, response_format=_Out
        ) as stream:
            for event in stream:
                if event.type == "content.delta" and event.parsed:
                    parsed.append(repr(event.parsed))
        return "".join(parsed)

    _blocked(drain)


@pytest.mark.parametrize(
    "ctype", ["text/plain; charset=utf-16", "text/html; charset=utf-16"]
)
def test_text_answer_is_checked_in_its_declared_charset(
    raw_server: _RawServer, ctype: str
) -> None:
    raw_server.reply = (ctype, ("the key is " + SECRET).encode("utf-16"))
    raw = closing(
        openai.OpenAI(api_key="k", base_url=raw_server.url + "/v1", max_retries=0)
    )
    client = guard_llm(Guard(_policy(raw_server.url)), raw)
    _blocked(
        lambda: (
            client.chat.completions.with_raw_response.create(
                model="gpt-4.1", messages=MSGS
            ).text
        )
    )


# -- the block's exception chain ---------------------------------------------------


def _chain(err: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and len(seen) < 20:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("text/plain", f"the key is {SECRET}"),
        ("text/event-stream", f"data: the key is {SECRET}\n\n"),
    ],
)
def test_no_chained_exception_carries_the_answer(
    raw_server: _RawServer, ctype: str, body: str
) -> None:
    raw_server.reply = (ctype, body.encode())
    raw = closing(
        openai.OpenAI(api_key="k", base_url=raw_server.url + "/v1", max_retries=0)
    )
    client = guard_llm(Guard(_policy(raw_server.url)), raw)
    stream = ctype == "text/event-stream"

    def call() -> Any:
        got = client.chat.completions.create(
            model="gpt-4.1", messages=MSGS, stream=stream
        )
        if not stream:
            return got
        with got:
            return list(got)

    err = _blocked(call)
    for link in _chain(err):
        carried = repr(link) + str(link) + repr(getattr(link, "doc", ""))
        assert SECRET not in carried, f"{type(link).__name__} carries the secret"


def test_a_refused_path_is_not_echoed(llm_server: LLMServer) -> None:
    sink = MemorySink()
    raw = closing(
        openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1", max_retries=0)
    )
    client = guard_llm(Guard(_policy(llm_server.url), sinks=[sink]), raw)
    with pytest.raises(PolicyError) as info:
        client.get("/files/" + SECRET, cast_to=object)
    assert SECRET not in str(info.value)
    assert SECRET not in repr([e.details for e in sink.events])
    assert ("I5", "deny", "endpoint_not_guarded") in {
        (e.invariant, e.decision, e.reason) for e in sink.events
    }


@pytest.mark.xfail(
    strict=True,
    reason="set_default_openai_client(guarded, use_for_tracing=True) hands the "
    "guarded client's api_key to the Agents SDK trace exporter, which posts "
    "generation spans (prompts included) to api.openai.com outside the wire "
    "check and the region rule; the SDK reads client.api_key, which the "
    "guarded client's own HTTP auth also reads, so refusing it needs a design "
    "(e.g. a guarded credential object) beyond this red-team pass",
)
def test_agents_tracing_does_not_get_the_guarded_credential(
    llm_server: LLMServer,
) -> None:
    from agents import set_default_openai_client
    from agents.models import _openai_shared
    from agents.tracing.processors import default_exporter

    exporter = default_exporter()
    before = exporter._api_key
    default_before = _openai_shared.get_default_openai_client()
    raw = openai.AsyncOpenAI(
        api_key="sk-guarded-key", base_url=llm_server.url + "/v1", max_retries=0
    )
    client = guard_llm(Guard(_policy(llm_server.url)), raw)
    try:
        try:
            set_default_openai_client(client, use_for_tracing=True)
        except PolicyError:
            return  # refused: the secure outcome
        assert exporter.api_key != "sk-guarded-key"
    finally:
        exporter._api_key = before
        _openai_shared._default_openai_client = default_before
        asyncio.run(raw.close())
