from __future__ import annotations

import pytest
from qdrant_client import QdrantClient, models

from aiinvariants import Guard, PolicyError, Principal, acting_as
from aiinvariants._classification import decide
from aiinvariants.audit import capture
from aiinvariants.integrations.qdrant import guard_qdrant, qdrant_filter
from retrieval_support import (
    ALICE,
    BOB,
    DIM,
    EVE,
    POLICY,
    PUBLIC_POLICY,
    READER,
    corpus,
    embed,
)

QUERY = "salary finance forecast"


@pytest.fixture(scope="module")
def client() -> QdrantClient:
    client = QdrantClient(":memory:")
    client.create_collection(
        "kb",
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
    )
    client.upsert(
        "kb",
        points=[
            models.PointStruct(id=i, vector=embed(text), payload={"text": text, **meta})
            for i, (text, meta) in enumerate(corpus())
        ],
    )
    return client


@pytest.mark.parametrize("who", [READER, ALICE, BOB, EVE], ids=lambda p: p.subject)
def test_local_mode_with_pushdown(client: QdrantClient, who: Principal) -> None:
    retriever = guard_qdrant(Guard(POLICY), client, "kb", embed=embed, k=20)
    with capture() as events, acting_as(who):
        points = retriever.invoke(QUERY)
    expected = {t for t, m in corpus() if decide(who, m, policy=POLICY).allowed}
    assert {p.payload["text"] for p in points if p.payload} == expected
    assert events[0].details["pushdown"] is True
    assert events[0].details["rounds"] == 1


def test_top_k_full(client: QdrantClient) -> None:
    retriever = guard_qdrant(Guard(POLICY), client, "kb", embed=embed, k=2)
    with acting_as(ALICE):
        assert len(retriever.invoke(QUERY)) == 2


def test_filter_and_refusals(client: QdrantClient) -> None:
    condition = qdrant_filter(["public"]).must[0]  # type: ignore[index]
    assert condition.key == "classification"
    with pytest.raises(PolicyError):
        qdrant_filter([])
    with pytest.raises(PolicyError):
        guard_qdrant(Guard(PUBLIC_POLICY), client, "kb", embed=embed)
    with pytest.raises(PolicyError):
        guard_qdrant(Guard(POLICY), object(), "kb", embed=embed)  # type: ignore[arg-type]
