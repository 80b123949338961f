from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore

from aiinvariants import Guard, PolicyError, Principal, acting_as
from aiinvariants._classification import decide
from aiinvariants._retrieval import secure_retriever
from aiinvariants.audit import capture
from aiinvariants.integrations.langchain import (
    SecureRetriever,
    guard_retriever,
    store_filter,
)
from langchain_support import HashEmbeddings
from retrieval_support import ALICE, BOB, EVE, POLICY, PUBLIC_POLICY, READER, corpus

QUERY = "salary finance forecast"


def in_memory(
    items: list[tuple[str, dict[str, Any]]] | None = None,
) -> InMemoryVectorStore:
    store = InMemoryVectorStore(HashEmbeddings())
    items = corpus() if items is None else items
    store.add_texts([t for t, _ in items], metadatas=[m for _, m in items])
    return store


def chroma(items: list[tuple[str, dict[str, Any]]] | None = None) -> Any:
    import chromadb
    from langchain_chroma import Chroma

    store = Chroma(
        collection_name=f"t{uuid.uuid4().hex}",
        embedding_function=HashEmbeddings(),
        client=chromadb.EphemeralClient(),
    )
    items = corpus() if items is None else items
    store.add_texts([t for t, _ in items], metadatas=[m or {"x": 1} for _, m in items])
    return store


def allowed_texts(who: Principal) -> set[str]:
    return {t for t, m in corpus() if decide(who, m, policy=POLICY).allowed}


@pytest.fixture(params=["in_memory", "chroma"])
def store(request: pytest.FixtureRequest) -> Any:
    return in_memory() if request.param == "in_memory" else chroma()


@pytest.mark.parametrize("who", [READER, ALICE, BOB, EVE], ids=lambda p: p.subject)
def test_only_allowed_documents_come_back(store: Any, who: Principal) -> None:
    guard = Guard(POLICY)
    retriever = guard_retriever(guard, store, k=20)
    assert isinstance(retriever, BaseRetriever)
    with capture() as events, acting_as(who):
        docs = retriever.invoke(QUERY)
    assert {d.page_content for d in docs} == allowed_texts(who)
    (event,) = events
    assert event.details["pushdown"] is True
    assert event.subject == who.subject
    assert event.invariant == ("I1" if who.authenticated else "I2")
    assert QUERY not in repr(event.to_dict())
    assert not any(d.page_content in repr(event.to_dict()) for d in docs)


def test_pushdown_translators(store: Any) -> None:
    translator = store_filter(store)
    assert translator is not None
    kwargs = translator(("public", "internal"))
    if isinstance(store, InMemoryVectorStore):
        keep = kwargs["filter"]
        assert keep(Document(page_content="x", metadata={"classification": "public"}))
        assert not keep(Document(page_content="x", metadata={}))
    else:
        assert kwargs == {"filter": {"classification": {"$in": ["public", "internal"]}}}


def test_top_k_is_full_with_pushdown_and_post_filter(store: Any) -> None:
    guard = Guard(POLICY)
    retriever = guard_retriever(guard, store, k=2)
    with acting_as(ALICE):
        assert len(retriever.invoke(QUERY)) == 2
        assert retriever.search.last_report is not None
        # the globex document passes the label filter but not the tenant
        # check: a second, larger round refills top-k.
        assert 1 <= retriever.search.last_report.rounds <= 2


def test_async_and_lcel_chain(store: Any) -> None:
    guard = Guard(POLICY)
    retriever = guard_retriever(guard, store, k=10)
    chain = retriever | RunnableLambda(
        lambda docs: sorted(d.page_content for d in docs)
    )

    async def ask() -> list[str]:
        async with acting_as(BOB):
            return await chain.ainvoke(QUERY)

    assert set(asyncio.run(ask())) == allowed_texts(BOB)
    with acting_as(READER):
        assert set(chain.invoke(QUERY)) == allowed_texts(READER)
    with acting_as(ALICE):
        batch = chain.batch([QUERY, "holiday"])
    assert all(set(answer) <= allowed_texts(ALICE) for answer in batch)


