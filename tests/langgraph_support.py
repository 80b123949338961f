"""A scripted LangGraph agent loop for the guarded ToolNode tests.

The model is LangChain's ``GenericFakeChatModel`` emitting ``AIMessage``
tool calls from a script; the graph is a real ``StateGraph`` with a real
checkpointer (``InMemorySaver``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from aiinvariants import Guard, Policy, Principal

POLICY = Policy.from_dict(
    {
        "clearance": {"scopes": {"tickets:read": "internal"}},
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
                "untrusted_output": False,
            },
        },
    }
)
ALICE = Principal(
    subject="alice", authenticated=True, scopes={"tickets:read", "mail:send"}
)
BOB = Principal(subject="bob", authenticated=True, scopes={"mail:send"})


class Outbox:
    """What the e-mail tool really sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []


def make_tools(outbox: Outbox) -> list[Any]:
    @tool
    def search_kb(query: str) -> str:
        """Search the public knowledge base (web content: untrusted)."""
        return f"kb: {query}"

    @tool
    def read_ticket(ticket_id: str) -> str:
        """Read a support ticket."""
        return f"ticket {ticket_id}: customer card ends 4242"

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        outbox.sent.append((to, body))
        return "sent"

    return [search_kb, read_ticket, send_email]


def call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def turn(*calls: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=list(calls))


def build_graph(
    script: Sequence[AIMessage],
    node: Any,
    *,
    checkpointer: Any = None,
    store: Any = None,
) -> Any:
    """model -> tools -> model ... with a checkpointer (and a store, if given)."""
    model = GenericFakeChatModel(messages=iter(script))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer or InMemorySaver(), store=store)


def guard() -> Guard:
    return Guard(POLICY)
