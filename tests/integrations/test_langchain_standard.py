"""LangChain's own standard suites, run against our wrappers.

``RetrieversIntegrationTests`` against :class:`SecureRetriever` (built the
usual pydantic way), and ``ToolsUnitTests`` / ``ToolsIntegrationTests``
against a tool guarded with ``guard_tool``. Every test of the suites runs as
a signed-in principal: the default policy refuses anonymous callers.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tools import BaseTool, tool
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    ToolsIntegrationTests,
)
from langchain_tests.unit_tests import ToolsUnitTests

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants.integrations.langchain import SecureRetriever
from aiinvariants.integrations.langchain_tools import guard_tool
from langchain_support import HashEmbeddings


def _mark_async_tests(*suites: type) -> None:
    # pytest-asyncio runs in strict mode here: the suites' async tests need
    # the asyncio mark. Marking the suites' own function objects keeps them
    # identical, which the suites' no-override check requires.
    for suite in suites:
        for name in dir(suite):
            fn = getattr(suite, name)
            if name.startswith("test_") and inspect.iscoroutinefunction(fn):
                pytest.mark.asyncio(fn)


_mark_async_tests(RetrieversIntegrationTests, ToolsIntegrationTests, ToolsUnitTests)

POLICY = Policy.from_dict({"clearance": {"groups": {"staff": "internal"}}})
STAFF = Principal(
    subject="sam", authenticated=True, groups=frozenset({"staff"}), scopes={"kb:read"}
)
TEXTS = [
    ("opening hours of the office", "public"),
    ("holiday rules for the office", "public"),
    ("office roadmap for staff", "internal"),
    ("office floor plan", "internal"),
    ("office salaries", "confidential"),
    ("office board minutes", "restricted"),
]


@pytest.fixture(autouse=True)
def _signed_in() -> Iterator[None]:
    with acting_as(STAFF):
        yield


def _store() -> InMemoryVectorStore:
    store = InMemoryVectorStore(HashEmbeddings())
    store.add_texts(
        [t for t, _ in TEXTS], metadatas=[{"classification": c} for _, c in TEXTS]
    )
    return store


class TestSecureRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[SecureRetriever]:
        return SecureRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"guard": Guard(POLICY), "vectorstore": _store()}

    @property
    def retriever_query_example(self) -> str:
        return "office"


@tool
def search_kb(query: str, limit: int = 3) -> str:
    """Search the knowledge base."""
    return f"{limit} articles about {query}"


def _guarded() -> BaseTool:
    return guard_tool(Guard(POLICY), search_kb, scopes=["kb:read"], data="internal")


class TestGuardedToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return _guarded()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "vpn", "limit": 2}


class TestGuardedToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return _guarded()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "vpn", "limit": 2}


@tool(response_format="content_and_artifact")
def fetch_rows(table: str) -> tuple[str, list[dict[str, str]]]:
    """Fetch rows of a table."""
    return f"2 rows of {table}", [{"classification": "internal", "t": table}] * 2


class TestGuardedArtifactToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return guard_tool(Guard(POLICY), fetch_rows, data="internal")

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"table": "orders"}
