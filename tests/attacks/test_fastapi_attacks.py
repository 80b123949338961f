"""Attacks on a FastAPI app guarded by FastAPIAuth, by class.

For each route to the same effect (the endpoint running as someone, or as
anyone, without a verified bearer token in the one place it may travel) the
test asks what really happens: the status and stable ``code`` the client
gets, whether the endpoint body ran and as whom, and what travels back.

Classes: a token placed anywhere but one ``Authorization: Bearer`` header;
a bad token that could downgrade to anonymous; routes that declare no
dependency (plain, form, included, mounted, added late); a dependency
override left in place; requests that could see each other's principal;
secrets in answers and audit events; scope names that could inject into
the challenge; scope look-alikes; path and method variants of a route.
"""

import asyncio
import base64
import json
import re
import socket
import warnings
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_support import b64json, claims, mint, verifier
from fastapi_support import App, build, policy, serving
from oauth_support import CLIENT_ID, CLIENT_SECRET, running_oauth_server
from secret_graph import assert_no_secret_reachable

pytest.importorskip("fastapi")

from fastapi import APIRouter, Depends, FastAPI, Security, WebSocket
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from aiinvariants import (
    AccessDenied,
    Guard,
    InsecureUsageWarning,
    PolicyError,
    Principal,
    current_principal,
)
from aiinvariants.auth import JWTVerifier, TokenExchanger
from aiinvariants.integrations.asgi import BearerAuthMiddleware
from aiinvariants.integrations.fastapi import FastAPIAuth

TOKEN = mint()  # alice: tickets:read kb:read
ALICE = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def guarded():  # type: ignore[no-untyped-def]
    state = build()
    with TestClient(state.app) as client:
        yield state, client


def reached_as(state: App, subject: str) -> bool:
    return any(who == subject for _, who in state.seen)


# -- the token travels only in one Authorization: Bearer header ----------------


@pytest.mark.parametrize(
    "query",
    [
        f"access_token={TOKEN}",
        f"%61ccess_token={TOKEN}",
        f"x=1;access_token={TOKEN}",
        f"ACCESS_TOKEN={TOKEN}",
        f"access_token+={TOKEN}",
        "access_token",
    ],
)
@pytest.mark.parametrize("path", ["/tickets", "/health", "/plain"])
@pytest.mark.parametrize("with_header", [False, True])
def test_a_token_in_the_query_is_refused_on_every_route(
    guarded,  # type: ignore[no-untyped-def]
    query: str,
    path: str,
    with_header: bool,
) -> None:
    state, client = guarded
    response = client.get(f"{path}?{query}", headers=ALICE if with_header else {})
    assert response.status_code == 400
    assert response.json()["code"] == "token_in_query"
    assert response.headers["www-authenticate"].startswith(
        'Bearer error="invalid_request"'
    )
    assert state.seen == []
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    "placement",
    [
        {"headers": {"X-Access-Token": TOKEN}},
        {"headers": {"X-Auth-Token": f"Bearer {TOKEN}"}},
        {"headers": {"X-Forwarded-Authorization": f"Bearer {TOKEN}"}},
        {"headers": {"Proxy-Authorization": f"Bearer {TOKEN}"}},
        {"headers": {"X-Authorization": f"Bearer {TOKEN}"}},
        {"cookies": {"access_token": TOKEN}},
        {"cookies": {"Authorization": f"Bearer {TOKEN}"}},
        {"data": {"access_token": TOKEN}},  # RFC 6750 section 2.2 form body
    ],
    ids=lambda p: "-".join(f"{k}:{next(iter(v))}" for k, v in p.items()),
)
@pytest.mark.parametrize("path", ["/form", "/health"])
def test_a_token_anywhere_else_is_never_an_identity(
    guarded,  # type: ignore[no-untyped-def]
    placement: dict[str, Any],
    path: str,
) -> None:
    state, client = guarded
    client.cookies.clear()
    cookies = placement.get("cookies")
    if cookies:
        client.cookies.update(cookies)
    if path == "/form":
        response = client.post(
            path, headers=placement.get("headers"), data=placement.get("data")
        )
        if "data" in placement:  # RFC 6750 section 2.2: refused, not read
            assert response.status_code == 400
            assert response.json()["code"] == "token_in_body"
        else:
            assert response.status_code == 401  # the gate: internal needs a user
            assert response.json()["code"] == "authentication_required"
    else:
        response = client.request(
            "POST" if "data" in placement else "GET",
            path,
            headers=placement.get("headers"),
            data=placement.get("data"),
        )
        if "data" not in placement:
            assert response.json() == {"sub": "anonymous"}
    client.cookies.clear()
    assert not reached_as(state, "alice")


