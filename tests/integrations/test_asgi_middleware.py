"""BearerAuthMiddleware against a real Starlette app (FastAPI is Starlette-based)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from auth_support import AUDIENCE, ISSUER, mint, verifier

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from aiinvariants import PolicyError, current_principal
from aiinvariants.auth import metadata_url, protected_resource_metadata
from aiinvariants.integrations.asgi import (
    PRINCIPAL_SCOPE_KEY,
    BearerAuthMiddleware,
)

METADATA = protected_resource_metadata(
    resource=AUDIENCE,
    authorization_servers=[ISSUER],
    scopes_supported=["tickets:read", "kb:read"],
)
META_URL = "https://api.example.test/.well-known/oauth-protected-resource"


async def whoami(request: Request) -> JSONResponse:
    p = current_principal()
    assert request.scope[PRINCIPAL_SCOPE_KEY] is p
    return JSONResponse({"sub": p.subject, "auth": p.authenticated})


async def stream(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0)
            # The principal still holds while the body streams.
            yield (current_principal().subject + "\n").encode()

    return StreamingResponse(body())


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def app(**kwargs: object) -> BearerAuthMiddleware:
    inner = Starlette(
        routes=[
            Route("/me", whoami),
            Route("/stream", stream),
            Route("/health", health),
        ]
    )
    return BearerAuthMiddleware(
        inner,
        verifier=verifier(),
        metadata=METADATA,
        **kwargs,  # type: ignore[arg-type]
    )


async def get(
    asgi: BearerAuthMiddleware, path: str, token: str | None = None, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://api.example.test"
    ) as client:
        return await client.get(path, headers=headers)


def run(coro: object) -> httpx.Response:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_valid_token_sets_the_principal() -> None:
    response = run(get(app(), "/me", mint()))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "auth": True}


def test_principal_holds_for_a_streaming_body() -> None:
    response = run(get(app(), "/stream", mint()))
    assert response.text == "alice\nalice\nalice\n"


def test_missing_token_is_a_401_with_resource_metadata() -> None:
    response = run(get(app(), "/me"))
    assert response.status_code == 401
    assert (
        response.headers["www-authenticate"] == f'Bearer resource_metadata="{META_URL}"'
    )


def test_invalid_token_is_a_401_with_the_reason_code() -> None:
    token = mint(aud="https://other.example.test")
    response = run(get(app(), "/me", token))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert 'error_description="wrong_audience"' in challenge
    assert f'resource_metadata="{META_URL}"' in challenge
    assert token not in response.text
    assert token.split(".")[2] not in challenge


def test_bad_token_never_downgrades_to_anonymous() -> None:
    response = run(get(app(allow_anonymous=True), "/me", "garbage.token.x"))
    assert response.status_code == 401
    anonymous = run(get(app(allow_anonymous=True), "/me"))
    assert anonymous.json() == {"sub": "anonymous", "auth": False}


@pytest.mark.parametrize(
    "value", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer a b", "bearer  "]
)
def test_malformed_authorization_headers(value: str) -> None:
    response = run(get(app(), "/me", Authorization=value))
    assert response.status_code in (400, 401)
    assert "www-authenticate" in response.headers


def test_metadata_is_served_unauthenticated() -> None:
    response = run(get(app(), "/.well-known/oauth-protected-resource"))
    assert response.status_code == 200
    assert response.json() == METADATA


def test_excluded_paths() -> None:
    response = run(get(app(exclude_paths=["/health"]), "/health"))
    assert response.json() == {"ok": True}


def test_metadata_url_places_the_well_known_segment_before_the_path() -> None:
    assert (
        metadata_url("https://api.example.test/v1/")
        == "https://api.example.test/.well-known/oauth-protected-resource/v1"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resource": "http://api.example.test", "authorization_servers": [ISSUER]},
        {"resource": AUDIENCE, "authorization_servers": []},
        {
            "resource": AUDIENCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ['a"b'],
        },
    ],
)
def test_metadata_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        protected_resource_metadata(**kwargs)  # type: ignore[arg-type]


def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def inner(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(scope["type"])

    asyncio.run(
        BearerAuthMiddleware(inner, verifier=verifier())(
            {"type": "lifespan"}, None, None
        )
    )  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_websocket_without_token_is_closed() -> None:
    sent: list[dict[str, object]] = []

    async def inner(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("must not be reached")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": []}
    asyncio.run(BearerAuthMiddleware(inner, verifier=verifier())(scope, None, send))  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008}]
