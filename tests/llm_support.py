"""A loopback server speaking the OpenAI, Anthropic and Bedrock wire formats.

The model "answers" by echoing the last user message, so a test chooses the
answer by what it sends. A user message starting with ``TOOL:`` makes the
model call a tool ``lookup`` whose JSON arguments carry the rest. Streams
send the answer in chunks of ``CHUNK`` characters, as the providers do:
OpenAI chat and responses and Anthropic messages as server-sent events,
Bedrock converse_stream as AWS event-stream frames. Every request body is
kept in ``server.requests`` so tests can see what the guard sent.
"""

from __future__ import annotations

import binascii
import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from aiinvariants import Principal, acting_as

CHUNK = 4


def _chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]


def _last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            for part in content:
                if isinstance(part, dict) and "text" in part:
                    return str(part["text"])
    return ""


def _split_tool(text: str) -> tuple[str, str | None]:
    if text.startswith("TOOL:"):
        return "", json.dumps({"query": text[5:]})
    return text, None


# -- OpenAI ---------------------------------------------------------------------


def openai_chat(body: dict[str, Any]) -> dict[str, Any]:
    text, args = _split_tool(_last_user_text(body["messages"]))
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if args is not None:
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": args},
            }
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if args else "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def openai_chat_stream(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    text, args = _split_tool(_last_user_text(body["messages"]))
    base = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": body["model"],
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    yield chunk({"role": "assistant", "content": ""})
    if args is None:
        for piece in _chunks(text):
            yield chunk({"content": piece})
        yield chunk({}, "stop")
        return
    yield chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": ""},
                }
            ]
        }
    )
    for piece in _chunks(args):
        yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls")


def _responses_input_text(body: dict[str, Any]) -> str:
    items = body["input"]
    if isinstance(items, str):
        return items
    return _last_user_text(items)


def openai_response(body: dict[str, Any], text_override: str | None = None) -> Any:
    text, args = _split_tool(_responses_input_text(body))
    if text_override is not None:
        text = text_override
    output: list[dict[str, Any]] = []
    if args is None:
        output.append(
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    else:
        output.append(
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "lookup",
                "arguments": args,
                "status": "completed",
            }
        )
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000000,
        "model": body["model"],
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def openai_response_stream(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    text, args = _split_tool(_responses_input_text(body))
    seq = iter(range(10_000))
    done = openai_response(body)
    start = {**done, "status": "in_progress", "output": []}
    yield {"type": "response.created", "sequence_number": next(seq), "response": start}
    if args is None:
        item = {**done["output"][0], "status": "in_progress", "content": []}
        yield {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": 0,
            "item": item,
        }
        for piece in _chunks(text):
            yield {
                "type": "response.output_text.delta",
                "sequence_number": next(seq),
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
            }
        yield {
            "type": "response.output_text.done",
            "sequence_number": next(seq),
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        }
    else:
        item = {**done["output"][0], "status": "in_progress", "arguments": ""}
        yield {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": 0,
            "item": item,
        }
        for piece in _chunks(args):
            yield {
                "type": "response.function_call_arguments.delta",
                "sequence_number": next(seq),
                "item_id": "fc_1",
                "output_index": 0,
                "delta": piece,
            }
        yield {
            "type": "response.function_call_arguments.done",
            "sequence_number": next(seq),
            "item_id": "fc_1",
            "output_index": 0,
            "arguments": args,
            "name": "lookup",
        }
    yield {
        "type": "response.output_item.done",
        "sequence_number": next(seq),
        "output_index": 0,
        "item": done["output"][0],
    }
    yield {"type": "response.completed", "sequence_number": next(seq), "response": done}


# -- Anthropic ------------------------------------------------------------------


def anthropic_message(body: dict[str, Any]) -> dict[str, Any]:
    text, args = _split_tool(_last_user_text(body["messages"]))
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    if args is not None:
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "lookup",
                "input": json.loads(args),
            }
        )
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if args else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def anthropic_stream(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    text, args = _split_tool(_last_user_text(body["messages"]))
    msg = {**anthropic_message(body), "content": [], "stop_reason": None}
    yield {"type": "message_start", "message": msg}
    if args is None:
        block: dict[str, Any] = {"type": "text", "text": ""}
        pieces = [{"type": "text_delta", "text": p} for p in _chunks(text)]
    else:
        block = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}
        pieces = [
            {"type": "input_json_delta", "partial_json": p} for p in _chunks(args)
        ]
    yield {"type": "content_block_start", "index": 0, "content_block": block}
    for delta in pieces:
        yield {"type": "content_block_delta", "index": 0, "delta": delta}
    yield {"type": "content_block_stop", "index": 0}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 1},
    }
    yield {"type": "message_stop"}


# -- Bedrock --------------------------------------------------------------------


