"""One bearer-token parser: every way of sending an ambiguous token, at every door.

Two readers of one request (a proxy and the app, the guard and the SDK) must
never see two different identities. The one parser reads RFC 6750 section
2.1 strictly and every integration that reads a token uses it: the ASGI
middleware, FastAPI's dependencies, the MCP SDK server (wrapped by
``MCPGuard.asgi`` or not) and FastMCP's ``GuardAuthProvider``. Each class of
ambiguous credentials is refused with the same stable code everywhere.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants.auth._bearer import PROBLEMS, is_b64token, parse_bearer
from aiinvariants.integrations.asgi import BearerAuthMiddleware
from auth_support import mint, verifier

GOOD = mint()
OTHER = mint(sub="mallory")
H = b"authorization"
WSP = b"sec-websocket-protocol"

#: Credentials sent as raw header lists (and a query string), by class, with
#: the code every door answers.
AMBIGUOUS: dict[str, tuple[list[tuple[bytes, bytes]], bytes, str]] = {
    "two headers": (
        [(H, b"Bearer " + GOOD.encode()), (H, b"Bearer " + OTHER.encode())],
        b"",
        "duplicate_authorization",
    ),
    "two headers differing in case": (
        [(b"Authorization", b"Bearer " + GOOD.encode()), (b"AUTHORIZATION", b"x")],
        b"",
        "duplicate_authorization",
    ),
    "two headers, one empty": (
        [(H, b"Bearer " + GOOD.encode()), (H, b"")],
        b"",
        "duplicate_authorization",
    ),
    "comma-joined headers": (
        [(H, b"Bearer " + GOOD.encode() + b", Bearer " + OTHER.encode())],
        b"",
        "malformed",
    ),
    "comma-joined without a space": (
        [(H, b"Bearer " + GOOD.encode() + b"," + OTHER.encode())],
        b"",
        "malformed",
    ),
    "tab after the scheme": ([(H, b"Bearer\t" + GOOD.encode())], b"", "not_bearer"),
    "tab inside the token": (
        [(H, b"Bearer " + GOOD.encode() + b"\tx")],
        b"",
        "malformed",
    ),
    "empty token": ([(H, b"Bearer ")], b"", "empty_token"),
    "scheme only": ([(H, b"bearer")], b"", "empty_token"),
    "token with a space": ([(H, b"Bearer " + GOOD.encode() + b" x")], b"", "malformed"),
    "Bearer twice": ([(H, b"Bearer Bearer " + GOOD.encode())], b"", "malformed"),
    "non-ASCII": ([(H, b"Bearer " + GOOD.encode() + b"\xc3\xa9")], b"", "malformed"),
    "quoted token": ([(H, b'Bearer "' + GOOD.encode() + b'"')], b"", "malformed"),
    "auth-param form": ([(H, b"Bearer token=" + GOOD.encode())], b"", "malformed"),
    "another scheme": ([(H, b"DPoP " + GOOD.encode())], b"", "not_bearer"),
    "access_token in the query alone": (
        [],
        b"access_token=" + GOOD.encode(),
        "token_in_query",
    ),
    "access_token in the query plus the header": (
        [(H, b"Bearer " + GOOD.encode())],
        b"x=1&access_token=" + OTHER.encode(),
        "token_in_query",
    ),
    "access_token percent-encoded": (
        [(H, b"Bearer " + GOOD.encode())],
        b"%61ccess_token=" + OTHER.encode(),
        "token_in_query",
    ),
    "access_token after a semicolon, in capitals": (
        [(H, b"Bearer " + GOOD.encode())],
        b"a=1;ACCESS_TOKEN=" + OTHER.encode(),
        "token_in_query",
    ),
    # A browser cannot set Authorization on a WebSocket: apps pass the token
    # as a subprotocol, which is a second, unverified identity.
    "access_token subprotocol plus the header": (
        [(H, b"Bearer " + GOOD.encode()), (WSP, b"access_token, " + OTHER.encode())],
        b"",
        "token_in_subprotocol",
    ),
    "a JWT alone as the subprotocol": (
        [(WSP, b"graphql-ws, " + OTHER.encode())],
        b"",
        "token_in_subprotocol",
    ),
    "bearer.<token> subprotocol, in capitals": (
        [(b"Sec-WebSocket-Protocol", b"chat, Bearer.opaque-token-123")],
        b"",
        "token_in_subprotocol",
    ),
    "Kubernetes-style subprotocol in a second header": (
        [
            (WSP, b"chat"),
            (WSP, b"base64url.bearer.authorization.k8s.io.b3BhcXVl"),
        ],
        b"",
        "token_in_subprotocol",
    ),
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_the_parser_refuses_each_class(case: str) -> None:
    headers, query, code = AMBIGUOUS[case]
    assert parse_bearer(headers, query=query) == (None, code)
    assert code in PROBLEMS


@pytest.mark.parametrize(
    "value",
    [b"Bearer abc", b"bearer abc", b"BEARER abc", b"Bearer   abc", b" Bearer abc\t"],
)
def test_what_rfc_6750_allows_is_read(value: bytes) -> None:
    assert parse_bearer([(b"Authorization", value)]) == ("abc", None)
    assert parse_bearer([("authorization", value.decode())]) == ("abc", None)


@pytest.mark.parametrize(
    "offered", [b"graphql-ws", b"chat, superchat", b"v1.json.api", b"mqtt"]
)
def test_subprotocols_that_carry_no_credential_are_read_as_before(
    offered: bytes,
) -> None:
    headers = [(H, b"Bearer " + GOOD.encode()), (WSP, offered)]
    assert parse_bearer(headers) == (GOOD, None)


def test_no_credentials_is_not_a_problem() -> None:
    assert parse_bearer([(b"cookie", b"access_token=x")]) == (None, None)
    assert parse_bearer([], query=b"token=x&access=y") == (None, None)


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_property_a_token_is_read_only_from_the_exact_rfc_form(value: bytes) -> None:
    token, problem = parse_bearer([(H, value)])
    if token is None:
        assert problem in PROBLEMS
        return
    text = value.decode("ascii").strip(" \t")
    assert re.fullmatch(r"(?i)bearer +" + re.escape(token), text)
    assert is_b64token(token)


@settings(max_examples=100, deadline=None)
@given(
    first=st.sampled_from([b"Bearer abc", b"Basic x", b""]),
    second=st.sampled_from([b"Bearer abc", b"Bearer def", b""]),
    name=st.sampled_from([b"authorization", b"Authorization", b"aUTHORIZATION"]),
)
def test_property_two_authorization_headers_are_never_read(
    first: bytes, second: bytes, name: bytes
) -> None:
    headers = [(b"authorization", first), (b"x-other", b"1"), (name, second)]
    assert parse_bearer(headers) == (None, "duplicate_authorization")


# -- the doors --------------------------------------------------------------------


async def _asgi(app: Any, headers: list[tuple[bytes, bytes]], query: bytes) -> int:
    """Call an ASGI app with exactly these raw headers; the response status."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/me",
        "raw_path": b"/me",
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"api.example.test"), *headers],
        "server": ("api.example.test", 443),
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    return statuses[0]


