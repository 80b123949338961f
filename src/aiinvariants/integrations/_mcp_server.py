"""The MCP server side: resources, prompts and their listings, decided per request.

:class:`ReadGuard` is a ``ServerMiddleware`` of the official SDK: the SDK's
dispatcher runs it around *every* inbound request, whatever transport
(streamable HTTP, stdio, in-memory) and whatever handler (the ``MCPServer``'s
own, one a developer registered on the low-level server, a resource added
before or after the guard), so a raw JSON-RPC request cannot go around it:

- ``resources/read`` runs only when :func:`~aiinvariants.resources.
  check_resource` allows the URI for the caller, decided by the policy's
  best entry *and* by the entry of the template the SDK really routes the
  URI to; the contents are then checked against the declared data level
  (``mislabelled_source``);
- ``resources/subscribe`` and the ``resourceSubscriptions`` of
  ``subscriptions/listen`` need the same decision (a subscription reveals
  when a resource changes);
- ``prompts/get`` runs only when :func:`~aiinvariants.resources.check_prompt`
  allows it; its messages are checked against the data level too;
- ``completion/complete`` needs the decision of the prompt or resource
  (template) its ``ref`` names: completions reveal values;
- ``tools/call`` of a tool :meth:`MCPGuard.tool` did not wrap (registered
  straight on the server, or other code under a guarded name) is decided by
  the policy's ``tools:`` (an undeclared one is refused); every tool result
  is held to the tool's data level;
- ``resources/list``, ``resources/templates/list``, ``prompts/list`` and
  ``tools/list`` answer only what the caller may read or call (dry runs:
  nothing audited).

A result's data level counts the resources it embeds too (see
:func:`~aiinvariants.resources.check_ceiling`).

A denial is a JSON-RPC error: ``-32602`` (as the SDK answers an unknown
resource, so an undeclared resource and a missing one look alike) for
``resource_unknown``, ``prompt_unknown`` and ``resource_uri_invalid``,
``-32600`` for the others; ``data.code`` is the stable code. Over HTTP the
wrapper of :meth:`MCPGuard.asgi` answers scope shortfalls with ``403`` before
the request reaches the SDK.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from aiinvariants._errors import (
    AuthenticationRequired,
    InvariantViolation,
    PolicyError,
    TokenInvalid,
)
from aiinvariants._principal import ANONYMOUS, Principal, acting_as
from aiinvariants.auth._bearer import PROBLEMS
from aiinvariants.integrations.asgi import bearer_token
from aiinvariants.resources import (
    PROMPT,
    check_ceiling,
    check_prompt,
    check_read_result,
    check_resource,
    check_resource_template,
    resource_level,
)

try:
    from mcp.shared.exceptions import MCPError
    from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate
    from mcp_types import INVALID_PARAMS, INVALID_REQUEST
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from aiinvariants._errors import MissingIntegrationError

    raise MissingIntegrationError(extra="mcp", package="mcp") from exc

if TYPE_CHECKING:
    from aiinvariants.integrations.mcp import MCPGuard

__all__ = [
    "OVER_HTTP",
    "ReadGuard",
    "TransportMark",
    "check_http_token",
    "denial_error",
    "mark_transport",
    "refuse_fastmcp",
    "sdk_route",
    "server_tool_fn",
]

#: True while a request that came over HTTP is handled: the stdio identity
#: (``MCPGuard.stdio_identity_from_env``) never answers for an HTTP caller.
OVER_HTTP: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar(
    "aiinvariants_mcp_over_http", default=False
)

#: The HTTP request's bearer token as the one parser reads it (``(token,
#: problem)``), while a request that came over HTTP is handled.
HTTP_BEARER: Final[contextvars.ContextVar[tuple[str | None, str | None] | None]] = (
    contextvars.ContextVar("aiinvariants_mcp_http_bearer", default=None)
)

CallNext = Callable[[Any], Awaitable[Any]]

#: Codes answered like the SDK answers a resource it does not have.
_NOT_FOUND_CODES: Final = frozenset(
    {"resource_unknown", "prompt_unknown", "resource_uri_invalid"}
)


def denial_error(exc: InvariantViolation) -> MCPError:
    """The JSON-RPC error of a denial: codes and names only, never a token."""
    rpc = INVALID_PARAMS if exc.code in _NOT_FOUND_CODES else INVALID_REQUEST
    return MCPError(
        code=rpc, message=str(exc), data={"code": exc.code, "invariant": exc.invariant}
    )


@functools.lru_cache(maxsize=512)
def _parsed(template: str) -> UriTemplate | None:
    try:
        return UriTemplate.parse(template)
    except (InvalidUriTemplate, ValueError):
        return None


def _manager_route(server: Any, uri: str) -> tuple[bool, str | None]:
    """``(known, route)`` from an ``MCPServer``'s resource manager tables.

    ``known`` is False when ``server`` has no such tables (a low-level
    ``Server``, another SDK version).
    """
    manager = getattr(server, "_resource_manager", None)
    resources = getattr(manager, "_resources", None)
    templates = getattr(manager, "_templates", None)
    if not isinstance(resources, dict) or not isinstance(templates, dict):
        return False, None
    if uri in resources:
        return True, uri
    for template in list(templates.values()):
        parsed = getattr(template, "parsed_template", None)
        if not isinstance(parsed, UriTemplate):
            parsed = _parsed(str(getattr(template, "uri_template", "")))
        if parsed is not None and parsed.match(uri) is not None:
            return True, str(template.uri_template)
    return True, None


async def sdk_route(server: Any, uri: str) -> str | None:
    """The resource URI or template an ``MCPServer`` answers ``uri`` with.

    The SDK looks the URI up exactly, then tries its templates in the order
    they were added and takes the first that matches; so does this. On an
    ``MCPServer`` it reads the resource manager's own tables (a dict look-up
    and the templates, as the SDK does), so a read or a listing entry costs
    no copy of every resource (a listing of n resources stays linear).
    """
    known, route = _manager_route(server, uri)
    if known:
        return route
    list_resources = getattr(server, "list_resources", None)
    list_templates = getattr(server, "list_resource_templates", None)
    if list_resources is None or list_templates is None:
        return None
    for resource in await list_resources():
        if str(resource.uri) == uri:
            return uri
    for template in await list_templates():
        parsed = _parsed(template.uri_template)
        if parsed is not None and parsed.match(uri) is not None:
            return str(template.uri_template)
    return None


class TransportMark:
    """The SDK ``ServerMiddleware`` that sets :data:`OVER_HTTP` for a request.

    Installed first in the chain by :meth:`MCPGuard.tool` and
    :meth:`MCPGuard.protect`: a request whose context carries the HTTP
    request the transport attached is handled with ``OVER_HTTP`` set, so
    the stdio identity never answers for it.
    """

    async def __call__(self, ctx: Any, call_next: CallNext) -> Any:
        request = getattr(ctx, "request", None)
        if request is None or OVER_HTTP.get():
            return await call_next(ctx)
        reset = OVER_HTTP.set(True)
        bearer = HTTP_BEARER.set(_request_bearer(request))
        try:
            return await call_next(ctx)
        finally:
            HTTP_BEARER.reset(bearer)
            OVER_HTTP.reset(reset)


def _request_bearer(request: Any) -> tuple[str | None, str | None]:
    scope = getattr(request, "scope", None)
    if not isinstance(scope, Mapping):
        return None, "malformed"
    return bearer_token(dict(scope))


def check_http_token(token: str) -> None:
    """Refuse a token the SDK read that the one bearer parser reads otherwise.

    Without :meth:`MCPGuard.asgi` in front, the SDK reads the
    ``Authorization`` header itself (the first of two, a token in the query
    next to it); the identity a guarded call acts as must be the one
    :func:`~aiinvariants.auth._bearer.parse_bearer` reads from the request.

    Raises:
        TokenInvalid: the request's credentials are unusable, or not ``token``.
    """
    parsed = HTTP_BEARER.get()
    if parsed is None:
        return
    found, problem = parsed
    if problem is not None:
        raise TokenInvalid(PROBLEMS[problem], code=problem)
    if found != token:
        raise TokenInvalid(
            "the token the SDK read is not the request's bearer token",
            code="malformed",
        )


def mark_transport(server: Any) -> None:
    """Put a :class:`TransportMark` first in ``server``'s chain (idempotent)."""
    chain = getattr(server, "middleware", None)
    if isinstance(chain, list) and not any(isinstance(m, TransportMark) for m in chain):
        chain.insert(0, TransportMark())


