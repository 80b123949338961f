"""Attacks on the principal context and scope checks (I1)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator

import pytest

from aiinvariants import (
    ANONYMOUS,
    AuthenticationRequired,
    Guard,
    Principal,
    PrincipalExecutor,
    ScopeDenied,
    acting_as,
    current_principal,
)
from aiinvariants.audit import MemorySink


def admin() -> Principal:
    return Principal(subject="root", authenticated=True, scopes="admin:all")


def test_a_leaked_set_on_a_pool_worker_does_not_reach_the_next_task() -> None:
    """A buggy task that sets the principal and never resets it."""

    def leaky() -> None:
        acting_as(admin()).__enter__()  # entered, never left

    with PrincipalExecutor(max_workers=1) as pool:
        pool.submit(leaky).result()
        assert pool.submit(current_principal).result() is ANONYMOUS


def test_a_leaked_set_in_a_task_does_not_reach_its_siblings() -> None:
    async def leaky() -> None:
        acting_as(admin()).__enter__()  # entered, never left

    async def main() -> Principal:
        await asyncio.create_task(leaky())
        return await asyncio.create_task(asyncio.sleep(0, current_principal()))

    assert asyncio.run(main()) is ANONYMOUS


def test_generator_created_as_admin_but_iterated_later_is_checked_then() -> None:
    """Checks run when the body would run, for the principal current then."""
    guard = Guard(sinks=[MemorySink()])

    @guard.enforce_user_scope("admin:all")
    def dump() -> Iterator[str]:
        yield "secret rows"

    with acting_as(admin()):
        pending = dump()
    with pytest.raises(AuthenticationRequired):
        next(pending)


def test_a_copied_context_cannot_be_upgraded_from_outside() -> None:
    guard = Guard()

    @guard.enforce_user_scope("admin:all")
    def act() -> str:
        return "done"

    user = Principal(subject="eve", authenticated=True, scopes="kb:read")
    with acting_as(user):
        context = contextvars.copy_context()
    # Setting the variable afterwards in our own context does not change the
    # snapshot another component holds, nor the reverse.
    with acting_as(admin()):
        with pytest.raises(ScopeDenied):
            context.run(act)
        assert act() == "done"


def test_principal_from_untrusted_json_cannot_self_authenticate() -> None:
    body = '{"subject": "eve", "scopes": "admin:all"}'
    with pytest.raises(ValueError, match="unauthenticated"):
        Principal.model_validate_json(body)
    extra = '{"subject": "eve", "authenticated": true, "is_admin": true}'
    with pytest.raises(ValueError, match="Extra inputs"):
        Principal.model_validate_json(extra)


@pytest.mark.parametrize(
    "scope",
    [
        'x", error="invalid_token',
        "x\r\nSet-Cookie: a=b",
        "x\\",
        "x y",
        "ä",
    ],
)
def test_scope_names_cannot_inject_into_the_challenge(scope: str) -> None:
    with pytest.raises(ValueError, match="scope token"):
        Principal(subject="a", authenticated=True, scopes=[scope])
