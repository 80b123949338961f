"""What the caller finally receives is filtered, after the framework's expansions.

LlamaIndex's ``BaseRetriever.retrieve`` resolves ``IndexNode.obj`` (a node, a
retriever, a query engine - recursively) *after* ``_retrieve`` returned, so a
filter inside ``_retrieve`` let a restricted node reached through a public
index node come back to a caller who may not read it. The same holds for a
``RecursiveRetriever`` wrapped as an opaque retriever and for async
retrieval. These tests use the real llama-index-core recursive retrieval.

Also here: a document whose ``tenant`` is null (or empty) is nobody's, not
every tenant's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.retrievers import BaseRetriever, RecursiveRetriever
from llama_index.core.schema import IndexNode, NodeWithScore, QueryBundle, TextNode

from aiinvariants import Guard, Principal, acting_as
from aiinvariants._classification import decide
from aiinvariants.audit import MemorySink
from retrieval_support import ALICE, BOB, EVE, POLICY, READER, embed

SECRET = "merger plans restricted board"


class Embedding(BaseEmbedding):
    def _get_text_embedding(self, text: str) -> list[float]:
        return embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return embed(query)


def _restricted_index() -> VectorStoreIndex:
    node = TextNode(text=SECRET, metadata={"classification": "restricted"})
    return VectorStoreIndex([node], embed_model=Embedding())


def _index_with_pointer(obj: Any) -> VectorStoreIndex:
    pointer = IndexNode(
        text="board documents merger plans",
        index_id="board",
        obj=obj,
        metadata={"classification": "public"},
    )
    plain = TextNode(text="opening hours", metadata={"classification": "public"})
    if isinstance(obj, TextNode):  # a node can be stored with its pointer
        return VectorStoreIndex([pointer, plain], embed_model=Embedding())
    # Retrievers go to the index's object map, resolved at retrieval time.
    return VectorStoreIndex([plain], objects=[pointer], embed_model=Embedding())


def _texts(nodes: list[NodeWithScore]) -> set[str]:
    return {n.node.get_content() for n in nodes}


POINTERS = {
    "retriever": lambda: _restricted_index().as_retriever(similarity_top_k=5),
    "node": lambda: TextNode(text=SECRET, metadata={"classification": "restricted"}),
    "unlabelled_node": lambda: TextNode(text=SECRET, metadata={}),
    "nested_pointer": lambda: _index_with_pointer(
        _restricted_index().as_retriever(similarity_top_k=5)
    ).as_retriever(similarity_top_k=5),
}


@pytest.mark.parametrize("pointer", sorted(POINTERS))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_index_node_expansion_is_filtered(pointer: str, mode: str) -> None:
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    retriever = guard.retriever(_index_with_pointer(POINTERS[pointer]()), k=5)
    with acting_as(READER):
        if mode == "sync":
            got = retriever.retrieve("merger plans board")
        else:
            got = asyncio.run(retriever.aretrieve("merger plans board"))
    assert SECRET not in _texts(got)
    assert all(decide(READER, n.node.metadata, policy=POLICY).allowed for n in got)
    assert SECRET not in repr([e.to_dict() for e in memory.events])


class Passthrough(BaseRetriever):
    """An inner retriever that hands back index nodes unexpanded (a cache, a
    router or a remote retriever does this): the expansion then happens in
    the secure retriever's own ``retrieve``, after its search."""

    def __init__(self, nodes: list[NodeWithScore]) -> None:
        super().__init__()
        self._nodes = nodes

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return list(self._nodes)

    def _handle_recursive_retrieval(
        self, query_bundle: QueryBundle, nodes: list[NodeWithScore]
    ) -> list[NodeWithScore]:
        return nodes

    async def _ahandle_recursive_retrieval(
        self, query_bundle: QueryBundle, nodes: list[NodeWithScore]
    ) -> list[NodeWithScore]:
        return nodes


