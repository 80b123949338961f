"""Secure retrievers for LangChain (I1, I2).

``guard_retriever(guard, inner)`` (what ``guard.retriever(inner)`` calls for a
LangChain object) returns a :class:`SecureRetriever`: a real
``langchain_core`` ``BaseRetriever`` (sync and async, usable in LCEL chains
and agents) that answers with at most ``k`` documents the *current principal*
may read.

``inner`` may be:

- a ``VectorStore``, or a ``VectorStoreRetriever`` with ``search_type``
  ``"similarity"``: the retriever pushes ``classification in <allowed
  labels>`` into the store query when it knows the store's filter language
  (``InMemoryVectorStore``: a callable; ``langchain_chroma.Chroma``: a
  ``where`` with ``$in``), over-fetches in bounded rounds, and re-checks every
  returned document. Other stores are post-filtered only, and each audit
  event says so (``post_filter_only="store_not_expressible"``).
- any other ``BaseRetriever``: it is asked once and its answer is
  post-filtered (``post_filter_only="opaque_retriever"``); it may return
  fewer than ``k`` documents.

Only the required ``classification`` key is pushed down, only with positive
operators: never ``$ne``/``$nin`` on an optional key, which would let a
document without that key through. An empty allowed set returns no documents
and sends no query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiinvariants.errors import MissingIntegrationError, PolicyError

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.vectorstores import (
        InMemoryVectorStore,
        VectorStore,
        VectorStoreRetriever,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="langchain", package="langchain-core") from exc

from pydantic import ConfigDict

from aiinvariants.classification import CLASSIFICATION, Authorizer
from aiinvariants.retrieval import SecureSearch, check_exposure

if TYPE_CHECKING:
    from aiinvariants.guard import Guard

__all__ = ["SecureRetriever", "guard_retriever", "store_filter"]

_NOTHING = "SecureRetriever has neither a vector store nor a retriever"

Translator = Callable[[tuple[str, ...]], dict[str, Any]]


def _in_memory(labels: tuple[str, ...]) -> dict[str, Any]:
    allowed = frozenset(labels)

    def only_allowed(doc: Document) -> bool:
        return doc.metadata.get(CLASSIFICATION) in allowed

    return {"filter": only_allowed}


def _chroma(labels: tuple[str, ...]) -> dict[str, Any]:
    return {"filter": {CLASSIFICATION: {"$in": list(labels)}}}


def store_filter(store: VectorStore) -> Translator | None:
    """The translator from allowed labels to ``store``'s search kwargs, if any.

    Returns None for a store whose filter language is not known to express
    the rule; such a store is post-filtered only. Only exact known classes
    are trusted: a subclass may have changed how ``filter`` is read.
    """
    if type(store) is InMemoryVectorStore:
        return _in_memory
    try:
        from langchain_chroma import Chroma
    except ImportError:  # pragma: no cover - chroma is optional
        return None
    if type(store) is Chroma:
        return _chroma
    return None


def _metadata(doc: Document) -> Mapping[str, Any] | None:
    meta = getattr(doc, "metadata", None)
    return meta if isinstance(meta, Mapping) else None


class SecureRetriever(BaseRetriever):
    """A LangChain retriever that returns only what the current principal may read.

    Build it with ``guard.retriever(inner)`` or :func:`guard_retriever`.
    Attributes are set at construction and not meant to be changed.

    Attributes:
        search: the framework-free core (authorizer, audit, cache, bounds).
        vectorstore: the store searched, or None for an opaque retriever.
        inner: the wrapped opaque retriever, or None.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    search: SecureSearch[Document]
    vectorstore: VectorStore | None = None
    inner: BaseRetriever | None = None
    translator: Translator | None = None

    def _kwargs(self, labels: tuple[str, ...] | None) -> dict[str, Any]:
        if labels is None or self.translator is None:
            return {}
        return self.translator(labels)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        store, inner = self.vectorstore, self.inner

        def fetch(n: int, labels: tuple[str, ...] | None) -> Sequence[Document]:
            if store is not None:
                return store.similarity_search(query, k=n, **self._kwargs(labels))
            if inner is None:
                raise PolicyError(_NOTHING)
            return inner.invoke(query, config={"callbacks": run_manager.get_child()})

        return self.search.search(query, fetch)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        store, inner = self.vectorstore, self.inner

        async def fetch(n: int, labels: tuple[str, ...] | None) -> Sequence[Document]:
            if store is not None:
                return await store.asimilarity_search(
                    query, k=n, **self._kwargs(labels)
                )
            if inner is None:
                raise PolicyError(_NOTHING)
            return await inner.ainvoke(
                query, config={"callbacks": run_manager.get_child()}
            )

        return await self.search.asearch(query, fetch)