MALFORMED = {
    "basic": ([(b"authorization", b"Basic " + base64.b64encode(b"alice:pw"))], 400),
    "token_scheme": ([(b"authorization", b"Token " + TOKEN.encode())], 400),
    "jwt_scheme": ([(b"authorization", b"JWT " + TOKEN.encode())], 400),
    "colon": ([(b"authorization", b"Bearer: " + TOKEN.encode())], 400),
    "bare_token": ([(b"authorization", TOKEN.encode())], 400),
    "two_tokens": ([(b"authorization", b"Bearer " + TOKEN.encode() + b" x")], 400),
    "tab": ([(b"authorization", b"Bearer\t" + TOKEN.encode())], 400),
    "non_ascii": ([(b"authorization", b"Bearer \xc3\xa9" + TOKEN.encode())], 400),
    "two_headers": (
        [
            (b"authorization", b"Bearer " + TOKEN.encode()),
            (b"Authorization", b"Bearer forged"),
        ],
        400,
    ),
    "same_twice": (
        [
            (b"authorization", b"Bearer " + TOKEN.encode()),
            (b"authorization", b"Bearer " + TOKEN.encode()),
        ],
        400,
    ),
    "empty": ([(b"authorization", b"Bearer ")], 400),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("path", ["/tickets", "/health", "/plain"])
def test_an_unusable_authorization_header_is_an_invalid_request(
    guarded,  # type: ignore[no-untyped-def]
    case: str,
    path: str,
) -> None:
    state, client = guarded
    headers, status = MALFORMED[case]
    response = client.get(path, headers=headers)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == "invalid_request"
    assert re.match(
        r'Bearer error="invalid_request"', response.headers["www-authenticate"]
    )
    assert state.seen == []
    assert TOKEN not in response.text


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_scheme_name_is_case_insensitive(
    guarded,  # type: ignore[no-untyped-def]
    scheme: str,
) -> None:
    # RFC 7235 section 2.1: the auth-scheme is a case-insensitive token.
    _, client = guarded
    response = client.get("/tickets", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.json()["sub"] == "alice"


# A header value assembled from the pieces attacks are made of.
PIECES = st.sampled_from(
    [
        "Bearer",
        "bearer",
        "Basic",
        "Token",
        " ",
        "  ",
        "\t",
        ",",
        ":",
        "=",
        '"',
        TOKEN,
        "x.y.z",
        "é",
    ]
)


def _parity_apps() -> tuple[FastAPI, BearerAuthMiddleware]:
    state = build(exposure="public")

    async def whoami(request: Any) -> PlainTextResponse:
        return PlainTextResponse(current_principal().subject)

    middleware = BearerAuthMiddleware(
        Starlette(routes=[Route("/plain", whoami)]),
        verifier=verifier(),
        allow_anonymous=True,
    )
    return state.app, middleware


PARITY = _parity_apps()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=st.lists(PIECES, min_size=1, max_size=5).map("".join))
def test_one_parser_the_same_answer_as_the_asgi_middleware(value: str) -> None:
    """Property: FastAPIAuth and BearerAuthMiddleware answer every header
    value the same way, and an endpoint runs only as alice or anonymous."""
    app, middleware = PARITY
    raw = [(b"authorization", value.encode("utf-8"))]

    async def both() -> tuple[httpx.Response, httpx.Response]:
        results = []
        for asgi in (app, middleware):
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(
                transport=transport, base_url="https://api.example.test"
            ) as client:
                results.append(await client.get("/plain", headers=raw))
        return results[0], results[1]

    ours, reference = asyncio.run(both())
    assert ours.status_code == reference.status_code
    if ours.status_code == 200:
        assert ours.json()["sub"] == reference.text
        assert reference.text in ("alice", "anonymous")
    else:
        assert ours.json()["error"] == reference.json()["error"]
        assert ours.json()["code"] == reference.json()["code"]


# -- a bad token never downgrades to anonymous ----------------------------------


def _unsigned() -> str:
    return f"{b64json({'alg': 'none', 'typ': 'at+jwt'})}.{b64json(claims())}."


BAD_TOKENS = {
    "garbage": "garbage.token.x",
    "expired": mint(exp=1),
    "other_audience": mint(aud="https://other.example.test"),
    "alg_none": _unsigned(),
    "truncated_signature": TOKEN[:-8],
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
@pytest.mark.parametrize(
    ("exposure", "path"),
    [("internal", "/health"), ("public", "/plain"), ("public", "/health")],
)
def test_a_bad_token_is_refused_where_anonymous_is_allowed(
    name: str, exposure: str, path: str
) -> None:
    state = build(exposure=exposure)
    token = BAD_TOKENS[name]
    with TestClient(state.app) as client:
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert state.seen == []
    assert token not in response.text
    assert token.split(".")[0] not in response.headers["www-authenticate"]


# -- routes that declare no dependency -------------------------------------------


@pytest.mark.parametrize("path", ["/plain", "/form"])
def test_the_gate_closes_routes_without_a_dependency(
    guarded,  # type: ignore[no-untyped-def]
    path: str,
) -> None:
    state, client = guarded
    response = client.request("POST" if path == "/form" else "GET", path)
    assert response.status_code == 401
    assert state.seen == []


def test_a_websocket_route_without_a_dependency_is_gated() -> None:
    state = build(install=False)

    @state.app.websocket("/ws-plain")
    async def ws_plain(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(current_principal().subject)
        await websocket.close()

    state.auth.install(state.app)
    with TestClient(state.app) as client:
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/ws-plain") as ws,
        ):
            ws.receive_text()
        assert closed.value.code == 1008
        with client.websocket_connect("/ws-plain", headers=ALICE) as ws:
            assert ws.receive_text() == "alice"


def test_a_route_added_after_startup_is_gated(guarded) -> None:  # type: ignore[no-untyped-def]
    state, client = guarded

    @state.app.get("/late")
    def late() -> dict[str, str]:
        state.saw("late")
        return {"sub": current_principal().subject}

    assert client.get("/late").status_code == 401
    assert client.get("/late", headers=ALICE).json() == {"sub": "alice"}
    assert state.seen == [("late", "alice")]


def test_an_included_router_is_gated_and_checked() -> None:
    state = build(install=False)
    router = APIRouter(prefix="/reports")

    @router.get("/all")
    def all_reports() -> dict[str, str]:
        state.saw("reports")
        return {"sub": current_principal().subject}

    state.app.include_router(router)
    state.auth.install(state.app)
    with TestClient(state.app) as client:
        assert client.get("/reports/all").status_code == 401
        assert client.get("/reports/all", headers=ALICE).json() == {"sub": "alice"}


def test_include_level_optional_user_does_not_widen_the_gate() -> None:
    # The gate reads the route's own dependencies; an optional_user given
    # only to include_router() is not seen at request time, so the route
    # stays closed (fail closed) rather than open by inference.
    state = build(install=False)
    router = APIRouter()

    @router.get("/status")
    def status() -> dict[str, str]:
        state.saw("status")
        return {"sub": current_principal().subject}

    state.app.include_router(router, dependencies=[Depends(state.auth.optional_user)])
    state.auth.install(state.app)
    with TestClient(state.app) as client:
        assert client.get("/status").status_code == 401
    assert state.seen == []


def test_without_the_gate_an_uncovered_app_does_not_start() -> None:
    state = build(gate=False)
    with pytest.raises(PolicyError) as refused, TestClient(state.app):
        pass
    assert ("/plain", "depends on neither auth.user, optional_user nor gate") in (
        refused.value.errors
    )
    assert state.seen == []


@pytest.mark.parametrize("kind", ["starlette_route", "mount", "websocket_route"])
def test_routes_outside_fastapis_dependencies_are_refused(kind: str) -> None:
    state = build(install=False)

    async def raw(request: Any) -> PlainTextResponse:
        return PlainTextResponse(current_principal().subject)

    if kind == "starlette_route":
        state.app.add_route("/raw", raw)
    elif kind == "mount":
        state.app.mount("/raw", Starlette(routes=[Route("/", raw)]))
    else:

        async def socket(websocket: Any) -> None:
            await websocket.close()

        state.app.router.routes.append(WebSocketRoute("/raw", socket))
    state.auth.install(state.app)
    with pytest.raises(PolicyError) as refused, TestClient(state.app):
        pass
    assert "/raw" in [path for path, _ in refused.value.errors]


def test_listing_a_plain_route_in_anonymous_paths_is_explicit() -> None:
    state = build(
        install=False,
        anonymous_paths=[
            "/raw",
            "/docs",
            "/openapi.json",
            "/docs/oauth2-redirect",
            "/redoc",
        ],
    )

    async def raw(request: Any) -> PlainTextResponse:
        return PlainTextResponse(current_principal().subject)

    state.app.add_route("/raw", raw)
    state.auth.install(state.app)
    with TestClient(state.app) as client:
        assert client.get("/raw").text == "anonymous"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/plain/"),
        ("GET", "//plain"),
        ("GET", "/PLAIN"),
        ("GET", "/plain/."),
        ("GET", "/plain%2F"),
        ("HEAD", "/plain"),
        ("OPTIONS", "/plain"),
        ("GET", "/tickets/"),
        ("GET", "/admin/orders/"),
        ("GET", "/admin//orders"),
    ],
)
def test_path_and_method_variants_never_reach_a_closed_route_anonymously(
    guarded,  # type: ignore[no-untyped-def]
    method: str,
    path: str,
) -> None:
    state, client = guarded
    response = client.request(method, path, follow_redirects=True)
    assert response.status_code in (401, 404, 405)
    assert state.seen == []