@pytest.mark.parametrize("allow_anonymous", [False, True])
@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_the_asgi_middleware_refuses_raw_header_lists(
    case: str, allow_anonymous: bool
) -> None:
    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BearerAuthMiddleware(
        inner, verifier=verifier(), allow_anonymous=allow_anonymous
    )
    headers, query, _ = AMBIGUOUS[case]
    assert asyncio.run(_asgi(app, headers, query)) == 400
    assert reached == []


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_fastapi_refuses_each_class(case: str) -> None:
    from fastapi_support import build

    state = build()
    headers, query, code = AMBIGUOUS[case]

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=state.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:
            url = "/tickets" + ("?" + query.decode() if query else "")
            return await client.get(url, headers=headers)

    response = asyncio.run(go())
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert state.seen == []
    assert GOOD not in response.text
    assert OTHER not in response.text


# -- MCP: the SDK reads the header itself when MCPGuard.asgi is left out ----------


@pytest.fixture(scope="module")
def oauth() -> Iterator[Any]:
    from oauth_support import running_oauth_server

    with running_oauth_server() as server:
        yield server


@pytest.fixture(scope="module", params=[True, False], ids=["wrapped", "sdk-only"])
def mcp_served(oauth: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    from mcp_support import running_http_server

    with running_http_server(oauth, wrapped=request.param) as served:
        yield served, request.param


def _mcp_call(
    url: str, headers: list[tuple[str, str]] | list[tuple[bytes, bytes]], query: str
) -> tuple[int, Any]:
    """initialize, then tools/call read_ticket: the status and the last body."""
    base: list[tuple[Any, Any]] = [
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
        *headers,
    ]
    target = url + ("?" + query if query else "")
    with httpx.Client(timeout=10) as client:
        init = client.post(
            target,
            headers=base,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "attack", "version": "1"},
                },
            },
        )
        if init.status_code != 200:
            return init.status_code, init.json()
        session = init.headers.get("mcp-session-id")
        more = [("mcp-session-id", session)] if session else []
        client.post(
            target,
            headers=base + more,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        call = client.post(
            target,
            headers=base + more,
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "read_ticket", "arguments": {"ticket_id": "T-1"}},
            },
        )
        return call.status_code, call.json()


