"""Guarded FastMCP servers: one policy for every tool, whatever registered it.

One call guards a server::

    auth = GuardAuthProvider(guard, verifier=jwt_verifier,
                             resource="https://mcp.example.com/mcp")
    server = FastMCP("support", auth=auth)
    guard_fastmcp(guard, server)

- :class:`GuardAuthProvider` (``FastMCP(auth=...)``): bearer tokens verified
  by :class:`~aiinvariants.auth.JWTVerifier` and bound to the server's
  resource URL, RFC 9728 metadata with ``scopes_supported``, ``401`` with
  ``scope=`` and ``resource_metadata=``, ``403 insufficient_scope`` for a
  tool the token lacks scopes for, ``400`` for a token in the query string
  or a second ``Authorization`` header.
- :class:`FastMCPGuard` installs a FastMCP ``Middleware`` as the outermost
  one: every ``tools/call`` is decided by
  :func:`~aiinvariants.tools.call_checked_tool` for the verified principal
  (policy scopes, exposure, clearance, forbidden capabilities read from the
  code the tool really runs, run taint and confirmation, audit) with the
  call's arguments; the tool body runs inside ``acting_as(principal)``; its
  result passes the declared data level and the output pipeline;
  ``tools/list`` shows only what the caller may call. Registration is
  hooked too: a tool whose code or declaration carries a forbidden
  capability cannot be added to the server, to a server mounted on it, or
  be present when it is guarded.

A tool is called by its wire name (after namespaces and transforms); a name
the policy does not declare (``tools:``) and no :meth:`FastMCPGuard.tool`
declared is refused (``tool_unknown``). FastMCP's own per-tool ``auth=``
still applies, and can only narrow what the policy allows.

On stdio or in-memory transports there is no bearer token: the identity is
the current principal (``acting_as`` around the server or client), else
every guarded call fails closed (``identity_missing``) unless
``accept_anonymous=True``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

from aiinvariants._errors import (
    AuthenticationRequired,
    InvariantViolation,
    MissingIntegrationError,
    PolicyError,
    ToolForbidden,
)
from aiinvariants._options import ToolDeclaration
from aiinvariants._principal import ANONYMOUS, Principal, acting_as, current_principal
from aiinvariants.tools import (
    ToolSpec,
    call_checked_tool,
    capped_tool,
    check_tool,
    tool_spec,
)

try:
    from fastmcp import FastMCP
    from fastmcp.exceptions import FastMCPError, ToolError
    from fastmcp.server.dependencies import get_access_token
    from fastmcp.server.middleware import Middleware, MiddlewareContext
    from fastmcp.tools.base import Tool
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="fastmcp", package="fastmcp") from exc

from aiinvariants._internal.deprecation import allow_anonymous as _allow_anonymous
from aiinvariants.integrations._fastmcp_auth import GuardAuthProvider
from aiinvariants.integrations._fastmcp_core import (
    decided,
    deciding,
    hook_core,
    requested_version,
)
from aiinvariants.integrations._fastmcp_notify import (
    filtering,
    install_log_filter,
    install_session_hooks,
)
from aiinvariants.integrations._fastmcp_reads import Reads
from aiinvariants.integrations._fastmcp_registration import Registration, check_shape
from aiinvariants.integrations._fastmcp_tools import (
    UnreadableTool,
    code_of,
    safe_error,
    safe_listed,
    safe_result,
)

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants.filters import OutputPipeline
    from aiinvariants.integrations.mcp import GuardTokenVerifier
    from aiinvariants.policy import Policy

__all__ = ["FastMCPGuard", "GuardAuthProvider", "GuardMiddleware", "guard_fastmcp"]

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute a guarded server carries (idempotent install).
_MARK: Final = "_aiinvariants_fastmcp_guard"


def _public_message(exc: InvariantViolation) -> str:
    # Codes, tool names and scope names only: never a token or a secret.
    return str(exc)


class GuardMiddleware(Middleware):
    """The FastMCP ``Middleware`` of a :class:`FastMCPGuard` (install it with
    :meth:`FastMCPGuard.install`, which also hooks registration)."""

    def __init__(self, owner: FastMCPGuard) -> None:
        self._owner = owner

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._owner._call_tool(context, call_next)

    async def on_list_tools(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._owner._list_tools(context, call_next)

    async def on_read_resource(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._owner._reads.read_resource(context, call_next)

    async def check_resource_access(self, context: MiddlewareContext[Any]) -> None:
        await self._owner._reads.check_access(context)

    async def on_get_prompt(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._owner._reads.get_prompt(context, call_next)

    async def on_list_resources(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._owner._reads.list_resources(context, call_next)

    async def on_list_resource_templates(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._owner._reads.list_templates(context, call_next)

    async def on_list_prompts(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._owner._reads.list_prompts(context, call_next)

    async def on_request(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        if context.method == "completion/complete":
            return await self._owner._reads.complete(context, call_next)
        return await call_next(context)


class FastMCPGuard:
    """Guards FastMCP servers with one guard's policy.

    Args:
        guard: whose policy decides and whose audit log records.
        auth: the server's :class:`GuardAuthProvider`; when None, the one
            the server was built with (``FastMCP(auth=...)``) is used.
        allow_anonymous: a call with no identity runs as ``ANONYMOUS``
            (only public tools with public data pass); without it such a
            call fails closed (``identity_missing``).
        accept_anonymous: the deprecated old name of ``allow_anonymous``.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        auth: GuardAuthProvider | None = None,
        allow_anonymous: bool | None = None,
        accept_anonymous: bool | None = None,
    ) -> None:
        if auth is not None and not isinstance(auth, GuardAuthProvider):
            raise PolicyError("FastMCPGuard(auth=...) takes a GuardAuthProvider")
        self._guard = guard
        self._auth = auth
        self._anonymous = _allow_anonymous(
            "FastMCPGuard", allow_anonymous, accept_anonymous
        )
        self._specs: dict[str, ToolSpec] = {}
        self._middleware = GuardMiddleware(self)
        self._reads = Reads(self)
        self._registration = Registration(self)
        self._pipeline: tuple[Policy, OutputPipeline] | None = None
        self._stdio_token: str | None = None

    @property
    def guard(self) -> Guard:
        """The guard that decides."""
        return self._guard

    @property
    def middleware(self) -> GuardMiddleware:
        """The FastMCP middleware (already installed by :meth:`install`)."""
        return self._middleware

    # -- installing ------------------------------------------------------------

    def install(self, server: Any) -> Any:
        """Guard ``server``: middleware first in the chain, registration hooked.

        Idempotent: installing the same guard again does nothing.

        Raises:
            PolicyError: not a FastMCP server of a known shape; guarded by
                another :class:`FastMCPGuard`; its ``auth`` is not a
                :class:`GuardAuthProvider`; or a tool already on it (or on
                a server mounted on it) has a forbidden capability.
        """
        check_shape(server)
        current = getattr(server, _MARK, None)
        if current is self:
            return server
        install_session_hooks()
        install_log_filter()
        if current is not None:
            raise PolicyError("this FastMCP server is guarded by another FastMCPGuard")
        self._bind_auth(server)
        for provider in list(server.providers):
            self._registration.check_provider(provider)
        self._registration.hook_local(server.local_provider)
        self._registration.hook_add_provider(server)
        for middleware in list(server.middleware):
            self._registration.check_middleware(middleware)
        self._registration.hook_add_middleware(server)
        hook_core(
            server,
            self,
            {
                "tool": self._core_tool,
                "resource": self._reads.core_read,
                "prompt": self._reads.core_prompt,
            },
        )
        server.middleware.insert(0, self._middleware)
        setattr(server, _MARK, self)
        return server

    def _bind_auth(self, server: Any) -> None:
        have = getattr(server, "auth", None)
        if self._auth is None:
            if have is not None and not isinstance(have, GuardAuthProvider):
                raise PolicyError(
                    f"the server's auth is a {type(have).__name__}; a guarded "
                    "FastMCP server takes auth=GuardAuthProvider(guard, ...) so "
                    "that tokens are verified by the guard's JWTVerifier"
                )
            self._auth = have
        elif have is None:
            server.auth = self._auth
        elif have is not self._auth:
            raise PolicyError(
                "the server was built with another auth provider than "
                "FastMCPGuard(auth=...)"
            )

    # -- declaring tools in code ----------------------------------------------

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
        """Register a tool on ``server`` with its declaration (joined with the
        policy's: scopes AND-ed, the higher data level wins).

        ``tool_options`` go to FastMCP's ``server.tool`` (``title=``,
        ``tags=``, ``auth=``...). Guards ``server`` if it is not yet.

        Raises:
            PolicyError: a forbidden capability (I3) or a bad declaration.
        """

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
            self.install(server)
            spec = declaration.register(self._guard, fn)
            self._specs[spec.name] = spec
            server.tool(fn, name=spec.name, **tool_options)
            return fn

        return decorate

    # -- identity --------------------------------------------------------------

    def _verifier(self) -> GuardTokenVerifier | None:
        return self._auth.guard_verifier if self._auth is not None else None

    def stdio_identity_from_env(self, variable: str = "MCP_ACCESS_TOKEN") -> None:
        """Take the identity of a stdio server from a token in the environment.

        A stdio server has no bearer token per request; without a configured
        identity every guarded request fails closed. The token is verified
        now (audience bound, by the :class:`GuardAuthProvider`'s verifier)
        and again (cached) at every request, so an expired token stops
        working. A request that carries its own token still uses that one.

        Raises:
            PolicyError: no ``auth=`` provider, or the variable is missing.
            TokenInvalid: the token does not verify.
        """
        verifier = self._verifier()
        if verifier is None:
            raise PolicyError(
                "a stdio identity needs FastMCPGuard(auth=GuardAuthProvider(...)) "
                "to verify its token"
            )
        token = os.environ.get(variable, "")
        if not token:
            raise PolicyError(f"environment variable {variable} is not set")
        verifier.principal(token)
        self._stdio_token = token

    async def principal(self) -> Principal:
        """The principal of the current FastMCP request.

        The verified bearer token of the HTTP request (verified again, so an
        expired token stops working); else the stdio identity
        (:meth:`stdio_identity_from_env`); else the current principal if it is
        authenticated (``acting_as`` on stdio and in-memory transports);
        else ``ANONYMOUS`` if accepted.

        Raises:
            AuthenticationRequired: no identity (``identity_missing``), or a
                token no guard verifier can check (``identity_unverifiable``).
            TokenInvalid: the token no longer verifies.
        """
        access = get_access_token()
        if access is not None:
            verifier = self._verifier()
            if verifier is None:
                raise AuthenticationRequired(
                    "the request's token was not verified by a GuardAuthProvider",
                    code="identity_unverifiable",
                    subject=ANONYMOUS.subject,
                )
            return await verifier.aprincipal(access.token)
        stdio = self._stdio_token
        verifier = self._verifier()
        if stdio is not None and verifier is not None:
            return await verifier.aprincipal(stdio)
        ambient = current_principal()
        if ambient.authenticated:
            return ambient
        if self._anonymous:
            return ANONYMOUS
        raise AuthenticationRequired(
            "no verified identity for this MCP call",
            code="identity_missing",
            subject=ANONYMOUS.subject,
        )

    async def _audited_principal(self, resource: str) -> Principal:
        try:
            return await self.principal()
        except InvariantViolation as exc:
            self._guard.audit.record(
                invariant=exc.invariant,
                decision="deny",
                reason=exc.code,
                resource=resource,
                principal=ANONYMOUS,
            )
            raise

    # -- the decision ------------------------------------------------------------

    def _spec(self, name: str) -> ToolSpec | None:
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        if name in self._guard.policy.tools:
            return tool_spec(name)
        return None

    async def _decide(
        self,
        name: str,
        tool: Tool | None,
        who: Principal,
        arguments: dict[str, Any] | None,
        *,
        record: bool,
        layer_names: set[str] | None = None,
    ) -> ToolSpec:
        """Decide ``name`` (the tool FastMCP serves under it, every layer);
        ``layer_names`` receives the names of the layers decided."""
        spec = self._spec(name)
        if spec is None:
            # Not declared anywhere: check_tool refuses it (tool_unknown).
            check_tool(
                self._guard, name, principal=who, record=record, arguments=arguments
            )
            raise ToolForbidden(  # pragma: no cover - check_tool always raises
                f"tool {name!r} is not declared", code="tool_unknown"
            )
        if tool is None:
            self._refuse(
                ToolForbidden(
                    f"tool {name!r} is not served here",
                    code="tool_unknown",
                    subject=who.subject,
                    resource=f"tool.{name}",
                ),
                who,
                record,
            )
        try:
            layers = await code_of(tool)
        except UnreadableTool:
            self._refuse(
                ToolForbidden(
                    f"tool {name!r}: the code it runs could not be followed",
                    code="capability_forbidden",
                    subject=who.subject,
                    resource=f"tool.{name}",
                ),
                who,
                record,
            )
        if layer_names is not None:
            layer_names.update(layer_name for layer_name, _ in layers)
        for inner_name, fn in layers[1:]:
            # Each inner layer (a renamed tool's original, a mounted server's
            # tool) is decided too, under the name it was registered as when
            # that name is declared: renaming never sheds scopes, data level
            # or capabilities, and forbidden code anywhere refuses the call.
            inner = self._spec(inner_name) or spec
            try:
                call_checked_tool(self._guard, inner, fn, principal=who, record=False)
            except InvariantViolation:
                if record:  # the same decision again, audited
                    call_checked_tool(
                        self._guard, inner, fn, principal=who, arguments=arguments
                    )
                raise
        call_checked_tool(
            self._guard,
            spec,
            layers[0][1],
            principal=who,
            record=record,
            arguments=arguments,
        )
        return spec

    def _refuse(
        self, denial: InvariantViolation, who: Principal, record: bool
    ) -> NoReturn:
        if record:
            self._guard.audit.deny(denial, principal=who)
        raise denial

    # -- the output ------------------------------------------------------------

    def _enforce(self, text: str) -> str:
        policy = self._guard.policy
        if self._pipeline is None or self._pipeline[0] is not policy:
            self._pipeline = (policy, self._guard.output_pipeline())
        return self._pipeline[1].enforce(text)

    def _redact(self, text: str) -> str:
        """``text`` with every finding masked (for logs: nothing is blocked)."""
        policy = self._guard.policy
        if self._pipeline is None or self._pipeline[0] is not policy:
            self._pipeline = (policy, self._guard.output_pipeline())
        return self._pipeline[1].check(text).text

    def _safe_text(self, text: str) -> str:
        try:
            return self._enforce(text)
        except InvariantViolation as exc:
            return _public_message(exc)

    # -- middleware hooks ----------------------------------------------------------

    async def _call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        params = context.message
        name = str(params.name)
        arguments = dict(params.arguments or {})
        server = _server_of(context)
        who, spec, layers = await self._decided_spec(
            server, name, arguments, requested_version(params)
        )
        with deciding(server, "tool", name, arguments, layers):
            return await self._run_tool(who, spec, lambda: call_next(context))

    async def _core_tool(
        self,
        server: Any,
        name: str,
        arguments: Any,
        version: Any,
        run: Callable[[], Awaitable[Any]],
    ) -> Any:
        """The tool FastMCP really runs: decided again unless it is the very
        call the middleware decided, or (on a mounted server) one of the
        layers decided with it; a later middleware may have changed it."""
        args = dict(arguments or {})
        if decided(server, "tool", name, args):
            return await run()
        who, spec, layers = await self._decided_spec(server, name, args, version)
        with deciding(server, "tool", name, args, layers):
            return await self._run_tool(who, spec, run)

    async def _decided_spec(
        self, server: Any, name: str, arguments: dict[str, Any], version: Any
    ) -> tuple[Principal, ToolSpec, frozenset[str]]:
        denied: Exception
        layers: set[str] = set()
        try:
            who = await self._audited_principal(f"tool.{name}")
            tool = await server.get_tool(name, version=version)
            spec = await self._decide(
                name, tool, who, arguments, record=True, layer_names=layers
            )
            return who, spec, frozenset(layers)
        except InvariantViolation as exc:
            denied = ToolError(_public_message(exc))
        except Exception as exc:  # a provider failing to look the tool up
            denied = safe_error(exc, self._safe_text)
        # Raised outside the handler: nothing is chained.
        raise denied

    async def _run_tool(
        self, who: Principal, spec: ToolSpec, run: Callable[[], Awaitable[Any]]
    ) -> Any:
        failure: Exception
        async with acting_as(who):
            try:
                with filtering(self._safe_text, self._redact):
                    result = await capped_tool(self._guard, spec, run)()
                return safe_result(result, self._enforce)
            except InvariantViolation as exc:
                failure = ToolError(_public_message(exc))
            except FastMCPError as exc:
                # A tool's error text reaches the client too: filter it.
                failure = ToolError(self._safe_text(str(exc)))
            except UnreadableTool:
                failure = ToolError(
                    "[I8/output_blocked] the tool result could not be read"
                )
            except Exception as exc:
                # An MCPError (a protocol error FastMCP passes on as is) or
                # any other error raised on the way (a provider, an inner
                # middleware): its text reaches some clients too.
                failure = safe_error(exc, self._safe_text)
        # Raised here, outside the handler: the original error (which may
        # carry a secret) is not chained as __context__.
        raise failure

    async def _list_tools(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        tools: Sequence[Tool] = await call_next(context)
        try:
            who = await self.principal()
        except InvariantViolation:
            return []  # no identity: nothing guarded is callable
        visible: list[Tool] = []
        for tool in tools:
            try:
                await self._decide(tool.name, tool, who, None, record=False)
            except InvariantViolation:
                continue
            visible.append(safe_listed(tool, self._safe_text))
        return visible


def _server_of(context: MiddlewareContext[Any]) -> Any:
    ctx = context.fastmcp_context
    server = getattr(ctx, "fastmcp", None) if ctx is not None else None
    if not isinstance(server, FastMCP):
        raise PolicyError("a FastMCP middleware call without its server; refused")
    return server


def guard_fastmcp(
    guard: Guard,
    server: Any,
    *,
    auth: GuardAuthProvider | None = None,
    allow_anonymous: bool | None = None,
    accept_anonymous: bool | None = None,
) -> FastMCPGuard:
    """Guard ``server`` with ``guard``'s policy and return the installer.

    Idempotent: a server already guarded by ``guard`` with the same
    settings returns its :class:`FastMCPGuard` unchanged (other settings
    are refused). ``allow_anonymous`` is as for
    :class:`FastMCPGuard` (``accept_anonymous`` is its deprecated old name).

    Raises:
        PolicyError: see :meth:`FastMCPGuard.install`; the server is
            already guarded with another guard or other settings.
    """
    allow = _allow_anonymous("guard_fastmcp()", allow_anonymous, accept_anonymous)
    current = getattr(server, _MARK, None)
    if isinstance(current, FastMCPGuard):
        if current.guard is not guard:
            raise PolicyError("this FastMCP server is guarded by another guard")
        if current._anonymous != allow or (
            auth is not None and current._auth is not auth
        ):
            # the settings asked for now are not the ones in force: keeping
            # the first silently (anonymous callers let in) is a weakening
            raise PolicyError(
                "this FastMCP server is already guarded with other settings "
                "(allow_anonymous=, auth=); guard it once"
            )
        return current
    installer = FastMCPGuard(guard, auth=auth, allow_anonymous=allow)
    installer.install(server)
    return installer
