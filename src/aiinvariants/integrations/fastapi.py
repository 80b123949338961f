"""FastAPI: ``Security`` dependencies, per-route anonymous access, error answers.

::

    auth = FastAPIAuth(guard)  # the verifier of the policy's identity section
    app = FastAPI(dependencies=[Depends(auth.gate)])

    @app.get("/orders")
    async def orders(
        user: Annotated[Principal, Security(auth.user, scopes=["orders:read"])],
    ): ...  # runs inside acting_as(user): every guarded call is made for user

    @app.get("/health", dependencies=[Depends(auth.optional_user)])
    def health() -> dict[str, str]: ...

    auth.install(app)  # exception handlers, metadata, the startup check

- ``auth.user`` verifies the ``Authorization: Bearer`` token with the
  verifier, checks the scopes the route's ``Security(...)`` declarations
  accumulate (``SecurityScopes``) with the guard's scope rule
  (``Guard.check_scopes``: audited, ``ScopeDenied``/``AuthenticationRequired``),
  and runs the endpoint, its response (streamed bodies included) and its
  background tasks inside ``acting_as(principal)``.
- ``auth.optional_user`` lets a caller without a token through as
  :data:`~aiinvariants.ANONYMOUS`, also under ``exposure: internal``: the
  route says so explicitly. A token that is present is verified; a bad one
  is refused, never downgraded to anonymous.
- ``auth.gate``, as an app-wide dependency, closes the routes that declare
  neither: under ``exposure: internal`` they need a verified token.
- The token is read by the one bearer parser of
  :mod:`aiinvariants.integrations.asgi`: an ``access_token`` in the query,
  two ``Authorization`` headers, another scheme or a malformed value is a 400
  ``invalid_request``; tokens in cookies or other headers are never read.
- :func:`install_exception_handlers` answers every ``InvariantViolation``
  with its status, an RFC 6750 challenge where one applies, and a JSON body
  with the stable ``code`` and ``invariant``; never a token or a secret.

The scheme appears in OpenAPI (Swagger's Authorize button): an OAuth2
authorization-code flow when ``authorization_url`` and ``token_url`` are
given, else an HTTP bearer scheme; each operation lists the scopes it needs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Mapping,
)
from contextlib import asynccontextmanager
from typing import Any, Final, cast
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary, WeakSet

try:
    from fastapi import Depends, FastAPI
    from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
    from fastapi.openapi.models import OAuth2 as OAuth2Model
    from fastapi.openapi.models import OAuthFlowAuthorizationCode, OAuthFlows
    from fastapi.openapi.models import SecurityBase as SecurityModel
    from fastapi.routing import APIRoute, APIWebSocketRoute
    from fastapi.security import SecurityScopes
    from fastapi.security.base import SecurityBase
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from aiinvariants._errors import MissingIntegrationError

    raise MissingIntegrationError(extra="fastapi", package="fastapi") from exc

from aiinvariants._errors import InsecureUsageWarning, PolicyError, TokenInvalid
from aiinvariants._guard import Guard
from aiinvariants._principal import (
    ANONYMOUS,
    Principal,
    acting_as,
    validate_scope_token,
)
from aiinvariants._scopes import ScopeRule, all_of
from aiinvariants.auth._bearer import (
    MAX_FORM_BYTES,
    MultipartNames,
    form_charsets,
    form_kinds,
)
from aiinvariants.auth._metadata import metadata_url
from aiinvariants.integrations._fastapi_errors import (
    HeaderRefused,
    install_exception_handlers,
)
from aiinvariants.integrations._fastapi_routes import (
    NO_FACTS,
    Frontend,
    RouteFacts,
    calls_and_scopes,
    route_facts,
    route_table,
    routes,
    same_table,
)
from aiinvariants.integrations.asgi import AsyncVerifier, bearer_token, scanned_receive

__all__ = ["FastAPIAuth", "install_exception_handlers"]

#: Paths FastAPI serves itself, outside its dependency system.
_DOCS_ATTRIBUTES: Final = (
    "openapi_url",
    "docs_url",
    "redoc_url",
    "swagger_ui_oauth2_redirect_url",
)


class _BearerScheme(SecurityBase):
    """The OpenAPI security scheme, and the one place the token is read."""

    def __init__(self, model: SecurityModel, scheme_name: str) -> None:
        self.model = model
        self.scheme_name = scheme_name

    async def __call__(self, conn: HTTPConnection) -> str | None:
        token, problem = bearer_token(conn.scope)
        if problem is None and isinstance(conn, Request):
            problem = await form_token_problem(conn)
        if problem is not None:
            raise HeaderRefused(
                "the request's bearer credentials are unusable", code=problem
            )
        return token

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scheme_name!r})"


async def form_token_problem(request: Request) -> str | None:
    """RFC 6750 section 2.2: a form body naming ``access_token`` is refused.

    The names are read as the route reads them (Starlette's parsed form,
    cached: FastAPI has usually parsed it already), when the body's declared
    length is within :data:`~aiinvariants.auth._bearer.MAX_FORM_BYTES`. A
    multipart body is a form too (``Form()`` reads both). One FastAPI has
    not parsed (the route reads the request itself, maybe as a stream: a
    large upload) is not read here; it is scanned as the route reads it,
    and a part named ``access_token`` ends the body (``http.disconnect``),
    so the route never reads that form.
    """
    headers = request.scope.get("headers", ())
    kinds = form_kinds(headers)
    if not kinds:
        return None
    length = request.headers.get("content-length")
    too_long = length is not None and (
        not length.isdigit() or int(length) > MAX_FORM_BYTES
    )
    if "urlencoded" in kinds and too_long:
        return "form_too_large"
    receive = getattr(request, "_receive", None)
    parsed = getattr(request, "_form", None) is not None
    # No declared length (chunked): read at most MAX_FORM_BYTES, never the
    # whole body (Starlette's url-encoded form parser has no bound of its own).
    chunked = "urlencoded" in kinds and length is None and not parsed
    if chunked and not await _bounded_body(request):
        return "form_too_large"
    if kinds == {"multipart"} and not parsed and callable(receive):
        names = MultipartNames(form_charsets(headers))
        request._receive = scanned_receive(receive, names)
        return None
    form = await request.form()
    names_read = (name.strip().lower() for name in form)
    return "token_in_body" if "access_token" in names_read else None


async def _bounded_body(request: Request) -> bool:
    """Read the body into Starlette's cache (the route reads it from there),
    unless it is longer than :data:`MAX_FORM_BYTES`: then False."""
    if hasattr(request, "_body"):
        return len(request._body) <= MAX_FORM_BYTES
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return False
        chunks.append(chunk)
    request._body = b"".join(chunks)
    return True


class FastAPIAuth:
    """Bearer authentication and scope checks as FastAPI dependencies.

    Args:
        guard: the guard whose policy (exposure, scope rule) and audit log
            apply.
        verifier: a ``JWTVerifier`` or ``IntrospectionVerifier`` (anything
            with ``await averify(token)``). Default: the one the policy's
            ``identity`` section describes, auditing to the guard's log
            (``PolicyError`` when the policy has none).
        authorization_url: the authorization server's authorization endpoint;
            with ``token_url``, OpenAPI gets an OAuth2 authorization-code
            scheme (Swagger's Authorize button asks for the scopes).
        token_url: the authorization server's token endpoint.
        refresh_url: its refresh endpoint, if any.
        scopes: the scopes Swagger offers: names, or names with descriptions.
        scheme_name: the scheme's name in OpenAPI.
        metadata: an RFC 9728 document (see
            :func:`~aiinvariants.auth.protected_resource_metadata`):
            :meth:`install` serves it unauthenticated at its well-known path
            and every challenge names it in ``resource_metadata``.
        resource_metadata_url: the metadata URL when it is served elsewhere.
        anonymous_paths: exact paths of routes outside FastAPI's dependency
            system (plain Starlette routes, mounts, FastAPI's own ``/docs``
            and ``/openapi.json``) that an ``exposure: internal`` app serves
            anonymously on purpose. :meth:`check_app` refuses any other.
        unsafe_allow_dependency_overrides: let ``app.dependency_overrides``
            replace these dependencies (a test's fake user left in place in
            production authenticates everyone). Warns and is audited; without
            it such a request is refused (``PolicyError``, a 500).

    Raises:
        PolicyError: a guard, verifier, scope or URL that cannot work.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        verifier: AsyncVerifier | None = None,
        authorization_url: str | None = None,
        token_url: str | None = None,
        refresh_url: str | None = None,
        scopes: Mapping[str, str] | Iterable[str] = (),
        scheme_name: str = "aiinvariants",
        metadata: Mapping[str, Any] | None = None,
        resource_metadata_url: str | None = None,
        anonymous_paths: Collection[str] = (),
        unsafe_allow_dependency_overrides: bool = False,
    ) -> None:
        if not isinstance(guard, Guard):
            raise PolicyError(f"FastAPIAuth needs a Guard, got {type(guard).__name__}")
        if verifier is None:
            verifier = _policy_verifier(guard)
        if not callable(getattr(verifier, "averify", None)):
            raise PolicyError(
                "FastAPIAuth(verifier=...) needs a verifier with averify(); "
                "build one with JWTVerifier.from_policy(policy)"
            )
        if isinstance(anonymous_paths, str) or not all(
            isinstance(path, str) and path.startswith("/") for path in anonymous_paths
        ):
            raise PolicyError(
                "anonymous_paths= takes a collection of paths starting with '/'"
            )
        self.guard = guard
        self.verifier = verifier
        self._metadata: bytes | None = None
        self._metadata_path: str | None = None
        self._own_endpoints: WeakSet[Callable[..., Any]] = WeakSet()
        if metadata is not None:
            url = metadata_url(str(metadata.get("resource", "")))
            self._metadata = json.dumps(dict(metadata)).encode()
            self._metadata_path = urlsplit(url).path
            resource_metadata_url = resource_metadata_url or url
        self.resource_metadata_url = resource_metadata_url
        self.anonymous_paths = frozenset(anonymous_paths)
        self._key = f"aiinvariants.fastapi.principal.{id(self)}"
        self._routes: dict[int, tuple[BaseRoute, RouteFacts]] = {}
        self._installed: WeakSet[FastAPI] = WeakSet()
        self._judged: WeakKeyDictionary[
            FastAPI, tuple[tuple[tuple[Any, ...], ...], tuple[str, Any] | None]
        ] = WeakKeyDictionary()
        self._rules: dict[tuple[str, ...], ScopeRule] = {}
        self.scheme: _BearerScheme = _BearerScheme(
            _scheme_model(
                authorization_url=authorization_url,
                token_url=token_url,
                refresh_url=refresh_url,
                scopes=_scope_descriptions(scopes),
            ),
            _scheme_name(scheme_name),
        )
        self.user, self.optional_user, self.gate = self._dependencies()
        self._ours = frozenset({self.user, self.optional_user, self.gate, self.scheme})
        self._allow_overrides = bool(unsafe_allow_dependency_overrides)
        if self._allow_overrides:
            warnings.warn(
                "FastAPIAuth(unsafe_allow_dependency_overrides=True): an "
                "override of its dependencies replaces authentication",
                InsecureUsageWarning,
                stacklevel=2,
            )
            guard.audit.record(
                invariant="I1",
                decision="flag",
                reason="insecure_setting",
                resource="fastapi.dependency_overrides",
            )

    # -- the dependencies -------------------------------------------------

    def _dependencies(
        self,
    ) -> tuple[
        Callable[..., AsyncIterator[Principal]],
        Callable[..., AsyncIterator[Principal]],
        Callable[..., AsyncIterator[Principal]],
    ]:
        # The instance itself: FastAPI finds the OpenAPI scheme by its type.
        scheme = cast("Callable[..., Any]", self.scheme)

        async def user(
            conn: HTTPConnection,
            security_scopes: SecurityScopes,
            token: str | None = Depends(scheme),
        ) -> AsyncIterator[Principal]:
            """The verified user, holding every scope the route declares."""
            self._refuse_overrides(conn, self._facts(conn.scope.get("route")))
            principal = await self._principal(conn, token)
            rule = self._rule(security_scopes.scopes)
            self.guard.check_scopes(rule, resource=_resource(conn), principal=principal)
            async with acting_as(principal):
                yield principal

        async def optional_user(
            conn: HTTPConnection,
            security_scopes: SecurityScopes,
            token: str | None = Depends(scheme),
        ) -> AsyncIterator[Principal]:
            """The verified user, or ANONYMOUS when no token came."""
            _no_scopes("optional_user", security_scopes)
            self._refuse_overrides(conn, self._facts(conn.scope.get("route")))
            principal = await self._principal(conn, token)
            if not principal.authenticated:
                self._record_anonymous(conn)
            async with acting_as(principal):
                yield principal

        async def gate(
            conn: HTTPConnection,
            security_scopes: SecurityScopes,
            token: str | None = Depends(scheme),
        ) -> AsyncIterator[Principal]:
            """App-wide: a route declaring neither dependency needs a user
            under ``exposure: internal``."""
            _no_scopes("gate", security_scopes)
            facts = self._facts(conn.scope.get("route"))
            self._refuse_overrides(conn, facts)
            principal = await self._principal(conn, token)
            if facts.declared is not None:
                # The route's own user/optional_user checks and acts as the
                # principal for the body; one acting_as block is enough. On
                # a user route, refuse now what user will refuse: the
                # route's other dependencies (resolved before user when
                # declared first) must not run for a caller user turns away.
                if facts.declared == "user":
                    self._refuse_early(conn, principal, facts)
                yield principal
                return
            if self.guard.policy.exposure == "internal":
                self.guard.check_scopes(
                    None, resource=_resource(conn), principal=principal
                )
            async with acting_as(principal):
                yield principal

        user.__qualname__ = "FastAPIAuth.user"
        optional_user.__qualname__ = "FastAPIAuth.optional_user"
        gate.__qualname__ = "FastAPIAuth.gate"
        return user, optional_user, gate

    async def _principal(self, conn: HTTPConnection, token: str | None) -> Principal:
        """The request's principal, verified once per request."""
        cached = conn.scope.get(self._key)
        if isinstance(cached, Principal):
            return cached
        principal = ANONYMOUS if token is None else await self.verifier.averify(token)
        if not isinstance(principal, Principal):
            raise PolicyError("the verifier returned no Principal; refused")
        if token is not None and not principal.authenticated:
            # A present token is a user or a refusal, never anonymous.
            raise TokenInvalid(
                "the verifier did not authenticate the token", code="token_invalid"
            )
        conn.scope[self._key] = principal
        return principal

    def _refuse_early(
        self, conn: HTTPConnection, principal: Principal, facts: RouteFacts
    ) -> None:
        """The refusal ``user`` would give, decided by the guard (audited);
        an allowed caller is checked (and audited) by ``user`` alone."""
        if self._allow_overrides:
            overrides = getattr(conn.scope.get("app"), "dependency_overrides", {})
            if any(key is self.user or key in facts.wrappers for key in overrides):
                return  # replaced on purpose (unsafe_allow_dependency_overrides)
        rule = self._rule(sorted(facts.scopes))
        if principal.authenticated and (rule is None or rule.allows(principal.scopes)):
            return
        self.guard.check_scopes(rule, resource=_resource(conn), principal=principal)

    def _rule(self, scopes: list[str]) -> ScopeRule | None:
        """The rule of a route's scopes, built once per set of scopes."""
        if not scopes:
            return None
        key = tuple(scopes)
        rule = self._rules.get(key)
        if rule is None:
            rule = all_of(*scopes)  # PolicyError for a scope that is not a token
            if len(self._rules) > 1024:
                self._rules.clear()
            self._rules[key] = rule
        return rule

    def _record_anonymous(self, conn: HTTPConnection) -> None:
        """An internal app serving an anonymous caller on purpose (I2)."""
        audit = self.guard.audit
        if self.guard.policy.exposure == "internal" and audit.active:
            audit.record(
                invariant="I2",
                decision="allow",
                reason="anonymous_route",
                resource=_resource(conn),
                principal=ANONYMOUS,
            )

    def _refuse_overrides(self, conn: HTTPConnection, facts: RouteFacts) -> None:
        app = conn.scope.get("app")
        if app not in self._installed:
            # Without install() nothing judges the app's other routes: a
            # route that forgot its dependency would serve anyone.
            raise PolicyError(
                "FastAPIAuth serves an app it was not installed on: call "
                "auth.install(app) before serving it"
            )
        if self._allow_overrides:
            return
        overrides = getattr(app, "dependency_overrides", None)
        if not overrides:
            return
        if any(key in self._ours or key in facts.wrappers for key in overrides):
            raise PolicyError(
                "app.dependency_overrides replaces a FastAPIAuth dependency or "
                "one that wraps it: remove the override (a test's fake user "
                "must not reach production) or pass "
                "unsafe_allow_dependency_overrides=True"
            )

    def _facts(self, route: object) -> RouteFacts:
        """What the route declares, computed once per route."""
        if not isinstance(route, BaseRoute):
            return NO_FACTS
        hit = self._routes.get(id(route))
        if hit is not None and hit[0] is route:
            return hit[1]
        facts = route_facts(getattr(route, "dependant", None), self)
        if len(self._routes) > 4096:
            self._routes.clear()
        self._routes[id(route)] = (route, facts)
        return facts

    # -- the app ----------------------------------------------------------

    def install(self, app: FastAPI) -> FastAPI:
        """Install the exception handlers, serve the metadata, check at startup.

        :meth:`check_app` runs when the app starts (its lifespan, before and
        after the app's own startup code), so an app that would serve a
        route unauthenticated by mistake does not start; and again before a
        request whenever the route table, the dependency overrides or the
        policy's exposure changed (a middleware), so a route added later,
        or an app whose lifespan never runs, is refused (500) rather than
        served. Call it before the app serves. Idempotent per app.

        Raises:
            PolicyError: ``app`` is not a FastAPI app, or already serves.
        """
        if not isinstance(app, FastAPI):
            raise PolicyError(
                f"install() needs a FastAPI app, got {type(app).__name__}"
            )
        if app in self._installed:
            return app
        try:  # first: an app that already serves is left untouched
            app.add_middleware(_RouteTableCheck, auth=self)
        except RuntimeError as exc:
            raise PolicyError(
                "install() must be called before the app serves its first request"
            ) from exc
        self._installed.add(app)
        install_exception_handlers(
            app, resource_metadata_url=self.resource_metadata_url
        )
        if self._metadata is not None and self._metadata_path is not None:
            body = self._metadata

            async def protected_resource_metadata(request: Request) -> Response:
                return Response(
                    body,
                    media_type="application/json",
                    headers={"cache-control": "public, max-age=3600"},
                )

            # A plain route: outside the app's dependencies, so it is always
            # served without a token (RFC 9728).
            app.router.add_route(self._metadata_path, protected_resource_metadata)
            self._own_endpoints.add(protected_resource_metadata)
        original = app.router.lifespan_context

        @asynccontextmanager
        async def checked(started: Any) -> AsyncIterator[Any]:
            self.check_app(app)
            async with original(started) as state:
                # Again after the app's own startup: routes its lifespan or
                # startup handlers added are served too.
                self.check_app(app)
                yield state

        app.router.lifespan_context = checked
        return app

    def _check_route_table(self, app: FastAPI) -> None:
        """:meth:`check_app` again whenever what it judged has changed.

        Run before every request by :meth:`install`'s middleware, so a route,
        mount or override added after startup, a lifespan that never ran
        (``--lifespan off``, an app mounted in another) or a policy reloaded
        to ``internal`` is judged before a request reaches it. Costs one
        comparison of the route table per request.
        """
        key = route_table(app, self.guard.policy.exposure)
        seen = self._judged.get(app)
        if seen is not None and same_table(seen[0], key):
            if seen[1] is not None:
                # A new exception per request: one raised again and again
                # would grow its traceback and be shared across requests.
                raise PolicyError(seen[1][0], errors=seen[1][1])
            return
        try:
            self.check_app(app)
        except PolicyError as exc:
            self._judged[app] = (key, (exc.message, exc.errors))
            raise
        self._judged[app] = (key, None)

    def check_app(self, app: FastAPI) -> None:
        """Refuse an app that would serve a route by mistake.

        Raises:
            PolicyError: naming every problem: an override of these
                dependencies in ``app.dependency_overrides``; a scope that is
                not an RFC 6749 scope token; under ``exposure: internal``, an
                API route that depends on neither :attr:`user`,
                :attr:`optional_user` nor :attr:`gate`, and any other route
                or mount (FastAPI's ``/docs`` included) not listed in
                ``anonymous_paths``.
        """
        problems: list[tuple[str, str]] = []
        overridden = set(app.dependency_overrides)
        if not self._allow_overrides:
            for key in overridden & self._ours:
                problems.append(
                    (
                        "dependency_overrides",
                        f"{getattr(key, '__qualname__', key)!s} is overridden",
                    )
                )
        internal = self.guard.policy.exposure == "internal"
        docs = {getattr(app, name, None) for name in _DOCS_ATTRIBUTES}
        for route, effective in routes(app):
            path = str(getattr(effective, "path", "") or "")
            if isinstance(route, (APIRoute, APIWebSocketRoute)) or (
                getattr(effective, "dependant", None) is not None
            ):
                calls, scopes = calls_and_scopes(effective)
                facts = route_facts(getattr(effective, "dependant", None), self)
                if not self._allow_overrides and facts.wrappers & overridden:
                    problems.append((path, "a dependency wrapping auth is overridden"))
                if facts.unchecked_scopes:
                    problems.append(
                        (path, "scopes given to optional_user or gate are not checked")
                    )
                for scope in sorted(scopes):
                    try:
                        validate_scope_token(scope)
                    except ValueError:
                        problems.append((path, f"scope {scope!r} is not a scope token"))
                if isinstance(effective, Frontend) and (
                    effective.paths <= self.anonymous_paths
                ):
                    continue
                if internal and not calls & {self.user, self.optional_user, self.gate}:
                    problems.append(
                        (path, "depends on neither auth.user, optional_user nor gate")
                    )
            elif internal and getattr(route, "endpoint", None) not in (
                self._own_endpoints
            ):
                if path in self.anonymous_paths:
                    continue
                what = "FastAPI's docs" if path in docs else "a route or mount"
                problems.append(
                    (
                        path,
                        f"{what} outside FastAPI's dependencies is served "
                        "anonymously: list it in anonymous_paths or remove it",
                    )
                )
        if problems:
            raise PolicyError(
                "this app would serve requests the policy does not allow",
                errors=problems,
            )

    def __repr__(self) -> str:
        return f"FastAPIAuth({self.guard!r}, scheme={self.scheme!r})"