def test_a_policy_reloaded_to_internal_closes_the_gate_at_once() -> None:
    # The gate reads the guard's policy per request: a hot reload from
    # public to internal closes undeclared routes without a restart.
    state = build(exposure="public")
    with TestClient(state.app) as client:
        assert client.get("/plain").json() == {"sub": "anonymous"}
        state.guard.replace_policy(policy("internal"))
        assert client.get("/plain").status_code == 401
        assert client.get("/health").json() == {"sub": "anonymous"}
    assert state.seen == [("plain", "anonymous"), ("health", "anonymous")]


# -- a dependency override left in place ----------------------------------


def _fake_admin() -> Principal:
    return Principal(
        subject="mallory", authenticated=True, scopes="tickets:read orders:read admin"
    )


@pytest.mark.parametrize("which", ["user", "optional_user", "gate", "scheme"])
def test_an_override_of_a_dependency_stops_the_app_from_starting(which: str) -> None:
    state = build()
    state.app.dependency_overrides[getattr(state.auth, which)] = _fake_admin
    with (
        pytest.raises(PolicyError, match="dependency_overrides"),
        TestClient(state.app),
    ):
        pass


@pytest.mark.parametrize("which", ["user", "optional_user", "scheme"])
def test_an_override_added_at_run_time_is_refused_per_request(which: str) -> None:
    state = build()
    with TestClient(state.app, raise_server_exceptions=False) as client:
        state.app.dependency_overrides[getattr(state.auth, which)] = _fake_admin
        for path in ("/orders", "/health", "/plain"):
            response = client.get(path)
            assert response.status_code == 500
            assert "mallory" not in response.text
    assert state.seen == []


