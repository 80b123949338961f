"""FastAPIAuth against real FastAPI: TestClient, and uvicorn with a loopback JWKS."""

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_support import AUDIENCE, ISSUER, JWKSServer, jwks_of, mint, rsa_key, verifier
from fastapi_support import AUTHORIZE, META_URL, TOKEN_URL, build, serving

pytest.importorskip("fastapi")

from fastapi import Depends, FastAPI, Security
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from aiinvariants import Guard, Policy, PolicyError, Principal, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.fastapi import FastAPIAuth, install_exception_handlers

ALICE = {"Authorization": f"Bearer {mint()}"}  # tickets:read kb:read, employees


def bearer(**claims: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(**claims)}"}


@pytest.fixture
def served():  # type: ignore[no-untyped-def]
    state = build()
    with TestClient(state.app) as client:
        yield state, client


def test_security_dependency_verifies_checks_scopes_and_acts_as_the_user(
    served,  # type: ignore[no-untyped-def]
) -> None:
    state, client = served
    response = client.get("/tickets", headers=ALICE)
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "user": "alice"}
    # The body's guarded tool call was made for alice and audited as such.
    tools = [e for e in state.audit.events if e.resource == "tool.read_ticket"]
    assert tools
    assert {(e.decision, e.subject) for e in tools} == {("allow", "alice")}
    scopes = [e for e in state.audit.events if e.resource == "GET /tickets"]
    assert [(e.decision, e.reason) for e in scopes] == [("allow", "scopes_held")]


def test_sync_endpoint_runs_as_the_user(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    assert client.get("/tickets-sync", headers=ALICE).json() == {"sub": "alice"}


def test_missing_scope_is_a_403_with_an_exact_rfc6750_challenge(
    served,  # type: ignore[no-untyped-def]
) -> None:
    state, client = served
    response = client.get("/orders", headers=ALICE)
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="orders:read", '
        f'resource_metadata="{META_URL}"'
    )
    body = response.json()
    assert body["code"] == "scope_missing"
    assert body["invariant"] == "I1"
    assert body["scope"] == "orders:read"
    assert ("orders", "alice") not in state.seen
    denied = [e for e in state.audit.events if e.decision == "deny"]
    assert [(e.reason, e.resource) for e in denied] == [
        ("scope_missing", "GET /orders")
    ]


def test_no_token_is_a_401_without_error_code(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    response = client.get("/tickets")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{META_URL}"'
    )
    assert response.json()["code"] == "authentication_required"
    assert response.headers["cache-control"] == "no-store"


