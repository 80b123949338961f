"""Red team of the FastAPI integration (issue #14), by class.

Each test is a route by which a request reached code of an
``exposure: internal`` app without a verified user (or before the user was
checked), and asserts the secure outcome:

- routes the startup check never judged: added by the app's own lifespan or
  startup handlers, added after startup (``add_route``, ``mount``, an
  ``APIRoute`` appended to ``app.router.routes``), or served by an app whose
  lifespan never runs (mounted in another app, ``lifespan="off"``);
- FastAPI's low-priority routes (``app.frontend(...)``), outside
  ``app.routes``;
- a dependency override of ``auth.user`` added at run time in an app
  without the gate;
- the order of dependencies: a dependency declared before
  ``Security(auth.user, ...)`` ran for a caller ``user`` then refused.
"""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_support import mint
from fastapi_support import DOCS, App, build, policy, serving

pytest.importorskip("fastapi")

from fastapi import APIRouter, Depends, FastAPI, Security
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aiinvariants import PolicyError, Principal, current_principal

ALICE = {"Authorization": f"Bearer {mint()}"}  # tickets:read kb:read


def uncovered(state: App) -> None:
    """Drop the fixture's routes that rely on the gate alone."""
    state.app.router.routes[:] = [
        route
        for route in state.app.router.routes
        if getattr(route, "path", "") not in ("/plain", "/form")
    ]


def raw_endpoint(state: App) -> Any:
    async def raw(request: Any) -> PlainTextResponse:
        state.saw("raw")
        return PlainTextResponse(current_principal().subject)

    return raw


# -- routes the startup check never judged --------------------------------------


@pytest.mark.parametrize("how", ["startup_handler", "lifespan"])
def test_a_route_the_apps_own_startup_adds_is_judged(how: str) -> None:
    # check_app ran before the app's own lifespan: what the lifespan or a
    # startup handler added (a common place to mount a sub-app) was served
    # anonymously.
    state = build(install=False)
    raw = raw_endpoint(state)
    if how == "startup_handler":
        state.app.router.on_startup.append(lambda: state.app.add_route("/raw", raw))
    else:

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            state.app.mount("/raw", Starlette(routes=[Route("/", raw)]))
            yield

        state.app.router.lifespan_context = lifespan
    state.auth.install(state.app)
    with pytest.raises(PolicyError) as refused, TestClient(state.app) as client:
        client.get("/raw/")
    assert "/raw" in [path for path, _ in refused.value.errors]
    assert state.seen == []


@pytest.mark.parametrize("how", ["add_route", "mount", "api_route_appended"])
def test_a_route_added_after_startup_outside_the_gate_is_refused(how: str) -> None:
    state = build()
    raw = raw_endpoint(state)

    def late() -> dict[str, str]:
        state.saw("late")
        return {"sub": current_principal().subject}

    with TestClient(state.app, raise_server_exceptions=False) as client:
        assert client.get("/tickets", headers=ALICE).status_code == 200
        if how == "add_route":
            state.app.add_route("/raw", raw)
        elif how == "mount":
            state.app.mount("/raw", Starlette(routes=[Route("/", raw)]))
        else:  # an APIRoute built by hand has none of the router's dependencies
            state.app.router.routes.append(APIRoute("/raw", late))
        path = "/raw/" if how == "mount" else "/raw"
        for headers in ({}, ALICE):
            response = client.get(path, headers=headers)
            assert response.status_code == 500
    assert state.seen == [("tickets", "alice")]  # never "raw" nor "late"
    with pytest.raises(PolicyError) as refused:
        state.auth.check_app(state.app)
    assert "/raw" in [path for path, _ in refused.value.errors]


def test_removing_the_late_route_serves_the_app_again() -> None:
    # The check is repeated when the route table changes, not latched.
    state = build()
    with TestClient(state.app, raise_server_exceptions=False) as client:
        state.app.add_route("/raw", raw_endpoint(state))
        assert client.get("/tickets", headers=ALICE).status_code == 500
        state.app.router.routes.pop()
        assert client.get("/tickets", headers=ALICE).json()["sub"] == "alice"
    assert state.seen == [("tickets", "alice")]