def test_an_allowed_override_warns_is_audited_and_grants_the_guard_nothing() -> None:
    with pytest.warns(InsecureUsageWarning, match="dependency_overrides"):
        state = build(unsafe_allow_dependency_overrides=True)
    flags = [e for e in state.audit.events if e.reason == "insecure_setting"]
    assert [e.resource for e in flags] == ["fastapi.dependency_overrides"]
    state.app.dependency_overrides[state.auth.user] = _fake_admin
    with TestClient(state.app) as client:
        # The override hands the endpoint a principal object, but the guard
        # acts for the verified context only: the tool call inside is made
        # for ANONYMOUS and refused.
        response = client.get("/tickets")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    assert state.seen == [("tickets", "anonymous")]


def _wrapped_app() -> tuple[App, Any]:
    state = build(install=False)
    auth = state.auth

    def current_admin(
        user: Annotated[Principal, Security(auth.user, scopes=["admin"])],
    ) -> Principal:
        return user

    @state.app.get("/admin-report")
    def admin_report(
        admin: Annotated[Principal, Depends(current_admin)],
    ) -> dict[str, str]:
        state.saw("admin-report")
        return {"admin": admin.subject, "sub": current_principal().subject}

    return state, current_admin


def test_an_override_of_a_dependency_wrapping_auth_stops_the_start() -> None:
    # The override skips auth.user on that route, and the gate would see a
    # route that "declares" user: the wrapper counts as auth.
    state, current_admin = _wrapped_app()
    state.auth.install(state.app)
    state.app.dependency_overrides[current_admin] = _fake_admin
    with pytest.raises(PolicyError) as refused, TestClient(state.app):
        pass
    assert ("/admin-report", "a dependency wrapping auth is overridden") in (
        refused.value.errors
    )