MCP_CASES = [
    "two headers",
    "two headers differing in case",
    "access_token in the query plus the header",
]


@pytest.mark.parametrize("case", MCP_CASES)
def test_mcp_never_acts_as_an_ambiguous_token(
    oauth: Any, mcp_served: Any, case: str
) -> None:
    served, wrapped = mcp_served
    alice = served_token(oauth, served, "alice")
    mallory = served_token(oauth, served, "mallory")
    raw_headers, query, code = AMBIGUOUS[case]
    headers = [
        (name.decode(), value.decode().replace(GOOD, alice).replace(OTHER, mallory))
        for name, value in raw_headers
    ]
    query_text = query.decode().replace(OTHER, mallory)
    status, body = _mcp_call(served.url, headers, query_text)
    if wrapped:
        assert (status, body["code"]) == (400, code)
        return
    # The SDK alone takes the first header; the guarded tool refuses the call.
    assert status == 200
    assert body["result"]["isError"] is True
    assert f"/{code}]" in body["result"]["content"][0]["text"]
    assert "ticket T-1" not in str(body)
    assert alice not in str(body)


def test_mcp_sdk_only_still_serves_one_clean_token(oauth: Any, mcp_served: Any) -> None:
    served, _ = mcp_served
    alice = served_token(oauth, served, "alice")
    status, body = _mcp_call(served.url, [("authorization", f"Bearer {alice}")], "")
    assert status == 200
    assert "ticket T-1 for alice" in str(body)


def served_token(oauth: Any, served: Any, subject: str) -> str:
    return str(
        oauth.mint_user(subject, audience=served.resource, scopes="tickets:read")
    )


@pytest.fixture(scope="module")
def fastmcp_served(oauth: Any) -> Iterator[Any]:
    from fastmcp_support import running_fastmcp

    with running_fastmcp(oauth) as served:
        yield served


# "Bearer " cannot be sent over HTTP/1.1 (trailing white space is not part of
# a field value): on the wire it is "scheme only".
@pytest.mark.parametrize("case", sorted(set(AMBIGUOUS) - {"empty token"}))
def test_fastmcp_refuses_each_class(oauth: Any, fastmcp_served: Any, case: str) -> None:
    alice = served_token(oauth, fastmcp_served, "alice").encode()
    mallory = served_token(oauth, fastmcp_served, "mallory").encode()
    raw_headers, query, code = AMBIGUOUS[case]
    headers = [
        (name, value.replace(GOOD.encode(), alice).replace(OTHER.encode(), mallory))
        for name, value in raw_headers
    ]
    query_text = query.replace(GOOD.encode(), alice).replace(OTHER.encode(), mallory)
    status, body = _mcp_call(fastmcp_served.url, headers, query_text.decode())
    assert (status, body["code"]) == (400, code)
    assert alice.decode() not in str(body)


# -- RFC 6750 section 2.2: a token in a form body ------------------------------------

FORM = (b"content-type", b"application/x-www-form-urlencoded")

FORM_BODIES: dict[str, tuple[bytes, str | None]] = {
    "access_token field": (b"note=hi&access_token=" + OTHER.encode(), "token_in_body"),
    "percent-encoded name": (b"%61ccess_token=x&note=hi", "token_in_body"),
    "after a semicolon, in capitals": (b"note=hi;ACCESS_TOKEN=x", "token_in_body"),
    "plus-encoded space around it": (b"note=hi&+access_token+=x", "token_in_body"),
    "the word in a value only": (b"note=access_token", None),
    "no token": (b"note=hi", None),
}


@pytest.mark.parametrize("case", sorted(FORM_BODIES))
def test_the_form_check_reads_names_as_the_frameworks_do(case: str) -> None:
    from aiinvariants.auth._bearer import form_problem, is_form

    body, code = FORM_BODIES[case]
    assert form_problem(body, complete=True) == code
    assert form_problem(body, complete=False) == "form_too_large"
    assert is_form([(b"Content-Type", b"application/x-www-form-urlencoded; a=b")])
    assert not is_form([(b"content-type", b"application/json")])


