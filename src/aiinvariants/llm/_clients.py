"""Guarded SDK clients: the SDK's own client class, with the wire check.

A guarded openai or anthropic client is an instance of the SDK's client
class (so every helper, the OpenAI Agents SDK and LangChain take it as it
is) whose httpx client runs :class:`~aiinvariants.llm._wire.WireCheck` in
its transports, and whose ``_prepare_request`` hook runs it before request
signing. The mixins below refuse what would leave the guard: a copy with
another ``http_client``, a swapped ``_client``, websocket connections (the
guard sees HTTP only), and the raw client (``unsafe_raw_client`` is the
named way out; it warns and is audited).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aiinvariants._errors import AIInvariantsError, InsecureUsageWarning, PolicyError
from aiinvariants.llm._wire import WireCheck, is_wired, wire_http_client

if TYPE_CHECKING:
    from aiinvariants.llm._guarded import CallGuard

__all__ = ["AsyncGuardedClient", "GuardedClient", "make_guarded", "refuse_websocket"]

_STATE: Final = "_aiinvariants_state"


class _State:
    __slots__ = ("checks", "raw", "wire")

    def __init__(self, checks: CallGuard, wire: WireCheck, raw: Any) -> None:
        self.checks = checks
        self.wire = wire
        self.raw = raw


def _state(client: Any) -> _State:
    state = client.__dict__.get(_STATE)
    if not isinstance(state, _State):
        raise PolicyError("this guarded client was not built by guard.llm")
    return state


def _sdk(client: Any) -> Any:
    """The SDK class a guarded client's class extends."""
    return type(client).__bases__[0]


def _ours(err: BaseException) -> AIInvariantsError | None:
    """The guard's own error an SDK wrapped (as the cause of its error)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AIInvariantsError):
            return current
        current = current.__cause__
    return None


def _given(value: Any) -> bool:
    return value is not None and type(value).__name__ not in {"NotGiven", "Omit"}


def refuse_websocket(client: Any) -> NoReturn:
    """Refuse (and audit) a websocket connection of a guarded client.

    The guard checks HTTP requests and answers; a websocket (realtime, the
    Responses websocket mode of the SDK or of the OpenAI Agents SDK) would
    carry the client's credentials past it.
    """
    state = _state(client)
    state.checks.guard.audit.record(
        invariant="I5",
        decision="deny",
        reason="endpoint_not_guarded",
        resource=state.checks.resource,
        details={"method": "GET", "path": "websocket"},
    )
    raise PolicyError(
        "a guarded client does not open websocket connections "
        "(realtime, Responses websocket mode): the guard checks HTTP "
        "requests and answers only"
    )


class GuardedClient:
    """What a guarded sync SDK client adds to the SDK's class."""

    __slots__ = ()

    @property
    def checks(self) -> CallGuard:
        """The :class:`~aiinvariants.llm.CallGuard` every request passes."""
        return _state(self).checks

    @property
    def system_prompt(self) -> str | None:
        """The registered system prompt with its canary planted."""
        return _state(self).checks.system_prompt

    @property
    def client(self) -> Any:
        """Refused: the guarded client does not hand out the raw one."""
        raise PolicyError(
            "a guarded client does not hand out the raw client; use "
            "unsafe_raw_client if you really mean to send unguarded requests"
        )

    @property
    def unsafe_raw_client(self) -> Any:
        """The raw SDK client, unguarded. Warns and is audited."""
        state = _state(self)
        warnings.warn(
            "unsafe_raw_client: requests sent with it are not checked for "
            "model, region, data-use opt-out or output filters",
            InsecureUsageWarning,
            stacklevel=2,
        )
        state.checks.guard.audit.record(
            invariant="I5",
            decision="allow",
            reason="unsafe_raw_client",
            resource=state.checks.resource,
            details={"provider": state.checks.provider},
        )
        return state.raw

    def _aiinvariants_verify(self) -> WireCheck:
        state = _state(self)
        if not is_wired(getattr(self, "_client", None), state.wire):
            raise PolicyError(
                "the guarded client's http client was replaced; requests "
                "through it would not be checked, so none is sent"
            )
        return state.wire

    def _prepare_options(self, options: Any) -> Any:
        if str(getattr(options, "url", "")).startswith(("ws://", "wss://")):
            refuse_websocket(self)
        return _sdk(self)._prepare_options(self, options)

    def _prepare_request(self, request: Any) -> None:
        self._aiinvariants_verify().check_request(request, in_place=True)
        _sdk(self)._prepare_request(self, request)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``request``; a guard decision comes out as itself."""
        try:
            return _sdk(self).request(self, *args, **kwargs)
        except Exception as err:
            ours = _ours(err)
            if ours is None or ours is err:
                raise
        # raised outside the handler: no SDK error (with its request) chained
        raise ours

    def _should_retry_exception(self, err: BaseException) -> Any:
        if _ours(err) is not None:
            return False, None
        return _sdk(self)._should_retry_exception(self, err)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``copy``/``with_options``, guarded by the same checks."""
        if _given(kwargs.get("http_client")):
            raise PolicyError(
                "a guarded client cannot be copied with another http_client: "
                "its requests would not be checked"
            )
        self._aiinvariants_verify()
        new = _sdk(self).copy(self, *args, **kwargs)
        new.__dict__[_STATE] = _state(self)
        return new

    with_options = copy

    def __repr__(self) -> str:
        state = _state(self)
        sdk = type(state.raw).__name__
        return f"{type(self).__name__}({sdk}, region={state.checks.placement.home!r})"


class AsyncGuardedClient(GuardedClient):
    """What a guarded async SDK client adds to the SDK's class."""

    __slots__ = ()

    async def _prepare_options(self, options: Any) -> Any:
        if str(getattr(options, "url", "")).startswith(("ws://", "wss://")):
            refuse_websocket(self)
        return await _sdk(self)._prepare_options(self, options)

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``request``; a guard decision comes out as itself."""
        try:
            return await _sdk(self).request(self, *args, **kwargs)
        except Exception as err:
            ours = _ours(err)
            if ours is None or ours is err:
                raise
        raise ours

    async def _prepare_request(self, request: Any) -> None:  # type: ignore[override]
        self._aiinvariants_verify().check_request(request, in_place=True)
        await _sdk(self)._prepare_request(self, request)


_CLASSES: dict[tuple[type[Any], type[Any]], type[Any]] = {}


def make_guarded(
    client: Any, checks: CallGuard, provider: str, mixin: type[GuardedClient]
) -> Any:
    """A guarded copy of an SDK ``client``; ``client`` itself is unchanged."""
    wire = WireCheck(checks, provider)
    http = wire_http_client(client._client, wire)
    guarded = client.copy(http_client=http)
    key = (mixin, type(client))
    cls = _CLASSES.get(key)
    if cls is None:
        # The SDK class comes first (its instance layout must be the copy's);
        # the mixin's methods are put in the class itself so they win.
        namespace: dict[str, Any] = {"__slots__": ()}
        for klass in reversed(mixin.__mro__[:-1]):
            namespace.update(
                (k, v)
                for k, v in vars(klass).items()
                if k not in {"__slots__", "__dict__", "__weakref__", "__module__"}
            )
        name = f"{mixin.__name__}[{type(client).__name__}]"
        cls = _CLASSES[key] = type(name, (type(client), mixin), namespace)
    guarded.__class__ = cls
    guarded.__dict__[_STATE] = _State(checks, wire, client)
    return guarded
