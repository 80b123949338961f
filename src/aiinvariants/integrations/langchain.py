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

``SecureRetriever(guard=..., vectorstore=... | retriever=..., k=...)`` builds
the same object the pydantic way. ``invoke(query, k=n, filter=..., ...)``
takes this call's ``k`` and the store's search keywords; a caller's
``filter`` is ANDed with the label filter. The wrapped store is never handed
out, and with ``principal_from_config=True`` the retriever acts for the
``Principal`` in ``config["configurable"]["principal"]``.

Only the required ``classification`` key is pushed down, only with positive
operators: never ``$ne``/``$nin`` on an optional key, which would let a
document without that key through. An empty allowed set returns no documents
and sends no query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableConfig, ensure_config
    from langchain_core.vectorstores import (
        InMemoryVectorStore,
        VectorStore,
        VectorStoreRetriever,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="langchain", package="langchain-core") from exc

from pydantic import ConfigDict, PrivateAttr

from aiinvariants import Principal, acting_as, current_principal
from aiinvariants._classification import CLASSIFICATION, Authorizer
from aiinvariants._options import RetrievalOptions
from aiinvariants._retrieval import SecureSearch
from aiinvariants.integrations._langchain_config import principal_for_call

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = ["SecureRetriever", "guard_retriever", "guard_with_options", "store_filter"]

_NOTHING = (
    "this SecureRetriever was not built by its constructor (model_construct, "
    "model_validate?); build it with SecureRetriever(guard=..., vectorstore=...) "
    "or guard.retriever(...)"
)
_NOT_EXPOSED = (
    "a SecureRetriever does not hand out the store or retriever it wraps: "
    "every search must pass the guard"
)

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


def _combined(
    translator: Translator | None,
    labels: tuple[str, ...] | None,
    caller_filter: Any,
) -> dict[str, Any]:
    """The store's search kwargs: the label filter AND the caller's own.

    A caller's ``filter`` can only narrow what the label filter lets
    through; it never replaces it.
    """
    ours = translator(labels) if translator is not None and labels is not None else {}
    if caller_filter is None:
        return ours
    if "filter" not in ours:
        # Post-filtered store: the caller's filter goes as it is, and every
        # returned document is re-checked anyway.
        return {"filter": caller_filter}
    mine = ours["filter"]
    if callable(mine):
        if not callable(caller_filter):
            raise PolicyError(
                "filter= for this store must be a callable taking a Document"
            )

        def both(doc: Document) -> bool:
            return bool(mine(doc)) and bool(caller_filter(doc))

        return {"filter": both}
    if not isinstance(caller_filter, Mapping):
        raise PolicyError("filter= for this store must be a metadata filter mapping")
    return {"filter": {"$and": [mine, dict(caller_filter)]}}


_REFUSED_KWARGS: Final = frozenset({"query", "run_manager", "callbacks", "config"})


def _readable_only(search: SecureSearch[Document], caller_filter: Any) -> Any:
    """A caller's filter callable, shown only documents the principal may read.

    The store calls it on candidates before any check (every document, in
    the unfiltered count probe or for a store the label filter cannot be
    pushed into; other tenants' documents of an allowed label otherwise):
    it must not become a way to see them.
    """
    if not callable(caller_filter):
        return caller_filter
    who = current_principal()

    def readable(doc: Document) -> bool:
        return search.allows(who, doc) and bool(caller_filter(doc))

    return readable


def _unobserved() -> RunnableConfig:
    """The config the wrapped retriever runs with: no callbacks.

    Its answer is not yet checked: a callback (``astream_events``, a UI
    handler, a tracer handed down) would receive every document it
    returns, those the principal may not read included. The secure
    retriever's own run reports what it really returns.
    """
    return {"callbacks": []}


