"""The one dispatch table: each framework object goes to its integration.

Real objects of every supported framework are routed (subclasses too), the
guard method then returns the integration's guarded object, and an object
no row takes is refused with ``unsupported_object``. Deciding reads class
names only: a subprocess shows that neither ``import aiinvariants`` nor a
dispatch that finds nothing imports any framework.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from aiinvariants import Guard, Policy, PolicyError, Principal, acting_as
from aiinvariants.integrations._dispatch import UNSUPPORTED, route_of, routes
from retrieval_support import embed

POLICY = Policy.from_dict(
    {
        "models": {"allow": ["gpt-4.1*", "claude-*", "*.anthropic.claude-*"]},
        "regions": {"allow": None},
        "tools": {"add": {"data": "public"}, "lookup": {"data": "public"}},
    }
)
ALICE = Principal(subject="alice", authenticated=True)


@pytest.fixture
def guard() -> Iterator[Guard]:
    with Guard(POLICY) as built, acting_as(ALICE):
        yield built


def _openai() -> Any:
    import openai

    return openai.OpenAI(api_key="k")


def _async_openai() -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="k")


def _azure() -> Any:
    import openai

    return openai.AzureOpenAI(
        api_key="k",
        api_version="2024-10-21",
        azure_endpoint="https://r.openai.azure.com",
    )


def _anthropic() -> Any:
    import anthropic

    return anthropic.Anthropic(api_key="k")


def _anthropic_bedrock() -> Any:
    import anthropic

    return anthropic.AnthropicBedrock(
        aws_region="eu-central-1", aws_access_key="a", aws_secret_key="b"
    )


def _anthropic_vertex() -> Any:
    import anthropic

    return anthropic.AnthropicVertex(
        region="europe-west1", project_id="p", access_token="t"
    )


def _boto() -> Any:
    import boto3

    return boto3.client(
        "bedrock-runtime",
        region_name="eu-central-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )


def _chat_openai() -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(api_key="k", model="gpt-4.1")  # type: ignore[arg-type]


def _chat_anthropic() -> Any:
    from langchain_anthropic import ChatAnthropic

    return ChatAnthropic(api_key="k", model="claude-sonnet-4-5")  # type: ignore[arg-type,call-arg]


def _chat_bedrock() -> Any:
    from langchain_aws import ChatBedrockConverse

    return ChatBedrockConverse(
        client=_boto(),
        model="eu.anthropic.claude-sonnet-4-5",
        region_name="eu-central-1",
    )


LLM_CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "openai": (_openai, "openai:guard_openai"),
    "async-openai": (_async_openai, "openai:guard_openai"),
    "azure-openai (subclass)": (_azure, "openai:guard_openai"),
    "anthropic": (_anthropic, "anthropic:guard_anthropic"),
    "anthropic-bedrock": (_anthropic_bedrock, "anthropic:guard_anthropic"),
    "anthropic-vertex": (_anthropic_vertex, "anthropic:guard_anthropic"),
    "boto3 bedrock-runtime": (_boto, "bedrock:guard_bedrock"),
    "langchain ChatOpenAI": (_chat_openai, "langchain_chat:guard_chat_openai"),
    "langchain ChatAnthropic": (
        _chat_anthropic,
        "langchain_chat:guard_chat_anthropic",
    ),
    "langchain-aws": (_chat_bedrock, "bedrock:guard_bedrock"),
}


@pytest.mark.parametrize("case", sorted(LLM_CASES))
def test_llm_clients_go_to_their_integration(guard: Guard, case: str) -> None:
    make, target = LLM_CASES[case]
    client = make()
    row = route_of("llm", client)
    assert row is not None
    assert row.target == "aiinvariants.integrations." + target
    guarded: Any = guard.llm(client)  # type: ignore[call-overload]
    if target.startswith(("openai", "anthropic")):
        # the SDK's own class, checked at the wire
        assert isinstance(guarded, type(client))
        assert guarded.checks.guard is guard
        closed = client.close()
        if inspect.isawaitable(closed):
            asyncio.run(closed)
    elif case == "boto3 bedrock-runtime":
        from aiinvariants.integrations.bedrock import GuardedBedrock

        assert isinstance(guarded, GuardedBedrock)
    else:
        assert type(guarded) is type(client)


def test_a_plain_callable_is_the_generic_llm_guard(guard: Guard) -> None:
    from aiinvariants.llm import GuardedCallable

    def answer(prompt: str, *, model: str = "gpt-4.1") -> str:
        return "fine"

    guarded = guard.llm(answer, model="gpt-4.1", endpoint="https://api.openai.com/v1")
    assert isinstance(guarded, GuardedCallable)
    assert guarded("hi") == "fine"
    assert route_of("llm", answer) is None


def test_model_and_endpoint_are_refused_for_an_sdk_client(guard: Guard) -> None:
    client = _openai()
    with pytest.raises(PolicyError, match="plain callables"):
        guard.llm(client, model="gpt-4.1")  # type: ignore[call-overload]
    client.close()


def _lc_store() -> Any:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    return InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=8))


def _lc_store_subclass() -> Any:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    class MyStore(InMemoryVectorStore):
        pass

    return MyStore(embedding=DeterministicFakeEmbedding(size=8))


def _lc_retriever() -> Any:
    return _lc_store().as_retriever()


def _lc_custom_retriever() -> Any:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class Fixed(BaseRetriever):
        def _get_relevant_documents(self, query: str, **_: Any) -> list[Document]:
            return [Document("x", metadata={"classification": "public"})]

    return Fixed()


def _llama_index() -> Any:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    return VectorStoreIndex(nodes=[], embed_model=MockEmbedding(embed_dim=4))


def _llama_retriever() -> Any:
    return _llama_index().as_retriever()


RETRIEVER_CASES: dict[str, tuple[Callable[[], Any], str, str]] = {
    "langchain store": (_lc_store, "langchain", "SecureRetriever"),
    "langchain store subclass": (_lc_store_subclass, "langchain", "SecureRetriever"),
    "langchain VectorStoreRetriever": (_lc_retriever, "langchain", "SecureRetriever"),
    "langchain custom retriever": (
        _lc_custom_retriever,
        "langchain",
        "SecureRetriever",
    ),
    "llamaindex index": (_llama_index, "llamaindex", "SecureLlamaRetriever"),
    "llamaindex retriever": (_llama_retriever, "llamaindex", "SecureLlamaRetriever"),
}


@pytest.mark.parametrize("case", sorted(RETRIEVER_CASES))
def test_retrievers_go_to_their_integration(guard: Guard, case: str) -> None:
    make, module, wrapper = RETRIEVER_CASES[case]
    inner = make()
    row = route_of("retriever", inner)
    assert row is not None
    assert row.target == f"aiinvariants.integrations.{module}:guard_with_options"
    wrapped: Any = guard.retriever(inner, data="internal", k=2)  # type: ignore[call-overload]
    assert type(wrapped).__name__ == wrapper
    assert wrapped.search.k == 2
    assert wrapped.search.audit is guard.audit


def test_qdrant_is_reached_through_guard_retriever(guard: Guard) -> None:
    qdrant_client = pytest.importorskip("qdrant_client")
    from qdrant_client import models

    from aiinvariants.integrations.qdrant import SecureQdrantRetriever

    client = qdrant_client.QdrantClient(":memory:")
    client.create_collection(
        "kb",
        vectors_config=models.VectorParams(size=32, distance=models.Distance.COSINE),
    )
    client.upsert(
        "kb",
        points=[
            models.PointStruct(
                id=1, vector=embed("a"), payload={"classification": "public"}
            ),
            models.PointStruct(
                id=2, vector=embed("a"), payload={"classification": "restricted"}
            ),
        ],
    )
    wrapped = guard.retriever(client, collection="kb", embed=embed, k=3)
    assert isinstance(wrapped, SecureQdrantRetriever)
    found = wrapped.invoke("a")
    assert [p.payload for p in found] == [{"classification": "public"}]
    assert wrapped.search.source == "qdrant:kb"
    with pytest.raises(PolicyError, match="collection="):
        guard.retriever(client, embed=embed)  # type: ignore[call-overload]
    with pytest.raises(PolicyError, match="principal_from_config"):
        guard.retriever(  # type: ignore[call-overload]
            client, collection="kb", embed=embed, principal_from_config=True
        )
    client.close()


def _lc_tool() -> Any:
    from langchain_core.tools import tool

    @tool
    def lookup(q: str) -> str:
        """Look something up."""
        return q

    return lookup


def _agents_tool() -> Any:
    from agents import function_tool

    @function_tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return add


def test_tools_go_to_their_integration(guard: Guard) -> None:
    from agents import FunctionTool

    from aiinvariants.integrations.langchain_tools import GuardedLangChainTool

    lc = _lc_tool()
    row = route_of("tool", lc)
    assert row is not None
    assert row.target.endswith("langchain_tools:guard_declared")
    guarded_lc = guard.tool(data="public")(lc)
    assert isinstance(guarded_lc, GuardedLangChainTool)
    assert guarded_lc.invoke({"q": "hi"}) == "hi"

    agent_tool = _agents_tool()
    row = route_of("tool", agent_tool)
    assert row is not None
    assert row.target.endswith("openai_agents:guard_declared")
    same = guard.tool()(agent_tool)
    assert same is agent_tool
    assert isinstance(same, FunctionTool)
    assert type(same.on_invoke_tool).__name__ == "GuardedInvoker"

    def plain(x: int) -> int:
        return x

    assert route_of("tool", plain) is None
    guarded_plain = guard.tool(name="add", data="public")(plain)
    assert guarded_plain(3) == 3
    assert guarded_plain.spec.name == "add"


def test_mcp_sessions_go_to_the_client_guard(guard: Guard) -> None:
    import mcp
    from mcp.client.client import Client

    from aiinvariants.integrations.mcp import GuardedClientSession

    send, receive = anyio.create_memory_object_stream[Any](1)
    session = mcp.ClientSession(receive, send)
    row = route_of("tool", session)
    assert row is not None
    assert row.target.endswith("_mcp_client:guard_session")
    guarded = guard.tool()(session)
    assert isinstance(guarded, GuardedClientSession)
    with pytest.raises(PolicyError, match="takes no declaration"):
        guard.tool(scopes=["kb:read"])(mcp.ClientSession(receive, send))
    client = Client("http://127.0.0.1:9/mcp")
    client_row = route_of("tool", client)
    assert client_row is not None
    assert client_row.target == row.target
    with pytest.raises(PolicyError, match="entered mcp Client"):
        guard.tool()(client)
    send.close()
    receive.close()


class Unknown:
    pass


@pytest.mark.parametrize(
    ("method", "obj"),
    [
        ("llm", Unknown()),
        ("llm", 42),
        ("llm", Unknown),  # a class is callable, but not an LLM function
        ("retriever", Unknown()),
        ("retriever", lambda q: []),
        ("tool", Unknown()),
        ("tool", "send_email"),
        ("tool", 3.5),
    ],
)
def test_unknown_objects_are_refused_with_the_stable_code(
    guard: Guard, method: str, obj: object
) -> None:
    entry: Any = guard.tool() if method == "tool" else getattr(guard, method)
    with pytest.raises(PolicyError) as caught:
        entry(obj)
    assert caught.value.code == UNSUPPORTED
    message = str(caught.value)
    assert f"guard.{method}" in message
    assert type(obj).__qualname__ in message  # names the type
    assert "it takes:" in message  # and the supported kinds


def test_every_row_names_a_real_class_where_its_framework_is_installed() -> None:
    # A framework release that moves a class shows here, not as a refusal
    # of its objects in production.
    checked = 0
    for row in routes():
        module, _, qualname = row.cls.rpartition(".")
        while module and module not in sys.modules:
            try:
                importlib.import_module(module)
                break
            except ImportError:
                module, _, head = module.rpartition(".")
                qualname = f"{head}.{qualname}"
        if not module:
            continue  # the framework is not installed
        found: Any = sys.modules[module]
        for part in qualname.split("."):
            found = getattr(found, part)
        assert isinstance(found, type)
        assert f"{found.__module__}.{found.__qualname__}" == row.cls
        checked += 1
    assert checked == len(routes())  # the dev extra installs every framework


_PROBE = """
import sys
import aiinvariants
from aiinvariants import Guard, Policy, Principal, PolicyError, acting_as

guard = Guard(Policy.from_dict({"models": {"deny": ["*deepseek*"]}}))
with acting_as(Principal(subject="a", authenticated=True)):
    guard.llm(lambda prompt: "ok", model="m")("x")
    guard.tool(data="public")(lambda: 1)()
    for kind in ("llm", "retriever"):
        try:
            getattr(guard, kind)(object())
        except PolicyError as exc:
            assert exc.code == "unsupported_object"
OPTIONAL = OPTIONAL_NAMES
print("\\n".join(m for m in OPTIONAL if m in sys.modules))
"""


def test_dispatch_imports_no_framework_it_does_not_choose() -> None:
    from test_public_api import OPTIONAL

    loaded = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("OPTIONAL_NAMES", repr(OPTIONAL))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert loaded == []