def test_an_override_of_a_wrapper_added_at_run_time_is_refused() -> None:
    state, current_admin = _wrapped_app()
    state.auth.install(state.app)
    with TestClient(state.app, raise_server_exceptions=False) as client:
        state.app.dependency_overrides[current_admin] = _fake_admin
        response = client.get("/admin-report")
    assert response.status_code == 500
    assert state.seen == []


@pytest.mark.parametrize("which", ["optional_user", "gate"])
def test_scopes_given_to_a_dependency_that_checks_none_are_refused(
    which: str,
) -> None:
    state = build(install=False)
    dependency = getattr(state.auth, which)

    @state.app.get("/scoped", dependencies=[Security(dependency, scopes=["admin"])])
    def scoped() -> dict[str, str]:
        state.saw("scoped")
        return {"sub": current_principal().subject}

    with pytest.raises(PolicyError) as refused:
        state.auth.check_app(state.app)
    assert ("/scoped", "scopes given to optional_user or gate are not checked") in (
        refused.value.errors
    )
    with TestClient(state.app, raise_server_exceptions=False) as client:
        assert client.get("/scoped").status_code == 500
        assert client.get("/scoped", headers=ALICE).status_code == 500
    assert state.seen == []


# -- requests never see each other's principal ---------------------------


def test_concurrent_requests_on_one_loop_each_see_their_own_principal() -> None:
    state = build()
    subjects = [f"user-{n}" for n in range(20)]

    async def go() -> list[tuple[str | None, int, str]]:
        transport = httpx.ASGITransport(app=state.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:

            async def one(n: int, subject: str | None) -> tuple[str | None, int, str]:
                headers = (
                    {}
                    if subject is None
                    else {"Authorization": f"Bearer {mint(sub=subject)}"}
                )
                path = "/slow" if n % 2 else "/background"
                response = await client.get(
                    path, params={"delay": (n % 5) / 200}, headers=headers
                )
                return subject, response.status_code, response.text

            jobs = [one(n, s) for n, s in enumerate([*subjects, None, None])]
            return await asyncio.gather(*jobs)

    for subject, status, text in asyncio.run(go()):
        if subject is None:
            assert status == 401
        else:
            assert (status, json.loads(text)["sub"]) == (200, subject)
    background = [who for where, who in state.seen if where.startswith("background")]
    assert sorted(set(background)) == sorted(subjects[0::2])
    assert len(background) == 2 * len(subjects[0::2])


def test_sync_endpoints_on_reused_worker_threads_do_not_keep_a_principal(
    guarded,  # type: ignore[no-untyped-def]
) -> None:
    _, client = guarded
    for n in range(30):
        who = f"user-{n}"
        headers = {"Authorization": f"Bearer {mint(sub=who)}"}
        assert client.get("/health", headers=headers).json() == {"sub": who}
        assert client.get("/health").json() == {"sub": "anonymous"}


@settings(max_examples=15, deadline=None)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", None]),
            st.sampled_from(["/health", "/slow", "/stream", "/events", "/lines"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_property_interleaved_requests_see_only_their_own_principal(
    plan: list[tuple[str | None, str]],
) -> None:
    app = PARITY_INTERNAL.app

    async def go() -> list[tuple[str | None, str, httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:

            async def one(
                subject: str | None, path: str
            ) -> tuple[str | None, str, httpx.Response]:
                headers = (
                    {}
                    if subject is None
                    else {"Authorization": f"Bearer {TOKENS[subject]}"}
                )
                return subject, path, await client.get(path, headers=headers)

            return await asyncio.gather(*(one(s, p) for s, p in plan))

    for subject, path, response in asyncio.run(go()):
        if subject is None and path != "/health":
            assert response.status_code == 401
            continue
        expected = subject or "anonymous"
        if path == "/stream":
            assert response.text == f"{expected}\n" * 3
        elif path == "/events":
            assert re.findall(r"data: (.*)", response.text) == [f'"{expected}"'] * 2
        elif path == "/lines":
            assert response.text.split() == [f'"{expected}"'] * 2
        else:
            assert response.json()["sub"] == expected


TOKENS = {name: mint(sub=name) for name in ("a", "b", "c")}
PARITY_INTERNAL = build()


def test_a_user_middleware_never_sees_the_principal_outside_the_request() -> None:
    # BaseHTTPMiddleware runs the app in a task of its own: the principal
    # holds inside it, and never leaks out to the middleware's own code.
    state = build(install=False)
    outside: list[str] = []

    @state.app.middleware("http")
    async def observe(request: Any, call_next: Any) -> Any:
        outside.append(current_principal().subject)
        response = await call_next(request)
        outside.append(current_principal().subject)
        return response

    state.auth.install(state.app)
    with TestClient(state.app) as client:
        assert client.get("/tickets", headers=ALICE).json()["sub"] == "alice"
        assert client.get("/background", headers=ALICE).status_code == 200
        assert client.get("/health").json() == {"sub": "anonymous"}
    assert outside == ["anonymous"] * 6
    assert ("background-async", "alice") in state.seen


def _raw_request(base: str, lines: list[str]) -> tuple[int, str]:
    where = urlsplit(base)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("latin-1")


@pytest.mark.parametrize(
    ("lines", "status", "code"),
    [
        (
            [
                "GET /tickets HTTP/1.1",
                f"Authorization: Bearer {TOKEN}",
                "authorization: Bearer forged",
            ],
            400,
            "duplicate_authorization",
        ),
        (["GET /tickets?access_token=forged HTTP/1.1"], 400, "token_in_query"),
        (["GET /health HTTP/1.1", "Authorization: Basic YTpi"], 400, "not_bearer"),
        (["GET /health HTTP/1.1", "Cookie: access_token=" + TOKEN], 200, None),
        (
            ["GET /plain HTTP/1.1", "X-Forwarded-Authorization: Bearer " + TOKEN],
            401,
            "authentication_required",
        ),
    ],
    ids=["two_headers", "query", "basic", "cookie_ignored", "forwarded_ignored"],
)
def test_on_a_real_server_the_bytes_on_the_wire_get_the_same_answers(
    lines: list[str], status: int, code: str | None
) -> None:
    state = build()
    with serving(state.app) as base:
        got, body = _raw_request(base, [*lines, "Host: 127.0.0.1"])
    assert got == status
    if code is not None:
        assert json.loads(body)["code"] == code
    else:
        assert json.loads(body) == {"sub": "anonymous"}
    assert not reached_as(state, "alice")
    assert TOKEN not in body


# -- nothing secret travels back ------------------------------------------


def test_no_refusal_carries_the_token_or_a_chained_secret() -> None:
    state = build(install=False)
    secret = "sk-live-0123456789abcdef"  # a made-up secret

    @state.app.get("/leaky")
    def leaky(user: Annotated[Principal, Depends(state.auth.user)]) -> None:
        try:
            raise RuntimeError(f"db password {secret}")
        except RuntimeError as cause:
            raise AccessDenied("not yours", code="tenant_mismatch") from cause

    state.auth.install(state.app)
    caught: list[BaseException] = []
    from aiinvariants import InvariantViolation

    ours = state.app.exception_handlers[InvariantViolation]

    async def spy(conn: Any, exc: Exception) -> Any:
        caught.append(exc)
        return await ours(conn, exc)

    state.app.exception_handlers[InvariantViolation] = spy
    expired = mint(exp=1)
    cases = [
        ("/leaky", ALICE, 403),
        ("/orders", ALICE, 403),
        ("/floodgate", ALICE, 403),
        ("/tickets", {"Authorization": f"Bearer {expired}"}, 401),
        ("/tickets", {"Authorization": f"Basic {TOKEN}"}, 400),
    ]
    with TestClient(state.app) as client:
        for path, headers, status in cases:
            response = client.get(path, headers=headers)
            assert response.status_code == status
            text = response.text + json.dumps(dict(response.headers))
            for value in (TOKEN, expired, secret):
                assert value not in text
                assert value.split(".")[-1] not in text
    assert len(caught) == len(cases)
    for exc in caught:
        assert_no_secret_reachable(exc, TOKEN, expired)
    assert caught[0].__cause__ is not None  # the chain exists, the body skips it
    for event in state.audit.events:
        line = json.dumps(event.to_dict() if hasattr(event, "to_dict") else repr(event))
        assert TOKEN not in line
        assert expired not in line


def test_a_failed_token_exchange_is_not_answered_as_the_callers_bad_token() -> None:
    # The caller's token is fine; the app's exchange for a downstream API
    # fails. A 401 invalid_token would make the client drop a good token
    # and sign in again, in a loop: the answer is a 403 without challenge.
    with running_oauth_server() as oauth:
        api = "https://api.example.test"
        auth = FastAPIAuth(
            Guard(),
            verifier=JWTVerifier(
                issuer=oauth.issuer,
                audience=api,
                algorithms=["RS256"],
                jwks=oauth.jwks(),
            ),
        )
        exchanger = TokenExchanger(
            token_endpoint=oauth.token_endpoint,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            timeout_s=3,
        )
        app = FastAPI(dependencies=[Depends(auth.gate)], openapi_url=None)

        @app.get("/billing")
        async def billing(user: Annotated[Principal, Depends(auth.user)]) -> None:
            await exchanger.aexchange(audience="https://billing.example.test")

        auth.install(app)
        oauth.state.mode = "error"
        token = oauth.mint_user("alice", audience=api, scopes="billing:read")
        with TestClient(app) as client:
            response = client.get(
                "/billing", headers={"Authorization": f"Bearer {token}"}
            )
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers
    assert response.json()["invariant"] == "I4"
    assert response.json()["error"] == "forbidden"
    assert token not in response.text


# -- scope names cannot inject into the challenge --------------------------


@pytest.mark.parametrize(
    "scope",
    ['x", error="invalid_token', "a b", "x\r\nSet-Cookie: s=1", "a\\", ""],
)
def test_a_scope_that_could_inject_is_refused_and_never_sent(scope: str) -> None:
    state = build(install=False)
    auth = state.auth

    @state.app.get("/inject")
    def inject(user: Annotated[Principal, Security(auth.user, scopes=[scope])]) -> None:
        return None

    with pytest.raises(PolicyError):
        auth.check_app(state.app)
    auth.install(state.app)
    state.app.router.lifespan_context = _no_lifespan  # run it anyway
    with TestClient(state.app, raise_server_exceptions=False) as client:
        response = client.get("/inject", headers=ALICE)
    assert response.status_code == 500
    assert "www-authenticate" not in response.headers


async def _no_lifespan_gen(app: Any) -> Any:
    yield None


def _no_lifespan(app: Any) -> Any:
    from contextlib import asynccontextmanager

    return asynccontextmanager(_no_lifespan_gen)(app)


@pytest.mark.parametrize(
    "held",
    ["orders:read:all", "ORDERS:READ", "orders", "orders:*", "*", "orders:read,x"],
)
def test_scope_look_alikes_do_not_satisfy_a_route(
    guarded,  # type: ignore[no-untyped-def]
    held: str,
) -> None:
    state, client = guarded
    response = client.get(
        "/orders", headers={"Authorization": f"Bearer {mint(scope=held)}"}
    )
    assert response.status_code == 403
    assert response.json()["scope"] == "orders:read"
    assert state.seen == []


# -- websockets ---------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        {"url": f"/ws?access_token={TOKEN}"},
        {"url": "/ws", "subprotocols": ["bearer", TOKEN]},
        {"url": "/ws", "headers": {"Authorization": "Bearer garbage.x.y"}},
        {"url": "/ws", "headers": {"Authorization": f"Token {TOKEN}"}},
    ],
    ids=["query", "subprotocol", "bad_token", "other_scheme"],
)
def test_a_websocket_without_a_good_header_token_is_closed(
    guarded,  # type: ignore[no-untyped-def]
    how: dict[str, Any],
) -> None:
    _, client = guarded
    options = {k: v for k, v in how.items() if k != "url"}
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(how["url"], **options) as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 1008


def test_warnings_are_not_swallowed() -> None:
    # The allowed-override path is the only one that warns; building the
    # guarded app otherwise stays silent (pytest turns warnings into errors).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build()
