"""LangChain tools and a retriever, guarded by one policy.

Run it: ``python examples/langchain_tools.py`` (needs the ``langchain``
extra). Three tools an agent could call, wrapped with ``guard_tool``:

- ``search_kb``: public data, anyone signed in may call it;
- ``read_ticket``: needs the ``tickets:read`` scope, returns internal data
  as content *and* artifact (both pass the data ceiling and the output
  filters);
- ``open_floodgate``: has the ``life_safety`` capability, refused when it is
  wrapped, under any name.

The principal comes from ``acting_as`` or, with ``principal_from_config``,
from ``config["configurable"]["principal"]`` (a ``Principal`` object, never a
user id). A ``SecureRetriever`` built the usual pydantic way honours ``k``.
"""

from __future__ import annotations

import hashlib
import math

from langchain_core.embeddings import Embeddings
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore

from aiinvariants import (
    Guard,
    InvariantViolation,
    Policy,
    PolicyError,
    Principal,
    acting_as,
)
from aiinvariants.integrations.langchain import SecureRetriever
from aiinvariants.integrations.langchain_tools import guard_tool

policy = Policy.from_dict(
    {
        "app": "helpdesk",
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "tools": {"read_ticket": {"scopes": ["tickets:read"], "data": "internal"}},
    }
)
guard = Guard(policy)
# In a real app these come from JWTVerifier.verify(token).
alice = Principal(subject="alice", authenticated=True, scopes={"tickets:read"})
bob = Principal(subject="bob", authenticated=True)


@tool
def search_kb(query: str) -> str:
    """Search the public knowledge base."""
    return f"3 articles about {query}"


@tool(response_format="content_and_artifact")
def read_ticket(ticket_id: str) -> tuple[str, dict[str, str]]:
    """Read a support ticket."""
    row = {"classification": "internal", "reporter": "carol@example.com"}
    return f"ticket {ticket_id}: printer jammed", row


@tool
def open_floodgate(gate: int) -> str:
    """Open a floodgate."""
    return "opened"


def attempt(label: str, run: object) -> None:
    try:
        result = run() if callable(run) else run
    except InvariantViolation as exc:
        print(f"{label}: refused ({exc.code})")
    else:
        print(f"{label}: {result}")


kb = guard_tool(guard, search_kb, data="public")
tickets = guard_tool(guard, read_ticket)  # the policy declares scopes and data
try:
    guard_tool(guard, open_floodgate, capabilities=["life_safety"])
except PolicyError:
    print("wrap: open_floodgate refused (life_safety is forbidden)")

call = {
    "name": "read_ticket",
    "args": {"ticket_id": "T-7"},
    "id": "c1",
    "type": "tool_call",
}
with acting_as(alice):
    attempt("alice -> search_kb", lambda: kb.invoke({"query": "vpn"}))
    message = tickets.invoke(call)
    print(f"alice -> read_ticket: {message.content}; artifact {message.artifact}")
with acting_as(bob):
    attempt("bob -> read_ticket", lambda: tickets.invoke({"ticket_id": "T-7"}))
attempt("anonymous -> search_kb", lambda: kb.invoke({"query": "vpn"}))

# Identity from RunnableConfig: only with the option, only a Principal.
from_config = guard_tool(guard, read_ticket, principal_from_config=True)
as_alice = {"configurable": {"principal": alice}}
attempt(
    "config alice -> read_ticket",
    lambda: from_config.invoke({"ticket_id": "T-8"}, as_alice),
)
attempt(
    "config 'alice' (a string) -> read_ticket",
    lambda: from_config.invoke(
        {"ticket_id": "T-8"}, {"configurable": {"principal": "alice"}}
    ),
)
try:
    tickets.invoke({"ticket_id": "T-8"}, as_alice)
except PolicyError:
    print("config principal without principal_from_config: refused (PolicyError)")


class HashEmbeddings(Embeddings):
    """Embeddings that need no model download (for the example only)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        vec = [0.0] * 16
        for word in text.lower().split():
            digest = hashlib.sha256(word.encode()).digest()
            vec[digest[0] % 16] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]


store = InMemoryVectorStore(HashEmbeddings())
store.add_texts(
    ["vpn setup guide", "vpn outage report", "vpn salary of the vpn team"],
    metadatas=[
        {"classification": "public"},
        {"classification": "internal"},
        {"classification": "confidential"},
    ],
)
retriever = SecureRetriever(guard=guard, vectorstore=store, k=3)
with acting_as(alice):
    docs = retriever.invoke("vpn", k=1)
    print(f"retriever k=1: {len(docs)} document")
    docs = retriever.invoke("vpn")
    labels = sorted(d.metadata["classification"] for d in docs)
    print(f"retriever for alice: {labels}")
try:
    retriever.vectorstore  # noqa: B018 - showing that the store is not handed out
except AttributeError:
    print("retriever.vectorstore: not exposed")
