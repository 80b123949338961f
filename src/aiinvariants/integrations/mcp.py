"""Guarded tools for the official MCP Python SDK (server and client side).

Closes three gaps of the SDK for its users:

- :class:`GuardTokenVerifier` is a ``TokenVerifier`` for the SDK's auth
  settings built on :class:`~aiinvariants.auth.JWTVerifier` that *always*
  checks the token's audience against the server's canonical resource URI
  (the SDK accepts a token issued for another server unless
  ``validate_token_resource`` is set).
- :meth:`MCPGuard.tool` registers a tool with per-tool scopes, capabilities,
  data level and exposure (:mod:`aiinvariants.tools`), decided for the
  principal of the *verified token of the current request*, never from the
  tool's arguments. A denial is a tool error inside JSON-RPC.
- :meth:`MCPGuard.asgi` wraps the SDK's streamable HTTP app: a ``tools/call``
  whose scopes the token lacks is answered ``403`` with
  ``WWW-Authenticate: Bearer error="insufficient_scope", scope="…",
  resource_metadata="…"`` as the MCP authorization spec asks (the SDK's
  challenge has no ``scope=``). :meth:`MCPGuard.filter_tools` makes
  ``tools/list`` show only what the caller may call.

On stdio there is no bearer token: identity comes only from an explicitly
configured source (:meth:`MCPGuard.stdio_identity_from_env`, a token that is
still verified), otherwise every guarded tool fails closed with
``identity_missing``.

:class:`GuardedClientSession` wraps the SDK's ``ClientSession`` on its
lowest request path: every request it sends (``call_tool``,
``send_request``, subscriptions…) passes the policy first (declared tools,
forbidden capabilities, scopes of the current principal, run taint, and
only side-effect free methods besides ``tools/call``); see
:mod:`aiinvariants.integrations._mcp_client`.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiinvariants.errors import (
    AuthenticationRequired,
    InvariantViolation,
    MissingIntegrationError,
    PolicyError,
    ScopeDenied,
    TokenInvalid,
)
from aiinvariants.principal import ANONYMOUS, Principal, acting_as
from aiinvariants.tools import (
    ToolSpec,
    call_checked_tool,
    capped_tool,
    register_tool,
)

try:
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="mcp", package="mcp") from exc

from aiinvariants.auth.metadata import metadata_url
from aiinvariants.integrations._mcp_client import GuardedClientSession

if TYPE_CHECKING:
    from aiinvariants.auth import JWTVerifier
    from aiinvariants.guard import Guard

__all__ = [
    "GuardTokenVerifier",
    "GuardedClientSession",
    "MCPGuard",
]

F = TypeVar("F", bound=Callable[..., Any])
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Any]],
        Callable[[Any], Awaitable[None]],
    ],
    Awaitable[None],
]

#: The largest JSON-RPC body the 403 pre-check reads; bigger bodies go to the
#: SDK untouched (its own limit applies) and are still checked in the tool.
_MAX_PRECHECK_BYTES: Final = 4 * 1024 * 1024


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


class MCPGuard:
    """Guards the tools of one ``mcp`` ``MCPServer``.

    Args:
        guard: the guard whose policy decides and whose audit log records.
        token_verifier: verifies bearer tokens of HTTP requests (and the
            stdio identity); None for a server with no identity source.
        accept_anonymous: let a call with no identity run as ``ANONYMOUS``
            (only public tools with public data will pass). Without it, a
            guarded tool called with no identity fails closed
            (``identity_missing``), as on stdio with no configured identity.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        token_verifier: GuardTokenVerifier | None = None,
        accept_anonymous: bool = False,
    ) -> None:
        self._guard = guard
        self._verifier = token_verifier
        self._anonymous = accept_anonymous
        self._stdio_token: str | None = None
        self._specs: dict[str, tuple[ToolSpec, Callable[..., Any]]] = {}

    @property
    def guard(self) -> Guard:
        """The guard that decides."""
        return self._guard

    @property
    def token_verifier(self) -> GuardTokenVerifier | None:
        """The SDK ``TokenVerifier`` to pass as ``MCPServer(token_verifier=...)``."""
        return self._verifier

    def auth_settings(
        self, *, issuer_url: str, required_scopes: Iterable[str] = ()
    ) -> AuthSettings:
        """``AuthSettings`` for the SDK, resource-bound, audience always checked.

        Raises:
            PolicyError: no token verifier was configured.
        """
        if self._verifier is None:
            raise PolicyError("auth_settings() needs MCPGuard(token_verifier=...)")
        return AuthSettings(
            issuer_url=issuer_url,
            resource_server_url=self._verifier.resource,
            validate_token_resource=True,
            required_scopes=list(required_scopes) or None,
        )

    # -- identity ------------------------------------------------------------

    def stdio_identity_from_env(self, variable: str = "MCP_ACCESS_TOKEN") -> None:
        """Take the stdio identity from a token in the environment.

        The token is verified now and again (cached) at every call, so an
        expired or revoked-by-rotation token stops working.

        Raises:
            PolicyError: no token verifier, or the variable is missing.
            TokenInvalid: the token does not verify.
        """
        if self._verifier is None:
            raise PolicyError("a stdio identity needs MCPGuard(token_verifier=...)")
        token = os.environ.get(variable, "")
        if not token:
            raise PolicyError(f"environment variable {variable} is not set")
        self._verifier.principal(token)
        self._stdio_token = token

    def current_principal(self) -> Principal:
        """The principal of the current MCP request.

        The verified bearer token of the HTTP request; else the configured
        stdio identity; else ``ANONYMOUS`` if accepted.

        Raises:
            AuthenticationRequired: no identity (``identity_missing``).
            TokenInvalid: the token no longer verifies.
        """
        access = get_access_token()
        if access is not None and self._verifier is not None:
            return self._verifier.principal(access.token)
        if self._stdio_token is not None and self._verifier is not None:
            return self._verifier.principal(self._stdio_token)
        if self._anonymous:
            return ANONYMOUS
        raise AuthenticationRequired(
            "no verified identity for this MCP call",
            code="identity_missing",
            subject=ANONYMOUS.subject,
        )

    # -- tools -----------------------------------------------------------------

    def tool(
        self,
        server: Any,
        *,
        name: str | None = None,
        scopes: Iterable[str] = (),
        any_scopes: Iterable[str] = (),
        capabilities: Iterable[str] = (),
        data: str | None = None,
        exposure: str | None = None,
        untrusted_output: bool | None = None,
        **tool_options: Any,
    ) -> Callable[[F], F]:
        """Register a guarded tool on ``server`` (an ``MCPServer``).

        ``tool_options`` go to ``server.add_tool`` (``title=``...).

        Raises:
            PolicyError: at registration, for a forbidden capability (I3)
                or a malformed declaration.
        """

        if type(server).__module__.split(".", 1)[0] == "fastmcp":
            # FastMCP's add_tool takes a Tool, not (fn, name=...): its servers
            # are guarded by their own integration, never half-registered here.
            raise PolicyError(
                "MCPGuard.tool() registers tools on the official SDK's MCPServer; "
                "for a FastMCP server use aiinvariants.integrations.fastmcp "
                "(guard_fastmcp(guard, server))"
            )

        def decorate(fn: F) -> F:
            # The same registration as guard.tool: one declaration check,
            # forbidden capabilities followed through every layer of fn.
            spec = register_tool(
                self._guard,
                fn,
                name=name,
                scopes=scopes,
                any_scopes=any_scopes,
                capabilities=capabilities,
                data=data,
                exposure=exposure,
                untrusted_output=untrusted_output,
            )
            tool_name = spec.name
            wrapper = self._wrap(fn, tool_name, spec)
            self._specs[tool_name] = (spec, fn)
            server.add_tool(wrapper, name=tool_name, **tool_options)
            return fn

        return decorate

    def _decide(self, tool_name: str, spec: ToolSpec, fn: Any) -> Principal:
        try:
            who = self.current_principal()
        except AuthenticationRequired as exc:
            self._guard.audit.record(
                invariant="I1",
                decision="deny",
                reason=exc.code,
                resource=f"tool.{tool_name}",
                principal=ANONYMOUS,
            )
            raise
        with acting_as(who):
            call_checked_tool(self._guard, spec, fn, principal=who)
        return who

    def _wrap(self, fn: Callable[..., Any], tool_name: str, spec: ToolSpec) -> Any:
        run = capped_tool(self._guard, spec, fn)  # the data level caps the result

        def denied(exc: InvariantViolation) -> ToolError:
            # The message carries codes and scope names only, never tokens.
            return ToolError(str(exc))

        if inspect.iscoroutinefunction(fn):

            async def async_tool(*args: Any, **kwargs: Any) -> Any:
                try:
                    who = self._decide(tool_name, spec, fn)
                except InvariantViolation as exc:
                    raise denied(exc) from None
                async with acting_as(who):
                    try:
                        return await run(*args, **kwargs)
                    except InvariantViolation as exc:
                        raise denied(exc) from None

            wrapper: Any = async_tool
        else:

            def sync_tool(*args: Any, **kwargs: Any) -> Any:
                try:
                    who = self._decide(tool_name, spec, fn)
                except InvariantViolation as exc:
                    raise denied(exc) from None
                with acting_as(who):
                    try:
                        return run(*args, **kwargs)
                    except InvariantViolation as exc:
                        raise denied(exc) from None

            wrapper = sync_tool
        functools.update_wrapper(wrapper, fn)
        wrapper.spec = spec
        return wrapper

    def allowed(self, tool_name: str, principal: Principal) -> bool:
        """Whether ``principal`` may call guarded tool ``tool_name`` (dry run)."""
        entry = self._specs.get(tool_name)
        if entry is None:
            return True  # not guarded here: not ours to hide
        spec, fn = entry
        try:
            call_checked_tool(self._guard, spec, fn, principal=principal, record=False)
        except InvariantViolation:
            return False
        return True

    def filter_tools(self, server: Any) -> None:
        """Make ``tools/list`` on ``server`` list only what the caller may call."""
        original = server.list_tools

        async def list_tools() -> Any:
            tools = await original()
            try:
                who = self.current_principal()
            except InvariantViolation:
                who = None
            return [
                t
                for t in tools
                if t.name not in self._specs
                or (who is not None and self.allowed(t.name, who))
            ]

        server.list_tools = list_tools

    # -- HTTP: 403 insufficient_scope --------------------------------------------

    def asgi(self, app: Any, *, path: str = "/mcp") -> ASGIApp:
        """Wrap the SDK's streamable HTTP app with the 403 scope pre-check.

        A ``tools/call`` for a guarded tool whose scopes the verified token
        lacks is answered ``403`` with an ``insufficient_scope`` challenge
        naming every scope the call needs and the resource metadata URL;
        everything else (including requests without a valid token, which
        the SDK answers with 401) goes to ``app`` unchanged.
        """
        verifier = self._verifier
        if verifier is None:
            raise PolicyError("asgi() needs MCPGuard(token_verifier=...)")
        resource_metadata = metadata_url(verifier.resource)
        mcp_path = path.rstrip("/") or "/"

        async def guarded_app(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            if (
                scope.get("type") != "http"
                or scope.get("method") != "POST"
                or (scope.get("path", "").rstrip("/") or "/") != mcp_path
            ):
                await app(scope, receive, send)
                return
            body, complete = await _read_body(receive)
            replay = _replay(body, complete, receive)
            if complete:
                denial = await self._scope_shortfall(scope, body)
                if denial is not None:
                    await _send_403(send, denial, resource_metadata)
                    return
            await app(scope, replay, send)

        return guarded_app

    async def _scope_shortfall(
        self, scope: MutableMapping[str, Any], body: bytes
    ) -> ScopeDenied | None:
        names = _called_tools(body)
        if not names or self._verifier is None:
            return None
        token = _bearer(scope)
        if token is None:
            return None
        try:
            who = await self._verifier.aprincipal(token)
        except TokenInvalid:
            return None  # the SDK answers 401
        for tool_name in names:
            entry = self._specs.get(tool_name)
            if entry is None:
                continue
            spec, fn = entry
            try:
                call_checked_tool(self._guard, spec, fn, principal=who, record=False)
            except ScopeDenied as exc:
                self._guard.audit.record(
                    invariant="I1",
                    decision="deny",
                    reason=exc.code,
                    resource=f"tool.{tool_name}",
                    details={
                        "required": " ".join(exc.required),
                        "missing": " ".join(exc.missing),
                        "http": 403,
                    },
                    principal=who,
                )
                return exc
            except InvariantViolation:
                continue  # answered as a tool error by the tool itself
        return None


async def _read_body(receive: Callable[[], Awaitable[Any]]) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > _MAX_PRECHECK_BYTES:
            return b"".join(chunks), False


def _replay(
    body: bytes, complete: bool, receive: Callable[[], Awaitable[Any]]
) -> Callable[[], Awaitable[Any]]:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay


def _called_tools(body: bytes) -> list[str]:
    try:
        message = json.loads(body)
    except ValueError:
        return []
    messages = message if isinstance(message, list) else [message]
    names: list[str] = []
    for item in messages:
        if isinstance(item, dict) and item.get("method") == "tools/call":
            params = item.get("params")
            if isinstance(params, dict) and isinstance(params.get("name"), str):
                names.append(params["name"])
    return names


def _bearer(scope: MutableMapping[str, Any]) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or None
    return None


async def _send_403(
    send: Callable[[Any], Awaitable[None]], denial: ScopeDenied, metadata: str
) -> None:
    challenge = ScopeDenied(
        denial.reason,
        required=denial.required,
        missing=denial.missing,
        resource_metadata=metadata,
    ).www_authenticate
    body = json.dumps(
        {
            "error": "insufficient_scope",
            "error_description": "the token lacks a scope this tool needs",
            "scope": " ".join(denial.required),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
