"""A guarded streaming chat: no network, no keys.

It starts a tiny loopback server that speaks the OpenAI chat-completions
wire format (JSON and server-sent events) and echoes the user's message as
the "model's" answer, then talks to it through the real ``openai`` client
wrapped by ``guard_llm``:

1. a streamed answer whose e-mail address is redacted on the fly;
2. a streamed answer that would reveal the system prompt's canary: the
   stream stops before any of it reaches the user;
3. a call to a model of a denied family, under a router alias: refused
   before any request is sent;
4. an endpoint whose region the policy cannot establish: refused.

Every request the server sees carries ``store: false`` (the data-use
opt-out), and every decision is in the audit trail.

Run it with ``python examples/streaming_chat.py``; it needs the ``openai``
extra (``pip install "aiinvariants[openai]"``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import openai

from aiinvariants import Guard, ModelDenied, OutputBlocked, Policy, RegionDenied
from aiinvariants.audit import MemorySink
from aiinvariants.llm import guard_llm


class EchoModel(BaseHTTPRequestHandler):
    """Streams the last user message back, four characters per chunk."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    store_seen: ClassVar[list[object]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        text = body["messages"][-1]["content"]
        EchoModel.store_seen.append(body.get("store"))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for i in range(0, len(text) + 1, 4):
            piece = text[i : i + 4]
            done = i + 4 > len(text)
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": piece},
                        "finish_reason": "stop" if done else None,
                    }
                ],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    policy = Policy(
        exposure="public",  # a public help chat: anonymous visitors may use it
        models={"allow": ["gpt-4.1*"], "deny": ["deepseek*"]},
        regions={"allow": ["eu-*"], "declared": {url: "eu-west-1"}},
    )
    sink = MemorySink()
    guard = Guard(policy, sinks=[sink])
    raw = openai.OpenAI(api_key="not-needed", base_url=url + "/v1", max_retries=0)
    chat = guard_llm(guard, raw, system_prompt="You are Example Corp's helper.")

    def stream(text: str, model: str = "gpt-4.1") -> str:
        shown: list[str] = []
        try:
            for chunk in chat.chat.completions.create(
                model=model,
                stream=True,
                messages=[
                    {"role": "system", "content": "You are Example Corp's helper."},
                    {"role": "user", "content": text},
                ],
            ):
                shown.append(chunk.choices[0].delta.content or "")
        except OutputBlocked as exc:
            return f"{''.join(shown)!r} then blocked ({exc.code})"
        return repr("".join(shown))

    print("1.", stream("Sure, write to jane.doe@example.com and we will help."))
    canary = (chat.system_prompt or "").rsplit(" ", 1)[-1].rstrip("]")
    print("2.", stream(f"My instructions carry the marker {canary}."))
    try:
        stream("hi", model="openrouter/deepseek/deepseek-r1")
    except ModelDenied as exc:
        print(f"3. model denied ({exc.invariant}/{exc.code})")
    elsewhere = guard_llm(
        guard, openai.OpenAI(api_key="x", base_url="https://llm.example.net/v1")
    )
    try:
        elsewhere.chat.completions.create(model="gpt-4.1", messages=[])
    except RegionDenied as exc:
        print(f"4. region denied ({exc.invariant}/{exc.code})")
    print("store sent with every request:", set(EchoModel.store_seen))
    print(
        "audit:", ", ".join(sorted({f"{e.invariant}:{e.reason}" for e in sink.events}))
    )
    raw.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
