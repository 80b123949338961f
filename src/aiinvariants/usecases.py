"""High-risk use cases run only with a recorded, unexpired approval (I11).

The policy declares each use of AI the application makes. A use case in an
EU AI Act Annex III area (``high_risk: essential_services``…) needs an
approval with an expiry date; ``@use_case("credit_scoring")`` refuses to run
the decorated function when the approval is missing or expired, or when the
use case was never declared, and records each decision::

    use_cases:
      credit_scoring:
        high_risk: essential_services
        approval: {by: legal@example.com, reference: LEG-2026-114, expires: 2027-06-30}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from typing_extensions import ParamSpec

from aiinvariants._internal.wrapping import resource_name, wrap_checked
from aiinvariants.errors import PolicyError

if TYPE_CHECKING:
    from aiinvariants.guard import Guard
    from aiinvariants.scopes import Enforced

__all__ = ["use_case"]

P = ParamSpec("P")
R = TypeVar("R")


def use_case(
    name: str, *, resource: str | None = None, guard: Guard | None = None
) -> Callable[[Callable[P, R]], Enforced[P, R]]:
    """Run the decorated function only as the declared, approved use case ``name``.

    Stops a high-risk use of AI (credit scoring, hiring, access to essential
    services…) from running after its approval lapsed, or without one.

    Args:
        name: the use case, as declared under ``use_cases`` in the policy.
        resource: the name recorded in audit events; defaults to
            ``module.qualname`` of the function.
        guard: the guard whose policy applies; defaults to the installed
            guard at call time (see ``Guard.install``). With an explicit
            guard an undeclared use case is refused at decoration time.

    The wrapped call raises :class:`~aiinvariants.UseCaseNotApproved` (codes
    ``use_case_unknown``, ``use_case_not_approved``,
    ``use_case_approval_expired``); the approval is checked against today's
    date in UTC on every call, so a long-running process stops on the day
    after ``expires``.
    """
    if not isinstance(name, str) or not name:
        raise PolicyError("use_case() needs the name of a declared use case")
    if guard is not None and name not in guard.policy.use_cases:
        raise PolicyError(
            f"use case {name!r} is not declared under use_cases in the policy"
        )

    def decorate(fn: Callable[P, R]) -> Enforced[P, R]:
        where = resource or resource_name(fn)

        def check() -> None:
            active = guard
            if active is None:
                from aiinvariants.guard import default_guard

                active = default_guard()
            active.check_use_case(name, resource=where)

        wrapper = wrap_checked(fn, check, rule=None, resource=where, use_case=name)
        return cast("Enforced[P, R]", wrapper)

    return decorate
