"""Concurrent tasks and threads never observe another's principal (I1)."""

from __future__ import annotations

import asyncio
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import (
    ANONYMOUS,
    Principal,
    PrincipalExecutor,
    acting_as,
    current_principal,
)

scope = st.sampled_from(["crm:read", "crm:write", "tickets:read", "mail:send"])
principals = st.builds(
    Principal,
    subject=st.text(
        alphabet=st.characters(codec="ascii", categories=["L", "N"]),
        min_size=1,
        max_size=8,
    ),
    authenticated=st.just(True),
    scopes=st.frozensets(scope),
    tenant=st.none() | st.sampled_from(["acme", "globex"]),
) | st.just(ANONYMOUS)

# Each worker: its principal, and a schedule of yields (0 = no yield).
workers = st.lists(
    st.tuples(principals, st.lists(st.integers(0, 3), min_size=1, max_size=6)),
    min_size=2,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(workers)
def test_concurrent_tasks_never_see_each_others_principal(
    plan: list[tuple[Principal, list[int]]],
) -> None:
    seen: list[tuple[int, bool, Principal]] = []

    async def worker(index: int, who: Principal, pauses: list[int]) -> None:
        async with acting_as(who):
            for pause in pauses:
                for _ in range(pause):
                    await asyncio.sleep(0)
                seen.append((index, True, current_principal()))
        seen.append((index, False, current_principal()))

    async def main() -> None:
        await asyncio.gather(
            *(worker(i, who, pauses) for i, (who, pauses) in enumerate(plan))
        )

    asyncio.run(main())
    for index, inside, observed in seen:
        # Inside its block a task sees exactly its principal; after the block,
        # the anonymous default: never another task's principal.
        assert observed is (plan[index][0] if inside else ANONYMOUS)
    expected = sum(len(pauses) + 1 for _, pauses in plan)
    assert len(seen) == expected


@settings(max_examples=30, deadline=None)
@given(workers)
def test_concurrent_threads_never_see_each_others_principal(
    plan: list[tuple[Principal, list[int]]],
) -> None:
    barrier = threading.Barrier(len(plan))
    errors: list[str] = []

    def worker(who: Principal, pauses: list[int]) -> None:
        with acting_as(who):
            barrier.wait(timeout=10)
            for pause in pauses:
                for _ in range(pause):
                    threading.Event().wait(0.0001)
                if current_principal() is not who:
                    errors.append("a thread saw a principal other than its own")
        if current_principal() is not ANONYMOUS:
            errors.append("a thread kept a principal after its block")

    threads = [threading.Thread(target=worker, args=step) for step in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors


@settings(max_examples=20, deadline=None)
@given(st.lists(principals, min_size=2, max_size=8))
def test_pool_work_runs_as_its_submitter(plan: list[Principal]) -> None:
    """Tasks on several event-loop threads submit to one shared pool."""
    with PrincipalExecutor(max_workers=3) as pool:

        async def submitter(who: Principal) -> list[Principal]:
            async with acting_as(who):
                futures = [pool.submit(current_principal) for _ in range(3)]
                await asyncio.sleep(0)
                return [future.result(timeout=10) for future in futures]

        async def main() -> list[list[Principal]]:
            return await asyncio.gather(*(submitter(who) for who in plan))

        results = asyncio.run(main())
    for who, observed in zip(plan, results, strict=True):
        assert all(item is who for item in observed)
