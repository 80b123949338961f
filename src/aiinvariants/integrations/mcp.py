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
- :meth:`MCPGuard.protect` guards the server's resources and prompts (the
  ``resources:`` and ``prompts:`` of the policy) in the SDK's own request
  dispatch: reads, subscriptions, prompt gets and completions are decided
  like tool calls, listings show only what the caller may read (see
  :mod:`aiinvariants.integrations._mcp_server`); :meth:`MCPGuard.resource`
  and :meth:`MCPGuard.prompt` register guarded ones.
- :meth:`MCPGuard.asgi` wraps the SDK's streamable HTTP app: a call whose
  scopes the token lacks is answered ``403`` with
  ``WWW-Authenticate: Bearer error="insufficient_scope", scope="…",
  resource_metadata="…"``, a missing or rejected token ``401`` with
  ``scope="…"``, and the RFC 9728 metadata lists ``scopes_supported``, as
  the MCP authorization spec asks (the SDK's challenges carry no
  ``scope=``). :meth:`MCPGuard.filter_tools` makes ``tools/list`` show only
  what the caller may call.

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
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aiinvariants._errors import (
    AuthenticationRequired,
    InvariantViolation,
    MissingIntegrationError,
    PolicyError,
)
from aiinvariants._internal.code_layers import call_caps as _call_caps
from aiinvariants._internal.deprecation import allow_anonymous as _allow_anonymous
from aiinvariants._internal.provenance import arguments_by_name, signature_of
from aiinvariants._options import ToolDeclaration
from aiinvariants._principal import ANONYMOUS, Principal, acting_as
from aiinvariants.taint import current_run
from aiinvariants.tools import (
    ToolSpec,
    call_checked_tool,
    capped_tool,
    check_tool,
)
from aiinvariants.tools import _effective as _tool_effective

try:
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="mcp", package="mcp") from exc

from aiinvariants._internal.resource_uris import ResourceURIError, parse_key
from aiinvariants.integrations._mcp_auth import ASGIApp, GuardTokenVerifier, HTTPFront
from aiinvariants.integrations._mcp_client import GuardedClientSession
from aiinvariants.integrations._mcp_http import (
    arguments_of,
)
from aiinvariants.integrations._mcp_server import (
    OVER_HTTP,
    ReadGuard,
    check_http_token,
    mark_transport,
    refuse_fastmcp,
    server_tool_fn,
)
from aiinvariants.resources import ResourceSpec

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "GuardTokenVerifier",
    "GuardedClientSession",
    "MCPGuard",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute marking a tool wrapper made by an MCPGuard (its value).
_WRAPPED_BY = "_aiinvariants_mcp_guard"