def test_an_app_mounted_in_another_is_judged_though_its_lifespan_never_runs() -> None:
    # Starlette does not run a mounted app's lifespan: the startup check of
    # the guarded app never ran, and its uncovered routes were anonymous.
    state = build(gate=False)
    parent = FastAPI()
    parent.mount("/api", state.app)
    with TestClient(parent, raise_server_exceptions=False) as client:
        assert client.get("/api/plain").status_code == 500
        assert client.get("/api/plain", headers=ALICE).status_code == 500
    assert state.seen == []
    with pytest.raises(PolicyError) as refused, TestClient(parent) as client:
        client.get("/api/plain")
    assert ("/plain", "depends on neither auth.user, optional_user nor gate") in (
        refused.value.errors
    )


def test_a_real_server_with_lifespan_off_still_refuses_an_uncovered_app() -> None:
    import threading
    import time

    import uvicorn

    from fastapi_support import free_port

    state = build(gate=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            state.app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/plain").status_code == 500
        assert httpx.get(f"{base}/tickets", headers=ALICE).status_code == 500
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert state.seen == []


# -- FastAPI's low-priority routes ----------------------------------------------


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>internal dashboard</h1>")
    return tmp_path


def test_a_frontend_without_the_gate_does_not_start(dist: Path) -> None:
    state = build(install=False, gate=False)
    uncovered(state)
    state.app.frontend("/ui", directory=dist)
    state.auth.install(state.app)
    with pytest.raises(PolicyError) as refused, TestClient(state.app) as client:
        client.get("/ui/")
    assert ("/ui", "depends on neither auth.user, optional_user nor gate") in (
        refused.value.errors
    )


def test_a_frontend_added_after_startup_is_judged(dist: Path) -> None:
    state = build(gate=False)
    uncovered(state)
    with TestClient(state.app, raise_server_exceptions=False) as client:
        assert client.get("/tickets", headers=ALICE).status_code == 200
        state.app.frontend("/ui", directory=dist)
        response = client.get("/ui/")
        assert response.status_code == 500
        assert "dashboard" not in response.text


def test_a_gated_or_listed_frontend_is_served_as_declared(dist: Path) -> None:
    state = build(install=False)
    state.app.frontend("/ui", directory=dist)
    state.auth.install(state.app)
    with TestClient(state.app) as client:
        refused = client.get("/ui/")
        assert refused.status_code == 401
        assert refused.json()["code"] == "authentication_required"
        assert "dashboard" in client.get("/ui/", headers=ALICE).text
    listed = build(install=False, gate=False, anonymous_paths=["/ui", "/docs"])
    uncovered(listed)
    listed.app.frontend("/ui", directory=dist)
    listed.auth.install(listed.app)
    with pytest.raises(PolicyError) as still:
        listed.auth.check_app(listed.app)
    assert "/ui" not in [path for path, _ in still.value.errors]


# -- an override added at run time, no gate -------------------------------------


def test_an_override_of_user_added_at_run_time_without_the_gate_is_refused() -> None:
    state = build(gate=False)
    uncovered(state)

    def fake_user() -> Principal:
        return Principal(subject="mallory", authenticated=True, scopes={"admin"})

    with TestClient(state.app, raise_server_exceptions=False) as client:
        state.app.dependency_overrides[state.auth.user] = fake_user
        assert client.get("/me").status_code == 500
        assert client.get("/tickets").status_code == 500
    assert state.seen == []


# -- the order of dependencies ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "authentication_required"),
        ({"Authorization": f"Bearer {mint(scope='kb:read')}"}, 403, "scope_missing"),
    ],
)
def test_a_dependency_declared_before_user_does_not_run_for_a_refused_caller(
    headers: dict[str, str], status: int, code: str
) -> None:
    state = build(install=False)
    charged: list[str] = []

    def charge_quota() -> int:  # a side effect: a write, a paid call, a log
        charged.append(current_principal().subject)
        return 1

    @state.app.post("/reports")
    def reports(
        quota: Annotated[int, Depends(charge_quota)],
        user: Annotated[Principal, Security(state.auth.user, scopes=["tickets:read"])],
    ) -> dict[str, str]:
        state.saw("reports")
        return {"sub": user.subject}

    state.auth.install(state.app)
    with TestClient(state.app) as client:
        response = client.post("/reports", headers=headers)
        assert response.status_code == status
        assert response.json()["code"] == code
        assert client.post("/reports", headers=ALICE).json() == {"sub": "alice"}
    assert len(charged) == 1  # alice's request only
    assert state.seen == [("reports", "alice")]