@pytest.mark.parametrize("pointer", sorted(POINTERS))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_expansion_in_the_secure_retrievers_own_retrieve_is_filtered(
    pointer: str, mode: str
) -> None:
    node = IndexNode(
        text="board documents",
        index_id="board",
        obj=POINTERS[pointer](),
        metadata={"classification": "public"},
    )
    memory = MemorySink()
    retriever = Guard(POLICY, sinks=[memory]).retriever(
        Passthrough([NodeWithScore(node=node, score=1.0)]), k=5
    )
    with acting_as(READER):
        if mode == "sync":
            got = retriever.retrieve("merger plans board")
        else:
            got = asyncio.run(retriever.aretrieve("merger plans board"))
    assert SECRET not in _texts(got)
    assert "expansion_filtered" in [e.reason for e in memory.events]


def test_index_node_expansion_still_serves_who_may_read_it() -> None:
    cleared = Principal(subject="ceo", authenticated=True, clearance="restricted")
    guard = Guard(POLICY)
    retriever = guard.retriever(_index_with_pointer(POINTERS["retriever"]()), k=5)
    with acting_as(cleared):
        assert SECRET in _texts(retriever.retrieve("merger plans board"))


def test_recursive_retriever_wrapped_as_opaque_is_filtered() -> None:
    pointer = IndexNode(
        text="board documents merger plans",
        index_id="board",
        metadata={"classification": "public"},
    )
    root = VectorStoreIndex([pointer], embed_model=Embedding()).as_retriever()
    recursive = RecursiveRetriever(
        "root",
        retriever_dict={
            "root": root,
            "board": _restricted_index().as_retriever(similarity_top_k=5),
        },
    )
    retriever = Guard(POLICY).retriever(recursive, k=5)
    with acting_as(BOB):
        got = retriever.retrieve("merger plans board")
    assert SECRET not in _texts(got)


def test_postprocessor_sees_what_the_query_engine_expanded() -> None:
    from llama_index.core.llms import MockLLM

    from aiinvariants.integrations.llamaindex import SecureNodePostprocessor

    guard = Guard(POLICY)
    index = _index_with_pointer(POINTERS["retriever"]())
    engine = index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=5,
        node_postprocessors=[SecureNodePostprocessor.from_guard(guard)],
    )
    with acting_as(READER):
        answer = engine.query("merger plans board")
    assert SECRET not in _texts(answer.source_nodes)


# -- a null tenant is nobody's ------------------------------------------------------


@pytest.mark.parametrize("tenant", [None, "", 0, [], ["acme"]])
@pytest.mark.parametrize("who", [ALICE, BOB, EVE, READER], ids=lambda p: p.subject)
def test_document_with_a_null_or_malformed_tenant_is_read_by_no_tenant(
    tenant: Any, who: Principal
) -> None:
    meta = {"classification": "public", "tenant": tenant}
    decision = decide(who, meta, policy=POLICY)
    assert not decision.allowed
    assert decision.code == "tenant_mismatch"


def test_null_tenant_through_a_real_retriever() -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_support import HashEmbeddings

    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts(
        ["shared forecast", "acme forecast"],
        metadatas=[
            {"classification": "public", "tenant": None},
            {"classification": "public", "tenant": "acme"},
        ],
    )
    retriever = Guard(POLICY).retriever(store, k=5)
    with acting_as(EVE):  # globex
        assert retriever.invoke("forecast") == []
    with acting_as(ALICE):  # acme
        assert [d.page_content for d in retriever.invoke("forecast")] == [
            "acme forecast"
        ]


@pytest.mark.parametrize("tenant", [None, ""])
def test_null_tenant_through_the_cedar_authorizer(tenant: Any) -> None:
    from aiinvariants.integrations.cedar import CedarAuthorizer

    rule = """permit(principal, action, resource)
    when { resource.classification_rank <= principal.clearance &&
           (resource.tenant == "" || resource.tenant == principal.tenant) };"""
    authorizer = CedarAuthorizer(rule, policy=POLICY)
    metas = [
        {"classification": "public", "tenant": tenant},
        {"classification": "public"},
    ]
    for who in (ALICE, EVE, READER):
        first, second = authorizer.authorize_many(who, metas)
        assert not first.allowed
        assert second.allowed
