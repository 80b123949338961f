"""Red team (issue #11 A): LlamaIndex post-processing runs after the retriever.

A query engine built on ``guard.retriever(index)`` runs its node
post-processors on what the retriever returned; ``PrevNextNodePostprocessor``
follows each node's NEXT relationship into the docstore, so a restricted
neighbour of a public node reaches a user cleared for public data. The
guarded retriever cannot see the engine's post-processors: what is missing is
a guarded query engine (or the guard appending ``SecureNodePostprocessor``
last). Until then, apps must put ``SecureNodePostprocessor`` last themselves;
the second test shows that holds.
"""

from __future__ import annotations

import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import PrevNextNodePostprocessor
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import (
    ResponseMode,
    get_response_synthesizer,
)
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants.integrations.llamaindex import SecureNodePostprocessor
from retrieval_support import embed


@pytest.fixture(autouse=True)
def _mock_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    # The synthesizer resolves Settings.llm even when it writes no text.
    monkeypatch.setattr(Settings, "_llm", MockLLM())


BOB = Principal(subject="bob", authenticated=True, clearance="public")


class Embedding(BaseEmbedding):
    def _get_text_embedding(self, text: str) -> list[float]:
        return embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return embed(query)


def _index() -> VectorStoreIndex:
    public = TextNode(
        text="opening hours are nine to five",
        metadata={"classification": "public"},
        id_="public",
    )
    secret = TextNode(
        text="the merger closes on friday",
        metadata={"classification": "restricted"},
        id_="secret",
    )
    public.relationships[NodeRelationship.NEXT] = RelatedNodeInfo(node_id="secret")
    secret.relationships[NodeRelationship.PREVIOUS] = RelatedNodeInfo(node_id="public")
    return VectorStoreIndex([public, secret], embed_model=Embedding())


def _labels(guard: Guard, extra: list[BaseNodePostprocessor]) -> set[str]:
    index = _index()
    expand = PrevNextNodePostprocessor(
        docstore=index.docstore, num_nodes=1, mode="next"
    )
    engine = RetrieverQueryEngine(
        retriever=guard.retriever(index, k=1),
        response_synthesizer=get_response_synthesizer(
            response_mode=ResponseMode.NO_TEXT
        ),
        node_postprocessors=[expand, *extra],
    )
    with acting_as(BOB):
        response = engine.query("opening hours")
    return {n.node.metadata["classification"] for n in response.source_nodes}


@pytest.mark.xfail(
    strict=True,
    reason="a query engine's node post-processors expand after guard.retriever; "
    "no guarded query engine re-checks what reaches the synthesizer",
)
def test_neighbour_added_by_post_processing_is_not_returned() -> None:
    assert _labels(Guard(Policy()), []) == {"public"}


def test_secure_post_processor_placed_last_drops_the_neighbour() -> None:
    guard = Guard(Policy())
    assert _labels(guard, [SecureNodePostprocessor.from_guard(guard)]) == {"public"}
