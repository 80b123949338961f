"""Reading a FastAPI app's route table for :class:`FastAPIAuth`'s checks.

Which routes the app serves (included routers and ``app.frontend(...)``
groups too), what each route's dependencies declare, and whether the table
changed since it was judged. Split from :mod:`aiinvariants.integrations.fastapi`,
which decides what these facts mean.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI
from starlette.routing import BaseRoute

try:  # FastAPI's view of included routers, each route as it is served
    from fastapi.routing import iter_route_contexts as _iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI flattens its routes
    _iter_route_contexts = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from aiinvariants.integrations.fastapi import FastAPIAuth

__all__ = [
    "NO_FACTS",
    "Frontend",
    "RouteFacts",
    "calls_and_scopes",
    "route_facts",
    "route_table",
    "routes",
    "same_table",
    "scopes_of",
]


def routes(app: FastAPI) -> Iterator[tuple[BaseRoute, Any]]:
    """Every route of the app with its effective form (included routers'
    routes carry their include's prefix and dependencies)."""
    if _iter_route_contexts is None:  # pragma: no cover - FastAPI < 0.130
        for route in app.routes:
            yield route, route
        return
    for context in _iter_route_contexts(app.routes):
        yield context.original_route, context
    # app.frontend(...): routes matched when no other did, not in app.routes.
    low_priority = getattr(app.router, "_iter_low_priority_routes", None)
    for candidate in low_priority() if callable(low_priority) else ():
        group = getattr(candidate, "original_route", candidate)
        prefix = str(getattr(candidate, "frontend_prefix", "") or "")
        paths = [prefix + str(r.path) for r in getattr(group, "routes", ())]
        yield (
            group,
            Frontend(
                path=", ".join(paths) or repr(group),
                paths=frozenset(paths),
                dependant=getattr(candidate, "dependant", None),
            ),
        )


@dataclass(frozen=True)
class Frontend:
    """A group of ``app.frontend(...)`` routes, as :meth:`check_app` sees it."""

    path: str
    paths: frozenset[str]
    dependant: Any


def route_table(app: FastAPI, exposure: str) -> tuple[tuple[Any, ...], ...]:
    """What :meth:`FastAPIAuth.check_app` judges: values, then objects that
    are compared by identity (a route replaced by an equal one, say without
    the gate, is a change; holding them keeps their ids from being reused)."""
    router = app.router
    version = getattr(router, "_get_routes_version", None)  # included routers
    return (
        (exposure, version() if callable(version) else None),
        (
            *router.routes,
            None,
            *getattr(router, "_low_priority_routes", ()),
            None,
            *app.dependency_overrides,
        ),
    )


def same_table(
    seen: tuple[tuple[Any, ...], ...], now: tuple[tuple[Any, ...], ...]
) -> bool:
    return (
        seen[0] == now[0]
        and len(seen[1]) == len(now[1])
        and all(map(operator.is_, seen[1], now[1]))
    )


@dataclass(frozen=True)
class RouteFacts:
    """What a route's dependencies declare.

    Attributes:
        declared: ``"user"``, ``"optional_user"`` or None.
        wrappers: the dependencies on a path from the endpoint to ``user``
            or ``optional_user``: overriding one skips authentication.
        unchecked_scopes: scopes reach ``optional_user`` or ``gate``,
            which do not check scopes.
        scopes: every scope the route's own ``user`` declarations check.
    """

    declared: str | None = None
    wrappers: frozenset[Any] = frozenset()
    unchecked_scopes: bool = False
    scopes: frozenset[str] = frozenset()


NO_FACTS: Final = RouteFacts()


def route_facts(dependant: Any, auth: FastAPIAuth) -> RouteFacts:
    if dependant is None:
        return NO_FACTS
    declared: str | None = None
    wrappers: set[Any] = set()
    unchecked = False
    scopes: set[str] = set()
    pending: list[tuple[Any, tuple[Any, ...]]] = [(dependant, ())]
    while pending:
        node, ancestors = pending.pop()
        call = node.call
        if call is auth.user or call is auth.optional_user:
            wrappers.update(ancestors)
            if call is auth.user:
                declared = "user"
                scopes.update(scopes_of(node))
            else:
                declared = declared or "optional_user"
                unchecked = unchecked or bool(scopes_of(node))
            continue
        if call is auth.gate:
            unchecked = unchecked or bool(scopes_of(node))
        below = ancestors if node is dependant else (*ancestors, call)
        pending.extend((sub, below) for sub in node.dependencies)
    return RouteFacts(declared, frozenset(wrappers), unchecked, frozenset(scopes))


def scopes_of(node: Any) -> list[str]:
    return [
        *(getattr(node, "parent_oauth_scopes", None) or ()),
        *(getattr(node, "own_oauth_scopes", None) or ()),
    ]


def calls_and_scopes(route: Any) -> tuple[set[Any], set[str]]:
    calls: set[Any] = set()
    scopes: set[str] = set()
    dependant = getattr(route, "dependant", None)
    pending = [] if dependant is None else [dependant]
    while pending:
        current = pending.pop()
        if current.call is not None:
            calls.add(current.call)
        scopes.update(current.own_oauth_scopes or ())
        pending.extend(current.dependencies)
    return calls, scopes
