"""Attacks on the LangChain secure retriever, by class.

1. Search keywords: a caller's ``k`` and ``filter`` (and other keywords)
   can narrow what comes back, never widen it: the label filter is ANDed,
   every document is re-checked, bad values are refused.
2. Surface: no attribute, dump, copy, pickle or binding hands out the raw
   store; an instance built around the constructor refuses to search.
3. Identity: a principal in ``RunnableConfig`` is used only when enabled and
   exactly a ``Principal``; otherwise refused, never ignored.
"""

from __future__ import annotations

import asyncio
import copy
import pickle
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from aiinvariants import (
    AccessDenied,
    AuthenticationRequired,
    Guard,
    PolicyError,
    Principal,
    acting_as,
)
from aiinvariants._classification import decide
from aiinvariants.integrations.langchain import SecureRetriever, guard_retriever
from langchain_support import HashEmbeddings
from retrieval_support import ALICE, BOB, POLICY, READER, corpus

QUERY = "salary finance forecast roadmap"


def store() -> InMemoryVectorStore:
    s = InMemoryVectorStore(HashEmbeddings())
    items = corpus()
    s.add_texts([t for t, _ in items], metadatas=[m for _, m in items])
    return s


def chroma() -> Any:
    import uuid

    import chromadb
    from langchain_chroma import Chroma

    s = Chroma(
        collection_name=f"t{uuid.uuid4().hex}",
        embedding_function=HashEmbeddings(),
        client=chromadb.EphemeralClient(),
    )
    items = corpus()
    s.add_texts([t for t, _ in items], metadatas=[m or {"x": 1} for _, m in items])
    return s


def allowed(who: Principal, docs: list[Document]) -> bool:
    return all(decide(who, d.metadata, policy=POLICY).allowed for d in docs)


# -- 1. search keywords ---------------------------------------------------------------

WIDENING_FILTERS = {
    "in_memory_everything": (store, lambda doc: True),
    "chroma_every_label": (
        chroma,
        {
            "classification": {
                "$in": ["public", "internal", "confidential", "restricted"]
            }
        },
    ),
    "chroma_restricted_only": (chroma, {"classification": "restricted"}),
}


@pytest.mark.parametrize("case", sorted(WIDENING_FILTERS))
def test_a_caller_filter_never_widens_access(case: str) -> None:
    make, caller_filter = WIDENING_FILTERS[case]
    retriever = guard_retriever(Guard(POLICY), make(), k=20)
    with acting_as(BOB):
        docs = retriever.invoke(QUERY, filter=caller_filter)
        adocs = asyncio.run(retriever.ainvoke(QUERY, filter=caller_filter))
    assert allowed(BOB, docs)
    assert allowed(BOB, adocs)
    labels = {d.metadata["classification"] for d in docs}
    assert labels <= {"public", "internal"}


def test_a_caller_filter_narrows() -> None:
    retriever = guard_retriever(Guard(POLICY), store(), k=20)
    with acting_as(ALICE):
        docs = retriever.invoke(
            QUERY, filter=lambda d: d.metadata.get("classification") == "public"
        )
    assert docs
    assert {d.metadata["classification"] for d in docs} == {"public"}


@pytest.mark.parametrize("bad", [{"classification": "public"}, "public", 3])
def test_a_filter_of_the_wrong_shape_is_refused(bad: object) -> None:
    retriever = guard_retriever(Guard(POLICY), store(), k=3)
    with acting_as(ALICE), pytest.raises(PolicyError, match="filter"):
        retriever.invoke(QUERY, filter=bad)


@pytest.mark.parametrize("k", [0, -1, True, "3", 2.5, 10**9])
def test_bad_k_is_refused(k: object) -> None:
    retriever = guard_retriever(Guard(POLICY), store(), k=3)
    with acting_as(ALICE), pytest.raises(PolicyError, match="k"):
        retriever.invoke(QUERY, k=k)


@pytest.mark.parametrize("key", ["query", "config", "run_manager", "callbacks"])
def test_keywords_that_would_redirect_the_search_are_refused(key: str) -> None:
    # Refused by LangChain (TypeError) or by us (PolicyError): never searched.
    retriever = guard_retriever(Guard(POLICY), store(), k=3)
    with acting_as(ALICE), pytest.raises((PolicyError, TypeError, AttributeError)):
        retriever.invoke(QUERY, **{key: "x"})


def test_k_per_call_is_honoured_and_still_authorised() -> None:
    retriever = guard_retriever(Guard(POLICY), store(), k=1)
    with acting_as(READER):
        many = retriever.invoke(QUERY, k=20)
        one = retriever.invoke(QUERY)
    assert len(one) == 1
    assert {d.metadata.get("classification") for d in many} == {"public"}


