"""A secure retriever over a Qdrant collection (I1, I2).

``guard_qdrant(guard, client, collection, embed=...)`` returns a
:class:`SecureQdrantRetriever` whose ``invoke(query)`` returns at most ``k``
``ScoredPoint`` the *current principal* may read. The label rule is pushed
into the query as a native ``Filter`` (``must: classification match any
<allowed labels>``, a positive condition on the required key) and every
returned point's payload is re-checked. Works with the local mode
(``QdrantClient(":memory:")`` or ``path=...``) and with a server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    from qdrant_client import QdrantClient, models
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="qdrant", package="qdrant-client") from exc

from aiinvariants._classification import CLASSIFICATION, Authorizer
from aiinvariants._options import RetrievalOptions
from aiinvariants._retrieval import SecureSearch

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "SecureQdrantRetriever",
    "guard_qdrant",
    "guard_with_options",
    "qdrant_filter",
]


def qdrant_filter(labels: Sequence[str]) -> models.Filter:
    """The Qdrant filter selecting points whose ``classification`` is in ``labels``.

    Raises:
        PolicyError: ``labels`` is empty (an empty filter would select all).
    """
    if not labels:
        raise PolicyError("refusing to build an empty classification filter")
    return models.Filter(
        must=[
            models.FieldCondition(
                key=CLASSIFICATION, match=models.MatchAny(any=list(labels))
            )
        ]
    )


def _payload(point: models.ScoredPoint) -> Mapping[str, Any] | None:
    return point.payload


class SecureQdrantRetriever:
    """Top-``k`` points of a collection that the current principal may read.

    Build it with :func:`guard_qdrant`.

    Attributes:
        search: the framework-free core (authorizer, audit, bounds).
    """

    def __init__(
        self,
        search: SecureSearch[models.ScoredPoint],
        *,
        client: QdrantClient,
        collection: str,
        embed: Callable[[str], Sequence[float]],
    ) -> None:
        self.search = search
        self._client = client
        self._collection = collection
        self._embed = embed

    def invoke(self, query: str) -> list[models.ScoredPoint]:
        """The allowed points nearest to ``query``, best first."""
        vector = list(self._embed(query))

        def fetch(n: int, labels: tuple[str, ...] | None) -> list[models.ScoredPoint]:
            return self._client.query_points(
                self._collection,
                query=vector,
                limit=n,
                query_filter=qdrant_filter(labels) if labels else None,
                with_payload=True,
            ).points

        return self.search.search(query, fetch)

    def __repr__(self) -> str:
        return f"SecureQdrantRetriever(collection={self._collection!r})"


def guard_qdrant(
    guard: Guard,
    client: QdrantClient,
    collection: str,
    *,
    embed: Callable[[str], Sequence[float]],
    k: int = 4,
    data: str | None = None,
    requires_authentication: bool = False,
    authorizer: Authorizer | None = None,
    labels: Sequence[str] | None = None,
    max_rounds: int = 4,
    fetch_multiplier: int = 4,
    max_fetch: int = 2_000,
    cache_size: int = 0,
) -> SecureQdrantRetriever:
    """Wrap a Qdrant collection (arguments as LangChain's ``guard_retriever``).

    Args:
        guard: the guard whose policy and audit log apply.
        client: a ``QdrantClient`` (local mode or server).
        collection: the collection searched; payloads carry the metadata.
        embed: turns the query into the collection's vector.
        k: points to return.
        data: the highest label in the collection (undeclared = highest).
        requires_authentication: refuse anonymous principals.
        authorizer: decides per point; default the label rule.
        labels: the only labels this retriever may return.
        max_rounds: bound on round-trips per query.
        fetch_multiplier: fetch-size growth between rounds.
        max_fetch: bound on points asked for in one round.
        cache_size: authorization-keyed cache entries; 0 = off.

    Raises:
        PolicyError: exposure refused, ``client`` is not a QdrantClient, bounds.
    """
    options = RetrievalOptions(
        k=k,
        data=data,
        requires_authentication=requires_authentication,
        authorizer=authorizer,
        labels=labels,
        max_rounds=max_rounds,
        fetch_multiplier=fetch_multiplier,
        max_fetch=max_fetch,
        cache_size=cache_size,
        collection=collection,
        embed=embed,
    )
    return guard_with_options(guard, client, options)


def guard_with_options(
    guard: Guard, client: QdrantClient, options: RetrievalOptions
) -> SecureQdrantRetriever:
    """:func:`guard_qdrant` with its options already checked (the dispatch's
    entry point for ``guard.retriever(client, collection=..., embed=...)``)."""
    options.only_for("Qdrant", "principal_from_config")
    collection, embed = options.collection, options.embed
    if collection is None or embed is None:
        raise PolicyError(
            "a Qdrant retriever needs collection= (the collection searched) "
            "and embed= (the query's embedding)"
        )
    if not isinstance(client, QdrantClient):
        raise PolicyError("guard_qdrant needs a qdrant_client.QdrantClient")
    search: SecureSearch[models.ScoredPoint] = SecureSearch.from_options(
        options,
        policy=guard.policy,
        audit=guard.audit,
        metadata_of=_payload,
        source=f"qdrant:{collection}",
    )
    return SecureQdrantRetriever(
        search, client=client, collection=collection, embed=embed
    )
