"""Secure retrieval (issue #4): post-filter cost, and push-down vs post-filter.

1. The cost of the post-filter per document: ``LabelAuthorizer.authorize_many``
   over a batch of labelled metadata, per document.
2. A 10,000-chunk corpus where 10% is visible to the user (public clearance, 10%
   public), k=10: store round-trips and time per query, with push-down (the
   store filters on ``classification``) and without (post-filter only), side
   by side, for langchain-core's ``InMemoryVectorStore``, Chroma (embedded, via
   langchain-chroma) and Qdrant local mode.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants._classification import LabelAuthorizer

from ._harness import compare, print_table

DIM = 32
N = 10_000
K = 10
WORDS = [f"w{i}" for i in range(500)]


def _embed(text: str) -> list[float]:
    vec = [0.0] * DIM
    for word in text.split():
        digest = hashlib.sha256(word.encode()).digest()
        vec[digest[0] % DIM] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _corpus() -> list[tuple[str, dict[str, Any]]]:
    items = []
    for i in range(N):
        text = " ".join(WORDS[(i * p) % len(WORDS)] for p in (1, 7, 13, 29))
        label = "public" if i % 10 == 0 else "restricted"
        items.append((text, {"classification": label, "doc_id": str(i)}))
    return items


def _post_filter_cost() -> None:
    authorizer = LabelAuthorizer(Policy())
    bob = Principal(subject="bob", authenticated=True, tenant="acme")
    batch: list[dict[str, Any] | None] = [
        {"classification": "public", "tenant": "acme", "allowed_users": ["bob"]},
        {"classification": "internal"},
        {"classification": "restricted"},
        {},
    ] * 250
    results = compare(
        {
            "1000-doc batch, no check": lambda: list(batch),
            "1000-doc batch, authorize_many": lambda: authorizer.authorize_many(
                bob, batch
            ),
        },
        baseline="1000-doc batch, no check",
        number=20,
        repeat=9,
    )
    print_table("post-filter cost (LabelAuthorizer.authorize_many)", results)
    per_doc = (results[1].per_call_ns - results[0].per_call_ns) / len(batch)
    print(f"  post-filter cost per document: {per_doc:.0f} ns")


def _time(fn: Callable[[], object], repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


def _langchain_cases(guard: Guard, items: list[tuple[str, dict[str, Any]]]) -> Any:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    from aiinvariants.integrations.langchain import guard_retriever

    class Hash(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [_embed(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return _embed(text)

    class Unknown(InMemoryVectorStore):
        """Same store, but not a class whose filter language we trust."""

    def build(cls: type[InMemoryVectorStore]) -> InMemoryVectorStore:
        store = cls(Hash())
        store.add_texts([t for t, _ in items], metadatas=[m for _, m in items])
        return store

    cases = {
        "InMemoryVectorStore, push-down": guard_retriever(
            guard, build(InMemoryVectorStore), k=K
        ),
        "InMemoryVectorStore, post-filter only": guard_retriever(
            guard, build(Unknown), k=K
        ),
    }
    try:
        import chromadb
        from langchain_chroma import Chroma
    except ImportError:
        return cases

    class UnknownChroma(Chroma):
        """Same store, but not a class whose filter language we trust."""

    for label, cls in (("push-down", Chroma), ("post-filter only", UnknownChroma)):
        chroma = cls(
            collection_name=f"bench-{label.split()[0]}",
            embedding_function=Hash(),
            client=chromadb.EphemeralClient(),
        )
        for start in range(0, len(items), 2_000):
            part = items[start : start + 2_000]
            chroma.add_texts([t for t, _ in part], metadatas=[m for _, m in part])
        cases[f"Chroma (embedded), {label}"] = guard_retriever(guard, chroma, k=K)
    return cases


def _qdrant_cases(guard: Guard, items: list[tuple[str, dict[str, Any]]]) -> Any:
    from qdrant_client import QdrantClient, models

    from aiinvariants.integrations.qdrant import guard_qdrant

    client = QdrantClient(":memory:")
    client.create_collection(
        "kb",
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
    )
    client.upsert(
        "kb",
        points=[
            models.PointStruct(id=i, vector=_embed(t), payload=m)
            for i, (t, m) in enumerate(items)
        ],
    )

    class NoFilter:
        """An authorizer without push-down: the label rule, post-filter only."""

        def __init__(self) -> None:
            self.inner = LabelAuthorizer(guard.policy)

        def authorize_many(self, principal: Principal, metas: Any) -> Any:
            return self.inner.authorize_many(principal, metas)

    return {
        "Qdrant local, push-down": guard_qdrant(guard, client, "kb", embed=_embed, k=K),
        "Qdrant local, post-filter only": guard_qdrant(
            guard, client, "kb", embed=_embed, k=K, authorizer=NoFilter()
        ),
    }


def _pushdown_vs_post_filter() -> None:
    guard = Guard()
    items = _corpus()
    cases: dict[str, Any] = {}
    for make in (_langchain_cases, _qdrant_cases):
        try:
            cases.update(make(guard, items))
        except ImportError as exc:  # the framework is an optional extra
            print(f"  (skipped: {exc})")
    query = "w3 w21 w39 w87"
    print(f"\n{N:,}-chunk corpus, 10% visible (public-cleared user), k={K}")
    print(f"  {'case':40}  {'round-trips':>11}  {'fetched':>8}  {'ms/query':>9}  got")
    # Guard() is internal: anonymous callers are refused; a signed-in user
    # the policy clears for public data sees what an anonymous one used to.
    with acting_as(Principal(subject="pat", authenticated=True)):
        for name, retriever in cases.items():
            ms = _time(lambda r=retriever: r.invoke(query))
            docs = retriever.invoke(query)
            report = retriever.search.last_report
            print(
                f"  {name:40}  {report.rounds:>11}  {report.fetched:>8}  "
                f"{ms:>9.2f}  {len(docs)}"
            )
    guard.close()


def run() -> None:
    _post_filter_cost()
    _pushdown_vs_post_filter()


if __name__ == "__main__":
    run()
