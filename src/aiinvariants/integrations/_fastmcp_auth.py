"""The FastMCP auth provider built from a guard (see ``integrations.fastmcp``).

:class:`GuardAuthProvider` is a FastMCP ``RemoteAuthProvider`` whose token
check is the official-SDK integration's
:class:`~aiinvariants.integrations.mcp.GuardTokenVerifier` (a
:class:`~aiinvariants.auth.JWTVerifier` whose audience is always this
server's canonical resource URL, RFC 8707/9728). Its HTTP middleware, in
front of FastMCP's own:

1. refuses an unusable ``Authorization`` header (two of them, another
   scheme, a token in the URI query) with ``400 invalid_request`` and an
   invalid token with ``401 invalid_token``
   (:class:`~aiinvariants.integrations.asgi.BearerAuthMiddleware`);
2. answers a ``tools/call``, ``resources/read`` or ``prompts/get`` whose
   scopes the verified token lacks with ``403 insufficient_scope`` naming
   the scopes the policy requires and the metadata URL (the step-up the MCP
   authorization spec describes).

The RFC 9728 document lists ``scopes_supported`` (every scope the policy
names) and FastMCP's 401 challenge carries ``scope=`` and
``resource_metadata=``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from fastmcp.server.auth import AccessToken, RemoteAuthProvider, TokenVerifier
from pydantic import AnyHttpUrl
from starlette.middleware import Middleware as StarletteMiddleware

from aiinvariants._errors import (
    InvariantViolation,
    PolicyError,
    ScopeDenied,
    TokenInvalid,
)
from aiinvariants._principal import Principal
from aiinvariants.auth._metadata import metadata_url
from aiinvariants.integrations._mcp_http import (
    operations,
    read_body,
    replay,
    send_insufficient_scope,
)
from aiinvariants.integrations.asgi import BearerAuthMiddleware, bearer_token
from aiinvariants.integrations.mcp import GuardTokenVerifier
from aiinvariants.resources import check_prompt, check_resource
from aiinvariants.tools import check_tool

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants.auth import JWTVerifier

__all__ = ["GuardAuthProvider"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def policy_scopes(guard: Guard) -> list[str]:
    """Every scope the guard's policy names (tools, resources, prompts)."""
    return list(guard.policy.scopes_supported)


class _FastMCPVerifier(TokenVerifier):
    """FastMCP's ``TokenVerifier`` over a :class:`GuardTokenVerifier`."""

    def __init__(self, verifier: GuardTokenVerifier) -> None:
        super().__init__()
        self.guard_verifier = verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            who = await self.guard_verifier.aprincipal(token)
        except TokenInvalid:
            return None
        return _access_token(token, who, self.guard_verifier.resource)


def _access_token(token: str, who: Principal, resource: str) -> AccessToken:
    exp = who.claims.get("exp")
    client = who.claims.get("client_id") or who.claims.get("azp") or who.subject
    return AccessToken(
        token=token,
        client_id=str(client),
        scopes=sorted(who.scopes),
        expires_at=int(exp) if isinstance(exp, int | float) else None,
        resource=resource,
        subject=who.subject,
        # Claims a FastMCP ``auth=`` check may read; never the raw token.
        claims={k: v for k, v in who.claims.items() if isinstance(k, str)},
    )


class _AsyncVerifier:
    """``averify`` for :class:`BearerAuthMiddleware` (audience bound too)."""

    def __init__(self, verifier: GuardTokenVerifier) -> None:
        self._verifier = verifier

    async def averify(self, token: str) -> Principal:
        return await self._verifier.aprincipal(token)