def refuse_fastmcp(server: Any, what: str) -> None:
    """Refuse a FastMCP server: it is guarded by its own integration."""
    if type(server).__module__.split(".", 1)[0] == "fastmcp":
        raise PolicyError(
            f"{what} the official SDK's MCPServer; for a FastMCP server use "
            "aiinvariants.integrations.fastmcp (guard_fastmcp(guard, server))"
        )


def server_tool_fn(server: Any, name: object) -> Any:
    """The function ``server`` (an ``MCPServer``) runs for tool ``name``, if known."""
    manager = getattr(server, "_tool_manager", None)
    get_tool = getattr(manager, "get_tool", None)
    tool = get_tool(name) if callable(get_tool) and isinstance(name, str) else None
    return getattr(tool, "fn", None)


def _params(ctx: Any) -> Mapping[str, Any]:
    params = ctx.params
    return params if isinstance(params, Mapping) else {}


class ReadGuard:
    """The SDK ``ServerMiddleware`` installed by :meth:`MCPGuard.protect`."""

    def __init__(self, owner: MCPGuard, server: Any) -> None:
        self._owner = owner
        self._server = server
        self._requests: dict[str, Callable[[Any, CallNext], Awaitable[Any]]] = {
            "resources/read": self._read,
            "resources/subscribe": self._subscribe,
            "subscriptions/listen": self._listen,
            "prompts/get": self._prompt,
            "completion/complete": self._complete,
            "resources/list": self._list_resources,
            "resources/templates/list": self._list_templates,
            "prompts/list": self._list_prompts,
            "tools/call": self._call_tool,
            "tools/list": self._list_tools,
        }

    @property
    def owner(self) -> MCPGuard:
        """The MCPGuard whose policy and identity decide."""
        return self._owner

    async def __call__(self, ctx: Any, call_next: CallNext) -> Any:
        handler = self._requests.get(ctx.method)
        if handler is None or ctx.request_id is None:
            return await call_next(ctx)
        return await handler(ctx, call_next)

    def level_of(self, uri: str) -> str | None:
        """The data level a read of ``uri`` here is decided with (embedded ones)."""
        _, route = _manager_route(self._server, uri)
        return resource_level(
            self._owner.guard, uri, spec=self._owner.resource_spec(route), route=route
        )

    # -- identity ----------------------------------------------------------------

    def _who(self, resource: str) -> Principal:
        try:
            return self._owner.current_principal()
        except AuthenticationRequired as exc:
            self._owner.guard.audit.record(
                invariant="I1",
                decision="deny",
                reason=exc.code,
                resource=resource,
                principal=ANONYMOUS,
            )
            raise denial_error(exc) from None

    def _listing_who(self) -> Principal | None:
        try:
            return self._owner.current_principal()
        except InvariantViolation:
            return None  # no identity: an empty listing

    # -- decisions, shared with the HTTP pre-check -------------------------------

    async def decide(
        self, method: str, params: Mapping[str, Any], who: Principal, *, record: bool
    ) -> None:
        """Raise the denial of ``method`` with ``params`` for ``who``, if any."""
        guard = self._owner.guard
        if method in ("resources/read", "resources/subscribe"):
            uri = params.get("uri")
            await self._check_uri(uri, who, record=record)
        elif method == "subscriptions/listen":
            notifications = params.get("notifications")
            uris = (
                notifications.get("resourceSubscriptions")
                if isinstance(notifications, Mapping)
                else None
            )
            for uri in uris if isinstance(uris, list) else ():
                await self._check_uri(uri, who, record=record)
        elif method == "prompts/get":
            name = params.get("name")
            arguments = params.get("arguments")
            check_prompt(
                guard,
                name if isinstance(name, str) else "",
                spec=self._owner.prompt_spec(name),
                principal=who,
                record=record,
                arguments=arguments if isinstance(arguments, Mapping) else None,
            )
        elif method == "completion/complete":
            await self._check_ref(params.get("ref"), who, record=record)
        elif method == "tools/call":
            self._owner.check_tool_call(params, who, record=record, server=self._server)

    async def _check_uri(self, uri: object, who: Principal, *, record: bool) -> None:
        guard = self._owner.guard
        route = await sdk_route(self._server, uri) if isinstance(uri, str) else None
        check_resource(
            guard,
            uri,  # type: ignore[arg-type]  # a non-string is refused inside
            spec=self._owner.resource_spec(route),
            principal=who,
            record=record,
            route=route,
        )

    async def _check_ref(self, ref: object, who: Principal, *, record: bool) -> None:
        guard = self._owner.guard
        kind = ref.get("type") if isinstance(ref, Mapping) else None
        if kind == "ref/prompt" and isinstance(ref, Mapping):
            name = ref.get("name")
            check_prompt(
                guard,
                name if isinstance(name, str) else "",
                spec=self._owner.prompt_spec(name),
                principal=who,
                record=record,
            )
        elif kind == "ref/resource" and isinstance(ref, Mapping):
            uri = ref.get("uri")
            if isinstance(uri, str) and "{" in uri:
                check_resource_template(
                    guard,
                    uri,
                    spec=self._owner.resource_spec(uri),
                    principal=who,
                    record=record,
                )
            else:
                await self._check_uri(uri, who, record=record)
        else:
            # A reference this guard cannot name is not completed.
            check_prompt(guard, "", principal=who, record=record)

    # -- requests ----------------------------------------------------------------

    async def _guarded(
        self, ctx: Any, call_next: CallNext, resource: str
    ) -> tuple[Principal, Any]:
        who = self._who(resource)
        try:
            await self.decide(ctx.method, _params(ctx), who, record=True)
        except InvariantViolation as exc:
            raise denial_error(exc) from None
        async with acting_as(who):
            return who, await call_next(ctx)

    async def _read(self, ctx: Any, call_next: CallNext) -> Any:
        who = self._who("resource.<read>")
        uri = _params(ctx).get("uri")
        # One routing look-up per read: the decision and the result check
        # use the same route.
        route = await sdk_route(self._server, uri) if isinstance(uri, str) else None
        spec = self._owner.resource_spec(route)
        guard = self._owner.guard
        try:
            check_resource(guard, uri, spec=spec, principal=who, route=route)  # type: ignore[arg-type]  # a non-string is refused inside
        except InvariantViolation as exc:
            raise denial_error(exc) from None
        async with acting_as(who):
            result = await call_next(ctx)
            try:
                check_read_result(
                    guard,
                    result,
                    spec=spec,
                    uri=uri if isinstance(uri, str) else None,
                    route=route,
                    level_of=self.level_of,
                )
            except InvariantViolation as exc:
                raise denial_error(exc) from None
        return result

    async def _call_tool(self, ctx: Any, call_next: CallNext) -> Any:
        params = _params(ctx)
        name = params.get("name")
        if self._owner.registered_tool(name, self._server):
            # MCPGuard.tool's wrapper decides (and audits) the call itself.
            result = await call_next(ctx)
            try:
                who = self._owner.current_principal()
            except InvariantViolation:
                who = ANONYMOUS  # the wrapper refused the call already
        else:
            who, result = await self._guarded(ctx, call_next, "tool.<call>")
        async with acting_as(who):
            try:
                check_ceiling(
                    self._owner.guard,
                    result,
                    kind="tool",
                    name=name if isinstance(name, str) else "",
                    data=self._owner.tool_data(name),
                    level_of=self.level_of,
                )
            except InvariantViolation as exc:
                raise denial_error(exc) from None
        return result

    async def _subscribe(self, ctx: Any, call_next: CallNext) -> Any:
        return (await self._guarded(ctx, call_next, "resource.<subscribe>"))[1]

    async def _listen(self, ctx: Any, call_next: CallNext) -> Any:
        return (await self._guarded(ctx, call_next, "resource.<listen>"))[1]

    async def _complete(self, ctx: Any, call_next: CallNext) -> Any:
        return (await self._guarded(ctx, call_next, "completion.<ref>"))[1]

    async def _prompt(self, ctx: Any, call_next: CallNext) -> Any:
        who, result = await self._guarded(ctx, call_next, "prompt.<get>")
        name = _params(ctx).get("name")
        async with acting_as(who):
            try:
                check_read_result(
                    self._owner.guard,
                    result,
                    spec=self._owner.prompt_spec(name),
                    prompt=name if isinstance(name, str) else "",
                    kind=PROMPT,
                    level_of=self.level_of,
                )
            except InvariantViolation as exc:
                raise denial_error(exc) from None
        return result

    # -- listings ----------------------------------------------------------------

    async def _allowed(
        self, method: str, params: Mapping[str, Any], who: Principal
    ) -> bool:
        try:
            await self.decide(method, params, who, record=False)
        except InvariantViolation:
            return False
        return True

    async def _filtered(
        self,
        ctx: Any,
        call_next: CallNext,
        field: str,
        keep: Callable[[Principal, Mapping[str, Any]], Awaitable[bool]],
    ) -> Any:
        result = await call_next(ctx)
        who = self._listing_who()
        if isinstance(result, BaseModel):
            # A model answered inside the guard (an app middleware's cache):
            # filtered like the wire form the SDK makes of it.
            result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not isinstance(result, Mapping):
            return result
        items = result.get(field)
        if not isinstance(items, list):
            return {**result, field: []}
        kept = [
            item
            for item in items
            if who is not None and isinstance(item, Mapping) and await keep(who, item)
        ]
        return {**result, field: kept}

    async def _list_resources(self, ctx: Any, call_next: CallNext) -> Any:
        async def keep(who: Principal, item: Mapping[str, Any]) -> bool:
            return await self._allowed("resources/read", {"uri": item.get("uri")}, who)

        return await self._filtered(ctx, call_next, "resources", keep)

    async def _list_templates(self, ctx: Any, call_next: CallNext) -> Any:
        async def keep(who: Principal, item: Mapping[str, Any]) -> bool:
            ref = {"type": "ref/resource", "uri": item.get("uriTemplate")}
            return await self._allowed("completion/complete", {"ref": ref}, who)

        return await self._filtered(ctx, call_next, "resourceTemplates", keep)

    async def _list_prompts(self, ctx: Any, call_next: CallNext) -> Any:
        async def keep(who: Principal, item: Mapping[str, Any]) -> bool:
            return await self._allowed("prompts/get", {"name": item.get("name")}, who)

        return await self._filtered(ctx, call_next, "prompts", keep)

    async def _list_tools(self, ctx: Any, call_next: CallNext) -> Any:
        async def keep(who: Principal, item: Mapping[str, Any]) -> bool:
            return await self._allowed("tools/call", {"name": item.get("name")}, who)

        return await self._filtered(ctx, call_next, "tools", keep)