class _RouteTableCheck:
    """ASGI middleware of :meth:`FastAPIAuth.install`: the app's routes are
    judged again before a request when they changed (``PolicyError``, 500)."""

    def __init__(self, app: Any, *, auth: FastAPIAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        served = scope.get("app")
        if scope["type"] in ("http", "websocket") and isinstance(served, FastAPI):
            self.auth._check_route_table(served)
        await self.app(scope, receive, send)


def _policy_verifier(guard: Guard) -> AsyncVerifier:
    """The verifier of the policy's ``identity`` section, auditing to the guard."""
    identity = guard.policy.identity
    if identity is None:
        raise PolicyError(
            "FastAPIAuth needs verifier=, or a policy with an identity section"
        )
    if identity.introspection_endpoint is not None:
        from aiinvariants.auth import IntrospectionVerifier

        return IntrospectionVerifier.from_policy(guard.policy, audit=guard.audit)
    from aiinvariants.auth import JWTVerifier

    return JWTVerifier.from_policy(guard.policy, audit=guard.audit)


def _no_scopes(name: str, security_scopes: SecurityScopes) -> None:
    if security_scopes.scopes:
        # Scopes declared on a dependency that does not check them would
        # read as enforced in the code and in OpenAPI: refuse the request.
        raise PolicyError(
            f"Security(auth.{name}, scopes=...) checks no scopes; use "
            "Security(auth.user, scopes=...)"
        )


def _resource(conn: HTTPConnection) -> str:
    """The audited resource: the route's path template, not the raw path."""
    route = conn.scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    method = conn.scope.get("method") or "WS"
    return f"{method} {path or conn.url.path}"


def _scope_descriptions(scopes: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    if isinstance(scopes, str):
        raise PolicyError("scopes= takes scope names or a mapping, not a string")
    pairs = scopes.items() if isinstance(scopes, Mapping) else ((s, "") for s in scopes)
    result: dict[str, str] = {}
    for name, description in pairs:
        try:
            validate_scope_token(name)
        except ValueError as exc:
            raise PolicyError(f"FastAPIAuth(scopes=...): {exc}") from None
        result[name] = str(description)
    return result


def _scheme_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise PolicyError("FastAPIAuth(scheme_name=...) must be a non-empty string")
    return name


def _scheme_model(
    *,
    authorization_url: str | None,
    token_url: str | None,
    refresh_url: str | None,
    scopes: dict[str, str],
) -> SecurityModel:
    if (authorization_url is None) != (token_url is None):
        raise PolicyError(
            "FastAPIAuth needs both authorization_url and token_url for an "
            "OAuth2 scheme, or neither for an HTTP bearer scheme"
        )
    if authorization_url is None or token_url is None:
        if refresh_url is not None:
            raise PolicyError("refresh_url= needs authorization_url and token_url")
        return HTTPBearerModel(bearerFormat="JWT")
    flow = OAuthFlowAuthorizationCode(
        authorizationUrl=authorization_url,
        tokenUrl=token_url,
        refreshUrl=refresh_url,
        scopes=scopes,
    )
    return OAuth2Model(flows=OAuthFlows(authorizationCode=flow))
