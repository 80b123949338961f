"""The MCP SDK server's HTTP authentication: token verifier and front door.

- :class:`GuardTokenVerifier`: the SDK's ``TokenVerifier``, bound to the
  server's resource URI (a token for another audience is refused).
- :class:`HTTPFront`: what :meth:`MCPGuard.asgi` puts in front of the SDK's
  streamable HTTP app: the one bearer parser, 400/401 challenges with
  ``scope=`` and ``resource_metadata``, the 403 step-up for a call whose
  scopes the token lacks, and ``scopes_supported`` in the RFC 9728 document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiinvariants._errors import (
    AuthenticationRequired,
    InvariantViolation,
    MissingIntegrationError,
    PolicyError,
    ScopeDenied,
    TokenInvalid,
    bearer_challenge,
)
from aiinvariants._principal import Principal

try:
    from mcp.server.auth.provider import AccessToken
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="mcp", package="mcp") from exc

from aiinvariants.auth._metadata import metadata_url
from aiinvariants.integrations._mcp_http import (
    operations,
    read_body,
    replay,
    send_challenge,
    send_insufficient_scope,
    serve_metadata_with_scopes,
)
from aiinvariants.integrations._mcp_server import ReadGuard
from aiinvariants.integrations.asgi import bearer_token

if TYPE_CHECKING:
    from aiinvariants.auth import JWTVerifier
    from aiinvariants.integrations.mcp import MCPGuard

__all__ = ["ASGIApp", "GuardTokenVerifier", "HTTPFront"]

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Any]],
        Callable[[Any], Awaitable[None]],
    ],
    Awaitable[None],
]


def _canonical(uri: str) -> str:
    return uri.rstrip("/")


class GuardTokenVerifier:
    """The SDK's ``TokenVerifier``, always bound to this server's resource URI.

    Stops a token issued for another MCP server (or any other API of the same
    issuer) from being accepted here: the audience is checked against
    ``resource`` whatever the SDK's ``validate_token_resource`` says.

    Args:
        verifier: a :class:`~aiinvariants.auth.JWTVerifier` whose audiences
            include ``resource``.
        resource: the server's canonical resource URI (the ``aud`` its
            tokens carry).

    Raises:
        PolicyError: ``resource`` is not one of the verifier's audiences.
    """

    def __init__(self, verifier: JWTVerifier, *, resource: str) -> None:
        canon = _canonical(resource)
        if canon not in {_canonical(a) for a in verifier.audiences}:
            raise PolicyError(
                "GuardTokenVerifier: the JWTVerifier's audience must be the MCP "
                f"server's resource URI {resource!r}"
            )
        self._verifier = verifier
        self._resource = resource

    @property
    def resource(self) -> str:
        """The resource URI tokens must be issued for."""
        return self._resource

    @property
    def verifier(self) -> JWTVerifier:
        """The underlying JWT verifier."""
        return self._verifier

    def principal(self, token: str) -> Principal:
        """Verify ``token`` (cached) and check its audience; raise TokenInvalid."""
        who = self._verifier.verify(token)
        self._check_audience(who)
        return who

    async def aprincipal(self, token: str) -> Principal:
        """The async form of :meth:`principal`."""
        who = await self._verifier.averify(token)
        self._check_audience(who)
        return who

    def _check_audience(self, who: Principal) -> None:
        aud = who.claims.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud or ())
        if _canonical(self._resource) not in {
            _canonical(a) for a in auds if isinstance(a, str)
        }:
            raise TokenInvalid(
                "the token was issued for another resource",
                code="wrong_audience",
                subject=who.subject,
            )

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's hook: an ``AccessToken`` for a valid token, else None."""
        try:
            who = await self.aprincipal(token)
        except TokenInvalid:
            return None
        exp = who.claims.get("exp")
        client_id = who.claims.get("client_id") or who.claims.get("azp") or ""
        return AccessToken(
            token=token,
            client_id=str(client_id) or who.subject,
            scopes=sorted(who.scopes),
            expires_at=int(exp) if isinstance(exp, (int, float)) else None,
            resource=self._resource,
            subject=who.subject,
            claims={"iss": who.issuer} if who.issuer else None,
        )


