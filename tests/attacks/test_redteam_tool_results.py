"""Red team (issue #11 A): a declared data level caps every result shape.

Only a document list returned by a function (or coroutine) was read: a
``data="public"`` tool still handed confidential documents to a cleared user
when they came from a generator or async generator (passed through
unchecked), a plain function returning a generator or a coroutine, a dict
nesting the documents (``{"results": [...]}``), lists nested three deep, a
dataclass, pydantic model or plain object, a LangChain ``ToolMessage``
artifact, a dict view or plain iterator, JSON text or bytes of the documents,
or a label under a variant key (``Classification``). Each is now withheld
with ``mislabelled_source``, in process and on an MCP server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import ToolMessage
from pydantic import BaseModel

from aiinvariants import AccessDenied, Guard, Policy, Principal, acting_as
from aiinvariants.audit import MemorySink

FULLWIDTH_KEY = "".join(chr(ord(c) + 0xFEE0) for c in "classification")
CLEARED = Principal(subject="ceo", authenticated=True, clearance="restricted")


def _doc(label: str = "confidential", key: str = "classification") -> Document:
    return Document(page_content="Q3 salaries", metadata={key: label})


@dataclasses.dataclass
class Hits:
    docs: list[Document]


class Holder:
    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents
        self.itself = self  # a cycle is read once


class Answer(BaseModel):
    docs: list[Document]


def _gen() -> Iterator[Document]:
    yield _doc("public")
    yield _doc()


async def _agen() -> AsyncIterator[Document]:
    yield _doc()


async def _coro() -> list[Document]:
    return [_doc()]


SHAPES: dict[str, Callable[..., Any]] = {
    "generator_function": _gen,
    "async_generator_function": _agen,
    "function_returning_generator": lambda: (d for d in [_doc()]),
    "function_returning_coroutine": lambda: _coro(),
    "nested_dict": lambda: {"results": [_doc()]},
    "lists_three_deep": lambda: [[[_doc()]]],
    "dataclass": lambda: Hits([_doc()]),
    "pydantic_model": lambda: Answer(docs=[_doc()]),
    "tool_message_artifact": lambda: ToolMessage(
        content="see artifact", tool_call_id="1", artifact=[_doc()]
    ),
    "json_text": lambda: json.dumps(
        [{"page_content": "Q3", "metadata": {"classification": "confidential"}}]
    ),
    "label_key_in_another_case": lambda: [_doc(key="Classification")],
    "plain_object_attribute": lambda: Holder([_doc()]),
    "json_bytes": lambda: json.dumps(
        [{"metadata": {"classification": "restricted"}}]
    ).encode(),
    "dict_items_view": lambda: {"hit": _doc()}.items(),
    "plain_iterator": lambda: iter([_doc()]),
    "label_key_fullwidth": lambda: [_doc(key=FULLWIDTH_KEY)],
}


def _collect(result: Any) -> Any:
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    if hasattr(result, "__anext__"):

        async def drain() -> list[Any]:
            return [item async for item in result]

        return asyncio.run(drain())
    if hasattr(result, "__next__"):
        return list(result)
    return result


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_result_above_the_declared_level_is_withheld(shape: str) -> None:
    memory = MemorySink()
    guard = Guard(Policy(exposure="public"), sinks=[memory])
    tool = guard.tool(name=f"search_{shape}", data="public", exposure="public")(
        SHAPES[shape]
    )
    with acting_as(CLEARED), pytest.raises(AccessDenied) as caught:
        _collect(tool())
    assert caught.value.code == "mislabelled_source"
    assert any(e.reason == "mislabelled_source" for e in memory.events)


def test_public_results_in_every_shape_still_flow() -> None:
    guard = Guard(Policy(exposure="public"))
    tool = guard.tool(name="search_public", data="public", exposure="public")(
        lambda: {"results": [[_doc("public")]], "meta": Hits([_doc("public")])}
    )
    with acting_as(CLEARED):
        assert tool()["results"][0][0].metadata["classification"] == "public"


def test_generator_stops_before_the_item_above_the_level() -> None:
    guard = Guard(Policy(exposure="public"))
    tool = guard.tool(name="stream_docs", data="public", exposure="public")(_gen)
    seen: list[str] = []

    def drain() -> None:
        for doc in tool():
            seen.append(doc.metadata["classification"])

    with acting_as(CLEARED), pytest.raises(AccessDenied):
        drain()
    assert seen == ["public"]


def test_nested_result_is_withheld_on_an_mcp_server() -> None:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from aiinvariants.integrations.mcp import MCPGuard

    guard = Guard(Policy(exposure="public"))
    server: MCPServer[Any] = MCPServer("x")
    mcp_guard = MCPGuard(guard, allow_anonymous=True)

    @mcp_guard.tool(server, name="search_mcp", data="public", exposure="public")
    def search_mcp() -> dict[str, Any]:
        doc = {"text": "Q3 salaries", "metadata": {"classification": "confidential"}}
        return {"results": [doc]}

    with pytest.raises(ToolError, match="mislabelled_source"):
        asyncio.run(server.call_tool("search_mcp", {}))