def test_the_routes_scopes_are_checked_before_its_other_dependencies() -> None:
    state = build(install=False)
    reached: list[str] = []

    def load_order(order_id: str) -> str:
        reached.append(order_id)
        return order_id

    @state.app.get("/orders/{order_id}")
    def order(
        loaded: Annotated[str, Depends(load_order)],
        user: Annotated[Principal, Security(state.auth.user, scopes=["orders:read"])],
    ) -> dict[str, str]:
        return {"order": loaded}

    state.auth.install(state.app)
    with TestClient(state.app) as client:
        response = client.get("/orders/o-1", headers=ALICE)  # no orders:read
        assert response.status_code == 403
        assert response.json()["code"] == "scope_missing"
        assert "orders:read" in response.headers["www-authenticate"]
    assert reached == []
    denials = [e for e in state.audit.events if e.decision == "deny"]
    assert len(denials) == 1  # refused once, by the gate, not twice


def test_serving_helper_still_starts_a_covered_app() -> None:
    # The per-request check passes a covered app untouched on a real server.
    state = build()
    with serving(state.app) as base:
        assert httpx.get(f"{base}/tickets", headers=ALICE).json()["sub"] == "alice"
        assert httpx.get(f"{base}/tickets").status_code == 401


def test_an_override_of_an_include_level_wrapper_added_at_run_time_is_refused() -> None:
    # The request-time override check read the route's own dependencies; a
    # wrapper given to include_router(dependencies=...) was not among them,
    # so overriding it dropped its scope check while the gate still passed
    # any signed-in user.
    state = build(install=False)
    auth = state.auth

    def current_admin(
        user: Annotated[Principal, Security(auth.user, scopes=["admin"])],
    ) -> Principal:
        return user

    router = APIRouter(prefix="/ops")

    @router.post("/wipe")
    def wipe() -> dict[str, str]:
        state.saw("wipe")
        return {"sub": current_principal().subject}

    state.app.include_router(router, dependencies=[Depends(current_admin)])
    state.auth.install(state.app)
    with TestClient(state.app, raise_server_exceptions=False) as client:
        refused = client.post("/ops/wipe", headers=ALICE)  # alice lacks admin
        assert refused.status_code == 403
        assert refused.json()["code"] == "scope_missing"
        state.app.dependency_overrides[current_admin] = lambda: Principal(
            subject="alice", authenticated=True, scopes={"admin"}
        )
        assert client.post("/ops/wipe", headers=ALICE).status_code == 500
    assert state.seen == []


def test_a_policy_reloaded_to_internal_closes_an_unlisted_plain_route() -> None:
    # Under exposure: public the startup check lets plain routes through; a
    # hot reload to internal left them serving anonymous callers.
    state = build(exposure="public")
    state.app.add_route("/raw", raw_endpoint(state))
    with TestClient(state.app, raise_server_exceptions=False) as client:
        assert client.get("/raw").text == "anonymous"
        state.guard.replace_policy(policy("internal"))
        assert client.get("/raw").status_code == 500
        assert client.get("/raw", headers=ALICE).status_code == 500
    assert state.seen == [("raw", "anonymous")]