class HTTPFront:
    """The HTTP front door of one :class:`MCPGuard` (see :meth:`MCPGuard.asgi`)."""

    def __init__(self, owner: MCPGuard) -> None:
        self.owner = owner

    def wrap(self, app: Any, *, path: str) -> ASGIApp:
        """Wrap the SDK's streamable HTTP app: challenges and metadata.

        On the MCP endpoint: an unusable ``Authorization`` header is a 400,
        a missing or rejected token a 401 whose challenge carries
        ``scope=`` (what the request needs, else every supported scope) and
        ``resource_metadata``; a call whose scopes the verified token lacks
        (``tools/call``, ``resources/read``, ``prompts/get``, subscriptions,
        completions) a 403 ``insufficient_scope`` naming every scope it
        needs. The RFC 9728 document the SDK serves gets
        ``scopes_supported``. Everything else goes to ``app`` unchanged.
        """
        verifier = self.owner.token_verifier
        if verifier is None:
            raise PolicyError("asgi() needs MCPGuard(token_verifier=...)")
        resource_metadata = metadata_url(verifier.resource)
        metadata_path = urlsplit(resource_metadata).path.rstrip("/")
        mcp_path = path.rstrip("/") or "/"

        async def guarded_app(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            where = scope.get("path", "").rstrip("/") or "/"
            if scope.get("type") != "http" or where not in (mcp_path, metadata_path):
                await app(scope, receive, send)
                return
            if where == metadata_path:
                await serve_metadata_with_scopes(
                    app, scope, receive, send, self.owner.scopes_supported()
                )
                return
            body, complete = b"", True
            if scope.get("method") == "POST":
                body, complete = await read_body(receive)
                receive = replay(body, complete, receive)
            ops = operations(body) if complete else []
            token, problem = bearer_token(scope)
            if problem is not None:
                challenge = bearer_challenge(
                    error="invalid_request",
                    error_description=problem,
                    resource_metadata=resource_metadata,
                )
                await send_challenge(
                    send, 400, challenge, {"error": "invalid_request", "code": problem}
                )
                return
            if token is None and self.owner._anonymous:
                await app(scope, receive, send)
                return
            try:
                if token is None:
                    raise AuthenticationRequired("no bearer token")
                who = await verifier.aprincipal(token)
            except AuthenticationRequired as exc:
                await self._send_401(send, exc, ops, resource_metadata, token)
                return
            denial = await self._scope_shortfall(who, ops)
            if denial is not None:
                await send_insufficient_scope(send, denial, resource_metadata)
                return
            await app(scope, receive, send)

        return guarded_app

    async def _send_401(
        self,
        send: Callable[[Any], Awaitable[None]],
        exc: AuthenticationRequired,
        ops: list[tuple[str, Mapping[str, Any]]],
        resource_metadata: str,
        token: str | None,
    ) -> None:
        needed = await self._needed_scopes(ops) or self.owner.scopes_supported()
        scope_text = " ".join(needed) or None
        # RFC 6750 section 3.1: no error code when no credentials came.
        error = None if token is None else "invalid_token"
        challenge = bearer_challenge(
            error=error,
            error_description=None if token is None else exc.code,
            scope=scope_text,
            resource_metadata=resource_metadata,
        )
        document = {"error": error or "unauthorized", "code": exc.code}
        await send_challenge(send, 401, challenge, document)

    async def _needed_scopes(
        self, ops: list[tuple[str, Mapping[str, Any]]]
    ) -> list[str]:
        """The scopes the requests in ``ops`` need, for a 401's ``scope=``."""
        probe = Principal(subject="scope-probe", authenticated=True)
        needed: set[str] = set()
        for method, params in ops:
            denial = await self._dry_run(method, params, probe)
            if isinstance(denial, ScopeDenied):
                needed.update(denial.required)
        return sorted(needed)

    async def _dry_run(
        self, method: str, params: Mapping[str, Any], who: Principal
    ) -> InvariantViolation | None:
        try:
            if method == "tools/call" and self.owner._server is None:
                # Not protected: only tools registered here are ours to decide.
                if self.owner.registered_tool(params.get("name")):
                    self.owner.check_tool_call(params, who, record=False)
            elif self.owner._server is not None:
                read_guard = ReadGuard(self.owner, self.owner._server)
                await read_guard.decide(method, params, who, record=False)
        except InvariantViolation as exc:
            return exc
        return None

    async def _scope_shortfall(
        self, who: Principal, ops: list[tuple[str, Mapping[str, Any]]]
    ) -> ScopeDenied | None:
        for method, params in ops:
            denial = await self._dry_run(method, params, who)
            if isinstance(denial, ScopeDenied):
                self.owner.guard.audit.record(
                    invariant="I1",
                    decision="deny",
                    reason=denial.code,
                    resource=denial.resource,
                    details={
                        "required": " ".join(denial.required),
                        "missing": " ".join(denial.missing),
                        "http": 403,
                    },
                    principal=who,
                )
                return denial
        return None
