"""I12 attacks: taint must compose and markers must fail closed.

Class 1 — a run that starts clean although its context is tainted: a
nested ``agent_run`` (a sub-agent), nested twice, in a task or a thread
started inside the run, in an async generator. Each must refuse the
exfiltrating tool (``tainted_run_needs_confirmation``).

Class 2 — taint that does not reach the parent: marks received by a child
run, by a task or by a carried thread must taint the run that started them,
immediately (not only when the child ends).

Class 3 — an untrusted marker that reads as "no": any value but absent or
``False`` taints, through a real LangChain retriever (hypothesis over
values).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.vectorstores import InMemoryVectorStore

from aiinvariants import Guard, Policy, Principal, ToolForbidden, acting_as
from aiinvariants._principal import PrincipalExecutor, carry_principal
from aiinvariants.taint import (
    AgentRun,
    agent_run,
    current_run,
    is_untrusted,
    mark_private,
    mark_untrusted,
)
from aiinvariants.tools import guarded_tool
from langchain_support import HashEmbeddings

POLICY = Policy.from_dict(
    {
        "tools": {
            "send_email": {"data": "public", "capabilities": ["sends_external"]},
        }
    }
)
ALICE = Principal(subject="alice", authenticated=True, clearance="confidential")


def exfiltrate() -> Any:
    guard = Guard(POLICY)

    @guarded_tool(guard, name="send_email")
    def send_email() -> str:
        return "sent"

    return send_email


def taint_parent() -> None:
    mark_private("hr-db")
    mark_untrusted("web")


def test_a_sub_agent_inherits_its_parents_taint() -> None:
    send_email = exfiltrate()
    with acting_as(ALICE), agent_run(confirm=lambda r: False):
        taint_parent()
        with agent_run() as child:
            assert child.tainted
            assert child.private_sources == ("hr-db",)
            with pytest.raises(ToolForbidden) as info:
                send_email()
            with agent_run() as grandchild:
                assert grandchild.tainted
                with pytest.raises(ToolForbidden):
                    send_email()
    assert info.value.code == "tainted_run_needs_confirmation"
    assert info.value.invariant == "I12"


def test_a_sub_agent_asks_its_parents_confirmation() -> None:
    asked: list[str] = []
    send_email = exfiltrate()

    def confirm(request: Any) -> bool:
        asked.append(request.tool)
        return True

    with acting_as(ALICE), agent_run(confirm=confirm):
        taint_parent()
        with agent_run():
            assert send_email() == "sent"
    assert asked == ["send_email"]


def test_a_childs_marks_reach_the_parent_at_once() -> None:
    with agent_run() as parent:
        with agent_run():
            mark_private("child-db")
            assert parent.private  # before the child ends
            with agent_run():
                mark_untrusted("grandchild-web")
        assert parent.tainted
        assert parent.untrusted_sources == ("grandchild-web",)


def test_tasks_started_inside_a_run_mark_it() -> None:
    async def sub_agent() -> None:
        async with agent_run():
            mark_private("task-db")
            await asyncio.sleep(0)

    async def reader() -> None:
        await asyncio.sleep(0)
        mark_untrusted("task-web")

    async def main() -> AgentRun:
        async with agent_run() as run:
            await asyncio.gather(sub_agent(), asyncio.create_task(reader()))
            return run

    run = asyncio.run(main())
    assert run.private_sources == ("task-db",)
    assert run.untrusted_sources == ("task-web",)


def test_carried_threads_mark_the_run_and_see_its_taint() -> None:
    send_email = exfiltrate()
    seen: list[bool] = []
    with acting_as(ALICE), agent_run() as run:
        mark_private("hr-db")

        def worker() -> None:
            with agent_run() as child:
                seen.append(child.private)
                mark_untrusted("thread-web")

        thread = threading.Thread(target=carry_principal(worker))
        thread.start()
        thread.join()
        with PrincipalExecutor(max_workers=2) as pool:
            pool.submit(mark_untrusted, "pool-web").result()
            with pytest.raises(ToolForbidden):
                pool.submit(send_email).result()
    assert seen == [True]
    assert run.untrusted_sources == ("thread-web", "pool-web")


def test_a_generators_run_does_not_cover_the_caller() -> None:
    # A generator that opens its own (clean) run and yields inside it must
    # not replace the caller's tainted run between iterations.
    send_email = exfiltrate()

    def sub_agent() -> Any:
        with agent_run():
            yield "step"

    with acting_as(ALICE), agent_run() as outer:
        taint_parent()
        for _ in sub_agent():
            assert current_run() is outer
            with pytest.raises(ToolForbidden):
                send_email()


def test_an_async_generators_run_does_not_cover_the_caller() -> None:
    async def sub_agent() -> AsyncIterator[AgentRun]:
        async with agent_run() as inner:
            yield inner
            mark_untrusted("late")

    async def main() -> tuple[bool, AgentRun]:
        async with agent_run() as outer:
            async for inner in sub_agent():
                same = current_run() is outer and current_run() is not inner
            return same, outer

    same, outer = asyncio.run(main())
    assert same
    assert outer.untrusted_sources == ("late",)


def test_an_agent_run_object_is_one_run() -> None:
    from aiinvariants import PolicyError

    block = agent_run()
    with block, pytest.raises(PolicyError):
        block.__enter__()


MARKERS = [True, "true", "True", "false", "no", "0", "", 1, 0, None, [], {}, "yes"]


@pytest.mark.parametrize("marker", MARKERS, ids=repr)
def test_an_untrusted_marker_that_is_not_false_taints(marker: object) -> None:
    assert is_untrusted({"untrusted": marker})


def test_only_absent_or_false_is_trusted() -> None:
    assert not is_untrusted({})
    assert not is_untrusted({"untrusted": False})


@settings(max_examples=60, deadline=None)
@given(
    marker=st.one_of(
        st.text(max_size=8),
        st.integers(),
        st.floats(allow_nan=True),
        st.booleans(),
        st.none(),
    )
)
def test_a_real_retriever_taints_on_any_marker_but_false(marker: object) -> None:
    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts(
        ["public page"], metadatas=[{"classification": "public", "untrusted": marker}]
    )
    retriever = Guard(POLICY).retriever(store.as_retriever())
    with acting_as(ALICE), agent_run() as run:
        docs = retriever.invoke("page")
    assert len(docs) == 1
    assert run.untrusted is (marker is not False)
