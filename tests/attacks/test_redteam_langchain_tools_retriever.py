"""Red team: the LangChain secure retriever (#14).

1. Observation: the wrapped retriever ran with the secure retriever's child
   callbacks, so ``astream_events``, a UI callback or a handler of an
   enclosing chain received every document it returned, before the check:
   documents the principal may not read included.
2. A caller's filter callable: the store calls it on candidates before the
   check (every document in the count probe, other tenants' documents of an
   allowed label in every round), so the caller's code saw documents the
   principal may not read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants._classification import decide
from aiinvariants.integrations.langchain import SecureRetriever
from langchain_support import HashEmbeddings
from retrieval_support import BOB, EVE, POLICY, corpus

READER = Principal(subject="reader", authenticated=True)
WHO = {"reader": READER, "bob": BOB, "eve": EVE}
HIDDEN = "CEO salary 900k"


class _Raw(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> Any:
        return [
            Document("public faq", metadata={"classification": "public"}),
            Document(HIDDEN, metadata={"classification": "restricted"}),
        ]


class _Seen(BaseCallbackHandler):
    def __init__(self) -> None:
        self.texts: list[str] = []

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        self.texts += [d.page_content for d in documents]


def _retriever() -> SecureRetriever:
    return SecureRetriever(guard=Guard(Policy()), retriever=_Raw())


def test_callbacks_never_see_what_the_principal_may_not_read() -> None:
    seen = _Seen()
    with acting_as(READER):
        docs = _retriever().invoke("q", config={"callbacks": [seen]})
    assert [d.page_content for d in docs] == ["public faq"]
    assert HIDDEN not in seen.texts


def test_streamed_events_never_carry_what_the_principal_may_not_read() -> None:
    retriever = _retriever()
    chain = RunnableLambda(lambda q: q) | retriever

    async def events(runnable: Any) -> list[str]:
        texts: list[str] = []
        async for event in runnable.astream_events("q", version="v2"):
            if event["event"] == "on_retriever_end":
                texts += [d.page_content for d in event["data"]["output"]]
        return texts

    with acting_as(READER):
        direct = asyncio.run(events(retriever))
        chained = asyncio.run(events(chain))
    assert "public faq" in direct
    assert HIDDEN not in direct
    assert HIDDEN not in chained


@pytest.mark.filterwarnings("ignore::aiinvariants._retrieval.UnlabelledDataWarning")
@pytest.mark.parametrize("who", sorted(WHO))
def test_a_caller_filter_callable_sees_only_readable_documents(who: str) -> None:
    principal = WHO[who]
    store = InMemoryVectorStore(HashEmbeddings())
    items = [
        *corpus(),
        ("acme payroll public note", {"classification": "public", "tenant": "acme"}),
    ]
    store.add_texts([t for t, _ in items], metadatas=[m for _, m in items])
    retriever = SecureRetriever(guard=Guard(POLICY), vectorstore=store, k=4)
    shown: list[Document] = []

    def narrow(doc: Document) -> bool:
        shown.append(doc)
        return True

    for query in ("salary", "payroll note", "merger plans"):
        with acting_as(principal):
            retriever.invoke(query, filter=narrow)
    assert shown
    assert all(decide(principal, d.metadata, policy=POLICY).allowed for d in shown)
