"""HTTP pieces of the MCP server guard: bodies, challenges, metadata.

What :meth:`aiinvariants.integrations.mcp.MCPGuard.asgi` sends before a
request reaches the SDK, in RFC 6750 form (``bearer_challenge``):

- ``400 invalid_request`` for an unusable ``Authorization`` header (another
  scheme, two headers, a token in the query);
- ``401`` with no error code when no token came, ``error="invalid_token"``
  when it did not verify; both carry ``scope="..."`` (what the request
  needs, else every scope the server supports) and ``resource_metadata``,
  as the MCP authorization spec asks, so a client asks for the right
  scopes at once;
- ``403 error="insufficient_scope"`` with ``scope=`` the scopes the call
  needs (step-up).

The RFC 9728 metadata the SDK serves gets ``scopes_supported`` from the
policy: every scope a tool, resource or prompt needs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final

from aiinvariants._errors import ScopeDenied

__all__ = [
    "MAX_PRECHECK_BYTES",
    "arguments_of",
    "operations",
    "read_body",
    "replay",
    "send_challenge",
    "send_insufficient_scope",
    "serve_metadata_with_scopes",
]

Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

#: The largest JSON-RPC body the pre-check reads; bigger bodies go to the
#: SDK untouched (its own limit applies) and are still checked inside.
MAX_PRECHECK_BYTES: Final = 4 * 1024 * 1024
_MAX_METADATA_BYTES: Final = 256 * 1024


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body read so far, and whether it is complete."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return b"".join(chunks), False
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_PRECHECK_BYTES:
            return b"".join(chunks), False


def replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A ``receive`` that hands ``body`` out first, then reads on."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed


def operations(body: bytes) -> list[tuple[str, Mapping[str, Any]]]:
    """``(method, params)`` of every JSON-RPC request in ``body`` (a batch too)."""
    try:
        message = json.loads(body)
    except ValueError:
        return []
    messages = message if isinstance(message, list) else [message]
    found: list[tuple[str, Mapping[str, Any]]] = []
    for item in messages:
        if isinstance(item, dict) and isinstance(item.get("method"), str):
            params = item.get("params")
            found.append((item["method"], params if isinstance(params, dict) else {}))
    return found


async def send_challenge(
    send: Send, status: int, challenge: str, document: Mapping[str, Any]
) -> None:
    """Answer ``status`` with ``WWW-Authenticate: challenge`` and a JSON body."""
    body = json.dumps(dict(document)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode("latin-1")),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def serve_metadata_with_scopes(
    app: App,
    scope: MutableMapping[str, Any],
    receive: Receive,
    send: Send,
    scopes: Iterable[str],
) -> None:
    """Let ``app`` answer the metadata request; add ``scopes_supported``.

    The SDK's document keeps every member it has; ``scopes_supported``
    becomes the union of its own and ``scopes``. Anything but a complete
    200 JSON object is passed on unchanged.
    """
    start: dict[str, Any] | None = None
    chunks: list[bytes] = []
    passthrough = False

    async def capture(message: Any) -> None:
        nonlocal start, passthrough
        if passthrough:
            await send(message)
        elif message.get("type") == "http.response.start":
            start = dict(message)
            if start.get("status") != 200:
                passthrough = True
                await send(message)
        elif message.get("type") == "http.response.body":
            chunks.append(message.get("body", b""))
            if sum(len(c) for c in chunks) > _MAX_METADATA_BYTES:
                passthrough = True
                await _flush(send, start, chunks, more=message.get("more_body", False))
        else:
            await send(message)

    await app(scope, receive, capture)
    if passthrough or start is None:
        return
    body = b"".join(chunks)
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        listed = document.get("scopes_supported")
        own = (
            [s for s in listed if isinstance(s, str)]
            if isinstance(listed, list)
            else []
        )
        merged = sorted(set(own) | set(scopes))
        if merged:
            document["scopes_supported"] = merged
        body = json.dumps(document).encode()
    headers = [
        (k, v)
        for k, v in start.get("headers", [])
        if bytes(k).lower() != b"content-length"
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _flush(
    send: Send, start: dict[str, Any] | None, chunks: list[bytes], *, more: bool
) -> None:
    if start is not None:
        await send(start)
    await send(
        {"type": "http.response.body", "body": b"".join(chunks), "more_body": more}
    )


def arguments_of(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``arguments`` of a ``tools/call``'s params, if they are a mapping."""
    arguments = params.get("arguments")
    return arguments if isinstance(arguments, Mapping) else None


async def send_insufficient_scope(
    send: Send, denial: ScopeDenied, metadata: str
) -> None:
    """Answer 403 ``insufficient_scope`` naming every scope the call needs."""
    challenge = ScopeDenied(
        denial.reason,
        required=denial.required,
        missing=denial.missing,
        resource_metadata=metadata,
    ).www_authenticate
    document = {
        "error": "insufficient_scope",
        "error_description": "the token lacks a scope this call needs",
        "scope": " ".join(denial.required),
    }
    await send_challenge(send, 403, challenge, document)
