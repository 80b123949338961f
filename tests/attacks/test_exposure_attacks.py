"""``exposure: internal`` holds at every enforcement point (I2).

Before, only tools refused an anonymous caller of an internal app: the same
caller reached ``guard.retriever(...)`` (LangChain, LlamaIndex, Qdrant, the
node postprocessor), ``guard.llm(...)`` and ``@use_case``. Each is a route to
the same effect; each must answer ``AuthenticationRequired`` with code
``authentication_required`` and record the denial. The LLM guard decides at
call time for the caller of that call, not for whoever wrapped the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aiinvariants import (
    ANONYMOUS,
    AuthenticationRequired,
    Guard,
    Policy,
    Principal,
    acting_as,
)
from aiinvariants.audit import MemorySink
from retrieval_support import corpus, embed

POLICY = Policy.from_dict(
    {
        "tools": {"search_kb": {"data": "public", "exposure": "public"}},
        "use_cases": {"faq": {"description": "answers FAQs"}},
    }
)
USER = Principal(subject="u", authenticated=True)


def _langchain(guard: Guard) -> Callable[[], Any]:
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_support import HashEmbeddings

    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts([t for t, _ in corpus()], metadatas=[m for _, m in corpus()])
    retriever = guard.retriever(store, k=3, data="public")
    return lambda: retriever.invoke("salary")


def _langchain_async(guard: Guard) -> Callable[[], Any]:
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_support import HashEmbeddings

    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts([t for t, _ in corpus()], metadatas=[m for _, m in corpus()])
    retriever = guard.retriever(store, k=3)
    return lambda: asyncio.run(retriever.ainvoke("salary"))


def _llama_index(guard: Guard) -> Any:
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
    return VectorStoreIndex.from_documents(docs, embed_model=Embedding())


def _llama(guard: Guard) -> Callable[[], Any]:
    retriever = guard.retriever(_llama_index(guard), k=3)
    return lambda: retriever.retrieve("salary")


def _llama_async(guard: Guard) -> Callable[[], Any]:
    retriever = guard.retriever(_llama_index(guard), k=3)
    return lambda: asyncio.run(retriever.aretrieve("salary"))


def _llama_postprocessor(guard: Guard) -> Callable[[], Any]:
    from llama_index.core.schema import NodeWithScore, TextNode

    from aiinvariants.integrations.llamaindex import SecureNodePostprocessor

    processor = SecureNodePostprocessor.from_guard(guard)
    node = NodeWithScore(node=TextNode(text="x", metadata={"classification": "public"}))
    return lambda: processor.postprocess_nodes([node])


def _qdrant(guard: Guard) -> Callable[[], Any]:
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
    search = guard_qdrant(guard, client, "kb", embed=embed, k=3)
    return lambda: search.invoke("salary")


def _llm(guard: Guard) -> Callable[[], Any]:
    llm = guard.llm(lambda prompt, **_: "ok", model="gpt-4.1")
    return lambda: llm("hello")


def _use_case(guard: Guard) -> Callable[[], Any]:
    @guard.use_case("faq")
    def faq() -> str:
        return "ok"

    return faq


def _tool_declared_public(guard: Guard) -> Callable[[], Any]:
    # Declared public in the policy *and* in code: the app is still internal.
    return guard.tool(name="search_kb", data="public", exposure="public")(lambda: "kb")


POINTS: dict[str, Callable[[Guard], Callable[[], Any]]] = {
    "langchain": _langchain,
    "langchain_async": _langchain_async,
    "llamaindex": _llama,
    "llamaindex_async": _llama_async,
    "llamaindex_postprocessor": _llama_postprocessor,
    "qdrant": _qdrant,
    "llm": _llm,
    "use_case": _use_case,
    "tool_declared_public": _tool_declared_public,
}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_anonymous_caller_of_an_internal_app_is_refused(point: str) -> None:
    memory = MemorySink()
    guard = Guard(POLICY, sinks=[memory])
    call = POINTS[point](guard)
    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired) as info:
        call()
    assert info.value.code == "authentication_required"
    assert info.value.invariant == "I2"
    assert memory.events[-1].decision == "deny"
    assert memory.events[-1].reason == "authentication_required"
    with acting_as(USER):
        call()  # the same point serves a signed-in user


def test_llm_guard_decides_for_the_caller_of_each_call() -> None:
    guard = Guard(POLICY)
    with acting_as(USER):
        llm = guard.llm(lambda prompt, **_: "ok", model="gpt-4.1")
    with pytest.raises(AuthenticationRequired):
        llm("wrapped by a user, called anonymously")
    anonymous_wrap = guard.llm(lambda prompt, **_: "ok", model="gpt-4.1")
    with acting_as(USER):
        assert anonymous_wrap("wrapped anonymously, called by a user") == "ok"


def test_public_app_still_serves_anonymous_callers_public_data() -> None:
    guard = Guard(POLICY.model_copy(update={"exposure": "public"}))
    llm = guard.llm(lambda prompt, **_: "ok", model="gpt-4.1")
    tool = guard.tool(name="search_kb", data="public")(lambda: "kb")
    with acting_as(ANONYMOUS):
        assert llm("hi") == "ok"
        assert tool() == "kb"
