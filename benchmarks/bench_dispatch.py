"""What choosing the integration costs (#18): the dispatch table side by side.

``guard.llm``/``guard.retriever``/``guard.tool`` look the object's MRO up in
one table (names only) and then call the integration. Each row compares
wrapping through the guard with calling the integration directly, so the
ratio is the dispatch's share; the table lookup alone is timed next to a
bare ``isinstance`` check.
"""

from __future__ import annotations

from typing import Any

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants._options import RetrievalOptions, ToolDeclaration
from aiinvariants.integrations._dispatch import route_of

from ._harness import compare, print_table


def run() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    from aiinvariants.integrations.langchain import guard_with_options
    from aiinvariants.llm import GuardedCallable

    guard = Guard(Policy.from_dict({"models": {"deny": ["*deepseek*"]}}))
    store = InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=8))
    options = RetrievalOptions(data="internal")

    def answer(prompt: str) -> str:
        return prompt

    def add(a: int, b: int) -> int:
        return a + b

    declared = ToolDeclaration(name="add", data="public")
    direct_tool = declared.decorator(guard)
    cases: dict[str, Any] = {
        "isinstance(store, VectorStore)": lambda: isinstance(
            store, InMemoryVectorStore
        ),
        "route_of('retriever', store)": lambda: route_of("retriever", store),
        "route_of('llm', function)": lambda: route_of("llm", answer),
    }
    results = compare(
        cases, baseline="isinstance(store, VectorStore)", number=20_000, repeat=9
    )
    print_table("dispatch: the table lookup (names along the MRO)", results)
    with acting_as(Principal(subject="b", authenticated=True)):
        wraps: dict[str, Any] = {
            "langchain guard_with_options (direct)": lambda: guard_with_options(
                guard, store, options
            ),
            "guard.retriever(store)": lambda: guard.retriever(store, data="internal"),
            "GuardedCallable(...) (direct)": lambda: GuardedCallable(
                guard,
                answer,
                model="gpt-4.1",
                endpoint=None,
                system_prompt=None,
            ),
            "guard.llm(function)": lambda: guard.llm(answer, model="gpt-4.1"),
            "guarded_tool decorator (direct)": lambda: direct_tool(add),
            "guard.tool(...)(function)": lambda: guard.tool(name="add", data="public")(
                add
            ),
        }
        results = compare(
            wraps,
            baseline="langchain guard_with_options (direct)",
            number=200,
            repeat=7,
        )
    print_table("dispatch: wrapping through the guard vs the integration", results)