def test_rejected_token_is_a_401_invalid_token(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    token = mint(aud="https://other.example.test")
    response = client.get("/tickets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="wrong_audience", '
        f'resource_metadata="{META_URL}"'
    )
    assert response.json() == {
        "error": "invalid_token",
        "code": "wrong_audience",
        "invariant": "I1",
    }
    assert token not in response.text


def test_insufficient_scope_names_every_scope_needed() -> None:
    # RFC 6750 section 3: scope= lists what the request needs, so the client
    # asks for all of it in one step, not only what is missing.
    state = build(install=False)
    auth = state.auth

    @state.app.get("/refund")
    def refund(
        user: Annotated[
            Principal, Security(auth.user, scopes=["orders:read", "orders:refund"])
        ],
    ) -> None:
        return None

    auth.install(state.app)
    with TestClient(state.app) as client:
        response = client.get("/refund", headers=bearer(scope="orders:read"))
    assert response.status_code == 403
    assert 'scope="orders:read orders:refund"' in response.headers["www-authenticate"]
    assert response.json()["scope"] == "orders:read orders:refund"


def test_scopes_accumulate_across_router_and_route(served) -> None:  # type: ignore[no-untyped-def]
    state, client = served
    both = bearer(scope="admin orders:read")
    assert client.get("/admin/orders", headers=both).json() == {"sub": "alice"}
    only_route = client.get("/admin/orders", headers=bearer(scope="orders:read"))
    assert only_route.status_code == 403
    # The gate refuses first, naming every scope the route's Security
    # declarations need together: one step-up gets the client in.
    assert only_route.json()["scope"] == "admin orders:read"
    only_router = client.get("/admin/orders", headers=bearer(scope="admin"))
    assert only_router.status_code == 403
    assert only_router.json()["scope"] == "admin orders:read"
    assert state.seen.count(("admin-orders", "alice")) == 1


def test_optional_user_is_anonymous_without_token_even_when_internal(
    served,  # type: ignore[no-untyped-def]
) -> None:
    _, client = served
    assert client.get("/health").json() == {"sub": "anonymous"}
    assert client.get("/health", headers=ALICE).json() == {"sub": "alice"}


def test_anonymous_access_to_an_internal_app_is_audited(served) -> None:  # type: ignore[no-untyped-def]
    state, client = served
    client.get("/health")
    client.get("/health", headers=ALICE)
    events = [e for e in state.audit.events if e.reason == "anonymous_route"]
    assert [(e.invariant, e.subject, e.resource) for e in events] == [
        ("I2", "anonymous", "GET /health")
    ]


def test_gate_closes_a_route_without_dependency_under_internal(
    served,  # type: ignore[no-untyped-def]
) -> None:
    state, client = served
    assert client.get("/plain").status_code == 401
    assert client.get("/plain", headers=ALICE).json() == {"sub": "alice"}
    assert state.seen == [("plain", "alice")]


def test_gate_lets_anonymous_through_under_public_exposure() -> None:
    state = build(exposure="public")
    with TestClient(state.app) as client:
        assert client.get("/plain").json() == {"sub": "anonymous"}
        assert client.get("/plain", headers=ALICE).json() == {"sub": "alice"}
        # Routes that declare auth.user still need it.
        assert client.get("/tickets").status_code == 401


def test_background_tasks_run_as_the_requests_user(served) -> None:  # type: ignore[no-untyped-def]
    state, client = served
    assert client.get("/background", headers=ALICE).status_code == 200
    assert ("background-async", "alice") in state.seen
    assert ("background-sync", "alice") in state.seen


def test_streamed_body_runs_as_the_user(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    assert client.get("/stream", headers=ALICE).text == "alice\nalice\nalice\n"


def test_server_sent_events_run_as_the_user(served) -> None:  # type: ignore[no-untyped-def]
    # FastAPI drives an SSE generator from a task of its own.
    _, client = served
    response = client.get("/events", headers=ALICE)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert re.findall(r"data: (.*)", response.text) == ['"alice"', '"alice"']


def test_json_lines_from_a_sync_generator_run_as_the_user(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    response = client.get("/lines", headers=ALICE)
    assert response.text.split() == ['"alice"', '"alice"']


def test_violation_in_the_endpoint_body_is_a_403(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    response = client.get("/floodgate", headers=ALICE)
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers
    assert response.json()["code"] == "capability_forbidden"
    assert response.json()["invariant"] == "I3"


def test_websocket_with_token_acts_as_the_user(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    with client.websocket_connect("/ws", headers=ALICE) as ws:
        assert ws.receive_text() == "alice"


def test_websocket_without_token_is_closed_1008(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws") as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 1008


def test_openapi_has_the_oauth2_scheme_and_per_operation_scopes(
    served,  # type: ignore[no-untyped-def]
) -> None:
    _, client = served
    document = client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["aiinvariants"]
    flow = scheme["flows"]["authorizationCode"]
    assert scheme["type"] == "oauth2"
    assert (flow["authorizationUrl"], flow["tokenUrl"]) == (AUTHORIZE, TOKEN_URL)
    assert set(flow["scopes"]) == {"tickets:read", "orders:read"}
    paths = document["paths"]
    assert paths["/tickets"]["get"]["security"] == [{"aiinvariants": ["tickets:read"]}]
    admin = paths["/admin/orders"]["get"]["security"][0]["aiinvariants"]
    assert sorted(admin) == ["admin", "orders:read"]
    # Swagger's page with the Authorize button is served (it is listed).
    assert client.get("/docs").status_code == 200


def test_openapi_http_bearer_scheme_without_authorization_server() -> None:
    state = build(oauth2=False)
    with TestClient(state.app) as client:
        document = client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["aiinvariants"]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_metadata_is_served_without_a_token(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    response = client.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response.json()["scopes_supported"] == ["tickets:read", "orders:read"]


def test_token_is_verified_once_per_request() -> None:
    class Counting:
        calls = 0

        def __init__(self) -> None:
            self.inner = verifier()

        async def averify(self, token: str) -> Principal:
            Counting.calls += 1
            return await self.inner.averify(token)

    state = build(key_verifier=Counting())
    with TestClient(state.app) as client:
        response = client.get(
            "/admin/orders", headers=bearer(scope="admin orders:read")
        )
    assert response.status_code == 200
    assert Counting.calls == 1  # gate, router and route share one verification


def test_install_refuses_an_uncovered_route_at_startup() -> None:
    state = build(gate=False)
    with pytest.raises(PolicyError) as refused, TestClient(state.app):
        pass
    paths = [path for path, _ in refused.value.errors]
    assert "/plain" in paths
    assert "/form" in paths
    assert "/tickets" not in paths


def test_check_app_refuses_unlisted_docs_under_internal() -> None:
    state = build(anonymous_paths=())
    with pytest.raises(PolicyError) as refused:
        state.auth.check_app(state.app)
    assert {path for path, _ in refused.value.errors} >= {"/docs", "/openapi.json"}


def test_check_app_allows_a_public_app_with_docs() -> None:
    state = build(exposure="public", anonymous_paths=(), gate=False)
    state.auth.check_app(state.app)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"authorization_url": AUTHORIZE}, "both authorization_url"),
        ({"scopes": ['bad"scope']}, "scope"),
        ({"scopes": "tickets:read"}, "not a string"),
        ({"scheme_name": " "}, "scheme_name"),
        ({"anonymous_paths": "/docs"}, "collection"),
        ({"anonymous_paths": ["docs"]}, "starting with"),
        ({"anonymous_paths": [None]}, "starting with"),
        ({"refresh_url": "https://x.example/r"}, "refresh_url"),
    ],
)
def test_bad_configuration_is_refused_at_construction(
    kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(PolicyError, match=match):
        FastAPIAuth(Guard(), verifier=verifier(), **kwargs)  # type: ignore[arg-type]


def test_construction_needs_a_guard_and_a_verifier() -> None:
    with pytest.raises(PolicyError, match="Guard"):
        FastAPIAuth(object(), verifier=verifier())  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="averify"):
        FastAPIAuth(Guard(), verifier=object())  # type: ignore[arg-type]


def test_the_verifier_defaults_to_the_policys_identity() -> None:
    policy = Policy(
        identity={
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithms": ["RS256"],
            "jwks": jwks_of(rsa_key()),
        }
    )
    audit = MemorySink()
    guard = Guard(policy, sinks=[audit])
    auth = FastAPIAuth(guard)
    app = FastAPI(dependencies=[Depends(auth.gate)], openapi_url=None)

    @app.get("/me")
    def me() -> dict[str, str]:
        return {"sub": current_principal().subject}

    auth.install(app)
    with TestClient(app) as client:
        assert client.get("/me", headers=ALICE).json() == {"sub": "alice"}
        expired = client.get("/me", headers=bearer(exp=1))
    assert expired.json()["code"] == "expired"
    # The policy's verifier audits to the guard: the rejection is recorded.
    assert any(e.reason == "expired" for e in audit.events)
    with pytest.raises(PolicyError, match="identity"):
        FastAPIAuth(Guard())


def test_exception_handlers_alone_map_violations_from_any_code() -> None:
    app = FastAPI()
    install_exception_handlers(app)
    guard = Guard()

    @app.get("/x")
    def x() -> None:
        guard.check_scopes(None, resource="x")  # anonymous: refused

    with TestClient(app) as client:
        response = client.get("/x")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


# -- a real server, a real JWKS endpoint ---------------------------------------


def test_uvicorn_with_a_loopback_jwks_and_concurrent_users() -> None:
    jwks = JWKSServer()
    try:
        state = build(key_verifier=verifier(jwks_uri=jwks.url))
        users = [f"user-{n}" for n in range(12)]
        with serving(state.app) as base, httpx.Client(base_url=base) as http:

            def one(subject: str | None) -> tuple[str | None, int, str]:
                headers = {} if subject is None else bearer(sub=subject)
                response = http.get("/slow", params={"delay": 0.02}, headers=headers)
                return subject, response.status_code, response.text

            with ThreadPoolExecutor(max_workers=6) as pool:
                results = list(pool.map(one, [*users, None, *users, None]))
            health = http.get("/health").json()
        for subject, status, text in results:
            if subject is None:
                assert status == 401
            else:
                assert (status, text) == (200, f'{{"sub":"{subject}"}}')
        assert health == {"sub": "anonymous"}
        assert jwks.state.requests >= 1
    finally:
        jwks.close()


def test_uvicorn_refuses_to_start_an_uncovered_internal_app() -> None:
    state = build(gate=False)
    with pytest.raises(RuntimeError, match="did not start"), serving(state.app):
        pass


def test_principal_never_outlives_its_request(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    assert client.get("/health", headers=ALICE).json() == {"sub": "alice"}
    assert client.get("/health").json() == {"sub": "anonymous"}
    assert current_principal().subject == "anonymous"
    assert client.get("/floodgate", headers=ALICE).status_code == 403
    assert client.get("/health").json() == {"sub": "anonymous"}


def test_rsa_key_is_the_one_the_jwks_serves() -> None:
    # Guard for the test above: the JWKS server's default document is the
    # key mint() signs with, so a 200 there means real verification.
    jwks = JWKSServer()
    try:
        assert jwks.state.document["keys"][0]["kid"] == rsa_key().kid
    finally:
        jwks.close()


def test_depends_on_user_without_scopes_needs_authentication_only(
    served,  # type: ignore[no-untyped-def]
) -> None:
    _, client = served
    response = client.get("/me", headers=bearer(scope=None))
    assert response.json() == {"sub": "alice", "scopes": []}
    assert client.get("/me").status_code == 401


def test_security_scopes_are_validated_at_startup() -> None:
    state = build(install=False)
    auth = state.auth

    @state.app.get("/bad")
    def bad(user: Annotated[Principal, Security(auth.user, scopes=['a"b'])]) -> None:
        return None

    with pytest.raises(PolicyError) as refused:
        auth.check_app(state.app)
    assert any(path == "/bad" for path, _ in refused.value.errors)


def test_challenge_syntax_is_rfc6750(served) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    # auth-param = token BWS "=" BWS ( token / quoted-string ), comma separated
    param = r'[a-z_]+="[^"\\]*"'
    grammar = re.compile(rf"Bearer( {param}(, {param})*)?")
    for path, headers in [
        ("/tickets", {}),
        ("/orders", ALICE),
        ("/tickets", {"Authorization": "Bearer x.y.z"}),
        ("/tickets", {"Authorization": "Basic YTpi"}),
    ]:
        challenge = client.get(path, headers=headers).headers["www-authenticate"]
        assert grammar.fullmatch(challenge), challenge


def test_unused_dependency_is_unused() -> None:
    # Depends(auth.optional_user) on the app makes every route anonymous-capable:
    # check_app accepts it (explicit), and requests without a token are anonymous.
    guard = Guard()
    auth = FastAPIAuth(guard, verifier=verifier())
    app = FastAPI(dependencies=[Depends(auth.optional_user)], openapi_url=None)

    @app.get("/x")
    def x() -> dict[str, str]:
        return {"sub": current_principal().subject}

    auth.install(app)
    with TestClient(app) as client:
        assert client.get("/x").json() == {"sub": "anonymous"}


def test_without_fastapi_the_import_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "try:\n"
        "    import aiinvariants.integrations.fastapi\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MissingIntegrationError ")
    assert 'pip install "aiinvariants[fastapi]"' in proc.stdout


HELD = st.sets(st.sampled_from(["orders:read", "orders:refund", "admin", "kb:read"]))


@settings(max_examples=25, deadline=None)
@given(held=HELD, needed=HELD)
def test_property_a_route_answers_200_exactly_when_every_scope_is_held(
    held: set[str], needed: set[str]
) -> None:
    state = PROPERTY_APP
    key = tuple(sorted(needed))
    path = f"/needs/{'+'.join(key) or 'nothing'}"
    if path not in ROUTES_ADDED:
        auth = state.auth

        async def needs(
            user: Annotated[Principal, Security(auth.user, scopes=list(key))],
        ) -> dict[str, str]:
            return {"sub": current_principal().subject}

        state.app.add_api_route(path, needs)
        ROUTES_ADDED.add(path)
    headers = bearer(scope=" ".join(sorted(held)) or None)
    with TestClient(state.app) as client:
        response = client.get(path, headers=headers)
    if needed <= held:
        assert (response.status_code, response.json()) == (200, {"sub": "alice"})
    else:
        assert response.status_code == 403
        assert response.json()["scope"] == " ".join(key)


PROPERTY_APP = build()
ROUTES_ADDED: set[str] = set()