class GuardAuthProvider(RemoteAuthProvider):
    """FastMCP ``auth=`` for a guarded server: resource-bound bearer tokens.

    Stops a token issued for another server of the same issuer (wrong
    audience), a token smuggled in the query string or in a second
    ``Authorization`` header, and a client left without the scopes it needs
    (``scopes_supported`` and ``scope=`` tell it which to ask for; a
    missing tool scope is a ``403 insufficient_scope`` step-up).

    Args:
        guard: whose policy names the scopes and decides the step-up.
        verifier: a :class:`~aiinvariants.auth.JWTVerifier` whose audiences
            include ``resource``; reused as is, no token check is repeated.
        resource: the server's canonical resource URL, e.g.
            ``https://mcp.example.com/mcp`` (its path must be the path the
            FastMCP app serves MCP on).
        authorization_servers: issuers clients get tokens from; defaults to
            the verifier's issuer.
        scopes_supported: scopes advertised in the metadata; defaults to
            every scope the policy names (tools, resources, prompts).
        challenge_scopes: ``scope=`` of the 401 challenge; defaults to
            ``scopes_supported``.
        resource_name: a human-readable name for the metadata.

    Raises:
        PolicyError: ``resource`` is not an http(s) URL with a path, or not
            one of the verifier's audiences.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        verifier: JWTVerifier,
        resource: str,
        authorization_servers: Sequence[str] | None = None,
        scopes_supported: Iterable[str] | None = None,
        challenge_scopes: Iterable[str] | None = None,
        resource_name: str | None = None,
    ) -> None:
        parts = urlsplit(resource)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PolicyError(
                f"GuardAuthProvider: resource={resource!r} must be the server's "
                "http(s) URL, e.g. 'https://mcp.example.com/mcp'"
            )
        if parts.query or parts.fragment:
            raise PolicyError("GuardAuthProvider: resource= takes no query/fragment")
        guard_verifier = GuardTokenVerifier(verifier, resource=resource)
        issuers = list(authorization_servers or [])
        if not issuers:
            issuers = [i for i in (getattr(verifier, "issuer", None),) if i]
        if not issuers or not all(isinstance(i, str) for i in issuers):
            raise PolicyError(
                "GuardAuthProvider: pass authorization_servers=[...] (the issuers "
                "clients get tokens from)"
            )
        supported = (
            sorted(set(scopes_supported))
            if scopes_supported is not None
            else policy_scopes(guard)
        )
        super().__init__(
            token_verifier=_FastMCPVerifier(guard_verifier),
            authorization_servers=[AnyHttpUrl(i) for i in issuers],
            base_url=f"{parts.scheme}://{parts.netloc}",
            scopes_supported=supported,
            challenge_scopes=(
                sorted(set(challenge_scopes))
                if challenge_scopes is not None
                else supported
            ),
            required_scopes=[],
            resource_name=resource_name,
        )
        self.guard = guard
        self.guard_verifier = guard_verifier
        self.resource = resource.rstrip("/")
        self._path = parts.path.rstrip("/") or "/"
        self.resource_metadata_url = metadata_url(self.resource)

    def set_mcp_path(self, mcp_path: str | None) -> None:
        """FastMCP's hook: the MCP path must be the resource URL's path."""
        served = (mcp_path or "/").rstrip("/") or "/"
        if served != self._path:
            raise PolicyError(
                f"GuardAuthProvider: the server serves MCP on {served!r} but "
                f"resource={self.resource!r}; tokens are issued for the resource "
                "URL, so the two must name the same path"
            )
        super().set_mcp_path(mcp_path)

    def get_middleware(self) -> list[Any]:
        """Bearer checks and the 403 step-up in front of FastMCP's own."""
        return [
            StarletteMiddleware(
                BearerAuthMiddleware,
                verifier=_AsyncVerifier(self.guard_verifier),
                resource_metadata_url=self.resource_metadata_url,
                # FastMCP's RequireAuthMiddleware answers a missing token
                # (with scope= and resource_metadata=); its metadata routes
                # are served without one.
                allow_anonymous=True,
            ),
            StarletteMiddleware(
                _ScopeStepUp,
                provider=self,
            ),
            *super().get_middleware(),
        ]


class _ScopeStepUp:
    """``403 insufficient_scope`` for a ``tools/call`` the token lacks scopes for."""

    def __init__(self, app: ASGIApp, *, provider: GuardAuthProvider) -> None:
        self.app = app
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = (scope.get("path", "") or "/").rstrip("/") or "/"
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or path != self.provider._path
        ):
            await self.app(scope, receive, send)
            return
        body, complete = await read_body(receive)
        replayed = replay(body, complete, receive)
        if complete:
            denial = await self._shortfall(scope, body)
            if denial is not None:
                await send_insufficient_scope(
                    send, denial, self.provider.resource_metadata_url
                )
                return
        await self.app(scope, replayed, send)

    async def _shortfall(self, scope: Scope, body: bytes) -> ScopeDenied | None:
        calls = _called(body)
        token, _ = bearer_token(scope)
        if not calls or token is None:
            return None
        try:
            who = await self.provider.guard_verifier.aprincipal(token)
        except TokenInvalid:
            return None  # answered 401 in front
        guard = self.provider.guard
        for method, name in calls:
            try:
                _DRY_RUNS[method](guard, name, who)
            except ScopeDenied as exc:
                guard.audit.record(
                    invariant="I1",
                    decision="deny",
                    reason=exc.code,
                    resource=exc.resource or method,
                    details={"missing": " ".join(exc.missing), "http": 403},
                    principal=who,
                )
                return exc
            except InvariantViolation:
                continue  # decided (and audited) by the middleware
        return None


def _dry_tool(guard: Guard, name: str, who: Principal) -> None:
    check_tool(guard, name, principal=who, record=False)


def _dry_resource(guard: Guard, uri: str, who: Principal) -> None:
    check_resource(guard, uri, principal=who, record=False)


def _dry_prompt(guard: Guard, name: str, who: Principal) -> None:
    check_prompt(guard, name, principal=who, record=False)


#: The requests a scope shortfall answers with a 403 step-up, by method: the
#: parameter naming what is called, read or got, and its dry-run decision.
_DRY_RUNS: Final[dict[str, Callable[[Guard, str, Principal], None]]] = {
    "tools/call": _dry_tool,
    "resources/read": _dry_resource,
    "prompts/get": _dry_prompt,
}
_TARGET: Final = {"tools/call": "name", "resources/read": "uri", "prompts/get": "name"}


def _called(body: bytes) -> list[tuple[str, str]]:
    """``(method, target)`` of every call, read or get in a JSON-RPC body."""
    found: list[tuple[str, str]] = []
    for method, params in operations(body):
        target = params.get(_TARGET[method]) if method in _TARGET else None
        if isinstance(target, str):
            found.append((method, target))
    return found