def test_a_filtered_answer_is_never_served_from_the_cache() -> None:
    retriever = guard_retriever(Guard(POLICY), store(), k=20, cache_size=8)
    with acting_as(ALICE):
        narrow = retriever.invoke(QUERY, filter=lambda d: False)
        full = retriever.invoke(QUERY)
    assert narrow == []
    assert full


# -- 2. surface ------------------------------------------------------------------------


def test_no_attribute_hands_out_the_raw_store() -> None:
    retriever = guard_retriever(Guard(POLICY), store())
    for name in ("vectorstore", "retriever", "inner"):
        with pytest.raises(AttributeError, match="does not hand out"):
            getattr(retriever, name)
    dumped = retriever.model_dump()
    everything = [*vars(retriever).values(), *dumped.values()]
    assert not any(isinstance(v, VectorStore) for v in everything)
    assert " at 0x" not in repr(retriever)


def test_copies_cannot_be_repointed_and_pickles_are_refused() -> None:
    retriever = guard_retriever(Guard(POLICY), store(), k=2)
    permissive = Guard(POLICY.model_copy(update={"exposure": "public"}))
    for update in ({"k": 100}, {"_guard": permissive}, {"_search": None}):
        with pytest.raises(PolicyError, match="cannot be changed"):
            retriever.model_copy(update=update)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(retriever)
    clone = copy.copy(retriever)
    with acting_as(READER):
        assert allowed(READER, clone.invoke(QUERY))


def test_with_config_still_searches_through_the_guard() -> None:
    bound = guard_retriever(Guard(POLICY), store(), k=20).with_config(run_name="x")
    with acting_as(READER):
        docs = bound.invoke(QUERY)
    assert {d.metadata.get("classification") for d in docs} == {"public"}


@pytest.mark.parametrize("how", ["model_construct", "model_validate"])
def test_an_instance_built_around_the_constructor_refuses_to_search(how: str) -> None:
    def build_and_search() -> Any:
        if how == "model_construct":
            return SecureRetriever.model_construct(k=3).invoke(QUERY)
        return SecureRetriever.model_validate({"k": 3}).invoke(QUERY)

    with acting_as(ALICE), pytest.raises((PolicyError, TypeError)):
        build_and_search()


def test_constructor_needs_exactly_one_source_and_a_guard() -> None:
    with pytest.raises(PolicyError, match="exactly one"):
        SecureRetriever(guard=Guard(POLICY))
    with pytest.raises(PolicyError, match="exactly one"):
        SecureRetriever(
            guard=Guard(POLICY), vectorstore=store(), retriever=store().as_retriever()
        )
    with pytest.raises(PolicyError, match="Guard"):
        SecureRetriever(guard="guard", vectorstore=store())  # type: ignore[arg-type]


# -- 3. identity ---------------------------------------------------------------


def test_principal_from_config_on_the_retriever() -> None:
    retriever = guard_retriever(
        Guard(POLICY), store(), k=20, principal_from_config=True
    )
    docs = retriever.invoke(QUERY, {"configurable": {"principal": ALICE}})
    assert any(d.metadata.get("classification") == "confidential" for d in docs)
    with acting_as(BOB), pytest.raises(AccessDenied) as info:
        retriever.invoke(QUERY, {"configurable": {"principal": ALICE}})
    assert info.value.code == "principal_conflict"
    with pytest.raises(AuthenticationRequired) as bad:
        retriever.invoke(QUERY, {"configurable": {"principal": "alice"}})
    assert bad.value.code == "principal_invalid"


def test_a_config_principal_is_not_ignored_without_the_option() -> None:
    retriever = guard_retriever(Guard(POLICY), store(), k=20)
    with acting_as(READER), pytest.raises(PolicyError, match="principal_from_config"):
        retriever.invoke(QUERY, {"configurable": {"principal": ALICE}})
    with acting_as(READER), pytest.raises(PolicyError, match="principal_from_config"):
        retriever.with_config(configurable={"principal": ALICE}).invoke(QUERY)


def test_a_config_principal_inherited_from_an_enclosing_run_is_seen() -> None:
    from langchain_core.runnables import RunnableLambda

    retriever = guard_retriever(
        Guard(POLICY), store(), k=20, principal_from_config=True
    )
    # Invoked inside another runnable, without passing config: LangChain's
    # inherited config carries the principal, and the retriever uses it.
    chain = RunnableLambda(lambda q: retriever.invoke(q))
    docs = chain.invoke(QUERY, {"configurable": {"principal": ALICE}})
    assert any(d.metadata.get("classification") == "confidential" for d in docs)
    plain = guard_retriever(Guard(POLICY), store(), k=20)
    inner = RunnableLambda(lambda q: plain.invoke(q))
    with acting_as(READER), pytest.raises(PolicyError, match="principal_from_config"):
        inner.invoke(QUERY, {"configurable": {"principal": ALICE}})
