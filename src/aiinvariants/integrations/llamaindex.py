"""Secure retrievers and a node postprocessor for LlamaIndex (I1, I2).

``guard_retriever(guard, inner)`` (what ``guard.retriever(inner)`` calls for a
LlamaIndex object) returns a :class:`SecureLlamaRetriever`, a real
``llama_index.core`` ``BaseRetriever`` (``retrieve`` and ``aretrieve``) that
answers with at most ``k`` nodes the *current principal* may read.

``inner`` may be:

- a ``VectorStoreIndex``: the retriever asks the index for its top ``n``
  with a ``MetadataFilters`` ``classification IN <allowed labels>`` when the
  index's vector store is known to apply that operator (the in-process
  ``SimpleVectorStore``), over-fetches in bounded rounds and re-checks every
  node. Other vector stores are post-filtered only, and the audit event says
  so: a store may silently ignore an operator it does not support.
- any other ``BaseRetriever``: asked once and post-filtered.

:class:`SecureNodePostprocessor` re-checks the nodes a query engine is about
to hand to the LLM (``index.as_query_engine(node_postprocessors=[...])``);
it drops what the current principal may not read and records one audit event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle
    from llama_index.core.vector_stores import SimpleVectorStore
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(
        extra="llamaindex", package="llama-index-core"
    ) from exc

from pydantic import PrivateAttr

# The expansion hook SecureLlamaRetriever re-checks; a version without it
# would expand unchecked, so refuse to load rather than guess.
if not all(
    callable(getattr(BaseRetriever, hook, None))
    for hook in ("_handle_recursive_retrieval", "_ahandle_recursive_retrieval")
):  # pragma: no cover - depends on the installed llama-index-core
    raise MissingIntegrationError(extra="llamaindex", package="llama-index-core")

from aiinvariants._classification import CLASSIFICATION, Authorizer
from aiinvariants._options import RetrievalOptions
from aiinvariants._retrieval import SecureSearch, check_exposure

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "SecureLlamaRetriever",
    "SecureNodePostprocessor",
    "guard_retriever",
    "guard_with_options",
    "metadata_filters",
]


def metadata_filters(labels: Sequence[str]) -> MetadataFilters:
    """The LlamaIndex filter selecting ``classification`` in ``labels``.

    Raises:
        PolicyError: ``labels`` is empty (an empty filter would select all).
    """
    if not labels:
        raise PolicyError("refusing to build an empty classification filter")
    return MetadataFilters(
        filters=[
            MetadataFilter(
                key=CLASSIFICATION, value=list(labels), operator=FilterOperator.IN
            )
        ]
    )


def _metadata(node: NodeWithScore) -> Mapping[str, Any] | None:
    meta = getattr(node.node, "metadata", None)
    return meta if isinstance(meta, Mapping) else None


def _pushdown_ok(index: VectorStoreIndex) -> bool:
    # Only a store known to apply FilterOperator.IN is trusted with it.
    return type(index.vector_store) is SimpleVectorStore


class SecureLlamaRetriever(BaseRetriever):
    """A LlamaIndex retriever returning only nodes the current principal may read.

    Build it with ``guard.retriever(inner)`` or :func:`guard_retriever`.

    Args:
        search: the framework-free core.
        index: the index searched with push-down, or None.
        inner: the opaque retriever, or None.
        pushdown: whether ``index`` receives a ``MetadataFilters``.
    """

    def __init__(
        self,
        search: SecureSearch[NodeWithScore],
        *,
        index: VectorStoreIndex | None = None,
        inner: BaseRetriever | None = None,
        pushdown: bool = False,
    ) -> None:
        super().__init__()
        if (index is None) == (inner is None):
            raise PolicyError("give exactly one of index or inner")
        self.search = search
        self._index = index
        self._inner = inner
        self._pushdown = pushdown

    def _retriever(self, n: int, labels: tuple[str, ...] | None) -> BaseRetriever:
        if self._index is None:
            assert self._inner is not None  # noqa: S101 - checked in __init__
            return self._inner
        filters = metadata_filters(labels) if labels and self._pushdown else None
        return self._index.as_retriever(similarity_top_k=n, filters=filters)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        def fetch(n: int, labels: tuple[str, ...] | None) -> Sequence[NodeWithScore]:
            return self._retriever(n, labels).retrieve(query_bundle)

        return self.search.search(query_bundle.query_str, fetch)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        async def fetch(
            n: int, labels: tuple[str, ...] | None
        ) -> Sequence[NodeWithScore]:
            return await self._retriever(n, labels).aretrieve(query_bundle)

        return await self.search.asearch(query_bundle.query_str, fetch)

    # ``retrieve`` expands what ``_retrieve`` returned (``IndexNode.obj``:
    # nodes, retrievers, query engines, recursively) *after* our search.
    # Re-check the expanded list here, before the framework's callbacks and
    # the caller see it.
    def _handle_recursive_retrieval(
        self, query_bundle: QueryBundle, nodes: list[NodeWithScore]
    ) -> list[NodeWithScore]:
        expanded = super()._handle_recursive_retrieval(query_bundle, nodes)
        return self.search.recheck(expanded)

    async def _ahandle_recursive_retrieval(
        self, query_bundle: QueryBundle, nodes: list[NodeWithScore]
    ) -> list[NodeWithScore]:
        expanded = await super()._ahandle_recursive_retrieval(query_bundle, nodes)
        return self.search.recheck(expanded)


class SecureNodePostprocessor(BaseNodePostprocessor):
    """Drops nodes the current principal may not read, before the LLM sees them.

    Build it with :meth:`from_guard`. It keeps every allowed node (it never
    fetches more); one audit event per call.
    """

    _search: SecureSearch[NodeWithScore] | None = PrivateAttr(default=None)

    @classmethod
    def from_guard(
        cls,
        guard: Guard,
        *,
        data: str | None = None,
        requires_authentication: bool = False,
        authorizer: Authorizer | None = None,
        source: str = "query_engine",
    ) -> SecureNodePostprocessor:
        """A postprocessor enforcing ``guard``'s policy (see ``guard_retriever``)."""
        check_exposure(
            guard.policy, data=data, requires_authentication=requires_authentication
        )
        processor = cls()
        processor._search = SecureSearch(
            policy=guard.policy,
            audit=guard.audit,
            metadata_of=_metadata,
            k=10_000,
            max_fetch=10_000,
            authorizer=authorizer,
            source=source,
            pushdown=False,
            post_filter_reason="postprocessor",
            requires_authentication=requires_authentication,
            max_rounds=1,
            data=data,
        )
        return processor

    @classmethod
    def class_name(cls) -> str:
        return "SecureNodePostprocessor"

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if self._search is None:
            raise PolicyError("build it with SecureNodePostprocessor.from_guard")
        query = query_bundle.query_str if query_bundle is not None else ""
        given = list(nodes)

        def fetch(n: int, labels: tuple[str, ...] | None) -> Sequence[NodeWithScore]:
            return given

        return self._search.search(query, fetch)