class MCPGuard:
    """Guards the tools of one ``mcp`` ``MCPServer``.

    Args:
        guard: the guard whose policy decides and whose audit log records.
        token_verifier: verifies bearer tokens of HTTP requests (and the
            stdio identity); None for a server with no identity source.
        allow_anonymous: let a call with no identity run as ``ANONYMOUS``
            (only public tools with public data will pass). Without it, a
            guarded tool called with no identity fails closed
            (``identity_missing``), as on stdio with no configured identity.
            The same name as ``BearerAuthMiddleware(allow_anonymous=)``.
        accept_anonymous: the deprecated old name of ``allow_anonymous``.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        token_verifier: GuardTokenVerifier | None = None,
        allow_anonymous: bool | None = None,
        accept_anonymous: bool | None = None,
    ) -> None:
        self._guard = guard
        self._verifier = token_verifier
        self._anonymous = _allow_anonymous(
            "MCPGuard", allow_anonymous, accept_anonymous
        )
        self._stdio_token: str | None = None
        self._specs: dict[str, tuple[ToolSpec, Callable[..., Any]]] = {}
        self._resource_specs: dict[str, ResourceSpec] = {}
        self._prompt_specs: dict[str, ResourceSpec] = {}
        self._required: frozenset[str] = frozenset()
        self._server: Any = None

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
        required = list(required_scopes)
        self._required = frozenset(required)
        return AuthSettings(
            issuer_url=issuer_url,
            resource_server_url=self._verifier.resource,
            validate_token_resource=True,
            required_scopes=required or None,
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
        stdio identity (never for a request that came over HTTP to a server
        :meth:`tool` or :meth:`protect` was given); else ``ANONYMOUS`` if
        accepted.

        Raises:
            AuthenticationRequired: no identity (``identity_missing``).
            TokenInvalid: the token no longer verifies.
        """
        access = get_access_token()
        if access is not None and self._verifier is not None:
            check_http_token(access.token)
            return self._verifier.principal(access.token)
        if (
            self._stdio_token is not None
            and self._verifier is not None
            and not OVER_HTTP.get()  # an HTTP caller is never the stdio identity
        ):
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

        # FastMCP's add_tool takes a Tool, not (fn, name=...): its servers
        # are guarded by their own integration, never half-registered here.
        refuse_fastmcp(server, "MCPGuard.tool() registers tools on")

        declaration = ToolDeclaration(
            name=name,
            scopes=scopes,
            any_scopes=any_scopes,
            capabilities=capabilities,
            data=data,
            exposure=exposure,
            untrusted_output=untrusted_output,
        )

        def decorate(fn: F) -> F:
            # The same registration as guard.tool: one declaration check,
            # forbidden capabilities followed through every layer of fn.
            spec = declaration.register(self._guard, fn)
            tool_name = spec.name
            wrapper = self._wrap(fn, tool_name, spec)
            self._specs[tool_name] = (spec, fn)
            server.add_tool(wrapper, name=tool_name, **tool_options)
            mark_transport(server)  # an HTTP caller is never the stdio identity
            return fn

        return decorate

    def _decide(
        self,
        tool_name: str,
        spec: ToolSpec,
        fn: Any,
        arguments: dict[str, Any] | None = None,
    ) -> Principal:
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
            call_checked_tool(self._guard, spec, fn, principal=who, arguments=arguments)
        return who

    def _wrap(self, fn: Callable[..., Any], tool_name: str, spec: ToolSpec) -> Any:
        run = capped_tool(self._guard, spec, fn)  # the data level caps the result
        signature = signature_of(fn)  # I12 provenance reads the arguments by name

        def denied(exc: InvariantViolation) -> ToolError:
            # The message carries codes and scope names only, never tokens.
            return ToolError(str(exc))

        if inspect.iscoroutinefunction(fn):

            async def async_tool(*args: Any, **kwargs: Any) -> Any:
                try:
                    who = self._decide(
                        tool_name,
                        spec,
                        fn,
                        arguments_by_name(signature, args, kwargs)
                        if current_run() is not None
                        else None,
                    )
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
                    who = self._decide(
                        tool_name,
                        spec,
                        fn,
                        arguments_by_name(signature, args, kwargs)
                        if current_run() is not None
                        else None,
                    )
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
        setattr(wrapper, _WRAPPED_BY, self)
        return wrapper

    def registered_tool(self, name: object, server: Any = None) -> bool:
        """Whether the server runs :meth:`tool`'s wrapper for ``name``.

        Only then does the wrapper decide (and audit) the call itself; a
        tool of that name the server already had (the SDK keeps the first
        of two), or one swapped in since, is decided by :meth:`check_tool_call`.
        """
        server = self._server if server is None else server
        if not isinstance(name, str) or name not in self._specs:
            return False
        if server is None:
            return True
        running = server_tool_fn(server, name)
        return getattr(running, _WRAPPED_BY, None) is self

    def check_tool_call(
        self,
        params: Mapping[str, Any],
        who: Principal,
        *,
        record: bool,
        server: Any = None,
    ) -> None:
        """Decide the ``tools/call`` of ``params`` for ``who``; raise the denial.

        A tool registered with :meth:`tool` by its declaration; any other
        tool of the protected server (``@server.tool``, ``add_tool``) by the
        policy's ``tools:`` entry (joined with a declaration made under its
        name) and the capabilities the code it runs carries, so an
        undeclared one is refused (``tool_unknown``). ``server`` is the
        server the call came to (default: the one :meth:`protect` was last
        given).
        """
        server = self._server if server is None else server
        name = params.get("name")
        arguments = arguments_of(params)
        entry = self._specs.get(name) if isinstance(name, str) else None
        if entry is not None and self.registered_tool(name, server):
            spec, fn = entry
            call_checked_tool(
                self._guard,
                spec,
                fn,
                principal=who,
                record=record,
                arguments=arguments,
            )
            return
        fn = server_tool_fn(server, name)
        check_tool(
            self._guard,
            name if isinstance(name, str) else "",
            spec=entry[0] if entry is not None else None,
            principal=who,
            record=record,
            arguments=arguments,
            extra_capabilities=frozenset() if fn is None else _call_caps(fn),
        )

    def tool_data(self, name: object) -> str:
        """The data level tool ``name`` is declared with (the highest if unknown)."""
        entry = self._specs.get(name) if isinstance(name, str) else None
        effective = _tool_effective(
            self._guard.policy,
            name if isinstance(name, str) else "",
            entry[0] if entry is not None else None,
            frozenset(),
        )
        policy = self._guard.policy
        return policy.highest_label if effective is None else effective.data

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

    # -- resources and prompts -------------------------------------------------

    def protect(self, server: Any) -> None:
        """Guard every resource and prompt ``server`` has, now and later.

        Installs a :class:`~aiinvariants.integrations._mcp_server.ReadGuard`
        in the SDK's middleware chain (idempotent): ``resources/read``,
        ``resources/subscribe``, ``subscriptions/listen``, ``prompts/get``
        and ``completion/complete`` are decided by the policy's
        ``resources:`` and ``prompts:`` (an undeclared one is refused), and
        ``resources/list``, ``resources/templates/list`` and
        ``prompts/list`` show only what the caller may read.

        Raises:
            PolicyError: ``server`` has no SDK middleware chain.
        """
        # FastMCP's middleware list holds its own kind of middleware: a
        # ReadGuard there would answer every request with an internal error.
        refuse_fastmcp(server, "MCPGuard.protect() guards")
        chain = getattr(server, "middleware", None)
        if not isinstance(chain, list):
            raise PolicyError(
                "MCPGuard.protect() needs an mcp MCPServer or low-level Server "
                "(its .middleware list)"
            )
        if not any(isinstance(m, ReadGuard) and m.owner is self for m in chain):
            chain.append(ReadGuard(self, server))
        mark_transport(server)
        self._server = server

    def resource(
        self,
        server: Any,
        uri: str,
        *,
        scopes: Iterable[str] = (),
        any_scopes: Iterable[str] = (),
        data: str | None = None,
        exposure: str | None = None,
        untrusted_output: bool | None = None,
        **resource_options: Any,
    ) -> Callable[[F], F]:
        """Register a guarded resource (or URI template) on ``server``.

        The declaration is joined with the policy's entry for ``uri`` (the
        stricter wins); ``resource_options`` go to ``server.resource``.
        Installs :meth:`protect` on ``server``.

        Raises:
            PolicyError: a malformed declaration or an unknown data label.
        """
        spec = self._declare(
            uri,
            ToolDeclaration(
                scopes=scopes,
                any_scopes=any_scopes,
                data=data,
                exposure=exposure,
                untrusted_output=untrusted_output,
            ),
            "resource",
        )

        def decorate(fn: F) -> F:
            server.resource(uri, **resource_options)(fn)
            self._resource_specs[uri] = spec
            self.protect(server)
            return fn

        return decorate

    def prompt(
        self,
        server: Any,
        *,
        name: str | None = None,
        scopes: Iterable[str] = (),
        any_scopes: Iterable[str] = (),
        data: str | None = None,
        exposure: str | None = None,
        untrusted_output: bool | None = None,
        **prompt_options: Any,
    ) -> Callable[[F], F]:
        """Register a guarded prompt on ``server``; like :meth:`resource`."""

        declaration = ToolDeclaration(
            scopes=scopes,
            any_scopes=any_scopes,
            data=data,
            exposure=exposure,
            untrusted_output=untrusted_output,
        )

        def decorate(fn: F) -> F:
            prompt_name = name or getattr(fn, "__name__", "") or "prompt"
            spec = self._declare(prompt_name, declaration, "prompt")
            server.prompt(name=prompt_name, **prompt_options)(fn)
            self._prompt_specs[prompt_name] = spec
            self.protect(server)
            return fn

        return decorate

    def _declare(
        self, key: str, declaration: ToolDeclaration, kind: str
    ) -> ResourceSpec:
        data = declaration.data
        if data is not None and data not in self._guard.policy.classifications:
            raise PolicyError(
                f"{kind} {key!r}: data={data!r} is not one of the policy's "
                "classifications"
            )
        if kind == "resource":
            try:
                parse_key(key)
            except ResourceURIError as exc:
                raise PolicyError(f"resource key: {exc}") from None
        return declaration.resource_spec(key)

    def resource_spec(self, key: object) -> ResourceSpec | None:
        """The declaration registered with :meth:`resource` under ``key``."""
        return self._resource_specs.get(key) if isinstance(key, str) else None

    def prompt_spec(self, name: object) -> ResourceSpec | None:
        """The declaration registered with :meth:`prompt` under ``name``."""
        return self._prompt_specs.get(name) if isinstance(name, str) else None

    def scopes_supported(self) -> list[str]:
        """Every scope the policy names, and the SDK's required scopes, sorted."""
        return sorted(set(self._guard.policy.scopes_supported) | self._required)

    # -- HTTP: 401 and 403 with scope=, metadata with scopes_supported -----------

    def asgi(self, app: Any, *, path: str = "/mcp") -> ASGIApp:
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
        return HTTPFront(self).wrap(app, path=path)
