"""Scope rules and the decorators that enforce them (invariant I1).

A :class:`ScopeRule` says which delegated OAuth scopes a call needs. Rules are
small values that compose, as tenacity's stop strategies do::

    all_of("crm:read") & any_of("reports:export", "reports:admin")
    all_of("orders:refund") | all_of("finance:admin")

``@enforce_user_scope`` checks the rule against the *current principal* (see
:func:`aiinvariants.acting_as`) before the decorated function runs, records
the decision in the guard's audit log, and raises :class:`ScopeDenied` or
:class:`AuthenticationRequired` on a denial. It works on sync and async
functions, generators and async generators, and keeps their signature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar, cast, overload

from typing_extensions import ParamSpec

from aiinvariants._errors import PolicyError
from aiinvariants._internal.deprecation import renamed_keyword
from aiinvariants._internal.wrapping import resource_name, wrap_checked
from aiinvariants._principal import validate_scope_token

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "Enforced",
    "ScopeRule",
    "all_of",
    "any_of",
    "enforce_user_scope",
    "requires_authentication",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: A rule in disjunctive normal form may not grow past this many alternatives;
#: ``any_of(...) & any_of(...) & …`` multiplies them, and a rule that large is
#: a mistake, not a policy.
MAX_ALTERNATIVES: Final = 64


class ScopeRule:
    """Which scopes a call needs: any one of several sets of scopes, all held.

    Build rules with :func:`all_of` and :func:`any_of` and combine them with
    ``&`` (both needed) and ``|`` (either suffices). Rules are immutable and
    hashable; ``str(rule)`` reads like ``(a & b) | c``.
    """

    __slots__ = ("_alternatives", "_only")

    def __init__(self, alternatives: Iterable[Iterable[str]]) -> None:
        sets: list[frozenset[str]] = []
        for alternative in alternatives:
            if isinstance(alternative, str):
                raise PolicyError("a scope alternative must be a set of scopes")
            sets.append(frozenset(_checked(s) for s in alternative))
        if not sets:
            raise PolicyError("a scope rule needs at least one alternative")
        # Absorption: {a} | {a, b} is just {a}. Keeps rules small and the
        # "closest alternative" we report to clients meaningful.
        minimal = {
            s for s in sets if not any(other < s for other in sets if other != s)
        }
        if len(minimal) > MAX_ALTERNATIVES:
            raise PolicyError(
                f"scope rule has {len(minimal)} alternatives "
                f"(at most {MAX_ALTERNATIVES}); simplify it"
            )
        self._alternatives: tuple[frozenset[str], ...] = tuple(
            sorted(minimal, key=lambda s: (len(s), sorted(s)))
        )
        self._only = self._alternatives[0] if len(self._alternatives) == 1 else None

    @property
    def alternatives(self) -> tuple[frozenset[str], ...]:
        """The sets of scopes of which holding any one satisfies the rule."""
        return self._alternatives

    @property
    def scopes(self) -> frozenset[str]:
        """Every scope the rule mentions."""
        return frozenset().union(*self._alternatives)

    def allows(self, held: frozenset[str] | set[str]) -> bool:
        """True when ``held`` contains every scope of some alternative."""
        only = self._only
        if only is not None:  # the common case: one set of scopes, all needed
            return only <= held
        return any(alternative <= held for alternative in self._alternatives)

    def closest(self, held: frozenset[str] | set[str]) -> frozenset[str]:
        """The alternative with the fewest scopes missing from ``held``.

        It is what a client should ask for next: ``ScopeDenied.required``.
        Ties go to the smaller, then the alphabetically first alternative.
        """
        return min(self._alternatives, key=lambda alt: len(alt - held))

    def __and__(self, other: ScopeRule) -> ScopeRule:
        if not isinstance(other, ScopeRule):
            return NotImplemented
        return ScopeRule(a | b for a in self._alternatives for b in other._alternatives)

    def __or__(self, other: ScopeRule) -> ScopeRule:
        if not isinstance(other, ScopeRule):
            return NotImplemented
        return ScopeRule(self._alternatives + other._alternatives)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScopeRule):
            return NotImplemented
        return set(self._alternatives) == set(other._alternatives)

    def __hash__(self) -> int:
        return hash(frozenset(self._alternatives))

    def __str__(self) -> str:
        # Scopes every alternative needs are factored out front, so
        # all_of("a") & any_of("b", "c") reads "a & (b | c)".
        common = frozenset.intersection(*self._alternatives)
        if len(self._alternatives) == 1:
            return " & ".join(sorted(common)) or "<authenticated>"

        def one(alt: frozenset[str]) -> str:
            inner = " & ".join(sorted(alt))
            return f"({inner})" if len(alt) > 1 else inner

        either = " | ".join(one(alt - common) for alt in self._alternatives)
        if not common:
            return either
        return " & ".join([*sorted(common), f"({either})"])

    def __repr__(self) -> str:
        return f"ScopeRule({str(self)!r})"


def _checked(scope: str) -> str:
    try:
        return validate_scope_token(scope)
    except ValueError as exc:
        raise PolicyError(f"invalid scope name: {exc}") from None


def all_of(*scopes: str) -> ScopeRule:
    """A rule needing every one of ``scopes``."""
    if not scopes:
        raise PolicyError("all_of() needs at least one scope")
    return ScopeRule([scopes])


def any_of(*scopes: str) -> ScopeRule:
    """A rule satisfied by any one of ``scopes``."""
    if not scopes:
        raise PolicyError("any_of() needs at least one scope")
    return ScopeRule([s] for s in scopes)


class Enforced(Protocol[P, R_co]):
    """A function wrapped by an aiinvariants decorator.

    It is called exactly like the original; ``rule`` and ``resource`` let a
    test inspect what is enforced (``read_crm.rule == all_of("crm:read")``).
    ``rule`` is None for ``@requires_authentication``.
    """

    @property
    def rule(self) -> ScopeRule | None: ...
    @property
    def resource(self) -> str: ...
    @property
    def __wrapped__(self) -> Callable[P, R_co]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


def _rule_from(
    scopes: tuple[str | ScopeRule, ...], any_scopes: Iterable[str] | None
) -> ScopeRule:
    parts: list[ScopeRule] = []
    names = [s for s in scopes if isinstance(s, str)]
    if names:
        parts.append(all_of(*names))
    for item in scopes:
        if isinstance(item, ScopeRule):
            parts.append(item)
        elif not isinstance(item, str):
            raise PolicyError(
                "scopes must be strings or ScopeRule objects, "
                f"got {type(item).__name__}"
            )
    if any_scopes is not None:
        if isinstance(any_scopes, str):
            raise PolicyError(
                "any_scopes= takes a collection of scope names, not a string"
            )
        parts.append(any_of(*any_scopes))
    if not parts:
        raise PolicyError(
            "enforce_user_scope() needs at least one scope; use "
            "@requires_authentication to require only a verified user"
        )
    return functools.reduce(lambda a, b: a & b, parts)


class _Check(Generic[P, R]):
    """A scope or authentication check bound to one callable."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        rule: ScopeRule | None,
        resource: str | None,
        guard: Guard | None,
    ) -> None:
        if not callable(fn):
            raise PolicyError(f"cannot guard {type(fn).__name__}: it is not callable")
        self.fn = fn
        self.rule = rule
        self.resource = resource or resource_name(fn)
        self.guard = guard

    def check(self) -> None:
        guard = self.guard
        if guard is None:
            from aiinvariants._guard import default_guard

            guard = default_guard()
        guard.check_scopes(self.rule, resource=self.resource)

    def wrap(self) -> Enforced[P, R]:
        check: Callable[[], object] = self.check
        if self.guard is not None:
            # Bound once: the per-call path is one call into the guard.
            check = functools.partial(
                self.guard.check_scopes, self.rule, resource=self.resource
            )
        wrapper = wrap_checked(self.fn, check, rule=self.rule, resource=self.resource)
        return cast("Enforced[P, R]", wrapper)


