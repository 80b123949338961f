"""Checked by ``mypy --strict`` in the suite (tests/unit/test_guard_typing.py).

Each ``assert_type`` states the static type ``guard.llm``, ``guard.retriever``
and ``guard.tool`` give a framework object; a wrong overload fails the check.
Never run as a test: the clients below are only built, never called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_type

import anthropic
import openai
from agents import FunctionTool, function_tool
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.tools import BaseTool, tool
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import ChatOpenAI
from llama_index.core import VectorStoreIndex
from qdrant_client import QdrantClient

from aiinvariants import Guard
from aiinvariants.integrations.anthropic import (
    AsyncGuardedAnthropicClient,
    GuardedAnthropicClient,
)
from aiinvariants.integrations.langchain import SecureRetriever
from aiinvariants.integrations.langchain_tools import GuardedLangChainTool
from aiinvariants.integrations.llamaindex import SecureLlamaRetriever
from aiinvariants.integrations.openai import (
    AsyncGuardedOpenAIClient,
    GuardedOpenAIClient,
)
from aiinvariants.integrations.qdrant import SecureQdrantRetriever
from aiinvariants.llm import GuardedCallable
from aiinvariants.tools import GuardedTool, ToolSpec


def embed(text: str) -> Sequence[float]:
    return [float(len(text))]


def llm_types(guard: Guard) -> None:
    client = guard.llm(openai.OpenAI(api_key="k"), system_prompt="be brief")
    assert_type(client, GuardedOpenAIClient)
    # the SDK's own API and what the guard adds, on one object
    assert_type(client.system_prompt, str | None)
    client.chat.completions.create(model="gpt-4.1", messages=[])
    assert_type(guard.llm(openai.AsyncOpenAI(api_key="k")), AsyncGuardedOpenAIClient)
    azure = openai.AzureOpenAI(api_key="k", api_version="v", azure_endpoint="https://x")
    assert_type(guard.llm(azure), GuardedOpenAIClient)
    assert_type(guard.llm(anthropic.Anthropic(api_key="k")), GuardedAnthropicClient)
    assert_type(
        guard.llm(anthropic.AsyncAnthropic(api_key="k")), AsyncGuardedAnthropicClient
    )
    vertex = anthropic.AnthropicVertex(region="europe-west1", project_id="p")
    assert_type(guard.llm(vertex), anthropic.AnthropicVertex)
    chat = ChatOpenAI(model="gpt-4.1")
    assert_type(guard.llm(chat), ChatOpenAI)

    def answer(prompt: str) -> str:
        return prompt

    assert_type(guard.llm(answer, model="m"), GuardedCallable)


def retriever_types(
    guard: Guard, index: VectorStoreIndex, qdrant: QdrantClient
) -> None:
    store = InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=4))
    assert_type(guard.retriever(store, k=2, data="public"), SecureRetriever)
    assert_type(guard.retriever(store.as_retriever()), SecureRetriever)
    assert_type(guard.retriever(index, labels=["public"]), SecureLlamaRetriever)
    assert_type(
        guard.retriever(qdrant, collection="kb", embed=embed), SecureQdrantRetriever
    )


def tool_types(guard: Guard, lc: BaseTool) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    guarded = guard.tool(data="public")(add)
    checked: GuardedTool[[int, int], int] = guarded
    assert_type(checked(1, 2), int)
    assert_type(guarded(1, 2), int)
    assert_type(guarded.spec, ToolSpec)
    assert_type(guard.tool()(lc), GuardedLangChainTool)

    @tool
    def lookup(q: str) -> str:
        """Look up."""
        return q

    assert_type(guard.tool()(lookup), GuardedLangChainTool)
    agent_tool = function_tool(add)
    assert_type(guard.tool()(agent_tool), FunctionTool)
