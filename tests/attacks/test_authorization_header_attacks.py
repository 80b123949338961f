"""Every unusable Authorization header is refused, the same way in header and body.

A client (or an attacker probing the API) must never be told two different
things: the RFC 6750 ``error`` of the ``WWW-Authenticate`` challenge and the
``error`` of the JSON body agree, the status follows from it (400 for a
malformed request, 401 for a token that failed), and no such request ever
reaches the app, not even as the anonymous principal of a public app.
"""

from __future__ import annotations

import asyncio
import base64
import re

import httpx
import pytest

from auth_support import mint, verifier

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aiinvariants.integrations.asgi import BearerAuthMiddleware

REACHED: list[str] = []


async def whoami(request: Request) -> JSONResponse:
    REACHED.append(request.url.path)
    return JSONResponse({"ok": True})


def app(*, allow_anonymous: bool) -> BearerAuthMiddleware:
    return BearerAuthMiddleware(
        Starlette(routes=[Route("/me", whoami)]),
        verifier=verifier(),
        allow_anonymous=allow_anonymous,
    )


def send(
    headers: list[tuple[bytes, bytes]], *, allow_anonymous: bool
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app(allow_anonymous=allow_anonymous))
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:
            return await client.get("/me", headers=headers)

    return asyncio.run(go())


def challenge_error(response: httpx.Response) -> str | None:
    found = re.search(r'\berror="([^"]+)"', response.headers["www-authenticate"])
    return found.group(1) if found else None


BASIC = b"Basic " + base64.b64encode(b"alice:secret")
MALFORMED = {
    "basic": ([(b"authorization", BASIC)], "not_bearer"),
    "digest": ([(b"authorization", b'Digest username="alice"')], "not_bearer"),
    "token_scheme_only": ([(b"authorization", b"Bearer")], "empty_token"),
    "blank_token": ([(b"authorization", b"Bearer    ")], "empty_token"),
    "two_tokens": ([(b"authorization", b"Bearer a b")], "malformed"),
    "tab_separated": ([(b"authorization", b"Bearer\tabc")], "not_bearer"),
    "non_ascii": ([(b"authorization", b"Bearer \xff\xfe")], "malformed"),
    "huge": ([(b"authorization", b"Bearer " + b"a" * 70000)], "too_large"),
    "two_headers": (
        [(b"authorization", b"Bearer x.y.z"), (b"authorization", BASIC)],
        "duplicate_authorization",
    ),
}


@pytest.mark.parametrize("allow_anonymous", [False, True])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_header_is_a_400_with_one_error(
    case: str, allow_anonymous: bool
) -> None:
    headers, code = MALFORMED[case]
    REACHED.clear()
    response = send(headers, allow_anonymous=allow_anonymous)
    body = response.json()
    assert response.status_code == 400
    assert body["error"] == challenge_error(response) == "invalid_request"
    assert body["code"] == code
    assert body["error_description"]
    assert f'error_description="{code}"' in response.headers["www-authenticate"]
    assert REACHED == []
    # Credentials of the refused header are never echoed back.
    assert BASIC.decode() not in response.text
    assert "secret" not in response.text


@pytest.mark.parametrize("allow_anonymous", [False, True])
@pytest.mark.parametrize(
    "token",
    [
        "garbage.token.x",
        mint(aud="https://other.example.test"),
        mint(exp=1),
    ],
)
def test_rejected_token_is_a_401_with_one_error(
    token: str, allow_anonymous: bool
) -> None:
    REACHED.clear()
    response = send(
        [(b"authorization", b"Bearer " + token.encode())],
        allow_anonymous=allow_anonymous,
    )
    assert response.status_code == 401
    assert response.json()["error"] == challenge_error(response) == "invalid_token"
    assert REACHED == []
    assert token not in response.text


def test_no_header_is_a_401_without_an_error_code() -> None:
    REACHED.clear()
    response = send([], allow_anonymous=False)
    assert response.status_code == 401
    assert challenge_error(response) is None
    assert response.json() == {"error": "unauthorized", "code": None}
    assert REACHED == []
