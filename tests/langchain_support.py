"""LangChain helpers for the secure-retrieval tests."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from retrieval_support import embed


class HashEmbeddings(Embeddings):
    """LangChain embeddings that need no model download."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return embed(text)
