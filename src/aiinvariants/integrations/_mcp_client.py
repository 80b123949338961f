"""The MCP client side: every message a session sends passes the policy.

The official SDK's ``ClientSession`` builds each request (``call_tool``,
``send_request``, ``read_resource``, subscriptions, discovery…) and hands it
to one object, its *dispatcher*, through ``send_raw_request(method, params)``
or ``notify(method, params)``. :class:`GuardedClientSession` puts a
:class:`_GuardedDispatcher` in that place, so the check runs on the lowest
path every convenience method uses:

- ``tools/call`` runs only when :func:`~aiinvariants.tools.check_tool`
  allows the tool named in the request's params for the current principal
  (declared tools only, forbidden capabilities, scopes, run taint);
- other requests and notifications pass only when their method is one the
  client protocol defines and that invokes nothing on the server
  (listing, reading, completion, ping…); any other method is refused with
  ``ToolForbidden`` code ``mcp_method_not_allowed`` before anything is sent.

A caller who keeps the raw transport streams can still write to them: the
guard protects the session, not a stream handed out before it was built.

The SDK's high-level ``mcp.client.Client`` answers some reads from its
response cache without touching the session, for as long as the *server*
says (``ttlMs``): given a ``Client``, the guard also wraps that cache, so a
cached server resource marks the run untrusted just as a fresh one does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aiinvariants._errors import PolicyError, ToolForbidden
from aiinvariants._principal import current_principal
from aiinvariants.taint import add_untrusted, mark_untrusted
from aiinvariants.tools import check_tool, record_tool_result

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants._options import ToolDeclaration

__all__ = ["GuardedClientSession", "guard_session"]

#: Client requests that run no tool on the server. ``tools/call`` is decided
#: by the policy; anything else (a later protocol's method, a vendor
#: extension, a misspelling) is refused until the app allows it by name.
SAFE_REQUESTS: Final = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
        # Tasks are created only by a tools/call, which was checked.
        "tasks/get",
        "tasks/list",
        "tasks/result",
        "tasks/cancel",
    }
)
SAFE_NOTIFICATIONS: Final = frozenset(
    {
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)
#: Answers that carry server-controlled content into the agent's context.
_UNTRUSTED_RESULTS: Final = frozenset(
    # tasks/result: a tool's output, fetched by a run that may not be the
    # one whose tools/call was marked.
    {"resources/read", "prompts/get", "tasks/result"}
)


class _GuardedDispatcher:
    """Stands in for the session's dispatcher; checks, then forwards."""

    def __init__(self, inner: Any, owner: GuardedClientSession) -> None:
        self._inner = inner
        self._owner = owner

    async def send_raw_request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        opts: Any = None,
    ) -> Any:
        self._owner._check_request(method, params)
        tool = params.get("name") if method == "tools/call" and params else None
        if method not in _UNTRUSTED_RESULTS and tool is None:
            return await self._inner.send_raw_request(method, params, opts)
        # Marked before sending: the answer is server text whether it comes
        # back as a result or as an error message (MCPError); its content is
        # recorded for argument provenance (I12) either way.
        source = f"mcp:{self._owner.prefix}{method}"
        if tool is None:
            mark_untrusted(source)
        try:
            result = await self._inner.send_raw_request(method, params, opts)
        except Exception as exc:
            add_untrusted([str(exc), getattr(exc, "error", None)], source)
            raise
        if tool is None:
            add_untrusted(result, source)
        else:
            record_tool_result(self._owner._guard, self._owner.prefix + tool, result)
        return result

    async def notify(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        opts: Any = None,
    ) -> None:
        self._owner._check_method(method, SAFE_NOTIFICATIONS)
        await self._inner.notify(method, params, opts)

    def __getattr__(self, attribute: str) -> Any:
        # ``run`` and the SDK's other plumbing; nothing else sends requests.
        return getattr(self._inner, attribute)


class _TaintingCache:
    """Stands in for a ``Client``'s response cache: a hit is server content."""

    def __init__(self, inner: Any, owner: GuardedClientSession) -> None:
        self._inner = inner
        self._owner = owner

    async def read(self, method: str, params_key: str) -> Any:
        hit = await self._inner.read(method, params_key)
        if hit is not None and method in _UNTRUSTED_RESULTS:
            add_untrusted(hit, f"mcp:{self._owner.prefix}{method}")
        return hit

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._inner, attribute)


def _sdk_client(candidate: Any) -> bool:
    try:
        from mcp.client.client import Client
    except ImportError:  # pragma: no cover - an SDK without the high-level client
        return False
    return isinstance(candidate, Client)


def _cached_by_a_client(session: Any) -> bool:
    handler = getattr(session, "_message_handler", None)
    name = str(getattr(handler, "__qualname__", ""))
    return name.startswith("_evicting_message_handler.")