class SecureRetriever(BaseRetriever):
    """A LangChain retriever that returns only what the current principal may read.

    Build it the usual pydantic way, ``SecureRetriever(guard=guard,
    vectorstore=store, k=4)`` or ``SecureRetriever(guard=guard,
    retriever=inner)``, or with ``guard.retriever(inner)`` /
    :func:`guard_retriever` (same options). ``invoke(query, k=2,
    filter=...)`` takes this call's number of documents and the store's
    search keyword arguments; a caller's ``filter`` is ANDed with the label
    filter, never replaces it. The wrapped store or retriever is not exposed
    (no ``vectorstore``/``retriever`` attribute, nothing in ``__dict__``,
    ``model_dump`` or a pickle), and the object cannot be re-pointed
    (``model_copy(update=...)`` is refused).

    Attributes:
        k: documents returned by default.
        source: the source's name in audit events and run taints.
        principal_from_config: act for a ``Principal`` given in
            ``config["configurable"]["principal"]`` (see
            ``integrations/_langchain_config``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    k: int = 4
    source: str = "retriever"
    principal_from_config: bool = False

    _search: Any = PrivateAttr(default=None)
    _store: Any = PrivateAttr(default=None)
    _inner: Any = PrivateAttr(default=None)
    _translator: Any = PrivateAttr(default=None)
    _guard: Any = PrivateAttr(default=None)

    def __init__(
        self,
        *,
        guard: Guard,
        vectorstore: VectorStore | VectorStoreRetriever | None = None,
        retriever: BaseRetriever | None = None,
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
        principal_from_config: bool = False,
        options: RetrievalOptions | None = None,
        **base: Any,
    ) -> None:
        from aiinvariants import Guard as _Guard

        if not isinstance(guard, _Guard):
            raise PolicyError("SecureRetriever(guard=...) needs a Guard")
        if (vectorstore is None) == (retriever is None):
            raise PolicyError(
                "SecureRetriever needs exactly one of vectorstore= or retriever="
            )
        given = RetrievalOptions(
            k=k,
            data=data,
            requires_authentication=requires_authentication,
            authorizer=authorizer,
            labels=labels,
            source=source,
            max_rounds=max_rounds,
            fetch_multiplier=fetch_multiplier,
            max_fetch=max_fetch,
            cache_size=cache_size,
            principal_from_config=principal_from_config,
        )
        if options is None:
            options = given
        elif given != RetrievalOptions():
            raise PolicyError(
                "SecureRetriever takes options= or the separate retrieval "
                "keywords, not both"
            )
        options.only_for("LangChain", "collection", "embed")
        built = _build(
            guard, vectorstore if vectorstore is not None else retriever, options
        )
        search, store, opaque, translator = built
        super().__init__(
            k=search.k,
            source=search.source,
            principal_from_config=options.principal_from_config,
            **base,
        )
        self._search = search
        self._store = store
        self._inner = opaque
        self._translator = translator
        self._guard = guard

    # -- read-only views -------------------------------------------------------

    @property
    def search(self) -> SecureSearch[Document]:
        """The framework-free core (authorizer, audit, cache, bounds, report)."""
        return self._ready()[0]

    @property
    def vectorstore(self) -> NoReturn:
        """Not available: the raw store would answer without any check."""
        raise AttributeError(_NOT_EXPOSED)

    @property
    def retriever(self) -> NoReturn:
        """Not available: the wrapped retriever would answer without any check."""
        raise AttributeError(_NOT_EXPOSED)

    @property
    def inner(self) -> NoReturn:
        """Not available: the wrapped retriever would answer without any check."""
        raise AttributeError(_NOT_EXPOSED)

    def _ready(
        self,
    ) -> tuple[
        SecureSearch[Document], VectorStore | None, BaseRetriever, Translator | None
    ]:
        search = self._search
        store: VectorStore | None = self._store
        inner: BaseRetriever | None = self._inner
        if not isinstance(search, SecureSearch) or (store is None and inner is None):
            # model_construct / model_validate skip __init__: nothing to
            # search with safely, so refuse.
            raise PolicyError(_NOTHING)
        # With a store, the opaque retriever is never used.
        return search, store, inner if inner is not None else self, self._translator

    # -- identity from RunnableConfig ------------------------------------------

    def _principal(self, config: RunnableConfig | None) -> Principal:
        # The config LangChain will run with: the caller's, merged over the
        # one inherited from an enclosing run (a tool, a graph node).
        return principal_for_call(
            self._guard,
            ensure_config(config),
            enabled=self.principal_from_config,
            resource=self.source,
            where="SecureRetriever(...) / guard.retriever(...)",
        )

    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        self._ready()
        who = self._principal(config)
        with acting_as(who):
            return super().invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        self._ready()
        who = self._principal(config)
        async with acting_as(who):
            return await super().ainvoke(input, config, **kwargs)

    # -- searching ---------------------------------------------------------------

    @staticmethod
    def _split(kwargs: dict[str, Any]) -> tuple[int | None, Any, dict[str, Any]]:
        refused = _REFUSED_KWARGS & kwargs.keys()
        if refused:
            raise PolicyError(
                f"search keyword {sorted(refused)[0]!r} is not accepted here"
            )
        k = kwargs.pop("k", None)
        caller_filter = kwargs.pop("filter", None)
        return k, caller_filter, kwargs

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        **kwargs: Any,
    ) -> list[Document]:
        search, store, inner, translator = self._ready()
        k, caller_filter, extra = self._split(dict(kwargs))
        caller_filter = _readable_only(search, caller_filter)

        def fetch(n: int, labels: tuple[str, ...] | None) -> Sequence[Document]:
            if store is not None:
                found = _combined(translator, labels, caller_filter)
                return store.similarity_search(query, k=n, **extra, **found)
            if caller_filter is not None:
                extra["filter"] = caller_filter
            return inner.invoke(query, config=_unobserved(), **extra)

        cacheable = caller_filter is None and not extra
        return search.search(query, fetch, k=k, cacheable=cacheable)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        **kwargs: Any,
    ) -> list[Document]:
        search, store, inner, translator = self._ready()
        k, caller_filter, extra = self._split(dict(kwargs))
        caller_filter = _readable_only(search, caller_filter)

        async def fetch(n: int, labels: tuple[str, ...] | None) -> Sequence[Document]:
            if store is not None:
                found = _combined(translator, labels, caller_filter)
                return await store.asimilarity_search(query, k=n, **extra, **found)
            if caller_filter is not None:
                extra["filter"] = caller_filter
            return await inner.ainvoke(query, config=_unobserved(), **extra)

        cacheable = caller_filter is None and not extra
        return await search.asearch(query, fetch, k=k, cacheable=cacheable)

    # -- what must not hand out the store ------------------------------------------

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Any:
        if update:
            raise PolicyError(
                "a SecureRetriever cannot be changed by copying; build a new "
                "one with guard.retriever(...) or SecureRetriever(...)"
            )
        return super().model_copy(deep=deep)

    def __getstate__(self) -> dict[Any, Any]:
        raise TypeError(
            "a SecureRetriever cannot be pickled: the copy would carry the raw "
            "store; build it again where it is used"
        )

    def __repr__(self) -> str:
        return f"SecureRetriever(source={self.source!r}, k={self.k})"


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
    principal_from_config: bool = False,
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
        principal_from_config: act for a ``Principal`` given in
            ``config["configurable"]["principal"]`` (only exactly a
            ``Principal``; an ambient principal that differs is refused).

    Raises:
        PolicyError: the source is above public in a public app that lets
            anonymous users in; an unsupported ``VectorStoreRetriever``
            (not ``similarity``, or with its own ``filter``); bad bounds.
    """
    options = RetrievalOptions(
        k=k,
        data=data,
        requires_authentication=requires_authentication,
        authorizer=authorizer,
        labels=labels,
        source=source,
        max_rounds=max_rounds,
        fetch_multiplier=fetch_multiplier,
        max_fetch=max_fetch,
        cache_size=cache_size,
        principal_from_config=principal_from_config,
    )
    return guard_with_options(guard, inner, options)


def guard_with_options(
    guard: Guard, inner: VectorStore | BaseRetriever, options: RetrievalOptions
) -> SecureRetriever:
    """:func:`guard_retriever` with its options already checked (the dispatch's
    entry point for ``guard.retriever``)."""
    if isinstance(inner, BaseRetriever):
        return SecureRetriever(guard=guard, retriever=inner, options=options)
    return SecureRetriever(guard=guard, vectorstore=inner, options=options)


def _build(
    guard: Guard, inner: Any, options: RetrievalOptions
) -> tuple[SecureSearch[Document], Any, Any, Any]:
    store: VectorStore | None = None
    opaque: BaseRetriever | None = None
    k: int | None = None
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
        k = int(inner.search_kwargs.get("k", 4))
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
    search: SecureSearch[Document] = SecureSearch.from_options(
        options,
        policy=guard.policy,
        audit=guard.audit,
        metadata_of=_metadata,
        source=type(store if store is not None else inner).__name__,
        pushdown=translator is not None,
        post_filter_reason="opaque_retriever"
        if opaque is not None
        else "store_not_expressible",
        k=k if k is not None else 4,
        max_rounds=1 if opaque is not None else None,
    )
    return search, store, opaque, translator
