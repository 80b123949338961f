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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Final, TypeVar, cast

from typing_extensions import ParamSpec

from aiinvariants._errors import PolicyError, UseCaseNotApproved
from aiinvariants._internal.authority import Enforcer, enforce_caller
from aiinvariants._internal.wrapping import resource_name, wrap_checked

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants._principal import Principal
    from aiinvariants._scopes import Enforced
    from aiinvariants.policy import UseCase

__all__ = ["check_use_case", "use_case"]

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
                from aiinvariants._guard import default_guard

                active = default_guard()
            active.check_use_case(name, resource=where)

        wrapper = wrap_checked(fn, check, rule=None, resource=where, use_case=name)
        return cast("Enforced[P, R]", wrapper)

    return decorate


# -- the decision (I11): a list of small rules ---------------------------------------

Details = dict[str, str | int | float | bool | None]


@dataclass(frozen=True, slots=True)
class _Run:
    """One request to run use case ``name``, as the rules see it."""

    name: str
    declared: UseCase | None
    today: date


def _rule_declared(run: _Run) -> tuple[str, str] | None:
    if run.declared is None:
        return (
            "use_case_unknown",
            f"use case {run.name!r} is not declared in the policy",
        )
    return None


def _rule_approval_recorded(run: _Run) -> tuple[str, str] | None:
    declared = run.declared
    if declared is None or declared.high_risk is None or declared.approval is not None:
        return None
    return (
        "use_case_not_approved",
        f"high-risk use case {run.name!r} ({declared.high_risk}) has no "
        "recorded approval",
    )


def _rule_approval_current(run: _Run) -> tuple[str, str] | None:
    declared = run.declared
    if declared is None or declared.high_risk is None:
        return None
    if declared.is_approved_on(run.today):
        return None
    return (
        "use_case_approval_expired",
        f"the approval of high-risk use case {run.name!r} expired",
    )


#: The I11 rules, in order: the first that refuses decides the code.
RULES: Final = (_rule_declared, _rule_approval_recorded, _rule_approval_current)


def _details(run: _Run) -> Details:
    details: Details = {"use_case": run.name}
    declared = run.declared
    if declared is None:
        return details
    details["high_risk"] = declared.high_risk
    if declared.approval is not None:
        details["approval"] = declared.approval.reference
        details["expires"] = declared.approval.expires.isoformat()
    return details


def check_use_case(
    enforcer: Enforcer,
    name: str,
    *,
    resource: str | None = None,
    principal: Principal | None = None,
) -> UseCase:
    """Decide (I11) that use case ``name`` may run today, and record it.

    ``Guard.check_use_case`` and ``@use_case`` call this. The caller's
    exposure and authority are decided first (as at every enforcement
    point), then :data:`RULES`; a high-risk run is always recorded.

    Raises:
        AuthenticationRequired: an anonymous caller of an internal app.
        AccessDenied: the caller's clearance is not a policy label.
        UseCaseNotApproved: ``use_case_unknown``, ``use_case_not_approved``
            or ``use_case_approval_expired``.
        AuditUnavailable: an allowed run could not be recorded.
    """
    where = resource or f"use_case.{name}"
    who, _ = enforce_caller(enforcer, resource=where, principal=principal)
    declared = enforcer.policy.use_cases.get(name)
    run = _Run(name, declared, datetime.now(UTC).date())
    for rule in RULES:
        refused = rule(run)
        if refused is not None:
            code, message = refused
            enforcer.audit.deny(
                UseCaseNotApproved(
                    message, code=code, subject=who.subject, resource=where
                ),
                principal=who,
                details=_details(run),
            )
    assert declared is not None  # noqa: S101 - _rule_declared refused None
    # High-risk runs are always recorded: I11 asks for the trail.
    if declared.high_risk is not None or enforcer.audit.active:
        enforcer.audit.record(
            invariant="I11",
            decision="allow",
            reason="use_case_approved"
            if declared.high_risk is not None
            else "use_case_declared",
            resource=where,
            details=_details(run),
            principal=who,
        )
    return declared
