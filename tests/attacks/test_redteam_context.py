"""Red team, I1: a principal escaping its block through a helper.

Apps rarely call ``acting_as`` directly in the generator that streams an
answer: they wrap it (``@contextmanager def impersonate(user)``, an
``@asynccontextmanager``, a small class whose ``__enter__`` enters
``acting_as``). The generator check looked only at the frame that called
``acting_as.__enter__`` — the helper's — so the generator's principal
stayed active in its caller between iterations: an admin-only call in the
caller's loop body ran as the generator's principal. The block belongs to
whoever entered the helper; it must stay there, and the helper used in an
ordinary block or a pytest fixture must keep working.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any

import pytest

from aiinvariants import (
    AuthenticationRequired,
    Guard,
    Policy,
    Principal,
    acting_as,
    current_principal,
)
from aiinvariants.tools import guarded_tool

ADMIN = Principal(
    subject="admin",
    authenticated=True,
    scopes=frozenset({"admin"}),
    clearance="restricted",
)
POLICY = Policy.from_dict(
    {"tools": {"wipe": {"scopes": ["admin"], "data": "internal"}}}
)


def wipe_tool() -> Any:
    @guarded_tool(Guard(POLICY), name="wipe")
    def wipe() -> str:
        return "wiped"

    return wipe


@contextmanager
def impersonate(who: Principal) -> Iterator[Principal]:
    with acting_as(who) as principal:
        yield principal


@asynccontextmanager
async def aimpersonate(who: Principal) -> AsyncIterator[Principal]:
    async with acting_as(who) as principal:
        yield principal


class Impersonate:
    def __init__(self, who: Principal) -> None:
        self._block = acting_as(who)

    def __enter__(self) -> Principal:
        return self._block.__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._block.__exit__(kind, exc, tb)


@pytest.mark.parametrize("helper", [impersonate, Impersonate], ids=["cm", "class"])
def test_a_helper_entered_in_a_generator_does_not_leak(helper: Any) -> None:
    wipe = wipe_tool()

    def stream() -> Iterator[str]:
        with helper(ADMIN):
            assert current_principal() is ADMIN
            yield "chunk"

    for _ in stream():
        assert current_principal().subject == "anonymous"
        with pytest.raises(AuthenticationRequired) as info:
            wipe()
        assert info.value.code == "authentication_required"
    with helper(ADMIN):  # an ordinary block still acts as the principal
        assert wipe() == "wiped"


def test_an_async_helper_entered_in_an_async_generator_does_not_leak() -> None:
    async def stream() -> AsyncIterator[str]:
        async with aimpersonate(ADMIN):
            assert current_principal() is ADMIN
            yield "chunk"

    async def main() -> list[str]:
        seen = [current_principal().subject async for _ in stream()]
        async with aimpersonate(ADMIN):
            seen.append(current_principal().subject)
        return seen

    assert asyncio.run(main()) == ["anonymous", "admin"]


@pytest.fixture
def as_admin() -> Iterator[Principal]:
    with impersonate(ADMIN) as who:
        yield who


def test_a_fixture_using_the_helper_still_hands_over(as_admin: Principal) -> None:
    assert current_principal() is as_admin


BOB = Principal(subject="bob", authenticated=True, clearance="restricted")


@pytest.mark.xfail(
    strict=True,
    reason="a task started inside an async generator's acting_as block cannot "
    "be told from one the caller starts between iterations (both copy the "
    "same context), so it runs as the caller's principal; telling them apart "
    "needs the copy time (a task factory), not done here",
)
def test_a_task_an_async_generator_starts_never_runs_as_its_caller() -> None:
    from aiinvariants import ScopeDenied

    wipe = wipe_tool()

    async def call() -> str:
        try:
            return str(wipe())
        except ScopeDenied as denial:
            return str(denial.code)

    async def stream() -> AsyncIterator[str]:
        async with acting_as(BOB):
            # bob may not wipe; the service iterating this stream may.
            async with asyncio.TaskGroup() as group:
                task = group.create_task(call())
            yield task.result()

    async def main() -> list[str]:
        async with acting_as(ADMIN):
            return [chunk async for chunk in stream()]

    assert asyncio.run(main()) == ["scope_missing"]