def test_a_refused_app_raises_a_fresh_error_per_request() -> None:
    # One stored exception raised again would grow its traceback on every
    # request and be shared by concurrent ones.
    state = build()
    errors: list[PolicyError] = []
    with TestClient(state.app) as client:
        state.app.add_route("/raw", raw_endpoint(state))
        for _ in range(3):
            with pytest.raises(PolicyError) as refused:
                client.get("/tickets", headers=ALICE)
            errors.append(refused.value)
    assert len({id(error) for error in errors}) == 3
    assert all("/raw" in [path for path, _ in e.errors] for e in errors)


def test_a_gated_route_replaced_by_an_equal_ungated_one_is_judged() -> None:
    # Starlette routes compare equal by path, endpoint and methods: the
    # route table is compared by identity, so a same-looking APIRoute
    # without the app's dependencies is a change.
    state = build()
    with TestClient(state.app, raise_server_exceptions=False) as client:
        assert client.get("/plain").status_code == 401
        index, route = next(
            (i, r)
            for i, r in enumerate(state.app.router.routes)
            if getattr(r, "path", "") == "/plain"
        )
        bare = APIRoute("/plain", route.endpoint, methods=list(route.methods))
        assert bare == route
        state.app.router.routes[index] = bare
        assert client.get("/plain").status_code == 500
    assert state.seen == []


class _DowngradingVerifier:
    """A verifier (anything with averify) that answers an unknown token with
    an unauthenticated principal instead of raising."""

    async def averify(self, token: str) -> Principal:
        if token == "good":
            return Principal(subject="alice", authenticated=True)
        return Principal(subject="anonymous", authenticated=False)


def test_a_present_token_the_verifier_does_not_authenticate_is_refused() -> None:
    state = build(key_verifier=_DowngradingVerifier())
    with TestClient(state.app) as client:
        for path in ("/health", "/plain", "/tickets"):
            response = client.get(path, headers={"Authorization": "Bearer forged"})
            assert response.status_code == 401
            assert response.json()["code"] == "token_invalid"
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert client.get("/health").json() == {"sub": "anonymous"}
        good = client.get("/health", headers={"Authorization": "Bearer good"})
        assert good.json() == {"sub": "alice"}
    assert state.seen == [("health", "anonymous"), ("health", "alice")]


def test_a_lifespan_replaced_after_install_does_not_drop_the_check() -> None:
    # install() wraps the lifespan it finds; one set afterwards replaced the
    # startup check entirely.
    state = build(gate=False)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield

    state.app.router.lifespan_context = lifespan
    with TestClient(state.app, raise_server_exceptions=False) as client:
        assert client.get("/plain").status_code == 500
        assert client.get("/tickets", headers=ALICE).status_code == 500
    assert state.seen == []


