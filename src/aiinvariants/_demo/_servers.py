"""The loopback servers the demo talks to: an identity provider's JWKS, a
document store, a model, a safety classifier and a downstream tickets API.

One ``ThreadingHTTPServer`` on 127.0.0.1 with an ephemeral port, started and
stopped by the demo; it never listens on another interface.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiinvariants._demo._data import DOCUMENTS, MODEL_ANSWERS, UNSAFE_MARKER

__all__ = ["DemoServers"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet: the demo prints
        pass

    def _reply(self, status: int, document: object) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        if self.path == "/jwks.json":
            self._reply(200, self.server.jwks)
        elif self.path.startswith("/tickets"):
            self._reply(200, {"tickets": ["T-7"]})
        else:
            self._reply(404, {"error": "not_found"})

    def do_POST(self) -> None:
        self.server.hits[self.path] += 1
        body = self._body()
        if self.path == "/store/search":
            self._reply(200, _search(body["n"], body.get("labels")))
        elif self.path == "/model":
            answer = MODEL_ANSWERS[body["prompt"]]
            self._reply(200, {"chunks": _chunks(answer, 5)})
        elif self.path == "/v1/chat/completions":
            text = body["messages"][-1]["content"]
            verdict = "unsafe\nS1" if UNSAFE_MARKER in text else "safe"
            self._reply(
                200,
                {
                    "id": "c1",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": verdict},
                        }
                    ],
                },
            )
        else:
            self._reply(404, {"error": "not_found"})


def _search(n: int, labels: Sequence[str] | None) -> list[dict[str, Any]]:
    """The store's top ``n``, restricted to ``labels`` when given (push-down)."""
    found = [
        doc
        for doc in DOCUMENTS
        if labels is None or doc["metadata"]["classification"] in labels
    ]
    return found[:n]


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    jwks: Mapping[str, Any]
    hits: Counter[str]


class DemoServers:
    """Start the servers on 127.0.0.1; ``url`` is their base URL."""

    def __init__(self, *, jwks: Mapping[str, Any]) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.jwks = jwks
        self._server.hits = Counter()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aiinvariants-demo", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def hits(self, path: str) -> int:
        """How many requests reached ``path``."""
        return self._server.hits[path]

    def __enter__(self) -> DemoServers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
