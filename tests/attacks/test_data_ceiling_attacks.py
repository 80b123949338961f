"""A declared data level is a ceiling (I1, I2).

``data="public"`` is what lets a source pass the public-app check; before, a
cleared user still received the confidential documents the source held. A
source declared at a level now never returns anything above it, to anyone,
through any framework; what it held above its level is dropped and recorded
as ``mislabelled_source``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants._retrieval import SecureSearch
from aiinvariants.audit import MemorySink
from retrieval_support import ALICE, POLICY, corpus, embed

CLEARED = Principal(subject="ceo", authenticated=True, clearance="restricted")
RANK = {label: i for i, label in enumerate(POLICY.classifications)}


def _labels(docs: list[Any], metadata: Callable[[Any], dict[str, Any]]) -> set[str]:
    return {metadata(d).get("classification") for d in docs}


def _langchain(guard: Guard, data: str) -> Callable[[], set[str]]:
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_support import HashEmbeddings

    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts([t for t, _ in corpus()], metadatas=[m for _, m in corpus()])
    retriever = guard.retriever(store, k=20, data=data)
    return lambda: _labels(retriever.invoke("salary finance"), lambda d: d.metadata)


def _langchain_async(guard: Guard, data: str) -> Callable[[], set[str]]:
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_support import HashEmbeddings

    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts([t for t, _ in corpus()], metadatas=[m for _, m in corpus()])
    retriever = guard.retriever(store, k=20, data=data)

    async def run() -> set[str]:
        async with acting_as(CLEARED):
            docs = await retriever.ainvoke("salary finance")
        return _labels(docs, lambda d: d.metadata)

    return lambda: asyncio.run(run())


def _llama(guard: Guard, data: str) -> Callable[[], set[str]]:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.base.embeddings.base import BaseEmbedding

    class Embedding(BaseEmbedding):
        def _get_text_embedding(self, text: str) -> list[float]:
            return embed(text)

        def _get_query_embedding(self, query: str) -> list[float]:
            return embed(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return embed(query)

    docs = [Document(text=t, metadata=m) for t, m in corpus()]
    index = VectorStoreIndex.from_documents(docs, embed_model=Embedding())
    retriever = guard.retriever(index, k=20, data=data)
    return lambda: _labels(
        retriever.retrieve("salary finance"), lambda n: n.node.metadata
    )


def _llama_postprocessor(guard: Guard, data: str) -> Callable[[], set[str]]:
    from llama_index.core.schema import NodeWithScore, TextNode

    from aiinvariants.integrations.llamaindex import SecureNodePostprocessor

    processor = SecureNodePostprocessor.from_guard(guard, data=data)
    nodes = [NodeWithScore(node=TextNode(text=t, metadata=m)) for t, m in corpus()]
    return lambda: _labels(
        processor.postprocess_nodes(list(nodes)), lambda n: n.node.metadata
    )


def _qdrant(guard: Guard, data: str) -> Callable[[], set[str]]:
    from qdrant_client import QdrantClient, models

    from aiinvariants.integrations.qdrant import guard_qdrant

    client = QdrantClient(":memory:")
    client.create_collection(
        "kb",
        vectors_config=models.VectorParams(size=32, distance=models.Distance.COSINE),
    )
    client.upsert(
        "kb",
        [
            models.PointStruct(id=i, vector=embed(t), payload={"text": t, **m})
            for i, (t, m) in enumerate(corpus())
        ],
    )
    search = guard_qdrant(guard, client, "kb", embed=embed, k=20, data=data)
    return lambda: _labels(search.invoke("salary finance"), lambda p: p.payload or {})


def _core(guard: Guard, data: str) -> Callable[[], set[str]]:
    search = SecureSearch(
        policy=guard.policy,
        audit=guard.audit,
        metadata_of=lambda d: d,
        k=20,
        data=data,
    )
    docs = [m for _, m in corpus()]
    return lambda: _labels(search.search("q", lambda n, labels: docs[:n]), dict)


SOURCES: dict[str, Callable[[Guard, str], Callable[[], set[str]]]] = {
    "core": _core,
    "langchain": _langchain,
    "langchain_async": _langchain_async,
    "llamaindex": _llama,
    "llamaindex_postprocessor": _llama_postprocessor,
    "qdrant": _qdrant,
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_public_source_in_a_public_app_never_returns_more_than_public(
    source: str,
) -> None:
    memory = MemorySink()
    guard = Guard(POLICY.model_copy(update={"exposure": "public"}), sinks=[memory])
    search = SOURCES[source](guard, "public")
    with acting_as(CLEARED):
        labels = search()
    assert labels == {"public"}
    flags = [e for e in memory.events if e.reason == "mislabelled_source"]
    assert len(flags) == 1
    assert flags[0].details["dropped_mislabelled"] >= 1
    assert "salary" not in repr([e.to_dict() for e in memory.events])


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("data", ["internal", "confidential"])
def test_declared_level_caps_a_cleared_user_in_an_internal_app(
    source: str, data: str
) -> None:
    guard = Guard(POLICY)
    search = SOURCES[source](guard, data)
    with acting_as(CLEARED):
        labels = search()
    assert labels
    assert all(RANK[label] <= RANK[data] for label in labels)


def test_ceiling_holds_for_a_user_whose_clearance_is_below_it_too() -> None:
    guard = Guard(POLICY)
    search = _core(guard, "restricted")
    with acting_as(ALICE):  # finance: confidential
        assert "restricted" not in search()


def test_an_unknown_ceiling_label_is_refused_when_the_source_is_built() -> None:
    from aiinvariants import PolicyError

    with pytest.raises(PolicyError):
        SecureSearch(
            policy=Policy(),
            audit=Guard().audit,
            metadata_of=lambda d: d,
            data="Public",
        )


# -- documents nobody can read are reported, not silently dropped -----------------


@pytest.mark.parametrize("pushdown_store", [True, False])
def test_missing_misspelled_or_miscased_labels_warn_and_are_counted(
    pushdown_store: bool,
) -> None:
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    from aiinvariants._retrieval import UnlabelledDataWarning
    from langchain_support import HashEmbeddings

    texts = ["handbook one", "handbook two", "handbook three", "handbook four"]
    metas: list[dict[str, Any]] = [
        {"clasification": "public"},  # misspelled key
        {"classification": "Public"},  # another case
        {},  # missing
        {"classification": "public"},
    ]
    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts(texts, metadatas=metas)
    inner: Any = store if pushdown_store else store.as_retriever(search_kwargs={"k": 4})
    assert pushdown_store or isinstance(inner, BaseRetriever)
    memory = MemorySink()
    retriever = Guard(POLICY, sinks=[memory]).retriever(inner, k=4)
    with acting_as(ALICE), pytest.warns(UnlabelledDataWarning, match="3 document"):
        docs = retriever.invoke("handbook")
    assert [d.page_content for d in docs] == ["handbook four"]
    (event,) = [e for e in memory.events if e.reason == "retrieval"]
    # Counted before the store-side filter (a probe) or after it (post-filter).
    counted = max(
        event.details["dropped_unlabelled"], event.details["unlabelled_before_filter"]
    )
    assert counted == 3


# -- a tool's declared level caps what it returns ----------------------------------


def _documents(label: str) -> dict[str, Callable[[], Any]]:
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    meta = {"classification": label}
    return {
        "dict": lambda: dict(meta, text="x"),
        "dict_with_metadata": lambda: {"text": "x", "metadata": meta},
        "list_of_dicts": lambda: [{"classification": "public"}, dict(meta)],
        "langchain_documents": lambda: [Document("x", metadata=meta)],
        "llamaindex_nodes": lambda: [
            NodeWithScore(node=TextNode(text="x", metadata=meta), score=1.0)
        ],
        "tuple_of_nodes": lambda: (TextNode(text="x", metadata=meta),),
    }


@pytest.mark.parametrize("shape", sorted(_documents("public")))
@pytest.mark.parametrize("label", ["confidential", "restricted", "Public", "secret"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_public_tool_never_returns_more_than_public(
    shape: str, label: str, mode: str
) -> None:
    from aiinvariants import AccessDenied

    memory = MemorySink()
    guard = Guard(POLICY.model_copy(update={"exposure": "public"}), sinks=[memory])
    produce = _documents(label)[shape]
    if mode == "sync":
        tool: Callable[[], Any] = guard.tool(name="kb", data="public")(produce)
    else:

        async def aproduce() -> Any:
            return produce()

        atool = guard.tool(name="kb", data="public")(aproduce)

        def tool() -> Any:
            return asyncio.run(atool())

    for who in (Principal(subject="anonymous"), CLEARED):
        with acting_as(who), pytest.raises(AccessDenied) as info:
            tool()
        assert info.value.code == "mislabelled_source"
        assert memory.events[-1].reason == "mislabelled_source"


def test_public_tool_returning_public_data_is_served() -> None:
    guard = Guard(POLICY.model_copy(update={"exposure": "public"}))
    tool = guard.tool(name="kb", data="public")(
        lambda: [{"classification": "public", "text": "hours"}]
    )
    with acting_as(Principal(subject="anonymous")):
        assert tool() == [{"classification": "public", "text": "hours"}]