_CHANGES = st.lists(
    st.tuples(
        st.sampled_from(
            ["plain", "mount", "bare_api", "gated_api", "listed_plain", "pop"]
        ),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=_CHANGES)
def test_property_no_change_to_the_route_table_serves_an_unlisted_anonymous(
    changes: list[tuple[str, int]],
) -> None:
    # Whatever is added or removed after startup, an anonymous caller
    # reaches code only on a path listed in anonymous_paths.
    state = build(anonymous_paths=[*DOCS, "/listed0"])
    raw = raw_endpoint(state)

    def bare() -> dict[str, str]:
        state.saw("raw")
        return {"sub": current_principal().subject}

    with TestClient(state.app, raise_server_exceptions=False) as client:
        for kind, n in changes:
            path = f"/{'listed' if kind == 'listed_plain' else 'x'}{n}"
            if kind in ("plain", "listed_plain"):
                state.app.add_route(path, raw)
            elif kind == "mount":
                state.app.mount(path, Starlette(routes=[Route("/", raw)]))
            elif kind == "bare_api":
                state.app.router.routes.append(APIRoute(path, bare))
            elif kind == "gated_api":
                state.app.add_api_route(path, bare)
            else:
                state.app.router.routes.pop()
            for probe in (f"/x{i}" for i in range(3)):
                response = client.get(probe, follow_redirects=True)
                assert response.status_code in (401, 404, 500), probe
            listed = client.get("/listed0")
            assert listed.status_code in (200, 404, 500)
    assert all(who == "anonymous" for _, who in state.seen)
    assert len(state.seen) <= len(changes)  # /listed0 only, once a change


def test_an_app_never_installed_is_refused_by_the_dependencies() -> None:
    # The exception handlers alone (a documented setup) made the guarded
    # routes answer properly while nothing judged the others: a route that
    # forgot its dependency served anyone, and nothing said so.
    from aiinvariants.integrations.fastapi import install_exception_handlers

    state = build(install=False, gate=False)
    install_exception_handlers(state.app)
    with TestClient(state.app) as client, pytest.raises(PolicyError) as refused:
        client.get("/tickets", headers=ALICE)
    assert "auth.install(app)" in str(refused.value)
    assert state.seen == []
    # Too late to install now: refused, and the app is not marked installed.
    with pytest.raises(PolicyError, match="before the app serves"):
        state.auth.install(state.app)
    with TestClient(state.app) as client, pytest.raises(PolicyError):
        client.get("/tickets", headers=ALICE)
    assert state.seen == []


def test_routes_of_an_uninstalled_sub_app_are_refused() -> None:
    # install() on the outer app does not judge a FastAPI app mounted in it.
    outer = build(anonymous_paths=[*DOCS, "/inner"])
    inner = FastAPI()
    auth = outer.auth

    @inner.get("/orders")
    def orders(user: Annotated[Principal, Depends(auth.user)]) -> dict[str, str]:
        outer.saw("inner-orders")
        return {"sub": user.subject}

    @inner.get("/open")
    def open_route() -> dict[str, str]:
        outer.saw("inner-open")
        return {"sub": current_principal().subject}

    outer.app.mount("/inner", inner)
    with TestClient(outer.app, raise_server_exceptions=False) as client:
        assert client.get("/inner/orders", headers=ALICE).status_code == 500
    assert outer.seen == []


def test_an_installed_sub_app_is_judged_though_its_lifespan_never_runs() -> None:
    outer = build(anonymous_paths=[*DOCS, "/inner"])
    inner = FastAPI()
    auth = outer.auth

    @inner.get("/orders")
    def orders(user: Annotated[Principal, Depends(auth.user)]) -> dict[str, str]:
        outer.saw("inner-orders")
        return {"sub": user.subject}

    @inner.get("/open")
    def open_route() -> dict[str, str]:
        outer.saw("inner-open")
        return {"sub": current_principal().subject}

    auth.install(inner)
    outer.app.mount("/inner", inner)
    with TestClient(outer.app, raise_server_exceptions=False) as client:
        assert client.get("/inner/open").status_code == 500
        assert client.get("/inner/orders", headers=ALICE).status_code == 500
    assert outer.seen == []


def test_only_the_metadata_route_itself_is_exempt_at_its_path() -> None:
    # The check exempted every route at the metadata document's path; a
    # mount there (served first, ahead of the document) was never judged.
    state = build(install=False)
    raw = raw_endpoint(state)
    state.app.mount(
        "/.well-known/oauth-protected-resource", Starlette(routes=[Route("/", raw)])
    )
    state.auth.install(state.app)
    with pytest.raises(PolicyError) as refused, TestClient(state.app):
        pass
    assert "/.well-known/oauth-protected-resource" in [
        path for path, _ in refused.value.errors
    ]
    served = build()  # the document itself stays anonymous
    with TestClient(served.app) as client:
        document = client.get("/.well-known/oauth-protected-resource")
        assert document.status_code == 200
        assert document.json()["resource"] == "https://api.example.test"
    assert state.seen == []
