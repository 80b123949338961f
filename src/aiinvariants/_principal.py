"""Who the AI acts for, and the context that carries it.

The current principal lives in a :class:`contextvars.ContextVar`. ``acting_as``
sets it for a ``with`` or ``async with`` block; asyncio tasks copy the context
when they are created, so concurrent requests never see each other's principal.
Threads do not inherit context: :func:`carry_principal` and
:class:`PrincipalExecutor` carry it into thread pools explicitly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import model_validator as _model_validator
from typing_extensions import ParamSpec

from aiinvariants._internal.closing import (
    SCOPED,
    AsyncFromSync,
    ContextStack,
    entering_frame,
    pinned_context,
)
from aiinvariants._internal.frozen import freeze

__all__ = [
    "ANONYMOUS",
    "Principal",
    "PrincipalExecutor",
    "acting_as",
    "carry_principal",
    "current_correlation_id",
    "current_principal",
]

P = ParamSpec("P")
R = TypeVar("R")

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def validate_scope_token(scope: str) -> str:
    """Return ``scope`` if it is an RFC 6749 scope token, else raise ValueError.

    Scope names end up in ``WWW-Authenticate`` headers; refusing quotes,
    backslashes, spaces and control characters stops header injection.
    """
    if not isinstance(scope, str) or not _SCOPE_TOKEN.fullmatch(scope):
        raise ValueError(
            "a scope must be a non-empty RFC 6749 scope token "
            "(printable ASCII, no space, quote or backslash)"
        )
    return scope


def _string_set(value: object, *, field: str, split_string: bool) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        if split_string:
            # RFC 6749 section 3.3: scopes are separated by U+0020 only; a tab
            # or another space stays inside a part and fails validation.
            return frozenset(part for part in value.split(" ") if part)
        # Iterating a str would give its characters, each a "group": refuse.
        raise ValueError(f"{field} must be a collection of strings, not a string")
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"{field} must be a collection of strings")
    items = list(value)
    if not all(isinstance(item, str) and item for item in items):
        raise ValueError(f"{field} must contain only non-empty strings")
    return frozenset(items)


class Principal(BaseModel):
    """The identity an AI call is made for.

    Immutable. Build one from a verified token (``JWTVerifier.verify``) or, in
    tests and trusted back-ends, by hand. ``authenticated`` defaults to False:
    only a verified identity should claim it.

    Args:
        subject: stable identifier of the user or service (``sub``).
        authenticated: True only for a verified identity.
        issuer: who vouched for the identity (``iss``).
        scopes: OAuth scopes the user delegated; a space-separated string is
            split as RFC 6749 defines.
        groups: groups or roles, from the verified token.
        tenant: tenant/organisation the principal belongs to.
        clearance: the highest classification label the principal may read;
            set by the verifier from the policy, never from a prompt.
        claims: the verified token's claims, read-only.
        token: the raw bearer token, kept as a secret: it never appears in
            ``repr``, ``str``, serialisation, logs or audit events. Use
            :meth:`raw_token` to read it deliberately.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    subject: str = Field(min_length=1)
    authenticated: bool = False
    issuer: str | None = None
    scopes: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    tenant: str | None = None
    clearance: str | None = None
    claims: Mapping[str, Any] = Field(
        default_factory=dict, repr=False, validate_default=True
    )
    token: SecretStr | None = Field(default=None, repr=False, exclude=True)

    @field_validator("scopes", mode="before")
    @classmethod
    def _scopes(cls, value: object) -> frozenset[str]:
        scopes = _string_set(value, field="scopes", split_string=True)
        for scope in scopes:
            validate_scope_token(scope)
        return scopes

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, value: object) -> frozenset[str]:
        return _string_set(value, field="groups", split_string=False)

    @field_validator("claims", mode="after")
    @classmethod
    def _claims(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        # Deep-frozen: a check reading claims["roles"] must see what was
        # verified, not what some other code appended since.
        return cast("Mapping[str, Any]", freeze(value))

    @_model_validator(mode="after")
    def _unauthenticated_has_no_authority(self) -> Self:
        if not self.authenticated and (self.scopes or self.groups or self.clearance):
            # Authority only comes with a verified identity: an unauthenticated
            # principal carrying scopes would let a caller grant itself access.
            raise ValueError(
                "an unauthenticated principal cannot carry scopes, groups or a "
                "clearance; pass authenticated=True for a verified identity"
            )
        return self

    @property
    def is_anonymous(self) -> bool:
        """True when the principal is not authenticated."""
        return not self.authenticated

    def has_scopes(self, *scopes: str) -> bool:
        """True when the principal is authenticated and holds every scope."""
        return self.authenticated and self.scopes.issuperset(scopes)

    def raw_token(self) -> str | None:
        """The raw bearer token, for the code that must forward or exchange it."""
        return None if self.token is None else self.token.get_secret_value()

    def __hash__(self) -> int:
        return hash(
            (
                self.subject,
                self.authenticated,
                self.issuer,
                self.scopes,
                self.groups,
                self.tenant,
                self.clearance,
            )
        )


ANONYMOUS: Final[Principal] = Principal(subject="anonymous", authenticated=False)
"""The principal of a caller who presented no identity. The default everywhere."""

_ACTING: Final[ContextStack[tuple[Principal, str]]] = ContextStack(
    "aiinvariants.acting_as"
)


_ACTING_TOP: Final = _ACTING.top


def current_principal() -> Principal:
    """The principal of the current context; :data:`ANONYMOUS` when none is set."""
    top: Any = _ACTING_TOP.get()  # one ContextVar read on the common path
    if top is SCOPED:
        top = _ACTING.current()
    return ANONYMOUS if top is None else cast("Principal", top[0])


def current_correlation_id() -> str | None:
    """The correlation id of the current ``acting_as`` block, if any."""
    top = _ACTING.current()
    return None if top is None else top[1]


class acting_as(AsyncFromSync[Principal]):  # noqa: N801 - used like a function, as contextlib's helpers are
    """Act as ``principal`` for the duration of a ``with`` / ``async with`` block.

    Every decision inside the block is made for ``principal`` and carries the
    block's correlation id in the audit trail. Blocks nest; leaving one
    restores the previous principal even when the block raised. Concurrent
    asyncio tasks each see their own principal.

    The principal stays in its block:

    - entered in a generator or async generator that is iterated, it holds
      only while the generator runs; between iterations the caller keeps its
      own principal (a generator used as a context manager, through
      ``contextlib.contextmanager`` or a pytest fixture, hands it to the
      caller's block as intended);
    - one ``acting_as`` object may be entered by several threads or tasks at
      once: each block is recorded in its own context and leaving it never
      restores another block's principal.

    Args:
        principal: who the AI acts for.
        correlation_id: ties the block's audit events together (e.g. a request
            id). A fresh one is made when not given and none is active.
    """

    __slots__ = ("_correlation_id", "_principal")

    def __init__(self, principal: Principal, *, correlation_id: str | None = None):
        if not isinstance(principal, Principal):
            # A bare string or dict here usually means a user id taken from a
            # request body; refuse it instead of guessing.
            from aiinvariants._errors import PolicyError

            raise PolicyError(
                "acting_as() needs a Principal, got "
                f"{type(principal).__name__}; build one from a verified token"
            )
        self._principal = principal
        self._correlation_id = correlation_id

    @property
    def principal(self) -> Principal:
        return self._principal

    def __enter__(self) -> Principal:
        correlation = (
            self._correlation_id or current_correlation_id() or uuid.uuid4().hex
        )
        _ACTING.push(self, (self._principal, correlation), frame=entering_frame(1))
        return self._principal

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            _ACTING.pop(self)
        except LookupError:
            if exc_type is GeneratorExit:
                # A generator closed from elsewhere (garbage collection, an
                # async generator finaliser): its block is not in this
                # context, so there is nothing here to restore.
                return
            from aiinvariants._errors import PolicyError

            raise PolicyError(
                "acting_as block left in another context than it was entered "
                "(e.g. an async generator finalised by another task)"
            ) from None

    def __repr__(self) -> str:
        return f"acting_as({self._principal!r})"


def carry_principal(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the current context so it runs as today's principal.

    ``ThreadPoolExecutor.submit`` and ``loop.run_in_executor`` do not copy
    context variables: a function handed to a pool would run as
    :data:`ANONYMOUS` (or, worse, as whoever the worker thread last served, if
    code sets the variable without resetting it). Wrap it first::

        pool.submit(carry_principal(fetch_tickets), ticket_id)

    The context is captured when ``carry_principal`` is called, not when the
    wrapped function runs. Each call runs in its own copy of that context, so
    the wrapper may be called from several threads at once.
    """
    context = pinned_context()

    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    bound.__wrapped__ = fn  # type: ignore[attr-defined]
    return bound


class PrincipalExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the submitter's context.

    ``submit`` copies the caller's context (principal, correlation id and any
    other context variables) at submission time, as ``asyncio.to_thread``
    does, so work done in the pool is done for the right principal.
    """

    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]:
        context = pinned_context()
        return super().submit(context.run, fn, *args, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_workers={self._max_workers})"