def _bedrock_text(body: dict[str, Any]) -> str:
    for m in reversed(body["messages"]):
        if m["role"] == "user":
            return "".join(c.get("text", "") for c in m["content"])
    return ""


def bedrock_converse(body: dict[str, Any]) -> dict[str, Any]:
    text, args = _split_tool(_bedrock_text(body))
    content: list[dict[str, Any]] = []
    if text:
        content.append({"text": text})
    if args is not None:
        content.append(
            {
                "toolUse": {
                    "toolUseId": "t1",
                    "name": "lookup",
                    "input": json.loads(args),
                }
            }
        )
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if args else "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }


def _header(name: str, value: str) -> bytes:
    raw = value.encode()
    return (
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    )


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message (prelude, headers, payload, CRCs)."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


def bedrock_stream(body: dict[str, Any]) -> Iterator[bytes]:
    text, args = _split_tool(_bedrock_text(body))
    yield event_frame("messageStart", {"role": "assistant"})
    if args is None:
        for piece in _chunks(text):
            yield event_frame(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}
            )
    else:
        yield event_frame(
            "contentBlockStart",
            {
                "contentBlockIndex": 0,
                "start": {"toolUse": {"toolUseId": "t1", "name": "lookup"}},
            },
        )
        for piece in _chunks(args):
            yield event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}},
            )
    yield event_frame("contentBlockStop", {"contentBlockIndex": 0})
    yield event_frame("messageStop", {"stopReason": "end_turn"})


# -- agent scripts (OpenAI chat and responses) ------------------------------------
#
# A last user message ``CALL:<json>`` scripts an agent turn: ``<json>`` is a
# list of ``{"name": ..., "arguments": <raw string>}`` tool calls the model
# makes, or ``{"rounds": [[calls], [calls], ...]}`` for several turns (the
# next round is made once every call of the rounds before has a result).
# After the last round, the model answers ``DONE:`` followed by the results
# joined with ``|`` (so a test sees what the model read). The arguments are
# sent as given, JSON or not; a call's optional ``namespace`` is sent on the
# Responses API's function call.


def _input_items(body: dict[str, Any]) -> list[Any]:
    if "messages" in body:
        return list(body["messages"])
    items = body.get("input")
    return [] if isinstance(items, str) else list(items or [])


def _item_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in value
        )
    return str(value)


def agent_script(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]] | None:
    """The scripted calls of the last ``CALL:`` message, and the results since."""
    items = _input_items(body)
    if not items and isinstance(body.get("input"), str):
        text = body["input"]
        if text.startswith("CALL:"):
            return _round(json.loads(text[5:]), []), []
        return None
    last = None
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("role") == "user":
            last = i
    if last is None:
        return None
    text = _item_text(items[last].get("content"))
    if not text.startswith("CALL:"):
        return None
    results = [
        _item_text(
            item.get("content") if item.get("role") == "tool" else item["output"]
        )
        for item in items[last + 1 :]
        if isinstance(item, dict)
        and (item.get("role") == "tool" or item.get("type") == "function_call_output")
    ]
    return _round(json.loads(text[5:]), results), results


def _round(script: Any, results: list[str]) -> list[dict[str, Any]]:
    rounds = script["rounds"] if isinstance(script, dict) else [script]
    done = len(results)
    for r, calls in enumerate(rounds):
        if done < len(calls):
            if done:
                return []
            return [{**c, "id": f"call_{r}_{i}"} for i, c in enumerate(calls)]
        done -= len(calls)
    return []


