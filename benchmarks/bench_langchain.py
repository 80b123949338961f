"""Overhead of the LangChain and LangGraph guards (issue #14).

Side by side, in one run: a LangChain tool invoked as it is and guarded
(``guard_tool``: principal, decision, ceiling, output pipeline), and a
vector store's own retriever against the secure retriever at the same ``k``.
Run alone: ``python -m benchmarks.bench_langchain``.
"""

from __future__ import annotations

import hashlib
import math

from aiinvariants import Guard, Policy, Principal, acting_as

from ._harness import compare, print_table


def _embed(text: str) -> list[float]:
    vec = [0.0] * 32
    for word in text.lower().split():
        digest = hashlib.sha256(word.encode()).digest()
        vec[digest[0] % 32] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _tools(guard: Guard, alice: Principal) -> None:
    from langchain_core.tools import tool

    from aiinvariants.integrations.langchain_tools import guard_tool

    @tool
    def read_ticket(ticket_id: int) -> str:
        """Read a ticket."""
        return f"ticket {ticket_id}: printer on floor 3 is jammed"

    guarded = guard_tool(guard, read_ticket, scopes=["tickets:read"], data="internal")
    args = {"ticket_id": 7}
    call = {"name": "read_ticket", "args": args, "id": "1", "type": "tool_call"}
    with acting_as(alice):
        results = compare(
            {
                "tool.invoke (unguarded)": lambda: read_ticket.invoke(args),
                "guard_tool(...).invoke": lambda: guarded.invoke(args),
                "tool.invoke(ToolCall) (unguarded)": lambda: read_ticket.invoke(call),
                "guard_tool(...).invoke(ToolCall)": lambda: guarded.invoke(call),
            },
            baseline="tool.invoke (unguarded)",
            number=300,
            repeat=7,
        )
    print_table("LangChain tool call, in process (allowed call)", results)


def _retriever(guard: Guard, alice: Principal) -> None:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    from aiinvariants.integrations.langchain import SecureRetriever

    class Hashing(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [_embed(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return _embed(text)

    store = InMemoryVectorStore(Hashing())
    labels = ["public", "internal", "confidential", "restricted"]
    store.add_texts(
        [f"document {i} about printers and tickets" for i in range(400)],
        metadatas=[{"classification": labels[i % 4]} for i in range(400)],
    )
    plain = store.as_retriever(search_kwargs={"k": 4})
    secure = SecureRetriever(guard=guard, vectorstore=store, k=4)
    with acting_as(alice):
        results = compare(
            {
                "store.as_retriever(k=4).invoke": lambda: plain.invoke("printer"),
                "SecureRetriever(k=4).invoke": lambda: secure.invoke("printer"),
                "SecureRetriever.invoke(q, k=1)": lambda: secure.invoke("printer", k=1),
            },
            baseline="store.as_retriever(k=4).invoke",
            number=30,
            repeat=5,
        )
    print_table("LangChain retriever over 400 documents (allowed call)", results)


def run() -> None:
    policy = Policy.from_dict({"clearance": {"scopes": {"tickets:read": "internal"}}})
    guard = Guard(policy)
    alice = Principal(
        subject="alice", authenticated=True, scopes=frozenset({"tickets:read"})
    )
    _tools(guard, alice)
    _retriever(guard, alice)


if __name__ == "__main__":
    run()