def enforce_user_scope(
    *scopes: str | ScopeRule,
    any_scopes: Iterable[str] | None = None,
    resource: str | None = None,
    guard: Guard | None = None,
    any_of: Iterable[str] | None = None,
) -> Callable[[Callable[P, R]], Enforced[P, R]]:
    """Run the decorated function only if the current user delegated the scopes.

    Stops a model, prompt or tool argument from reaching data with the
    application's own authority: the scopes come from the principal's
    verified token, never from the call's arguments.

    Args:
        *scopes: scope names that are all required, and/or :class:`ScopeRule`
            objects that must all be satisfied.
        any_scopes: scope names of which one is enough (added with ``&``);
            the same name as in ``guard.tool(...)`` and the policy's tools.
        resource: the name recorded in audit events and errors; defaults to
            ``module.qualname`` of the function.
        guard: the guard whose policy and audit log apply; defaults to the
            installed guard (see :meth:`Guard.install`) at call time.
        any_of: the deprecated old name of ``any_scopes`` (warns).

    Raises:
        PolicyError: at decoration time, for a malformed scope or no scope.

    The wrapped call raises :class:`AuthenticationRequired` for an
    unauthenticated principal, and :class:`ScopeDenied` (with ``required``,
    ``missing`` and an RFC 6750 ``www_authenticate`` challenge) when a scope
    is missing. Generators are checked when iteration starts.
    """
    any_scopes = renamed_keyword(
        "enforce_user_scope()", "any_of", any_of, "any_scopes", any_scopes
    )
    rule = _rule_from(scopes, any_scopes)

    def decorate(fn: Callable[P, R]) -> Enforced[P, R]:
        return _Check(fn, rule=rule, resource=resource, guard=guard).wrap()

    return decorate


@overload
def requires_authentication(fn: Callable[P, R], /) -> Enforced[P, R]: ...


@overload
def requires_authentication(
    *, resource: str | None = None, guard: Guard | None = None
) -> Callable[[Callable[P, R]], Enforced[P, R]]: ...


def requires_authentication(
    fn: Callable[P, R] | None = None,
    /,
    *,
    resource: str | None = None,
    guard: Guard | None = None,
) -> Enforced[P, R] | Callable[[Callable[P, R]], Enforced[P, R]]:
    """Run the decorated function only for an authenticated principal.

    Usable bare (``@requires_authentication``) or with options
    (``@requires_authentication(resource="kb.search")``). An anonymous
    caller gets :class:`AuthenticationRequired` (invariant I2: a public AI
    tool reaches nothing that needs an identity).
    """

    def decorate(inner: Callable[P, R]) -> Enforced[P, R]:
        return authenticated(inner, resource=resource, guard=guard)

    if fn is not None:
        return decorate(fn)
    return decorate


def authenticated(
    fn: Callable[P, R], *, resource: str | None, guard: Guard | None
) -> Enforced[P, R]:
    """Wrap ``fn`` so it runs only for an authenticated principal."""
    return _Check(fn, rule=None, resource=resource, guard=guard).wrap()