def guard_retriever(
    guard: Guard,
    inner: VectorStore | BaseRetriever,
    *,
    k: int | None = None,
    data: str | None = None,
    requires_authentication: bool = False,
    authorizer: Authorizer | None = None,
    labels: Sequence[str] | None = None,
    source: str | None = None,
    max_rounds: int = 4,
    fetch_multiplier: int = 4,
    max_fetch: int = 2_000,
    cache_size: int = 0,
) -> SecureRetriever:
    """Wrap a LangChain vector store or retriever as a :class:`SecureRetriever`.

    Args:
        guard: the guard whose policy and audit log apply.
        inner: a ``VectorStore``, a similarity ``VectorStoreRetriever``, or
            another ``BaseRetriever`` (post-filtered only).
        k: documents to return; default the inner retriever's ``k``, else 4.
        data: the highest label the source holds. Undeclared is treated as
            the highest label, so a public app refuses it (stops an anonymous
            chat endpoint from being wired to confidential data).
        requires_authentication: refuse anonymous principals instead of
            serving them public documents.
        authorizer: decides per document; default the label rule.
        labels: the only labels this retriever may return.
        source: the source's name for audit events and run taints.
        max_rounds: bound on store round-trips per query.
        fetch_multiplier: fetch-size growth between rounds.
        max_fetch: bound on documents asked for in one round.
        cache_size: authorization-keyed result cache entries; 0 = off.

    Raises:
        PolicyError: the source is above public in a public app that lets
            anonymous users in; an unsupported ``VectorStoreRetriever``
            (not ``similarity``, or with its own ``filter``); bad bounds.
    """
    policy = guard.policy
    check_exposure(
        policy,
        data=data,
        requires_authentication=requires_authentication,
        labels=labels,
    )
    store: VectorStore | None = None
    opaque: BaseRetriever | None = None
    if isinstance(inner, VectorStoreRetriever):
        if inner.search_type != "similarity":
            raise PolicyError(
                f"search_type {inner.search_type!r} is not supported; "
                "wrap the vector store itself"
            )
        extra = set(inner.search_kwargs) - {"k"}
        if extra:
            raise PolicyError(
                "the retriever's own search_kwargs "
                f"({', '.join(sorted(extra))}) would be replaced; wrap the "
                "vector store and pass labels= instead"
            )
        store = inner.vectorstore
        k = k if k is not None else int(inner.search_kwargs.get("k", 4))
    elif isinstance(inner, VectorStore):
        store = inner
    elif isinstance(inner, BaseRetriever):
        opaque = inner
    else:
        raise PolicyError(
            f"cannot wrap {type(inner).__name__}: expected a LangChain "
            "VectorStore or BaseRetriever"
        )
    translator = store_filter(store) if store is not None else None
    if opaque is not None:
        reason, max_rounds = "opaque_retriever", 1
    else:
        reason = "store_not_expressible"
    name = source or type(store if store is not None else inner).__name__
    search: SecureSearch[Document] = SecureSearch(
        policy=policy,
        audit=guard.audit,
        metadata_of=_metadata,
        k=k if k is not None else 4,
        authorizer=authorizer,
        source=name,
        pushdown=translator is not None,
        post_filter_reason=reason,
        labels=labels,
        data=data,
        requires_authentication=requires_authentication,
        max_rounds=max_rounds,
        fetch_multiplier=fetch_multiplier,
        max_fetch=max_fetch,
        cache_size=cache_size,
    )
    return SecureRetriever(
        search=search, vectorstore=store, inner=opaque, translator=translator
    )
