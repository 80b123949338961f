"""I1 attacks: a principal must not escape the block that set it.

Class 1 — suspension: a generator or async generator enters
``acting_as(admin)`` and yields inside the block; between iterations the
caller's loop body must still run as the caller (an admin-only call there
is refused), whatever the nesting, and the generator itself acts as admin
each time it resumes. Generators driven as context managers
(``contextlib``) keep handing their principal to the with-body.

Class 2 — sharing: one ``acting_as`` object entered by several threads or
tasks, exits interleaved, must leave each one with its own principal and
never raise; an exit out of order never restores another block's
principal; an exit in a foreign context is refused clearly.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import (
    ANONYMOUS,
    Guard,
    PolicyError,
    Principal,
    ScopeDenied,
    acting_as,
    current_principal,
)
from aiinvariants._principal import (
    PrincipalExecutor,
    carry_principal,
    current_correlation_id,
)
from aiinvariants.audit import MemorySink

ADMIN = Principal(subject="root", authenticated=True, scopes="admin:all")
ALICE = Principal(subject="alice", authenticated=True, scopes="kb:read")
BOB = Principal(subject="bob", authenticated=True)

guard = Guard(sinks=[MemorySink()])


@guard.enforce_user_scope("admin:all")
def drop_tables() -> str:
    return "dropped"


def as_admin_rows() -> Iterator[str]:
    with acting_as(ADMIN):
        for n in range(3):
            assert current_principal() is ADMIN  # resumed: admin again
            yield f"row{n}"


def test_a_generator_yielding_inside_acting_as_does_not_leak() -> None:
    with acting_as(ALICE):
        for _row in as_admin_rows():
            assert current_principal() is ALICE
            with pytest.raises(ScopeDenied) as info:
                drop_tables()
            assert info.value.code == "scope_missing"
        assert current_principal() is ALICE
    assert current_principal() is ANONYMOUS


def test_an_abandoned_generator_does_not_leak() -> None:
    with acting_as(ALICE):
        rows = as_admin_rows()
        next(rows)
        assert current_principal() is ALICE
        # never closed: the caller keeps its principal, also after the block
    assert current_principal() is ANONYMOUS
    rows.close()


def test_nested_generators_each_keep_their_own() -> None:
    def as_bob() -> Iterator[Principal]:
        with acting_as(BOB):
            for value in as_admin():
                assert current_principal() is BOB
                yield value

    def as_admin() -> Iterator[Principal]:
        with acting_as(ADMIN):
            yield current_principal()
            yield current_principal()

    with acting_as(ALICE):
        inner = [(p, current_principal()) for p in as_bob()]
    assert inner == [(ADMIN, ALICE), (ADMIN, ALICE)]


def test_an_async_generator_yielding_inside_acting_as_does_not_leak() -> None:
    async def rows() -> AsyncIterator[str]:
        async with acting_as(ADMIN):
            for n in range(3):
                await asyncio.sleep(0)
                assert current_principal() is ADMIN
                yield f"row{n}"

    async def rows_sync_with() -> AsyncIterator[str]:
        with acting_as(ADMIN):
            yield "row"

    async def main() -> list[str]:
        outcomes = []
        async with acting_as(ALICE):
            for source in (rows(), rows_sync_with()):
                async for _ in source:
                    outcomes.append(current_principal().subject)
                    try:
                        drop_tables()
                    except ScopeDenied as exc:
                        outcomes.append(exc.code)
        return outcomes

    assert asyncio.run(main()) == ["alice", "scope_missing"] * 4


def test_a_task_started_inside_a_generators_block_never_gets_its_principal() -> None:
    # A task copies the context; whether it was made inside the generator's
    # block or between its iterations cannot be told, so the generator's
    # principal does not hold there: the task runs as the caller.
    async def spawner() -> AsyncIterator[asyncio.Task[Principal]]:
        async with acting_as(ADMIN):

            async def who() -> Principal:
                await asyncio.sleep(0.01)
                return current_principal()

            yield asyncio.create_task(who())

    async def main() -> tuple[Principal, Principal]:
        async with acting_as(ALICE):
            async for task in spawner():
                here = current_principal()
                return here, await task
        raise AssertionError("no task")

    assert asyncio.run(main()) == (ALICE, ALICE)


def test_work_started_between_iterations_runs_as_the_caller() -> None:
    # The generator's principal must not reach threads, pools or tasks the
    # caller starts in its loop body.
    seen: list[Principal] = []
    with acting_as(ALICE), PrincipalExecutor(max_workers=1) as pool:
        for _ in as_admin_rows():
            seen.append(pool.submit(current_principal).result())
            thread = threading.Thread(
                target=carry_principal(lambda: seen.append(current_principal()))
            )
            thread.start()
            thread.join()
            seen.append(
                contextvars.copy_context().run(current_principal)  # plain copy
            )

    async def main() -> list[Principal]:
        out: list[Principal] = []

        async def rows() -> AsyncIterator[int]:
            async with acting_as(ADMIN):
                yield 1

        async with acting_as(ALICE):
            async for _ in rows():
                out.append(
                    await asyncio.create_task(asyncio.sleep(0, current_principal()))
                )
                out.append(await asyncio.to_thread(current_principal))
        return out

    assert seen == [ALICE] * 9
    assert asyncio.run(main()) == [ALICE, ALICE]


def test_a_thread_started_inside_a_generators_block_keeps_its_principal() -> None:
    def rows() -> Iterator[Principal]:
        with acting_as(ADMIN), PrincipalExecutor(max_workers=1) as pool:
            yield pool.submit(current_principal).result()

    with acting_as(ALICE):
        assert [(p, current_principal()) for p in rows()] == [(ADMIN, ALICE)]


def test_context_manager_generators_still_hand_over_their_principal() -> None:
    @contextlib.contextmanager
    def as_admin() -> Iterator[None]:
        with acting_as(ADMIN):
            yield

    @contextlib.asynccontextmanager
    async def as_admin_async() -> AsyncIterator[None]:
        async with acting_as(ADMIN):
            yield

    with acting_as(ALICE):
        with as_admin():
            assert drop_tables() == "dropped"
        assert current_principal() is ALICE

    async def main() -> str:
        async with as_admin_async():
            return drop_tables()

    assert asyncio.run(main()) == "dropped"


def test_one_acting_as_shared_by_threads_keeps_each_its_own() -> None:
    shared = acting_as(ALICE, correlation_id="req-1")
    barrier = threading.Barrier(4)
    problems: list[str] = []

    def worker(n: int) -> None:
        try:
            with acting_as(BOB):
                barrier.wait(timeout=5)
                with shared:
                    barrier.wait(timeout=5)  # everyone is inside
                    if current_principal() is not ALICE:
                        problems.append(f"{n}: inside")
                    if n % 2:
                        barrier.wait(timeout=5)
                if n % 2 == 0:
                    barrier.wait(timeout=5)  # odd ones left first
                if current_principal() is not BOB:
                    problems.append(f"{n}: after")
            if current_principal() is not ANONYMOUS:
                problems.append(f"{n}: end")
        except Exception as exc:
            problems.append(f"{n}: {type(exc).__name__}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert problems == []


def test_one_acting_as_shared_by_tasks_keeps_each_its_own() -> None:
    shared = acting_as(ADMIN)

    async def task(delay: float) -> tuple[Principal, Principal]:
        async with acting_as(ALICE):
            async with shared:
                await asyncio.sleep(delay)
                inside = current_principal()
            return inside, current_principal()

    async def main() -> list[tuple[Principal, Principal]]:
        return list(await asyncio.gather(task(0.02), task(0.0), task(0.01)))

    assert asyncio.run(main()) == [(ADMIN, ALICE)] * 3


def test_an_exit_out_of_order_never_restores_another_principal() -> None:
    first, second = acting_as(ADMIN), acting_as(BOB)
    with acting_as(ALICE):
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # out of order
        assert current_principal() is BOB
        second.__exit__(None, None, None)
        assert current_principal() is ALICE
        assert current_correlation_id() is not None


def test_an_exit_in_a_foreign_context_is_refused() -> None:
    block = acting_as(ADMIN)
    block.__enter__()
    errors: list[BaseException] = []

    def leave() -> None:
        try:
            block.__exit__(None, None, None)
        except PolicyError as exc:
            errors.append(exc)

    thread = threading.Thread(target=leave)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "another context" in str(errors[0])
    block.__exit__(None, None, None)
    assert current_principal() is ANONYMOUS


def test_an_exit_stack_in_a_generator_does_not_leak() -> None:
    def rows() -> Iterator[str]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(acting_as(ADMIN))
            yield "row"

    async def arows() -> AsyncIterator[str]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(acting_as(ADMIN))
            yield "row"

    async def main() -> list[Principal]:
        async with acting_as(ALICE):
            return [current_principal() async for _ in arows()]

    with acting_as(ALICE):
        assert [current_principal() for _ in rows()] == [ALICE]
    assert asyncio.run(main()) == [ALICE]


def test_a_generator_closed_from_another_thread_raises_nothing() -> None:
    rows = as_admin_rows()
    with acting_as(ALICE):
        next(rows)
    errors: list[BaseException] = []

    def close() -> None:
        try:
            rows.close()  # GeneratorExit inside the block, in another context
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=close)
    thread.start()
    thread.join()
    assert errors == []
    assert current_principal() is ANONYMOUS
    # The closed generator's entry is never inherited by later work.
    with PrincipalExecutor(max_workers=1) as pool:
        assert pool.submit(current_principal).result() is ANONYMOUS
    assert contextvars.copy_context().run(current_principal) is ANONYMOUS


PEOPLE = [ADMIN, ALICE, BOB, Principal(subject="carol", authenticated=True)]


@settings(max_examples=150, deadline=None)
@given(
    caller=st.sampled_from(PEOPLE),
    plans=st.lists(
        st.tuples(st.sampled_from(PEOPLE), st.integers(min_value=0, max_value=3)),
        min_size=1,
        max_size=4,
    ),
    schedule=st.lists(st.integers(min_value=0, max_value=3), max_size=20),
)
def test_interleaved_generators_never_leak_into_the_caller(
    caller: Principal, plans: list[tuple[Principal, int]], schedule: list[int]
) -> None:
    # Several generators, each acting as someone and yielding a few times,
    # advanced in any order: the caller always sees itself, each generator
    # sees its own principal whenever it runs, and nothing remains after.
    problems: list[str] = []

    def worker(n: int, who: Principal, steps: int) -> Iterator[int]:
        with acting_as(who):
            for step in range(steps):
                if current_principal() is not who:
                    problems.append(f"gen {n} step {step}")
                yield step
            if current_principal() is not who:
                problems.append(f"gen {n} end")

    with acting_as(caller):
        gens = [worker(n, who, steps) for n, (who, steps) in enumerate(plans)]
        for pick in schedule:
            next(gens[pick % len(gens)], None)
            if current_principal() is not caller:
                problems.append(f"caller after gen {pick % len(gens)}")
        for gen in gens[::2]:
            gen.close()  # some abandoned, some closed
        if current_principal() is not caller:
            problems.append("caller at end")
    assert problems == []
    assert current_principal() is ANONYMOUS
