"""Guarded LangChain tools against the real langchain_core: every route,
kept metadata, results through the ceiling and the output pipeline, and the
principal from RunnableConfig."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, tool
from pydantic import BaseModel

from aiinvariants import (
    AccessDenied,
    AuthenticationRequired,
    Guard,
    OutputBlocked,
    Policy,
    PolicyError,
    Principal,
    ScopeDenied,
    acting_as,
)
from aiinvariants.audit import capture
from aiinvariants.integrations.langchain_tools import (
    GuardedLangChainTool,
    guard_tool,
)

POLICY = Policy.from_dict({"clearance": {"scopes": {"kb:read": "internal"}}})
ALICE = Principal(subject="alice", authenticated=True, scopes={"kb:read"})
BOB = Principal(subject="bob", authenticated=True)
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


class Query(BaseModel):
    """Search input."""

    query: str
    limit: int = 3


def search(query: str, limit: int = 3) -> str:
    return f"{limit} results for {query}"


async def asearch(query: str, limit: int = 3) -> str:
    return f"{limit} async results for {query}"


def structured() -> StructuredTool:
    return StructuredTool.from_function(
        func=search,
        coroutine=asearch,
        name="search_kb",
        description="Search the knowledge base.",
        args_schema=Query,
        return_direct=True,
    )


def test_metadata_is_kept() -> None:
    inner = structured()
    guarded = guard_tool(Guard(POLICY), inner, scopes=["kb:read"], data="internal")
    assert isinstance(guarded, BaseTool)
    assert guarded.name == "search_kb"
    assert guarded.description == inner.description
    assert guarded.args_schema is Query
    assert guarded.args == inner.args
    assert guarded.return_direct is True
    assert guarded.response_format == "content"
    assert guarded.tool_call_schema.model_json_schema() == (
        inner.tool_call_schema.model_json_schema()
    )


ROUTES = {
    "invoke": lambda t: t.invoke({"query": "vpn"}),
    "run": lambda t: t.run({"query": "vpn"}),
    "batch": lambda t: t.batch([{"query": "vpn"}])[0],
    "stream": lambda t: next(iter(t.stream({"query": "vpn"}))),
    "tool_call": lambda t: (
        t.invoke(
            {"name": t.name, "args": {"query": "vpn"}, "id": "1", "type": "tool_call"}
        ).content
    ),
    "ainvoke": lambda t: asyncio.run(t.ainvoke({"query": "vpn"})),
    "arun": lambda t: asyncio.run(t.arun({"query": "vpn"})),
    "abatch": lambda t: asyncio.run(t.abatch([{"query": "vpn"}]))[0],
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_is_checked_and_runs_for_the_user(route: str) -> None:
    guarded = guard_tool(
        Guard(POLICY), structured(), scopes=["kb:read"], data="internal"
    )
    with capture() as events, acting_as(ALICE):
        result = ROUTES[route](guarded)
    assert "results for vpn" in result
    # Exactly one decision per call, whatever the route.
    assert [e.reason for e in events if e.reason == "tool_allowed"] == ["tool_allowed"]
    with acting_as(BOB), pytest.raises(ScopeDenied):
        ROUTES[route](guarded)


def test_tool_call_input_returns_a_tool_message() -> None:
    guarded = guard_tool(
        Guard(POLICY), structured(), scopes=["kb:read"], data="internal"
    )
    call = {"name": "search_kb", "args": {"query": "a"}, "id": "x", "type": "tool_call"}
    with acting_as(ALICE):
        message = guarded.invoke(call)
    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "x"


def test_subclass_tool_with_run_and_arun() -> None:
    class Lookup(BaseTool):
        name: str = "lookup"
        description: str = "Look a thing up."

        def _run(self, thing: str) -> str:
            return f"sync {thing}"

        async def _arun(self, thing: str) -> str:
            return f"async {thing}"

    guarded = guard_tool(Guard(POLICY), Lookup(), data="public")
    with acting_as(ALICE):
        assert guarded.invoke({"thing": "t"}) == "sync t"
        assert guarded.invoke("t") == "sync t"
        assert asyncio.run(guarded.ainvoke({"thing": "t"})) == "async t"
    assert "thing" in guarded.args


def test_sync_only_tool_runs_async_in_a_thread_as_the_user() -> None:
    seen: list[str] = []

    @tool
    def who_am_i() -> str:
        """Report the principal."""
        from aiinvariants import current_principal

        seen.append(current_principal().subject)
        return "ok"

    guarded = guard_tool(Guard(POLICY), who_am_i, data="public")

    async def go() -> Any:
        async with acting_as(ALICE):
            return await guarded.ainvoke({})

    assert asyncio.run(go()) == "ok"
    assert seen == ["alice"]


def test_content_and_artifact_both_pass_ceiling_and_pipeline() -> None:
    @tool(response_format="content_and_artifact")
    def rows(table: str) -> tuple[str, list[dict[str, str]]]:
        """Rows of a table."""
        return "2 rows", [
            {"classification": "public", "note": "mail a@example.com"},
            {"classification": "public", "note": "fine"},
        ]

    guarded = guard_tool(Guard(POLICY), rows, data="public")
    call = {"name": "rows", "args": {"table": "t"}, "id": "1", "type": "tool_call"}
    with acting_as(ALICE):
        message = guarded.invoke(call)
    assert message.content == "2 rows"
    assert "a@example.com" not in repr(message.artifact)
    assert message.artifact[1]["note"] == "fine"


def test_artifact_above_the_declared_level_is_withheld() -> None:
    @tool(response_format="content_and_artifact")
    def leak(q: str) -> tuple[str, dict[str, str]]:
        """Content says public, the artifact is not."""
        return "nothing to see", {"classification": "restricted", "text": "board"}

    guarded = guard_tool(Guard(POLICY), leak, data="public")
    with capture() as events, acting_as(ALICE), pytest.raises(AccessDenied) as info:
        guarded.invoke(
            {"name": "leak", "args": {"q": "x"}, "id": "1", "type": "tool_call"}
        )
    assert info.value.code == "mislabelled_source"
    assert "board" not in repr([e.to_dict() for e in events])


def test_a_secret_in_a_result_is_blocked_and_never_travels() -> None:
    @tool
    def config_dump(section: str) -> str:
        """Dump a config section."""
        return f"token = {TOKEN}"

    guarded = guard_tool(Guard(POLICY), config_dump, data="public")
    with capture() as events, acting_as(ALICE), pytest.raises(OutputBlocked) as info:
        guarded.invoke({"section": "github"})
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert all(TOKEN not in (str(e) + repr(e)) for e in chain)
    assert all(TOKEN not in repr(e.to_dict()) for e in events)


def test_callbacks_see_start_end_and_errors() -> None:
    class Recorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
            self.seen.append("start")

        def on_tool_end(self, *args: Any, **kwargs: Any) -> None:
            self.seen.append("end")

        def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
            self.seen.append(type(error).__name__)

    rec = Recorder()
    guarded = guard_tool(
        Guard(POLICY), structured(), scopes=["kb:read"], data="internal"
    )
    with acting_as(ALICE):
        guarded.invoke({"query": "q"}, config={"callbacks": [rec]})
    with acting_as(BOB), pytest.raises(ScopeDenied):
        guarded.invoke({"query": "q"}, config={"callbacks": [rec]})
    assert rec.seen == ["start", "end", "start", "ScopeDenied"]


def test_guard_tool_method_accepts_a_langchain_tool() -> None:
    guard = Guard(POLICY)
    guarded = guard.tool(scopes=["kb:read"], data="internal")(structured())
    assert isinstance(guarded, GuardedLangChainTool)
    with acting_as(BOB), pytest.raises(ScopeDenied):
        guarded.invoke({"query": "q"})


def test_forbidden_code_is_refused_at_wrap_time() -> None:
    @tool
    def open_floodgate(gate: int) -> str:
        """Open a floodgate."""
        return "opened"

    guard = Guard(POLICY)
    with pytest.raises(PolicyError, match="life_safety"):
        guard_tool(guard, open_floodgate, capabilities=["life_safety"])
    # The same code under another tool name stays refused.
    again = StructuredTool.from_function(
        func=open_floodgate.func, name="check_level", description="Harmless."
    )
    with pytest.raises(PolicyError, match="life_safety"):
        guard_tool(guard, again)


class TestPrincipalFromConfig:
    def guarded(self, *, option: bool) -> BaseTool:
        return guard_tool(
            Guard(POLICY),
            structured(),
            scopes=["kb:read"],
            data="internal",
            principal_from_config=option,
        )

    def test_the_config_principal_is_used(self) -> None:
        tool_ = self.guarded(option=True)
        out = tool_.invoke({"query": "q"}, {"configurable": {"principal": ALICE}})
        assert "results for q" in out
        with pytest.raises(ScopeDenied):
            tool_.invoke({"query": "q"}, {"configurable": {"principal": BOB}})

    def test_with_config_carries_it(self) -> None:
        bound = self.guarded(option=True).with_config(configurable={"principal": ALICE})
        assert "results" in bound.invoke({"query": "q"})

    def test_without_the_option_a_config_principal_is_refused(self) -> None:
        tool_ = self.guarded(option=False)
        with pytest.raises(PolicyError, match="principal_from_config=True"):
            tool_.invoke({"query": "q"}, {"configurable": {"principal": ALICE}})
        with acting_as(BOB), pytest.raises(PolicyError, match="principal_from_config"):
            tool_.invoke({"query": "q"}, {"configurable": {"principal": ALICE}})

    def test_without_the_option_the_same_principal_in_both_places_is_fine(
        self,
    ) -> None:
        tool_ = self.guarded(option=False)
        with acting_as(ALICE):
            out = tool_.invoke({"query": "q"}, {"configurable": {"principal": ALICE}})
        assert "results" in out

    def test_ambient_and_config_principals_that_differ_are_refused(self) -> None:
        tool_ = self.guarded(option=True)
        with acting_as(BOB), pytest.raises(AccessDenied) as info:
            tool_.invoke({"query": "q"}, {"configurable": {"principal": ALICE}})
        assert info.value.code == "principal_conflict"
        with acting_as(ALICE):
            out = tool_.invoke({"query": "q"}, {"configurable": {"principal": ALICE}})
        assert "results" in out

    @pytest.mark.parametrize(
        "value",
        ["alice", {"subject": "alice", "authenticated": True}, 42, ["alice"]],
        ids=["string", "dict", "int", "list"],
    )
    def test_anything_but_a_principal_is_refused(self, value: object) -> None:
        tool_ = self.guarded(option=True)
        with pytest.raises(AuthenticationRequired) as info:
            tool_.invoke({"query": "q"}, {"configurable": {"principal": value}})
        assert info.value.code == "principal_invalid"
