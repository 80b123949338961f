from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from aiinvariants import (
    ANONYMOUS,
    AuthenticationRequired,
    Guard,
    Policy,
    PolicyError,
    Principal,
    UseCaseNotApproved,
    acting_as,
    use_case,
)
from aiinvariants.audit import MemorySink, capture


def today() -> date:
    """Today in UTC, read when a test runs: a suite crossing midnight must
    not compare an approval dated at import with a check made the next day."""
    return datetime.now(UTC).date()


def policy_with(**use_cases: dict[str, object]) -> Policy:
    return Policy.from_dict({"use_cases": use_cases})


def approval(expires: date) -> dict[str, str]:
    return {
        "by": "legal@example.com",
        "reference": "LEG-2026-114",
        "expires": expires.isoformat(),
    }


ANALYST = Principal(subject="ana", authenticated=True, scopes="credit:score")


@pytest.fixture(autouse=True)
def _as_analyst() -> Iterator[None]:
    # Policy() is internal: use cases refuse anonymous callers (see
    # test_anonymous_caller_of_internal_app_is_refused).
    with acting_as(ANALYST):
        yield


def test_anonymous_caller_of_internal_app_is_refused() -> None:
    guard = Guard(policy_with(faq_bot={"description": "answers FAQs"}))

    @guard.use_case("faq_bot")
    def answer() -> str:
        return "ok"

    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired) as info:
        answer()
    assert info.value.code == "authentication_required"


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


def test_approved_high_risk_use_case_runs_and_is_recorded(memory: MemorySink) -> None:
    guard = Guard(
        policy_with(
            credit_scoring={
                "high_risk": "essential_services",
                "approval": approval(today() + timedelta(days=30)),
            }
        ),
        sinks=[memory],
    )

    @guard.use_case("credit_scoring")
    def score(applicant: str) -> int:
        return 700

    with acting_as(ANALYST):
        assert score("x") == 700
    (event,) = memory.events
    assert (event.invariant, event.decision, event.reason) == (
        "I11",
        "allow",
        "use_case_approved",
    )
    assert event.details["approval"] == "LEG-2026-114"
    assert event.details["high_risk"] == "essential_services"
    assert event.subject == "ana"
    assert score.use_case == "credit_scoring"


def test_the_approval_holds_through_its_last_day() -> None:
    guard = Guard(
        policy_with(
            credit_scoring={
                "high_risk": "essential_services",
                "approval": approval(today()),
            }
        )
    )
    assert guard.check_use_case("credit_scoring").high_risk == "essential_services"


def test_expired_approval_is_refused(memory: MemorySink) -> None:
    guard = Guard(
        policy_with(
            credit_scoring={
                "high_risk": "essential_services",
                "approval": approval(today() - timedelta(days=1)),
            }
        ),
        sinks=[memory],
    )
    ran: list[bool] = []

    @guard.use_case("credit_scoring")
    async def score() -> None:
        ran.append(True)

    with pytest.raises(UseCaseNotApproved) as info:
        asyncio.run(score())
    assert info.value.code == "use_case_approval_expired"
    assert info.value.invariant == "I11"
    assert ran == []
    assert [e.reason for e in memory.events] == ["use_case_approval_expired"]


def test_high_risk_without_approval_is_refused() -> None:
    guard = Guard(policy_with(hiring={"high_risk": "employment"}))

    @guard.use_case("hiring")
    def rank_cvs() -> None:
        return None

    with pytest.raises(UseCaseNotApproved) as info:
        rank_cvs()
    assert info.value.code == "use_case_not_approved"


def test_declared_low_risk_use_case_runs() -> None:
    guard = Guard(policy_with(faq_bot={"description": "answers FAQs"}))
    with capture() as events:
        assert guard.check_use_case("faq_bot").high_risk is None
    assert [e.reason for e in events] == ["use_case_declared"]


def test_undeclared_use_case_is_refused_early_and_at_call_time() -> None:
    guard = Guard()
    with pytest.raises(PolicyError, match="not declared"):
        guard.use_case("credit_scoring")

    @use_case("credit_scoring")  # no guard yet: checked at call time
    def score() -> None:
        return None

    Guard().install()
    with pytest.raises(UseCaseNotApproved) as info:
        score()
    assert info.value.code == "use_case_unknown"


def test_module_level_decorator_follows_the_installed_guard() -> None:
    @use_case("credit_scoring")
    def score() -> str:
        return "ok"

    Guard(
        policy_with(
            credit_scoring={
                "high_risk": "essential_services",
                "approval": approval(today() + timedelta(days=1)),
            }
        )
    ).install()
    try:
        assert score() == "ok"
    finally:
        Guard().install()
