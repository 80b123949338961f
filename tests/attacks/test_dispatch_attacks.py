"""Attacks on the one way into the integrations (dispatch and shared options).

Classes of attack, each tried through every entry point that reaches it:

- **borrowed identity**: an object whose class takes a framework class's
  ``__module__``/``__qualname__``, or fakes ``__class__``, must not be
  routed to an integration (``unsupported_object``);
- **subclass by MRO**: a subclass of a supported store is routed to its
  integration and keeps every check (a store that ignores the pushed-down
  filter still returns nothing the principal may not read);
- **one option, every door**: the same malformed retrieval option or tool
  declaration is refused, naming the argument, by ``guard.retriever``,
  ``secure_retriever``, the LangChain/LlamaIndex/Qdrant entry points,
  ``guard.tool``, ``register_tool`` and the MCP/FastMCP/LangChain/Agents
  declarations; the exposure rule and forbidden capabilities hold on each;
- **declarations dropped or misapplied**: a declaration the integration
  could not honour (an MCP session's tools, a FunctionTool under another
  name, a LangChain-only option on another framework) is refused rather
  than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import Guard, Policy, PolicyError, Principal, acting_as
from aiinvariants._options import RetrievalOptions, ToolDeclaration
from aiinvariants.integrations._dispatch import UNSUPPORTED, route_of
from retrieval_support import embed

POLICY = Policy.from_dict(
    {
        "exposure": "public",
        "tools": {
            "open_floodgate": {"capabilities": ["life_safety"]},
            "lookup": {"data": "public"},
        },
    }
)
ADMIN = Principal(subject="root", authenticated=True, clearance="restricted")
ANON = Principal(subject="anonymous")


def _borrowing(module: str, qualname: str, *, callable_: bool = False) -> object:
    namespace: dict[str, Any] = {"__module__": module, "__qualname__": qualname}
    if callable_:
        namespace["__call__"] = lambda self, *a, **k: "x"
    return type(qualname.rsplit(".", 1)[-1], (), namespace)()


BORROWED = [
    ("llm", "openai", "OpenAI"),
    ("llm", "anthropic", "Anthropic"),
    ("llm", "botocore.client", "BaseClient"),
    ("llm", "langchain_openai.chat_models.base", "BaseChatOpenAI"),
    ("retriever", "langchain_core.retrievers", "BaseRetriever"),
    ("retriever", "langchain_core.vectorstores.base", "VectorStore"),
    ("retriever", "llama_index.core.base.base_retriever", "BaseRetriever"),
    ("retriever", "qdrant_client.qdrant_client", "QdrantClient"),
    ("tool", "langchain_core.tools.base", "BaseTool"),
    ("tool", "agents.tool", "FunctionTool"),
    ("tool", "mcp.client.session", "ClientSession"),
    ("llm", "not_installed_framework", "Client"),
]


@pytest.mark.parametrize(("kind", "module", "qualname"), BORROWED)
def test_a_borrowed_class_name_routes_nowhere(
    kind: str, module: str, qualname: str
) -> None:
    impostor = _borrowing(module, qualname)
    assert route_of(kind, impostor) is None  # type: ignore[arg-type]
    guard = Guard(POLICY)
    entry: Any = guard.tool() if kind == "tool" else getattr(guard, kind)
    with pytest.raises(PolicyError) as caught:
        entry(impostor)
    assert caught.value.code == UNSUPPORTED


def test_a_faked_class_attribute_is_not_believed() -> None:
    import openai
    from langchain_core.retrievers import BaseRetriever

    class Liar:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return openai.OpenAI

    class RetrieverLiar:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return BaseRetriever

    assert isinstance(Liar(), openai.OpenAI)  # what isinstance would believe
    guard = Guard(POLICY)
    for obj, method in ((Liar(), guard.llm), (RetrieverLiar(), guard.retriever)):
        with pytest.raises(PolicyError) as caught:
            method(obj)  # type: ignore[operator]
        assert caught.value.code == UNSUPPORTED


def test_classes_and_already_guarded_objects_are_not_wrapped_again() -> None:
    import openai

    guard = Guard(POLICY)
    # a class is callable, but it is no LLM function
    with pytest.raises(PolicyError) as caught:
        guard.llm(openai.OpenAI)  # type: ignore[call-overload]
    assert caught.value.code == UNSUPPORTED
    raw = openai.OpenAI(api_key="k")
    guarded = guard.llm(raw)
    with pytest.raises(PolicyError, match="already guarded"):
        guard.llm(guarded)
    raw.close()


def test_a_subclassed_store_that_ignores_the_filter_still_leaks_nothing() -> None:
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    class IgnoresFilter(InMemoryVectorStore):
        def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> Any:
            kwargs.pop("filter", None)  # drops the pushed-down label filter
            return super().similarity_search(query, k=k, **kwargs)

    store = IgnoresFilter(embedding=DeterministicFakeEmbedding(size=8))
    store.add_documents(
        [
            Document("menu", metadata={"classification": "public"}),
            Document("salaries", metadata={"classification": "restricted"}),
        ]
    )
    guard = Guard(POLICY)
    wrapped = guard.retriever(store, data="restricted", requires_authentication=True)
    with acting_as(ADMIN):
        assert {d.page_content for d in wrapped.invoke("x")} == {"menu", "salaries"}
    public = guard.retriever(store, data="public", k=5)
    with acting_as(ANON):
        docs = public.invoke("x")
    assert [d.page_content for d in docs] == ["menu"]
    assert public.search.last_report is not None
    assert public.search.last_report.post_filter_reason == "store_not_expressible"


# -- one option, every door ---------------------------------------------------


def _lc_store() -> Any:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    return InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=8))


def _llama_index() -> Any:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    return VectorStoreIndex(nodes=[], embed_model=MockEmbedding(embed_dim=4))


def _qdrant() -> Any:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "kb",
        vectors_config=models.VectorParams(size=32, distance=models.Distance.COSINE),
    )
    return client


def _door(name: str) -> Callable[..., Any]:
    guard = Guard(POLICY)

    def via_guard(inner: Any, **kw: Any) -> Any:
        return guard.retriever(inner, **kw)

    def via_secure_retriever(inner: Any, **kw: Any) -> Any:
        from aiinvariants._retrieval import secure_retriever

        return secure_retriever(guard, inner, **kw)

    def via_langchain(inner: Any, **kw: Any) -> Any:
        from aiinvariants.integrations.langchain import guard_retriever

        return guard_retriever(guard, inner, **kw)

    def via_secure_retriever_class(inner: Any, **kw: Any) -> Any:
        from aiinvariants.integrations.langchain import SecureRetriever

        return SecureRetriever(guard=guard, vectorstore=inner, **kw)

    def via_llamaindex(inner: Any, **kw: Any) -> Any:
        from aiinvariants.integrations.llamaindex import guard_retriever

        return guard_retriever(guard, inner, **kw)

    def via_qdrant(inner: Any, **kw: Any) -> Any:
        from aiinvariants.integrations.qdrant import guard_qdrant

        return guard_qdrant(guard, inner, "kb", embed=embed, **kw)

    def via_guard_qdrant(inner: Any, **kw: Any) -> Any:
        return guard.retriever(inner, collection="kb", embed=embed, **kw)

    return {
        "guard.retriever(langchain)": via_guard,
        "secure_retriever(langchain)": via_secure_retriever,
        "langchain.guard_retriever": via_langchain,
        "SecureRetriever(...)": via_secure_retriever_class,
        "guard.retriever(llamaindex)": via_guard,
        "llamaindex.guard_retriever": via_llamaindex,
        "qdrant.guard_qdrant": via_qdrant,
        "guard.retriever(qdrant)": via_guard_qdrant,
    }[name]


DOORS: dict[str, Callable[[], Any]] = {
    "guard.retriever(langchain)": _lc_store,
    "secure_retriever(langchain)": _lc_store,
    "langchain.guard_retriever": _lc_store,
    "SecureRetriever(...)": _lc_store,
    "guard.retriever(llamaindex)": _llama_index,
    "llamaindex.guard_retriever": _llama_index,
    "qdrant.guard_qdrant": _qdrant,
    "guard.retriever(qdrant)": _qdrant,
}

BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"labels": "public"}, "labels="),  # a string is not a list of labels
    ({"labels": ["public", ""]}, "labels="),
    ({"k": 0}, "k="),
    ({"k": True}, "k="),
    ({"max_rounds": 0}, "max_rounds="),
    ({"cache_size": -1}, "cache_size="),
    ({"k": 10, "max_fetch": 5}, "max_fetch="),
    ({"requires_authentication": "yes"}, "requires_authentication="),
    ({"authorizer": object()}, "authorizer="),
]


@pytest.mark.parametrize("door", sorted(DOORS))
@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS, ids=repr)
def test_a_bad_retrieval_option_is_refused_at_every_door(
    door: str, options: dict[str, Any], named: str
) -> None:
    inner = DOORS[door]()
    with pytest.raises(PolicyError, match=named):
        _door(door)(inner, data="public", **options)


@pytest.mark.parametrize("door", sorted(DOORS))
def test_the_exposure_rule_holds_at_every_door(door: str) -> None:
    # public app, undeclared data (= the highest label), anonymous callers let in
    inner = DOORS[door]()
    with pytest.raises(PolicyError, match="the app is public"):
        _door(door)(inner)


@pytest.mark.parametrize(
    ("door", "option"),
    [
        ("guard.retriever(llamaindex)", {"principal_from_config": True}),
        ("guard.retriever(qdrant)", {"principal_from_config": True}),
        ("guard.retriever(langchain)", {"collection": "kb"}),
        ("guard.retriever(langchain)", {"embed": embed}),
        ("guard.retriever(llamaindex)", {"collection": "kb"}),
    ],
)
def test_an_option_another_framework_takes_is_refused_not_ignored(
    door: str, option: dict[str, Any]
) -> None:
    inner = DOORS[door]()
    with pytest.raises(PolicyError, match="is not supported for a"):
        _door(door)(inner, data="public", **option)


# -- tool declarations -------------------------------------------------------


def _fresh(name: str = "tool_fn") -> Callable[..., Any]:
    # Capabilities stick to code: every case compiles its own.
    namespace: dict[str, Any] = {}
    exec(  # noqa: S102 - fixed source, compiled afresh per case
        f"def {name}(q: str = 'x') -> str:\n    '''A tool.'''\n    return q\n",
        namespace,
    )
    fn: Callable[..., Any] = namespace[name]
    return fn


def _declare(door: str, guard: Guard, **kw: Any) -> Any:
    if door == "guard.tool(function)":
        return guard.tool(**kw)(_fresh())
    if door == "register_tool":
        from aiinvariants.tools import register_tool

        return register_tool(guard, _fresh(), **kw)
    if door == "guard.tool(langchain)":
        from langchain_core.tools import StructuredTool

        return guard.tool(**kw)(StructuredTool.from_function(_fresh()))
    if door == "langchain_tools.guard_tool":
        from langchain_core.tools import StructuredTool

        from aiinvariants.integrations.langchain_tools import guard_tool

        return guard_tool(guard, StructuredTool.from_function(_fresh()), **kw)
    if door == "guard.tool(agents)":
        from agents import function_tool

        return guard.tool(**kw)(function_tool(_fresh()))
    if door == "openai_agents.guard_function_tool":
        from agents import function_tool

        from aiinvariants.integrations.openai_agents import guard_function_tool

        kw.pop("name", None)
        return guard_function_tool(guard, function_tool(_fresh()), **kw)
    if door == "openai_agents.guarded_function_tool":
        from aiinvariants.integrations.openai_agents import guarded_function_tool

        kw.pop("name", None)
        return guarded_function_tool(guard, **kw)(_fresh())
    if door == "MCPGuard.tool":
        from mcp.server.mcpserver import MCPServer

        from aiinvariants.integrations.mcp import MCPGuard

        return MCPGuard(guard).tool(MCPServer("x"), **kw)(_fresh())
    if door == "FastMCPGuard.tool":
        from fastmcp import FastMCP

        from aiinvariants.integrations.fastmcp import FastMCPGuard

        return FastMCPGuard(guard).tool(FastMCP("x"), **kw)(_fresh())
    raise AssertionError(door)


TOOL_DOORS = [
    "guard.tool(function)",
    "register_tool",
    "guard.tool(langchain)",
    "langchain_tools.guard_tool",
    "guard.tool(agents)",
    "openai_agents.guard_function_tool",
    "openai_agents.guarded_function_tool",
    "MCPGuard.tool",
    "FastMCPGuard.tool",
]

BAD_DECLARATIONS: list[tuple[dict[str, Any], str]] = [
    ({"scopes": "tickets:read"}, "scopes="),  # would be eleven 1-letter scopes
    ({"any_scopes": "a b"}, "any_scopes="),
    ({"capabilities": "life_safety"}, "capabilities="),
    ({"capabilities": [""]}, "capabilities="),
    ({"exposure": "everyone"}, "exposure="),
    ({"untrusted_output": "no"}, "untrusted_output="),
    ({"data": ""}, "data="),
]


@pytest.mark.parametrize("door", TOOL_DOORS)
@pytest.mark.parametrize(("declared", "named"), BAD_DECLARATIONS, ids=repr)
def test_a_bad_declaration_is_refused_at_every_door(
    door: str, declared: dict[str, Any], named: str
) -> None:
    with pytest.raises(PolicyError, match=named):
        _declare(door, Guard(POLICY), **declared)


@pytest.mark.parametrize("door", TOOL_DOORS)
def test_a_forbidden_capability_is_refused_at_every_door(door: str) -> None:
    with pytest.raises(PolicyError, match="forbidden"):
        _declare(door, Guard(POLICY), capabilities=["life_safety"])


def test_a_function_tool_cannot_borrow_another_tools_declaration() -> None:
    from agents import function_tool

    # "lookup" is public in the policy; the model would call this one by
    # its own name, which the policy forbids
    floodgate = function_tool(_fresh("open_floodgate"))
    guard = Guard(POLICY)
    with pytest.raises(PolicyError, match="by its own name"):
        guard.tool(name="lookup")(floodgate)
    with pytest.raises(PolicyError, match="forbidden"):
        guard.tool()(floodgate)


def test_an_mcp_session_refuses_a_declaration_it_could_not_honour() -> None:
    import mcp

    send, receive = anyio.create_memory_object_stream[Any](1)
    guard = Guard(POLICY)
    for declared in (
        {"data": "public"},
        {"exposure": "public"},
        {"scopes": ["kb:read"]},
        {"name": "lookup"},
    ):
        with pytest.raises(PolicyError, match="takes no declaration"):
            guard.tool(**declared)(mcp.ClientSession(receive, send))
    send.close()
    receive.close()


# -- properties of the shared option objects ----------------------------------

names = st.one_of(
    st.text(max_size=6),
    st.lists(st.one_of(st.text(max_size=6), st.integers(), st.none()), max_size=4),
    st.tuples(st.text(max_size=6)),
    st.integers(),
    st.none(),
)


@settings(max_examples=200, deadline=None)
@given(value=names)
def test_label_and_scope_collections_are_kept_or_refused_never_reshaped(
    value: Any,
) -> None:
    for build in (
        lambda v: RetrievalOptions(labels=v).labels,
        lambda v: ToolDeclaration(scopes=v).scopes,
        lambda v: ToolDeclaration(capabilities=v).capabilities,
    ):
        try:
            kept = build(value)
        except PolicyError:
            continue
        if value is None:
            assert kept is None
            continue
        assert not isinstance(value, str)
        assert kept == tuple(value)
        assert all(isinstance(item, str) and item for item in kept)