def guard_retriever(
    guard: Guard,
    inner: VectorStoreIndex | BaseRetriever,
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
) -> SecureLlamaRetriever:
    """Wrap a LlamaIndex index or retriever (arguments as LangChain's).

    Raises:
        PolicyError: the source is above public in a public app that lets
            anonymous users in; ``inner`` is not a LlamaIndex retriever or
            ``VectorStoreIndex``; bad bounds.
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
    )
    return guard_with_options(guard, inner, options)


def guard_with_options(
    guard: Guard,
    inner: VectorStoreIndex | BaseRetriever,
    options: RetrievalOptions,
) -> SecureLlamaRetriever:
    """:func:`guard_retriever` with its options already checked (the dispatch's
    entry point for ``guard.retriever``)."""
    options.only_for("LlamaIndex", "principal_from_config", "collection", "embed")
    if isinstance(inner, VectorStoreIndex):
        pushdown = _pushdown_ok(inner)
        index, opaque, reason = inner, None, "store_not_expressible"
    elif isinstance(inner, BaseRetriever):
        pushdown = False
        index, opaque, reason = None, inner, "opaque_retriever"
    else:
        raise PolicyError(
            f"cannot wrap {type(inner).__name__}: expected a LlamaIndex "
            "VectorStoreIndex or BaseRetriever"
        )
    search: SecureSearch[NodeWithScore] = SecureSearch.from_options(
        options,
        policy=guard.policy,
        audit=guard.audit,
        metadata_of=_metadata,
        source=type(inner).__name__,
        pushdown=pushdown,
        post_filter_reason=reason,
        max_rounds=1 if opaque is not None else None,
    )
    return SecureLlamaRetriever(search, index=index, inner=opaque, pushdown=pushdown)
