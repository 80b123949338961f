"""LLM client guard (issues #7, #12): added latency on the same loopback server.

Since #12 the guard runs at the wire: the request is checked as the SDK
sends it (httpx transport) and the answer is rewritten before the SDK
decodes it (JSON walked; server-sent events re-framed event by event). The
goal for the non-streamed call and the whole stream is at most 1.1x.

One in-process HTTP server on 127.0.0.1 speaks the OpenAI chat-completions
wire format (JSON, and server-sent events for streams). The same
``openai.OpenAI`` client is called directly and through ``guard_llm`` with
the default policy (every output filter on) plus a model allow-list,
a declared region and ``store=False``:

* non-streamed call: time per call, guarded vs unguarded;
* stream: time to the first *safe* token (the first non-empty content the
  caller sees) and time to the end of the stream, guarded vs unguarded;
* the URL rule every request passes (its verdict is kept for up to 64
  URLs per client), next to a whole guarded call.

The guard holds back the text that could still be part of a finding
(``StreamGuard``: at most ``L + 2C`` characters), so the first safe token of
a guarded stream arrives once that much text has been received.
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks._harness import compare, print_table

ANSWER = (
    "Thanks for reaching out. Your order shipped yesterday and should arrive "
    "within three business days; you can follow it from your account page. "
) * 12  # ~1.7 KB, a long chat answer
CHUNK = 4  # characters per streamed token, as providers send them


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        base = {"id": "c1", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            doc = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": ANSWER},
                        "finish_reason": "stop",
                    }
                ],
            }
            raw = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        events = []
        for i in range(0, len(ANSWER), CHUNK):
            last = i + CHUNK >= len(ANSWER)
            chunk = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": ANSWER[i : i + CHUNK]},
                        "finish_reason": "stop" if last else None,
                    }
                ],
            }
            events.append(f"data: {json.dumps(chunk)}\n\n")
        events.append("data: [DONE]\n\n")
        with contextlib.suppress(OSError):
            for event in events:
                self.wfile.write(event.encode())
        self.close_connection = True


def run() -> None:
    try:
        import openai
    except ImportError:
        print("\nLLM client guard: skipped (openai is not installed)")
        return
    from aiinvariants import Guard, Policy
    from aiinvariants.llm import guard_llm

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    raw = openai.OpenAI(api_key="k", base_url=url + "/v1", max_retries=0)
    guard = Guard(
        Policy(
            exposure="public",  # an anonymous chat: internal apps refuse it
            models={"allow": ["gpt-4.1*"], "deny": ["deepseek*"]},
            regions={"allow": ["eu-*"], "declared": {url: "eu-west-1"}},
        )
    )
    guarded = guard_llm(guard, raw, system_prompt="You are a support bot.")
    messages = [{"role": "user", "content": "Where is my order?"}]

    def plain_call() -> object:
        return raw.chat.completions.create(model="gpt-4.1", messages=messages)  # type: ignore[arg-type]

    def guarded_call() -> object:
        return guarded.chat.completions.create(model="gpt-4.1", messages=messages)

    def first_token(client: Any) -> Any:
        def go() -> str:
            stream = client.chat.completions.create(
                model="gpt-4.1", messages=messages, stream=True
            )
            with stream:
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        return str(chunk.choices[0].delta.content)
            return ""

        return go

    def whole_stream(client: Any) -> Any:
        def go() -> int:
            stream = client.chat.completions.create(
                model="gpt-4.1", messages=messages, stream=True
            )
            return sum(len(c.choices[0].delta.content or "") for c in stream)

        return go

    assert guarded_call() is not None
    print_table(
        "LLM client guard: non-streamed chat call, same loopback server",
        compare(
            {"unguarded": plain_call, "guarded": guarded_call},
            baseline="unguarded",
            number=30,
            repeat=7,
        ),
    )
    print_table(
        f"LLM client guard: time to first safe token ({len(ANSWER)}-char answer, "
        f"{CHUNK}-char tokens)",
        compare(
            {"unguarded": first_token(raw), "guarded": first_token(guarded)},
            baseline="unguarded",
            number=10,
            repeat=7,
        ),
    )
    print_table(
        "LLM client guard: whole stream",
        compare(
            {"unguarded": whole_stream(raw), "guarded": whole_stream(guarded)},
            baseline="unguarded",
            number=10,
            repeat=7,
        ),
    )
    from aiinvariants._internal.urls import url_problem

    sent_to = url + "/v1/chat/completions"
    print_table(
        "LLM client guard: the URL rule on each request, next to a whole call",
        compare(
            {
                "guarded call": guarded_call,
                "URL rule, URL seen before": lambda: guarded.checks.check_destination(
                    sent_to
                ),
                "URL rule, first sight": lambda: url_problem(sent_to),
            },
            baseline="guarded call",
            number=30,
            repeat=7,
        ),
    )
    raw.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    run()
