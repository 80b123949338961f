"""A loopback server speaking Amazon Bedrock Runtime's wire format.

The model "answers" with the last user text of the request, so a test picks
the answer by what it sends. A prefix picks where the answer goes:

* ``TOOL:x``   a tool call ``lookup`` with input ``{"query": x}``
* ``ESC:x``    the same, its JSON written with ``\\uXXXX`` escapes only
* ``REASON:x`` a reasoning block with text ``x`` (then the text ``done``)
* ``CITE:x``   a citations block whose cited source text is ``x``
* ``EXTRA:x``  ``additionalModelResponseFields`` ``{"note": x}``
* ``ERROR:x``  a ValidationException (in a stream: a stream error) with
  message ``x``
* ``REDIRECT:u`` a 307 redirect to ``u``
* ``SPLIT:x``  ``x`` cut in two halves, sent as two text blocks

Converse is JSON; ConverseStream and InvokeModelWithResponseStream are AWS
event-stream frames (prelude, headers, payload, CRC-32s). InvokeModel
answers in the body format of the model family named in the model id
(Anthropic, Llama, Titan text and embeddings, Mistral, Cohere embeddings,
OpenAI-style). Requests are kept in ``server.requests`` as
``(path, json_body)``.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3
import pytest

from aiinvariants import Principal, acting_as

CHUNK = 4


def chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]


def escaped_json(doc: dict[str, str]) -> str:
    """JSON whose every string character is a ``\\uXXXX`` escape."""
    items = (
        '"{}": "{}"'.format(k, "".join(f"\\u{ord(c):04x}" for c in v))
        for k, v in doc.items()
    )
    return "{" + ", ".join(items) + "}"


def _header(name: str, value: str) -> bytes:
    raw = value.encode()
    return (
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    )


def frame(event_type: str, payload: dict[str, Any], kind: str = "event") -> bytes:
    """One AWS event-stream message."""
    name = ":exception-type" if kind == "exception" else ":event-type"
    headers = (
        _header(name, event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", kind)
    )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


def halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


def user_text(body: dict[str, Any]) -> str:
    """The last user text of any Bedrock request body shape."""
    for m in reversed(body.get("messages") or []):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    for key in ("prompt", "inputText"):
        if isinstance(body.get(key), str):
            return str(body[key])
    texts = body.get("texts")
    if isinstance(texts, list) and texts:
        return str(texts[0])
    return ""


def tool_name(body: dict[str, Any]) -> str:
    """The first tool the request declares (``lookup`` when none)."""
    tools = (body.get("toolConfig") or {}).get("tools") or [{}]
    return str(tools[0].get("toolSpec", {}).get("name", "lookup"))


def mode(text: str) -> tuple[str, str]:
    for prefix in (
        "TOOL",
        "ESC",
        "REASON",
        "CITE",
        "EXTRA",
        "ERROR",
        "REDIRECT",
        "SPLIT",
    ):
        if text.startswith(prefix + ":"):
            return prefix, text[len(prefix) + 1 :]
    return "TEXT", text


# -- Converse -----------------------------------------------------------------------


def converse(body: dict[str, Any]) -> dict[str, Any]:
    kind, text = mode(user_text(body))
    content: list[dict[str, Any]] = []
    extra: dict[str, Any] | None = None
    if kind in {"TOOL", "ESC"}:
        content.append(
            {
                "toolUse": {
                    "toolUseId": "t1",
                    "name": tool_name(body),
                    "input": {"query": text},
                }
            }
        )
    elif kind == "REASON":
        content.append(
            {"reasoningContent": {"reasoningText": {"text": text, "signature": "s1"}}}
        )
        content.append({"text": "done"})
    elif kind == "CITE":
        content.append(
            {
                "citationsContent": {
                    "content": [{"text": "see the manual"}],
                    "citations": [
                        {
                            "title": "manual",
                            "sourceContent": [{"text": text}],
                            "location": {"documentChar": {"documentIndex": 0}},
                        }
                    ],
                }
            }
        )
    elif kind == "EXTRA":
        content.append({"text": "ok"})
        extra = {"note": text}
    elif kind == "SPLIT":
        content += [{"text": half} for half in halves(text)]
    else:
        content.append({"text": text})
    out: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if kind in {"TOOL", "ESC"} else "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    if extra is not None:
        out["additionalModelResponseFields"] = extra
    return out


def converse_stream(body: dict[str, Any]) -> Iterator[bytes]:
    kind, text = mode(user_text(body))
    yield frame("messageStart", {"role": "assistant", "p": "abcd"})

    def delta(index: int, d: dict[str, Any]) -> bytes:
        return frame(
            "contentBlockDelta", {"contentBlockIndex": index, "delta": d, "p": "xyz"}
        )

    if kind in {"TOOL", "ESC"}:
        args = (
            escaped_json({"query": text})
            if kind == "ESC"
            else json.dumps({"query": text})
        )
        yield frame(
            "contentBlockStart",
            {
                "contentBlockIndex": 0,
                "start": {"toolUse": {"toolUseId": "t1", "name": tool_name(body)}},
            },
        )
        for piece in chunks(args):
            yield delta(0, {"toolUse": {"input": piece}})
        yield frame("contentBlockStop", {"contentBlockIndex": 0})
    elif kind == "REASON":
        for piece in chunks(text):
            yield delta(0, {"reasoningContent": {"text": piece}})
        yield delta(0, {"reasoningContent": {"signature": "sig-1"}})
        yield frame("contentBlockStop", {"contentBlockIndex": 0})
        yield delta(1, {"text": "done"})
        yield frame("contentBlockStop", {"contentBlockIndex": 1})
    elif kind == "CITE":
        yield delta(0, {"text": "see the manual"})
        yield delta(
            0,
            {"citation": {"title": "manual", "sourceContent": [{"text": text}]}},
        )
        yield frame("contentBlockStop", {"contentBlockIndex": 0})
    else:
        parts = halves(text) if kind == "SPLIT" else [text]
        for index, part in enumerate(parts):
            for piece in chunks(part):
                yield delta(index, {"text": piece})
            yield frame("contentBlockStop", {"contentBlockIndex": index})
    yield frame("messageStop", {"stopReason": "end_turn"})
    yield frame(
        "metadata",
        {
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
            "metrics": {"latencyMs": 1},
        },
    )


# -- InvokeModel, by model family -------------------------------------------------


def invoke(model: str, body: dict[str, Any]) -> dict[str, Any]:
    kind, text = mode(user_text(body))
    tool = kind in {"TOOL", "ESC"}
    if "titan-embed" in model:
        return {"embedding": [0.1, 0.2, 0.3], "inputTextTokenCount": 3}
    if "cohere.embed" in model:
        return {
            "embeddings": [[0.1, 0.2]],
            "id": "e1",
            "response_type": "embeddings_floats",
            "texts": [text],
        }
    if "anthropic" in model:
        content: list[dict[str, Any]] = []
        if kind == "REASON":
            content.append({"type": "thinking", "thinking": text, "signature": "s"})
            content.append({"type": "text", "text": "done"})
        elif tool:
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "lookup",
                    "input": {"query": text},
                }
            )
        elif kind == "SPLIT":
            content += [{"type": "text", "text": half} for half in halves(text)]
        else:
            content.append({"type": "text", "text": text})
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if tool else "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    if "llama" in model:
        return {
            "generation": text,
            "prompt_token_count": 1,
            "generation_token_count": 1,
            "stop_reason": "stop",
        }
    if "titan" in model or "nova" in model:
        return {
            "inputTextTokenCount": 1,
            "results": [
                {"tokenCount": 1, "outputText": text, "completionReason": "FINISH"}
            ],
        }
    if "mistral" in model:
        return {"outputs": [{"text": text, "stop_reason": "stop"}]}
    # OpenAI-style (gpt-oss and others answering in chat-completions form).
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else text}
    if tool:
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "lookup",
                    "arguments": escaped_json({"query": text})
                    if kind == "ESC"
                    else json.dumps({"query": text}),
                },
            }
        ]
    return {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def invoke_stream(model: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kind, text = mode(user_text(body))
    if "llama" in model:
        for piece in chunks(text):
            yield {"generation": piece, "stop_reason": None}
        yield {"generation": "", "stop_reason": "stop"}
        return
    yield {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
    }
    if kind in {"TOOL", "ESC"}:
        args = (
            escaped_json({"query": text})
            if kind == "ESC"
            else json.dumps({"query": text})
        )
        yield {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "lookup",
                "input": {},
            },
        }
        for piece in chunks(args):
            yield {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            }
        yield {"type": "content_block_stop", "index": 0}
    else:
        parts = halves(text) if kind == "SPLIT" else [text]
        for index, part in enumerate(parts):
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            for piece in chunks(part):
                yield {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
            yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 1},
    }
    yield {"type": "message_stop"}


# -- the server ---------------------------------------------------------------------


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class BedrockServer:
    """The loopback Bedrock server; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                path = self.path.split("?", 1)[0]
                state.requests.append((unquote(path), body))
                state.route(self, path, body)

        self.server = _Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1][1]

    def route(self, h: BaseHTTPRequestHandler, path: str, body: dict[str, Any]) -> None:
        parts = path.split("/")
        if path.endswith("/apply") and parts[1] == "guardrail":
            self._json(
                h,
                {
                    "action": "NONE",
                    "outputs": [],
                    "assessments": [],
                    "usage": {
                        "topicPolicyUnits": 0,
                        "contentPolicyUnits": 0,
                        "wordPolicyUnits": 0,
                        "sensitiveInformationPolicyUnits": 0,
                        "sensitiveInformationPolicyFreeUnits": 0,
                        "contextualGroundingPolicyUnits": 0,
                    },
                },
            )
            return
        if len(parts) != 4 or parts[1] != "model":
            self._json(h, {"message": "not found"}, status=404)
            return
        model, op = unquote(parts[2]), parts[3]
        kind, text = mode(user_text(body))
        if kind == "REDIRECT":
            h.send_response(307)
            h.send_header("location", text)
            h.send_header("content-length", "0")
            h.end_headers()
        elif kind == "ERROR" and op in {
            "converse-stream",
            "invoke-with-response-stream",
        }:
            self._frames(
                h,
                iter(
                    [
                        frame(
                            "modelStreamErrorException",
                            {"message": text, "originalStatusCode": 500},
                            kind="exception",
                        ),
                    ]
                ),
            )
        elif kind == "ERROR":
            h.send_response(400)
            raw = json.dumps({"message": text}).encode()
            h.send_header("content-type", "application/json")
            h.send_header("x-amzn-errortype", "ValidationException")
            h.send_header("content-length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
        elif op == "converse":
            self._json(h, converse(body))
        elif op == "converse-stream":
            self._frames(h, converse_stream(body))
        elif op == "invoke" and "stability" in model:
            png = b"\x89PNG\r\n\x1a\n\x00\xff\xfe"
            h.send_response(200)
            h.send_header("content-type", "image/png")
            h.send_header("content-length", str(len(png)))
            h.end_headers()
            h.wfile.write(png)
        elif op == "invoke":
            self._json(h, invoke(model, body))
        elif op == "invoke-with-response-stream":
            self._frames(
                h,
                (
                    frame(
                        "chunk",
                        {"bytes": base64.b64encode(json.dumps(e).encode()).decode()},
                    )
                    for e in invoke_stream(model, body)
                ),
            )
        elif op == "count-tokens":
            self._json(h, {"inputTokens": 5})
        else:
            self._json(h, {"message": "unknown operation"}, status=404)

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, doc: Any, status: int = 200) -> None:
        raw = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    @staticmethod
    def _frames(h: BaseHTTPRequestHandler, frames: Iterator[bytes]) -> None:
        h.send_response(200)
        h.send_header("content-type", "application/vnd.amazon.eventstream")
        h.send_header("connection", "close")
        h.end_headers()
        for f in frames:
            h.wfile.write(f)
            h.wfile.flush()
        h.close_connection = True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[BedrockServer]:
    server = BedrockServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def other_server() -> Iterator[BedrockServer]:
    """A second server, declared in another region by the tests that use it."""
    server = BedrockServer()
    yield server
    server.close()


_clients: list[Any] = []


def bedrock_client(url: str | None, region: str = "eu-central-1", **config: Any) -> Any:
    """A real boto3 bedrock-runtime client for ``url``, closed after the test."""
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"max_attempts": 1}, **config),
    )
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_bedrock_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


#: The caller of every test: an internal app refuses anonymous callers.
CALLER = Principal(subject="bedrock-test-user", authenticated=True)


@pytest.fixture(autouse=True)
def _bedrock_caller() -> Iterator[None]:
    with acting_as(CALLER):
        yield
