"""Red team, I12: taint lost in tasks an async-generator agent starts.

A streaming agent is usually an async generator: it opens its
``agent_run()``, reads, yields tokens, and runs tool calls concurrently
(``asyncio.gather``, ``TaskGroup``, ``to_thread``). The run entered in the
generator holds only while the generator's frame runs in its own task, so a
task or thread started *inside the block* found no run at all: its marks
were dropped and its exfiltrating tool call saw a clean (absent) run.
Taint must fail closed: such a task works inside the generator's run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiinvariants import Guard, Policy, Principal, ToolForbidden, acting_as
from aiinvariants.taint import (
    AgentRun,
    agent_run,
    current_run,
    mark_private,
    mark_untrusted,
)
from aiinvariants.tools import guarded_tool

POLICY = Policy.from_dict(
    {"tools": {"send_email": {"data": "public", "capabilities": ["sends_external"]}}}
)
ALICE = Principal(subject="alice", authenticated=True, clearance="confidential")


def exfiltrate() -> Any:
    guard = Guard(POLICY)

    @guarded_tool(guard, name="send_email")
    def send_email() -> str:
        return "sent"

    return send_email


def test_a_task_gathered_by_an_async_generator_agent_sees_its_taint() -> None:
    send_email = exfiltrate()

    async def call() -> str:
        return str(send_email())

    async def agent() -> AsyncIterator[str]:
        async with agent_run():
            mark_private("hr-db")
            mark_untrusted("web")
            yield "thinking"
            results = await asyncio.gather(call(), return_exceptions=True)
            yield repr(results[0])
            result = await asyncio.gather(call())
            yield result[0]

    async def main() -> list[str]:
        with acting_as(ALICE):
            return [chunk async for chunk in agent()]

    with pytest.raises(ToolForbidden) as caught:
        asyncio.run(main())
    assert caught.value.code == "tainted_run_needs_confirmation"


def test_marks_made_in_a_task_of_an_async_generator_agent_reach_its_run() -> None:
    send_email = exfiltrate()

    async def read_web() -> None:
        mark_untrusted("web")

    async def agent() -> AsyncIterator[AgentRun]:
        async with agent_run() as run:
            mark_private("hr-db")
            async with asyncio.TaskGroup() as group:
                group.create_task(read_web())
            yield run
            send_email()

    async def main() -> list[AgentRun]:
        with acting_as(ALICE):
            return [run async for run in agent()]

    with pytest.raises(ToolForbidden) as caught:
        asyncio.run(main())
    assert caught.value.code == "tainted_run_needs_confirmation"


def test_a_thread_started_by_an_async_generator_agent_marks_its_run() -> None:
    def read_web() -> bool:
        mark_untrusted("web")
        run = current_run()
        return run is not None and run.untrusted

    async def agent() -> AsyncIterator[tuple[bool, AgentRun]]:
        async with agent_run() as run:
            seen = await asyncio.to_thread(read_web)
            yield seen, run

    async def main() -> list[tuple[bool, AgentRun]]:
        return [item async for item in agent()]

    [(seen, run)] = asyncio.run(main())
    assert seen
    assert run.untrusted_sources == ("web",)


def test_a_sub_agents_lenient_callback_never_approves_its_callers_task() -> None:
    # The caller's run has no confirmation callback: its exfiltrating call is
    # refused. A sub-agent generator approves everything for itself; a task
    # the caller starts between the sub-agent's iterations holds a copy of a
    # context with the sub-agent's run in it, and must not get that approval.
    send_email = exfiltrate()

    async def call() -> str:
        try:
            return str(send_email())
        except ToolForbidden as denial:
            return str(denial.code)

    async def sub_agent() -> AsyncIterator[str]:
        async with agent_run(confirm=lambda request: True):
            yield "step"

    async def main() -> list[str]:
        out = []
        with acting_as(ALICE):
            async with agent_run():
                mark_private("hr-db")
                mark_untrusted("web")
                async for _ in sub_agent():
                    out.append(await asyncio.create_task(call()))
        return out

    assert asyncio.run(main()) == ["tainted_run_needs_confirmation"]


def test_a_sub_agents_lenient_callback_is_not_carried_into_a_pool() -> None:
    # As above, through carry_principal from the caller's task: the pinned
    # copy must stay as uncertain as the context it was made from.
    from aiinvariants._principal import carry_principal

    send_email = exfiltrate()

    def call() -> str:
        try:
            return str(send_email())
        except ToolForbidden as denial:
            return str(denial.code)

    async def sub_agent() -> AsyncIterator[str]:
        async with agent_run(confirm=lambda request: True):
            yield "step"

    async def in_task() -> str:
        return await asyncio.to_thread(carry_principal(call))

    async def main() -> list[str]:
        out = []
        with acting_as(ALICE):
            async with agent_run():
                mark_private("hr-db")
                mark_untrusted("web")
                async for _ in sub_agent():
                    out.append(await asyncio.create_task(in_task()))
        return out

    assert asyncio.run(main()) == ["tainted_run_needs_confirmation"]