async def _asgi_post(
    app: Any, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, bytes]:
    statuses: list[int] = []
    parts = [
        {"type": "http.request", "body": body[:5], "more_body": True},
        {"type": "http.request", "body": body[5:], "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/notes",
        "query_string": b"",
        "headers": [(b"host", b"api.example.test"), *headers],
    }
    await app(scope, receive, send)
    return statuses[0], body


@pytest.mark.parametrize("case", sorted(FORM_BODIES))
def test_the_asgi_middleware_refuses_a_form_body_token(case: str) -> None:
    body, code = FORM_BODIES[case]
    received: list[bytes] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        received.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BearerAuthMiddleware(inner, verifier=verifier())
    headers = [(H, b"Bearer " + GOOD.encode()), FORM]
    status, _ = asyncio.run(_asgi_post(app, headers, body))
    if code is None:
        assert status == 200
        assert received == [body]  # the app still reads the whole body
    else:
        assert status == 400
        assert received == []


@pytest.mark.parametrize("case", sorted(FORM_BODIES))
def test_fastapi_refuses_a_form_body_token(case: str) -> None:
    from fastapi_support import build

    state = build()
    body, code = FORM_BODIES[case]
    if case == "after a semicolon, in capitals":
        # FastAPI reads names as the route reads them (Starlette's form
        # parser): ";" is no separator there, so the route sees one field
        # "note" and no access_token (the raw-body middleware refuses it).
        code = None

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=state.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:
            return await client.post(
                "/form",
                content=body,
                headers={
                    "authorization": f"Bearer {GOOD}",
                    "content-type": "application/x-www-form-urlencoded",
                },
            )

    response = asyncio.run(go())
    if code is None:
        assert response.status_code == 200
        assert state.seen == [("form", "alice")]
    else:
        assert response.status_code == 400
        assert response.json()["code"] == code
        assert state.seen == []
        assert OTHER not in response.text


# -- FastAPI: a url-encoded body with no declared length (chunked) ---------------


def _chunked_get(state: Any, chunks: list[bytes]) -> httpx.Response:
    """GET /tickets (a route that reads no form) with a chunked url-encoded
    body: httpx sends a generator without Content-Length."""

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=state.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:
            return await client.request(
                "GET",
                "/tickets",
                content=body(),
                headers={
                    "authorization": f"Bearer {GOOD}",
                    "content-type": "application/x-www-form-urlencoded",
                },
            )

    return asyncio.run(go())


def test_fastapi_reads_a_chunked_form_only_up_to_the_bound() -> None:
    from aiinvariants.auth._bearer import MAX_FORM_BYTES
    from fastapi_support import build

    state = build()
    piece = b"note=" + b"a" * 65531  # 64 KiB a chunk
    count = MAX_FORM_BYTES // len(piece) + 2
    chunks = [piece] + [b"a" * len(piece)] * (count - 1)
    response = _chunked_get(state, chunks)
    assert response.status_code == 400
    assert response.json()["code"] == "form_too_large"
    assert state.seen == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"note=hi&access_token=" + OTHER.encode(), "token_in_body"),
        (b"note=hi", None),
    ],
)
def test_fastapi_still_checks_a_small_chunked_form(
    body: bytes, code: str | None
) -> None:
    from fastapi_support import build

    state = build()
    response = _chunked_get(state, [body[:5], body[5:]])
    if code is None:
        assert response.status_code == 200
        assert state.seen
        assert state.seen[0][0] == "tickets"
    else:
        assert response.status_code == 400
        assert response.json()["code"] == code
        assert state.seen == []
        assert OTHER not in response.text


# -- WebSocket: a token offered as a subprotocol ---------------------------------


@pytest.mark.parametrize(
    "subprotocols",
    [["access_token", OTHER], [OTHER], ["bearer." + OTHER.replace(".", "_")]],
)
def test_fastapi_closes_a_websocket_offering_a_token_as_subprotocol(
    subprotocols: list[str],
) -> None:
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from fastapi_support import build

    state = build()
    with (
        TestClient(state.app) as client,
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(
            "/ws",
            headers={"authorization": f"Bearer {GOOD}"},
            subprotocols=subprotocols,
        ) as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 1008


def test_the_asgi_middleware_closes_a_websocket_offering_a_token() -> None:
    reached: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = BearerAuthMiddleware(inner, verifier=verifier())
    scope = {
        "type": "websocket",
        "path": "/ws",
        "query_string": b"",
        "headers": [
            (H, b"Bearer " + GOOD.encode()),
            (WSP, b"access_token, " + OTHER.encode()),
        ],
    }
    asyncio.run(app(scope, receive, send))
    assert reached == []
    assert sent == [{"type": "websocket.close", "code": 1008}]