def agent_chat(body: dict[str, Any]) -> dict[str, Any]:
    calls, results = agent_script(body) or ([], [])
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if not calls:
        message["content"] = "DONE:" + "|".join(results)
    else:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ]
    return {
        "id": "chatcmpl-a",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def agent_chat_stream(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    message = doc["choices"][0]["message"]
    base = {k: doc[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    yield chunk({"role": "assistant", "content": ""})
    if message.get("content"):
        for piece in _chunks(message["content"]):
            yield chunk({"content": piece})
    for i, call in enumerate(message.get("tool_calls", [])):
        yield chunk({"tool_calls": [{**call, "index": i}]})
    yield chunk({}, doc["choices"][0]["finish_reason"])


def agent_response(body: dict[str, Any]) -> dict[str, Any]:
    calls, results = agent_script(body) or ([], [])
    if not calls:
        text = "DONE:" + "|".join(results)
        output: list[dict[str, Any]] = [
            {
                "type": "message",
                "id": "msg_a",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
    else:
        output = [
            {
                "type": "function_call",
                "id": "fc_" + c["id"],
                "call_id": c["id"],
                "name": c["name"],
                "arguments": c["arguments"],
                "status": "completed",
                **({"namespace": c["namespace"]} if "namespace" in c else {}),
            }
            for c in calls
        ]
    return {
        "id": "resp_a",
        "object": "response",
        "created_at": 1700000000,
        "model": body["model"],
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def agent_response_stream(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    seq = iter(range(10_000))
    start = {**doc, "status": "in_progress", "output": []}
    yield {"type": "response.created", "sequence_number": next(seq), "response": start}
    for index, item in enumerate(doc["output"]):
        yield {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": index,
            "item": item,
        }
        if item["type"] == "message":
            text = item["content"][0]["text"]
            for piece in _chunks(text):
                yield {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                }
        yield {
            "type": "response.output_item.done",
            "sequence_number": next(seq),
            "output_index": index,
            "item": item,
        }
    yield {"type": "response.completed", "sequence_number": next(seq), "response": doc}


# -- the server -----------------------------------------------------------------


class QuietServer(ThreadingHTTPServer):
    """A threading server that does not print a client hanging up mid-stream."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class LLMServer:
    """The loopback server; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        #: a scripted answer for the next requests: a JSON document, or a
        #: list of events (sent as server-sent events when the call streams)
        self.answer: Any = None
        #: when set, every request is redirected (307) to this origin
        self.redirect_to: str | None = None
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                path = unquote(self.path.split("?", 1)[0])
                state.requests.append((path, body))
                if state.redirect_to is not None:
                    self.send_response(307)
                    self.send_header("location", state.redirect_to + self.path)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if state.answer is not None:
                    state.scripted(self, body)
                    return
                state.route(self, path, body)

            def do_GET(self) -> None:
                path = unquote(self.path.split("?", 1)[0])
                state.requests.append((path, {}))
                state._json(self, state.answer or {"object": "list", "data": []})

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1][1]

    def route(self, h: BaseHTTPRequestHandler, path: str, body: dict[str, Any]) -> None:
        if path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}]
            self._json(
                h,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )
        elif path.endswith(("/count_tokens", "/input_tokens")):
            self._json(h, {"object": "response.input_tokens", "input_tokens": 3})
        elif path.endswith("/chat/completions") and agent_script(body) is not None:
            doc = agent_chat(body)
            if body.get("stream"):
                self._sse(h, agent_chat_stream(doc), done=True)
            else:
                self._json(h, doc)
        elif path.endswith("/responses") and agent_script(body) is not None:
            doc = agent_response(body)
            if body.get("stream"):
                self._sse(h, agent_response_stream(doc), named=True)
            else:
                self._json(h, doc)
        elif path.endswith("/chat/completions"):
            if body.get("stream"):
                self._sse(h, openai_chat_stream(body), done=True)
            else:
                self._json(h, openai_chat(body))
        elif path.endswith("/responses"):
            if body.get("stream"):
                self._sse(h, openai_response_stream(body), named=True)
            else:
                self._json(h, openai_response(body))
        elif path.endswith("/v1/messages"):
            if body.get("stream"):
                self._sse(h, anthropic_stream(body), named=True)
            else:
                self._json(h, anthropic_message(body))
        elif path.endswith("/converse"):
            self._json(h, bedrock_converse(body))
        elif path.endswith("/converse-stream"):
            h.send_response(200)
            h.send_header("content-type", "application/vnd.amazon.eventstream")
            h.send_header("connection", "close")
            h.end_headers()
            for frame in bedrock_stream(body):
                h.wfile.write(frame)
                h.wfile.flush()
            h.close_connection = True
        else:
            self._json(h, {"error": {"message": "not found"}}, status=404)

    def scripted(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        answer = self.answer
        if isinstance(answer, list):
            if body.get("stream"):
                named = (
                    isinstance(answer[0].get("type"), str)
                    and "choices" not in (answer[0])
                )
                self._sse(h, iter(answer), done=not named, named=named)
            else:
                self._json(h, answer[-1])
        else:
            self._json(h, answer)

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, doc: Any, status: int = 200) -> None:
        raw = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    @staticmethod
    def _sse(
        h: BaseHTTPRequestHandler,
        events: Iterator[dict[str, Any]],
        *,
        done: bool = False,
        named: bool = False,
    ) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("connection", "close")
        h.end_headers()
        for event in events:
            head = f"event: {event['type']}\n" if named else ""
            h.wfile.write(f"{head}data: {json.dumps(event)}\n\n".encode())
            h.wfile.flush()
        if done:
            h.wfile.write(b"data: [DONE]\n\n")
        h.close_connection = True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def llm_server() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.close()


_to_close: list[Any] = []


def closing(client: Any) -> Any:
    """Register an SDK client to be closed when the test ends; return it."""
    _to_close.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close every client a test registered: no socket outlives its test."""
    yield
    while _to_close:
        _to_close.pop().close()


#: The user the LLM tests call as: their policies are internal (the default),
#: and an internal app's LLM guard refuses anonymous callers.
SIGNED_IN = Principal(subject="llm-test-user", authenticated=True)


@pytest.fixture(autouse=True)
def _signed_in() -> Iterator[None]:
    with acting_as(SIGNED_IN):
        yield
