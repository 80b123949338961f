from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from aiinvariants import Guard, PolicyError, Principal, acting_as
from aiinvariants._classification import decide
from aiinvariants._retrieval import secure_retriever
from aiinvariants.audit import capture
from aiinvariants.integrations.llamaindex import (
    SecureLlamaRetriever,
    SecureNodePostprocessor,
    guard_retriever,
    metadata_filters,
)
from retrieval_support import (
    ALICE,
    BOB,
    EVE,
    POLICY,
    PUBLIC_POLICY,
    READER,
    corpus,
    embed,
)

QUERY = "salary finance forecast"


class HashEmbedding(BaseEmbedding):
    def _get_text_embedding(self, text: str) -> list[float]:
        return embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return embed(query)


def index(items: list[tuple[str, dict[str, Any]]] | None = None) -> VectorStoreIndex:
    items = corpus() if items is None else items
    docs = [Document(text=t, metadata=m) for t, m in items]
    return VectorStoreIndex.from_documents(docs, embed_model=HashEmbedding())


def allowed_texts(who: Principal) -> set[str]:
    return {t for t, m in corpus() if decide(who, m, policy=POLICY).allowed}


@pytest.mark.parametrize("who", [READER, ALICE, BOB, EVE], ids=lambda p: p.subject)
def test_vector_store_index_with_pushdown(who: Principal) -> None:
    retriever = guard_retriever(Guard(POLICY), index(), k=20)
    assert isinstance(retriever, BaseRetriever)
    with capture() as events, acting_as(who):
        nodes = retriever.retrieve(QUERY)
    assert {n.node.get_content() for n in nodes} == allowed_texts(who)
    assert events[0].details["pushdown"] is True


def test_async_and_top_k() -> None:
    retriever = guard_retriever(Guard(POLICY), index(), k=2)

    async def ask() -> list[NodeWithScore]:
        async with acting_as(ALICE):
            return await retriever.aretrieve(QUERY)

    nodes = asyncio.run(ask())
    assert len(nodes) == 2
    assert all(decide(ALICE, n.node.metadata, policy=POLICY).allowed for n in nodes)


def test_opaque_retriever_and_ids() -> None:
    class NoIds(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [
                NodeWithScore(node=TextNode(text=t, metadata=m), score=1.0)
                for t, m in [
                    ("a", {"classification": "restricted"}),
                    ("b", {"classification": "restricted"}),
                    ("c", {"classification": "public"}),
                ]
            ]

    retriever = secure_retriever(Guard(POLICY), NoIds(), k=3)
    assert isinstance(retriever, SecureLlamaRetriever)
    with capture() as events, acting_as(READER):
        assert [n.node.get_content() for n in retriever.retrieve("x")] == ["c"]
    assert events[0].details["post_filter_only"] == "opaque_retriever"


def test_node_postprocessor_in_a_query_engine() -> None:
    processor = SecureNodePostprocessor.from_guard(Guard(POLICY))
    engine = index().as_query_engine(
        llm=MockLLM(), similarity_top_k=20, node_postprocessors=[processor]
    )
    with capture() as events, acting_as(BOB):
        response = engine.query(QUERY)
    assert {n.node.get_content() for n in response.source_nodes} == allowed_texts(BOB)
    assert [e.reason for e in events if e.reason == "retrieval"] == ["retrieval"]
    with pytest.raises(PolicyError):
        SecureNodePostprocessor().postprocess_nodes([], query_str="x")


def test_filters_and_exposure() -> None:
    filters = metadata_filters(["public"])
    assert filters.filters[0].key == "classification"
    with pytest.raises(PolicyError):
        metadata_filters([])
    with pytest.raises(PolicyError):
        guard_retriever(Guard(PUBLIC_POLICY), index())
    with pytest.raises(PolicyError):
        SecureNodePostprocessor.from_guard(Guard(PUBLIC_POLICY))
    guard_retriever(Guard(PUBLIC_POLICY), index(), data="public")
    with pytest.raises(PolicyError, match="cannot wrap"):
        guard_retriever(Guard(POLICY), object())  # type: ignore[arg-type]
