"""Red team of BearerAuthMiddleware: header shapes that reached the app.

The ASGI spec says header names "should be lowercased, but it is not
required; servers should preserve header case on a best-effort basis", and
frameworks or WSGI bridges behind the middleware read ``Authorization`` in
any case. RFC 6750 section 3.1: a request that "uses more than one method
for including an access token" is ``invalid_request``; section 2.3 (query)
tokens also end up in logs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aiinvariants import ANONYMOUS, PolicyError, current_principal
from aiinvariants.integrations.asgi import BearerAuthMiddleware
from auth_support import mint, verifier

Reached = list[str]


def call(
    headers: list[tuple[bytes, bytes]],
    *,
    allow_anonymous: bool,
    query: bytes = b"",
) -> tuple[int, dict[str, Any], Reached]:
    reached: Reached = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(current_principal().subject)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = BearerAuthMiddleware(
        app, verifier=verifier(), allow_anonymous=allow_anonymous
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/me",
        "headers": headers,
        "query_string": query,
    }
    asyncio.run(middleware(scope, receive, send))
    status = sent[0]["status"]
    body = json.loads(sent[1]["body"] or b"{}")
    return status, body, reached


@pytest.mark.parametrize("allow_anonymous", [False, True])
def test_a_bad_token_under_a_capitalised_name_never_reaches_the_app(
    allow_anonymous: bool,
) -> None:
    # Before: the middleware looked for b"authorization" only, saw no token
    # and let a public app's request through as anonymous, the bad token
    # still in the headers for anything downstream that reads them.
    status, body, reached = call(
        [(b"Authorization", b"Bearer not-a-token")], allow_anonymous=allow_anonymous
    )
    assert reached == []
    assert status == 401
    assert body["error"] == "invalid_token"


def test_a_valid_token_under_a_capitalised_name_is_the_principal() -> None:
    status, _, reached = call(
        [(b"Authorization", f"Bearer {mint()}".encode())], allow_anonymous=True
    )
    assert (status, reached) == (200, ["alice"])


@pytest.mark.parametrize("allow_anonymous", [False, True])
def test_two_authorization_headers_in_different_case_are_refused(
    allow_anonymous: bool,
) -> None:
    # Before: only the lowercase one was verified; the other, unverified,
    # went along to the app (a WSGI bridge would merge or pick either).
    status, body, reached = call(
        [
            (b"authorization", f"Bearer {mint()}".encode()),
            (b"AUTHORIZATION", b"Bearer forged"),
        ],
        allow_anonymous=allow_anonymous,
    )
    assert reached == []
    assert status == 400
    assert body["code"] == "duplicate_authorization"


@pytest.mark.parametrize(
    "query", [b"access_token=forged", b"x=1&%61ccess_token=forged", b"access_token"]
)
@pytest.mark.parametrize("with_header", [False, True])
def test_a_token_in_the_query_is_an_invalid_request(
    query: bytes, with_header: bool
) -> None:
    # Before: ignored, so a public app ran as anonymous (or as the header's
    # principal) with a second, never verified token in its query params.
    headers = [(b"authorization", f"Bearer {mint()}".encode())] if with_header else []
    status, body, reached = call(headers, allow_anonymous=True, query=query)
    assert reached == []
    assert status == 400
    assert body["error"] == "invalid_request"
    assert body["code"] == "token_in_query"
    assert "forged" not in json.dumps(body)


def test_a_query_without_a_token_still_passes() -> None:
    status, _, reached = call(
        [], allow_anonymous=True, query=b"q=access_tokens&my_access_token=1"
    )
    assert (status, reached) == (200, ["anonymous"])


@pytest.mark.parametrize("kind", ["webtransport", "http2", None])
def test_a_scope_type_it_cannot_authenticate_never_reaches_the_app(
    kind: str | None,
) -> None:
    # Before: everything but http and websocket passed straight through
    # ("lifespan and others"), with no token checked and no principal set.
    reached: list[object] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    middleware = BearerAuthMiddleware(app, verifier=verifier(), allow_anonymous=True)
    scope = {"type": kind, "path": "/me", "headers": [], "query_string": b""}
    with pytest.raises(PolicyError, match="cannot authenticate"):
        asyncio.run(middleware(scope, nothing, ignore))
    assert reached == []


class _Lenient:
    """A custom verifier that answers a token it does not accept with a
    principal instead of raising (found by the FastAPI red team)."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    async def averify(self, token: str) -> Any:
        return self.answer


@pytest.mark.parametrize("allow_anonymous", [False, True])
@pytest.mark.parametrize("answer", [ANONYMOUS, None, "alice"], ids=repr)
def test_a_present_token_the_verifier_does_not_authenticate_is_refused(
    allow_anonymous: bool, answer: object
) -> None:
    reached: Reached = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(current_principal().subject)

    middleware = BearerAuthMiddleware(
        app, verifier=_Lenient(answer), allow_anonymous=allow_anonymous
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/me",
        "headers": [(b"authorization", b"Bearer forged")],
        "query_string": b"",
    }
    asyncio.run(middleware(scope, receive, send))
    assert reached == []
    assert sent[0]["status"] == 401
    assert json.loads(sent[1]["body"])["error"] == "invalid_token"