class GuardedClientSession:
    """An MCP ``ClientSession`` that checks the policy on every request it sends.

    The check sits on the session's lowest request path (its dispatcher), so
    ``call_tool``, ``send_request(CallToolRequest(...))``, subscriptions and
    every other convenience method pass it: only tools the policy declares
    may be called (``tool_unknown``), a forbidden capability is refused (I3),
    the current principal must hold the tool's scopes (I1), and a tainted
    agent run needs confirmation for a confirmation-needing capability
    (I12). Requests of a method outside the client protocol's side-effect
    free set are refused (``mcp_method_not_allowed``). Every decision is
    audited. Other attributes are those of the wrapped session, which is
    guarded in place: keep using either object.

    Args:
        session: an ``mcp.ClientSession`` (entered or not), or an entered
            ``mcp.client.Client``: its session is guarded and its response
            cache serves server content only as untrusted content.
        guard: the guard whose policy decides.
        prefix: prepended to tool names when looking them up in the policy
            (e.g. ``"crm."``), so two servers' tools cannot be confused.
        allow_methods: further request or notification methods the app
            accepts (e.g. a vendor extension); each is sent unchecked.

    Raises:
        PolicyError: ``session`` is not an SDK client session, or is already
            guarded by another guard.
    """

    _guard: Guard
    prefix: str

    def __init__(
        self,
        session: Any,
        guard: Guard,
        *,
        prefix: str = "",
        allow_methods: Collection[str] = (),
    ) -> None:
        client = session if _sdk_client(session) else None
        if client is not None:
            try:
                session = client.session
            except RuntimeError:
                raise PolicyError(
                    "GuardedClientSession needs an entered mcp Client "
                    "(inside `async with Client(...)`)"
                ) from None
        elif _cached_by_a_client(session):
            # Its Client answers reads from a cache this session never sees.
            raise PolicyError(
                "this ClientSession belongs to an mcp Client with a response "
                "cache: guard the Client itself (GuardedClientSession(client, "
                "guard)) so cached server content still marks the run"
            )
        inner = getattr(session, "_dispatcher", None)
        if inner is None or not callable(getattr(inner, "send_raw_request", None)):
            raise PolicyError(
                "GuardedClientSession needs an mcp.ClientSession (a session "
                "of the official SDK, 2.x); got " + type(session).__name__
            )
        if isinstance(inner, _GuardedDispatcher):
            owner: GuardedClientSession = inner._owner
            if owner._guard is not guard or owner.prefix != prefix:
                raise PolicyError(
                    "this ClientSession is already guarded by another guard or "
                    "prefix; build one GuardedClientSession per session"
                )
            inner = inner._inner
        if isinstance(allow_methods, str) or not all(
            isinstance(m, str) and m for m in allow_methods
        ):
            raise PolicyError("allow_methods= takes a collection of method names")
        if "tools/call" in allow_methods:
            raise PolicyError("tools/call is always decided by the policy")
        self._session = session
        self._guard = guard
        self.prefix = prefix
        self._allowed = frozenset(allow_methods)
        session._dispatcher = _GuardedDispatcher(inner, self)
        cache = getattr(client, "_response_cache", None)
        if client is not None and cache is not None:
            if isinstance(cache, _TaintingCache):
                cache = cache._inner
            client._response_cache = _TaintingCache(cache, self)

    def _check_request(self, method: object, params: Mapping[str, Any] | None) -> None:
        if method == "tools/call":
            name = params.get("name") if isinstance(params, Mapping) else None
            if not isinstance(name, str) or not name:
                self._refuse("tools/call", "a tools/call request names no tool")
            arguments = params.get("arguments") if params is not None else None
            check_tool(
                self._guard,
                self.prefix + name,
                principal=current_principal(),
                # What goes on the wire: I12 provenance reads every value.
                arguments=arguments if isinstance(arguments, Mapping) else {},
            )
            return
        self._check_method(method, SAFE_REQUESTS)

    def _check_method(self, method: object, safe: frozenset[str]) -> None:
        if isinstance(method, str) and (method in safe or method in self._allowed):
            return
        self._refuse(str(method)[:100], "the MCP method is not allowed by the guard")

    def _refuse(self, method: str, reason: str) -> NoReturn:
        who = current_principal()
        denial = ToolForbidden(
            reason,
            code="mcp_method_not_allowed",
            subject=who.subject,
            resource=f"mcp:{self.prefix}{method}",
        )
        self._guard.audit.deny(denial, principal=who, resource=denial.resource)

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """Call the tool on the server; the policy decides on the way out.

        Raises:
            ToolForbidden, ScopeDenied, AuthenticationRequired, AccessDenied:
                the call is refused before anything is sent.
        """
        return await self._session.call_tool(name, arguments, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._session, attribute)

    def __repr__(self) -> str:
        return f"GuardedClientSession(prefix={self.prefix!r})"


def guard_session(
    guard: Guard, session: Any, declaration: ToolDeclaration
) -> GuardedClientSession:
    """``guard.tool()(session)``: an MCP ``ClientSession``/``Client`` guarded.

    The tools a session calls are the server's: their declarations are the
    policy's ``tools`` entries, so a declaration given in code is refused
    rather than silently dropped.

    Raises:
        PolicyError: a declaration was given, or as :class:`GuardedClientSession`.
    """
    if not declaration.empty:
        raise PolicyError(
            "guard.tool(...) on an MCP session takes no declaration: the "
            "server's tools are declared in the policy (tools.<name>); use "
            "GuardedClientSession(session, guard, prefix=...) for a prefix"
        )
    return GuardedClientSession(session, guard)