class IgnoresFilter(InMemoryVectorStore):
    """A store that silently ignores the filter it is given."""

    def similarity_search(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return super().similarity_search(query, k=k)


def test_a_store_that_ignores_the_filter_is_post_filtered() -> None:
    store = IgnoresFilter(HashEmbeddings())
    items = corpus()
    store.add_texts([t for t, _ in items], metadatas=[m for _, m in items])
    retriever = guard_retriever(Guard(POLICY), store, k=20)
    with capture() as events, acting_as(READER):
        docs = retriever.invoke(QUERY)
    assert {d.page_content for d in docs} == allowed_texts(READER)
    assert events[0].details["post_filter_only"] == "store_not_expressible"
    assert events[0].details["dropped_unlabelled"] == 2


def test_an_unsupported_chroma_key_is_still_rechecked() -> None:
    # A tenant/ACL key is never pushed down; the post-filter enforces it.
    retriever = guard_retriever(Guard(POLICY), chroma(), k=20)
    with acting_as(EVE):
        docs = retriever.invoke(QUERY)
    assert all(d.metadata.get("tenant") in (None, "globex") for d in docs)
    assert "acme finance forecast confidential salary" not in {
        d.page_content for d in docs
    }


def test_documents_without_id_each_get_their_own_decision() -> None:
    items = [
        ("a restricted", {"classification": "restricted"}),
        ("b restricted", {"classification": "restricted"}),
        ("c public", {"classification": "public"}),
    ]
    store = InMemoryVectorStore(HashEmbeddings())
    store.add_documents([Document(page_content=t, metadata=m) for t, m in items])

    class NoIds(BaseRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: Any
        ) -> list[Document]:
            return [Document(page_content=t, metadata=m) for t, m in items]

    for inner in (store, NoIds()):
        retriever = guard_retriever(Guard(POLICY), inner, k=3)
        with acting_as(READER):
            assert [d.page_content for d in retriever.invoke("x")] == ["c public"]


def test_opaque_retriever_is_post_filtered_once() -> None:
    class Fixed(BaseRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: Any
        ) -> list[Document]:
            return [Document(page_content=t, metadata=m) for t, m in corpus()]

    retriever = guard_retriever(Guard(POLICY), Fixed(), k=3)
    with capture() as events, acting_as(READER):
        docs = retriever.invoke("x")
    assert len(docs) == 3
    assert events[0].details["post_filter_only"] == "opaque_retriever"
    with acting_as(READER):
        assert len(asyncio.run(retriever.ainvoke("x"))) == 3


def test_vector_store_retriever_and_dispatch() -> None:
    guard = Guard(POLICY)
    wrapped = secure_retriever(guard, in_memory().as_retriever(search_kwargs={"k": 3}))
    assert isinstance(wrapped, SecureRetriever)
    assert wrapped.search.k == 3
    with pytest.raises(PolicyError, match="search_kwargs"):
        guard_retriever(guard, in_memory().as_retriever(search_kwargs={"filter": 1}))
    with pytest.raises(PolicyError, match="search_type"):
        guard_retriever(guard, in_memory().as_retriever(search_type="mmr"))
    with pytest.raises(PolicyError, match="cannot wrap"):
        secure_retriever(guard, object())


def test_public_app_refuses_undeclared_data_at_construction() -> None:
    guard = Guard(PUBLIC_POLICY)
    with pytest.raises(PolicyError, match="public"):
        guard_retriever(guard, in_memory())
    with pytest.raises(PolicyError):
        guard_retriever(guard, in_memory(), data="confidential")
    guard_retriever(guard, in_memory(), data="public")
    guard_retriever(
        guard, in_memory(), data="confidential", requires_authentication=True
    )


def test_cache_is_per_authorization() -> None:
    retriever = guard_retriever(Guard(POLICY), in_memory(), k=20, cache_size=4)
    with acting_as(ALICE):
        first = retriever.invoke(QUERY)
    with acting_as(READER):
        anon = retriever.invoke(QUERY)
    assert {d.page_content for d in anon} == allowed_texts(READER)
    with acting_as(ALICE):
        assert retriever.invoke(QUERY) == first


LABEL = st.sampled_from([*POLICY.classifications, "secret", None])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(LABEL, st.sampled_from([None, "acme"])), max_size=25),
    st.sampled_from([READER, ALICE, BOB, EVE]),
    st.integers(1, 6),
)
def test_property_in_memory_store(
    labels: list[tuple[str | None, str | None]], who: Principal, k: int
) -> None:
    items = []
    for i, (label, tenant) in enumerate(labels):
        meta: dict[str, Any] = {}
        if label is not None:
            meta["classification"] = label
        if tenant is not None:
            meta["tenant"] = tenant
        items.append((f"doc {i} salary", meta))
    retriever = guard_retriever(Guard(POLICY), in_memory(items), k=k, max_rounds=8)
    with acting_as(who):
        docs = retriever.invoke("salary")
    allowed = [m for _, m in items if decide(who, m, policy=POLICY).allowed]
    assert all(decide(who, d.metadata, policy=POLICY).allowed for d in docs)
    assert len(docs) == min(k, len(allowed))
    if not who.authenticated:
        assert all(d.metadata["classification"] == "public" for d in docs)


def test_usable_as_an_agent_tool() -> None:
    from langchain_core.tools import create_retriever_tool

    retriever = guard_retriever(Guard(POLICY), in_memory(), k=20)
    tool = create_retriever_tool(retriever, "search_kb", "Search the knowledge base")
    with acting_as(READER):
        out = tool.invoke({"query": QUERY})
    assert "salary bands" not in out
    assert "office opening hours public" in out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(LABEL, st.sampled_from([None, "acme"])), max_size=25),
    st.sampled_from([READER, ALICE, BOB, EVE]),
    st.integers(1, 6),
    st.sets(st.integers(0, 24)),
)
def test_property_per_call_k_and_caller_filter(
    labels: list[tuple[str | None, str | None]],
    who: Principal,
    k: int,
    wanted: set[int],
) -> None:
    """invoke(q, k=k, filter=f): only allowed documents, only those f keeps,
    and as many as min(k, allowed and kept) - the caller narrows, never widens."""
    items = []
    for i, (label, tenant) in enumerate(labels):
        meta: dict[str, Any] = {"n": i}
        if label is not None:
            meta["classification"] = label
        if tenant is not None:
            meta["tenant"] = tenant
        items.append((f"doc {i} salary", meta))
    retriever = guard_retriever(Guard(POLICY), in_memory(items), k=3, max_rounds=8)

    def keep(doc: Document) -> bool:
        return doc.metadata.get("n") in wanted

    with acting_as(who):
        docs = retriever.invoke("salary", k=k, filter=keep)
    allowed = [
        m
        for _, m in items
        if decide(who, m, policy=POLICY).allowed and m["n"] in wanted
    ]
    assert all(decide(who, d.metadata, policy=POLICY).allowed for d in docs)
    assert all(d.metadata["n"] in wanted for d in docs)
    assert len(docs) == min(k, len(allowed))


def test_guard_retriever_method_takes_principal_from_config() -> None:
    retriever = Guard(POLICY).retriever(in_memory(), k=20, principal_from_config=True)
    docs = retriever.invoke(QUERY, {"configurable": {"principal": ALICE}})
    assert {d.page_content for d in docs} == allowed_texts(ALICE)
