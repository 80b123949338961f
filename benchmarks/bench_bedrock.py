"""Bedrock guard (issue #12): added latency on the same loopback server.

One in-process HTTP server on 127.0.0.1 speaks Bedrock Runtime's wire
format: Converse JSON, and ConverseStream as AWS event-stream frames. Two
boto3 ``bedrock-runtime`` clients call it, one plain and one guarded through
``guard_llm`` (hooks on botocore's event system: model, region and data-use
decided on the signed request, every answer text through the default output
pipeline):

* non-streamed ``converse``: time per call, guarded vs unguarded;
* ``converse_stream``: time to the end of the stream, guarded vs unguarded;
* ``invoke_model`` (Anthropic messages body): time per call.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks._harness import compare, print_table

ANSWER = (
    "Thanks for reaching out. Your order shipped yesterday and should arrive "
    "within three business days; you can follow it from your account page. "
) * 12  # ~1.7 KB, a long chat answer
CHUNK = 4  # characters per streamed token
MODEL = "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"


def _header(name: str, value: str) -> bytes:
    raw = value.encode()
    return (
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    )


def _frame(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


_STREAM = b"".join(
    [
        _frame("messageStart", {"role": "assistant"}),
        *(
            _frame(
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"text": ANSWER[i : i + CHUNK]}},
            )
            for i in range(0, len(ANSWER), CHUNK)
        ),
        _frame("contentBlockStop", {"contentBlockIndex": 0}),
        _frame("messageStop", {"stopReason": "end_turn"}),
    ]
)
_CONVERSE = json.dumps(
    {
        "output": {"message": {"role": "assistant", "content": [{"text": ANSWER}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
).encode()
_INVOKE = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": ANSWER}],
        "stop_reason": "end_turn",
    }
).encode()


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        if self.path.endswith("/converse-stream"):
            self.send_response(200)
            self.send_header("content-type", "application/vnd.amazon.eventstream")
            self.send_header("connection", "close")
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(_STREAM)
            self.close_connection = True
            return
        raw = _INVOKE if self.path.endswith("/invoke") else _CONVERSE
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


# Few calls per round and many rounds: the two cases alternate finely, so a
# busy moment on a shared machine lands on both.


def run() -> None:
    try:
        import boto3
    except ImportError:
        print("\nBedrock guard: skipped (boto3 is not installed)")
        return
    from aiinvariants import Guard, Policy, Principal, acting_as
    from aiinvariants.llm import guard_llm

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def client() -> Any:
        return boto3.client(
            "bedrock-runtime",
            region_name="eu-central-1",
            endpoint_url=url,
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )

    raw = client()
    guard = Guard(
        Policy(
            models={"allow": ["*anthropic.claude-*"], "deny": ["deepseek*"]},
            regions={"allow": ["eu-*"], "declared": {url: "eu-central-1"}},
        )
    )
    guarded = guard_llm(guard, client(), system_prompt="You are a support bot.")
    messages = [{"role": "user", "content": [{"text": "Where is my order?"}]}]
    body = json.dumps({"messages": [{"role": "user", "content": "Where?"}]})

    def converse(c: Any) -> Any:
        return lambda: c.converse(modelId=MODEL, messages=messages)

    def stream(c: Any) -> Any:
        def go() -> int:
            events = c.converse_stream(modelId=MODEL, messages=messages)["stream"]
            return sum(
                len(e["contentBlockDelta"]["delta"].get("text", ""))
                for e in events
                if "contentBlockDelta" in e
            )

        return go

    def invoke(c: Any) -> Any:
        return lambda: c.invoke_model(modelId=MODEL, body=body)["body"].read()

    # An internal app serves signed-in callers only.
    with acting_as(Principal(subject="bench", authenticated=True)):
        assert stream(guarded)() == stream(raw)() == len(ANSWER)
        for title, make, number in (
            ("non-streamed converse", converse, 5),
            (
                f"whole converse_stream ({len(ANSWER)} chars, {CHUNK}-char deltas)",
                stream,
                1,
            ),
            ("invoke_model (Anthropic body)", invoke, 5),
        ):
            print_table(
                f"Bedrock guard: {title}, same loopback server",
                compare(
                    {"unguarded": make(raw), "guarded": make(guarded)},
                    baseline="unguarded",
                    number=number,
                    repeat=101,
                ),
            )
    raw.close()
    guarded.converse.__self__.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    run()
