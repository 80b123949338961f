"""A LlamaIndex query engine that answers with each user's own rights (I1, I2).

Run it: ``python examples/llamaindex_rag.py`` (needs the ``llamaindex``
extra). No network and no keys: embeddings are a deterministic hash of the
words, and the answer comes from LlamaIndex's ``MockLLM``.

A ``VectorStoreIndex`` holds a mixed-classification handbook.
``guard.retriever(index)`` returns a LlamaIndex retriever that refuses
anonymous callers (the data is internal), pushes a label filter into the
store query and re-checks every node against the current principal. It plugs
into a ``RetrieverQueryEngine`` like any retriever, so the nodes the LLM sees
are the ones the user may read. A node without a label is never returned
(fail closed). Each retrieval is audited with counts only, never the text.
"""

from __future__ import annotations

import hashlib
import math

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from aiinvariants import (
    ANONYMOUS,
    AuthenticationRequired,
    Guard,
    Policy,
    Principal,
    acting_as,
)
from aiinvariants.audit import MemorySink

HANDBOOK = [
    ("hours", "public", "Opening hours are nine to five on weekdays."),
    ("vpn", "public", "Connect to the VPN before opening the handbook."),
    ("roadmap", "internal", "The roadmap ships the handbook search next quarter."),
    ("salaries", "confidential", "Salary bands for the handbook team, by level."),
    ("draft", None, "An unlabelled draft page about the handbook."),
]


def embed(text: str, dims: int = 64) -> list[float]:
    """A bag-of-words hash embedding: similar wording, similar vectors."""
    vector = [0.0] * dims
    for word in text.lower().split():
        digest = hashlib.blake2b(word.strip(".,").encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "big") % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class HashEmbedding(BaseEmbedding):
    def _get_text_embedding(self, text: str) -> list[float]:
        return embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return embed(query)


def main() -> None:
    documents = [
        Document(
            text=text,
            doc_id=doc_id,
            metadata={"id": doc_id} | ({"classification": label} if label else {}),
        )
        for doc_id, label, text in HANDBOOK
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=HashEmbedding())

    audit = MemorySink()
    policy = Policy.model_validate(
        {
            "app": "handbook-assistant",
            "clearance": {
                "groups": {"employees": "internal", "finance": "confidential"}
            },
        }
    )
    guard = Guard(policy, sinks=[audit])
    # Internal data: the retriever refuses anonymous callers outright.
    retriever = guard.retriever(
        index, k=5, source="handbook", requires_authentication=True
    )
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())

    users = {
        "anonymous": ANONYMOUS,
        "bob (employees)": Principal(
            subject="bob", authenticated=True, groups=["employees"]
        ),
        "alice (finance)": Principal(
            subject="alice", authenticated=True, groups=["finance"]
        ),
    }
    for label, who in users.items():
        with acting_as(who):
            try:
                response = engine.query("what does the handbook say")
            except AuthenticationRequired as denied:
                print(f"{label}: refused ({denied.code})")
                continue
        seen = sorted(node.node.metadata["id"] for node in response.source_nodes)
        print(f"{label}: {seen}")

    for event in audit.events:
        counts = ""
        if event.decision == "allow":
            details = event.details
            counts = (
                f" returned={details['returned']} dropped={details['dropped']} "
                f"pushdown={details['pushdown']}"
            )
        print(
            f"audit: {event.invariant} {event.decision} {event.reason} "
            f"{event.subject}{counts}"
        )


if __name__ == "__main__":
    main()
