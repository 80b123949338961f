"""Routes around a guarded Agents SDK function tool, by class.

Each test reaches a guarded tool's effect another way than the happy path
(direct invocation, copies, clones, handoffs, nested agents, argument
tricks, names the model invents, output shapes) and asserts the secure
outcome and its stable code: the body does not run, or its result is
screened, and the denial is audited without a secret.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from agents import (
    Agent,
    FunctionTool,
    ModelBehaviorError,
    OpenAIChatCompletionsModel,
    Runner,
    ToolOutputText,
    function_tool,
    handoff,
    set_tracing_disabled,
)
from agents.tool_context import ToolContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI

from aiinvariants import Guard, Policy, PolicyError, Principal, acting_as
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.openai_agents import (
    guard_agent,
    guard_function_tool,
    guarded_function_tool,
)
from llm_support import LLMServer, _close_clients, _signed_in, llm_server

__all__ = ["_close_clients", "_signed_in", "llm_server"]

set_tracing_disabled(True)

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
READER = Principal(
    subject="reader", authenticated=True, scopes=frozenset({"kb:read", "pay:read"})
)
NOBODY = Principal(subject="nobody", authenticated=True)


class World:
    def __init__(self, server: LLMServer) -> None:
        self.server = server
        self.sink = MemorySink()
        self.guard = Guard(
            Policy(
                models={"allow": ["gpt-4.1*"]},
                regions={"allow": ["eu-*"], "declared": {server.url: "eu-west-1"}},
                tools={
                    "pay": {"scopes": ["pay:read"], "data": "public"},
                    "ask_sub": {"data": "public"},
                },
            ),
            sinks=[self.sink],
        )
        http = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
        self.client = self.guard.llm(
            AsyncOpenAI(
                api_key="k",
                base_url=server.url + "/v1",
                max_retries=0,
                http_client=http,
            )
        )
        self.model = OpenAIChatCompletionsModel(
            model="gpt-4.1", openai_client=self.client
        )
        self.ran: list[str] = []

        @guarded_function_tool(
            self.guard, scopes=["kb:read"], data="public", hide_denied=False
        )
        def lookup(query: str) -> str:
            """Search."""
            self.ran.append("lookup")
            return f"found {query}"

        self.lookup = lookup

    def raw(self, name: str = "pay") -> FunctionTool:
        def body(query: str) -> str:
            self.ran.append(name)
            return f"{name} ran"

        return function_tool(body, name_override=name)

    def agent(self, *tools: Any, **kwargs: Any) -> Agent[Any]:
        return Agent(name="bot", model=self.model, tools=list(tools), **kwargs)

    def denials(self) -> list[str]:
        return [e.reason for e in self.sink.events if e.decision == "deny"]


@pytest.fixture
def world(llm_server: LLMServer) -> Iterator[World]:
    w = World(llm_server)
    yield w
    asyncio.run(w.client.close())


def call(name: str, arguments: Any) -> dict[str, str]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"name": name, "arguments": raw}


def script(*rounds: list[dict[str, str]]) -> str:
    return "CALL:" + json.dumps({"rounds": list(rounds)})


def run(agent: Agent[Any], text: str) -> Any:
    async def go() -> Any:
        return (await Runner.run(agent, text)).final_output

    return asyncio.run(go())


def invoke(tool: FunctionTool, arguments: str) -> Any:
    ctx = ToolContext(
        context=None,
        tool_name=tool.name,
        tool_call_id="call_x",
        tool_arguments=arguments,
    )
    return asyncio.run(tool.on_invoke_tool(ctx, arguments))


# -- direct invocation -----------------------------------------------------------------


def test_calling_on_invoke_tool_directly_is_decided(world: World) -> None:
    with acting_as(NOBODY):
        out = invoke(world.lookup, '{"query": "x"}')
    assert out.startswith("[I1/scope_missing]")
    assert world.ran == []
    assert world.denials() == ["scope_missing"]
    with acting_as(READER):
        assert invoke(world.lookup, '{"query": "x"}') == "found x"


def test_the_reference_held_before_guarding_is_guarded(world: World) -> None:
    tool = world.raw()
    held = tool.on_invoke_tool  # the SDK's own invoker, kept aside
    guarded = guard_function_tool(world.guard, tool)
    assert guarded is tool  # guarded in place: every holder sees the guard
    with acting_as(NOBODY):
        assert invoke(tool, '{"query": "x"}').startswith("[I1/scope_missing]")
    assert world.ran == []
    assert held is not tool.on_invoke_tool


def test_anonymous_caller_of_an_internal_app(world: World) -> None:
    anonymous = Principal(subject="anonymous", authenticated=False)
    with acting_as(anonymous):
        out = invoke(world.lookup, '{"query": "x"}')
    assert out.startswith("[I2/authentication_required]")
    assert world.ran == []


# -- copies of a guarded tool ----------------------------------------------------------


@pytest.mark.parametrize(
    "make_copy",
    [
        pytest.param(lambda t: dataclasses.replace(t), id="dataclasses.replace"),
        pytest.param(copy.copy, id="copy.copy"),
        pytest.param(
            lambda t: dataclasses.replace(t, description="harmless"),
            id="replace-description",
        ),
        pytest.param(
            lambda t: dataclasses.replace(t, is_enabled=True), id="replace-is_enabled"
        ),
        pytest.param(
            lambda t: FunctionTool(
                name=t.name,
                description=t.description,
                params_json_schema=t.params_json_schema,
                on_invoke_tool=t.on_invoke_tool,
            ),
            id="new-FunctionTool-from-fields",
        ),
    ],
)
def test_a_copy_of_a_guarded_tool_stays_guarded(world: World, make_copy: Any) -> None:
    clone = make_copy(world.lookup)
    with acting_as(NOBODY):
        assert invoke(clone, '{"query": "x"}').startswith("[I1/scope_missing]")
    with acting_as(NOBODY):
        out = run(world.agent(clone), script([call("lookup", {"query": "q"})]))
    assert out.startswith("DONE:[I1/scope_missing]")
    assert world.ran == []


def test_tool_namespace_copies_stay_guarded(world: World) -> None:
    from agents import OpenAIResponsesModel, tool_namespace

    tools = tool_namespace(
        name="kb", description="Knowledge base.", tools=[world.lookup]
    )
    assert tools[0] is not world.lookup  # the SDK copies the tool
    agent = Agent(
        name="bot",
        model=OpenAIResponsesModel(model="gpt-4.1", openai_client=world.client),
        tools=tools,
    )
    text = script([{**call("lookup", {"query": "q"}), "namespace": "kb"}])
    with acting_as(NOBODY):
        assert run(agent, text).startswith("DONE:[I1/scope_missing]")
    assert world.ran == []
    with acting_as(READER):
        assert run(agent, text) == "DONE:found q"


def test_a_renamed_copy_is_refused(world: World) -> None:
    renamed = dataclasses.replace(world.lookup, name="innocent")
    with acting_as(READER):
        out = invoke(renamed, '{"query": "x"}')
    assert out.startswith("[I3/tool_renamed]")
    assert world.ran == []
    assert "tool_renamed" in world.denials()


def test_a_guarded_invoker_assigned_to_another_tool_is_refused(world: World) -> None:
    other = world.raw("innocent")
    other.on_invoke_tool = world.lookup.on_invoke_tool  # no re-binding
    with acting_as(READER):
        out = run(world.agent(other), script([call("innocent", {"query": "q"})]))
    assert out.startswith("DONE:[I3/tool_renamed]")
    assert world.ran == []


def test_guarding_twice_is_idempotent_and_a_second_declaration_is_refused(
    world: World,
) -> None:
    tool = world.lookup
    again = guard_function_tool(
        world.guard, tool, scopes=["kb:read"], data="public", hide_denied=False
    )
    assert again is tool
    with pytest.raises(PolicyError, match="already guarded"):
        guard_function_tool(world.guard, tool, data="public")  # drops the scope
    with acting_as(READER):
        assert invoke(tool, '{"query": "x"}') == "found x"
    reasons = [e.reason for e in world.sink.events]
    assert reasons == ["scopes_held", "tool_allowed"]  # one decision, not two


def test_an_unwrapped_invoker_in_a_guarded_agent_is_guarded_again(
    world: World,
) -> None:
    agent = guard_agent(world.guard, world.agent(world.raw("pay")), guardrails=False)
    inner = agent.tools[0].on_invoke_tool.inner  # what the guard wraps
    stripped = dataclasses.replace(agent.tools[0], on_invoke_tool=inner)
    agent.tools[0] = stripped
    with acting_as(NOBODY), pytest.raises(ModelBehaviorError, match="pay"):
        run(agent, script([call("pay", {"query": "q"})]))  # hidden, then refused
    with acting_as(Principal(subject="p", authenticated=True, scopes={"pay:read"})):
        assert run(agent, script([call("pay", {"query": "q"})])) == "DONE:pay ran"
    # the same trick on a tool the policy does not declare is refused outright
    other = guard_agent(world.guard, world.agent(world.lookup), guardrails=False)
    bare = dataclasses.replace(
        world.lookup, on_invoke_tool=world.lookup.on_invoke_tool.inner
    )
    other.tools[0] = bare
    with acting_as(READER), pytest.raises(PolicyError, match="lookup"):
        run(other, script([call("lookup", {"query": "q"})]))
    assert world.ran == ["pay"]


# -- agents: clone, replace, mutation --------------------------------------------------


def test_clone_with_an_undeclared_tool_is_refused(world: World) -> None:
    agent = guard_agent(world.guard, world.agent(world.lookup), guardrails=False)
    with pytest.raises(PolicyError, match="sneaky"):
        agent.clone(tools=[world.raw("sneaky")])
    with pytest.raises(PolicyError, match="sneaky"):
        dataclasses.replace(agent, tools=[world.raw("sneaky")])


def test_clone_with_a_declared_raw_tool_is_guarded(world: World) -> None:
    agent = guard_agent(world.guard, world.agent(world.lookup), guardrails=False)
    clone = agent.clone(tools=[world.raw("pay")])
    assert copy.copy(clone).tools[0] is clone.tools[0]
    with acting_as(NOBODY), pytest.raises(ModelBehaviorError, match="pay"):
        run(clone, script([call("pay", {"query": "q"})]))
    assert world.ran == []


def test_a_tool_appended_after_guarding_is_refused_before_the_model_is_called(
    world: World,
) -> None:
    agent = guard_agent(world.guard, world.agent(world.lookup), guardrails=False)
    agent.tools.append(world.raw("sneaky"))
    before = len(world.server.requests)
    with acting_as(READER), pytest.raises(PolicyError, match="sneaky"):
        run(agent, script([call("sneaky", {"query": "q"})]))
    assert world.ran == []
    assert len(world.server.requests) == before


def test_a_hosted_tool_is_refused(world: World) -> None:
    from agents import WebSearchTool

    with pytest.raises(PolicyError, match="WebSearchTool"):
        guard_agent(world.guard, world.agent(WebSearchTool()))


# -- handoffs --------------------------------------------------------------------------


def test_handoff_to_an_agent_with_an_undeclared_tool_is_refused(world: World) -> None:
    other = Agent(name="other", model=world.model, tools=[world.raw("sneaky")])
    with pytest.raises(PolicyError, match="sneaky"):
        guard_agent(world.guard, world.agent(handoffs=[other]))


@pytest.mark.parametrize("as_handoff", [False, True], ids=["agent", "Handoff"])
def test_handoff_added_after_guarding_runs_guarded(
    world: World, as_handoff: bool
) -> None:
    agent = guard_agent(world.guard, world.agent(world.lookup), guardrails=False)
    other = Agent(name="other", model=world.model, tools=[world.raw("sneaky")])
    agent.handoffs.append(handoff(other) if as_handoff else other)
    text = script([call("transfer_to_other", {})], [call("sneaky", {"query": "q"})])
    with acting_as(READER), pytest.raises(PolicyError, match="sneaky"):
        run(agent, text)
    assert world.ran == []


@pytest.mark.parametrize("as_handoff", [False, True], ids=["agent", "Handoff"])
def test_an_agent_handed_off_to_later_gets_the_output_guardrail(
    world: World, as_handoff: bool
) -> None:
    from agents import OutputGuardrailTripwireTriggered

    report_text = "Quarterly payroll: Ann 4200 EUR, Bob 3900 EUR, Carol 5100 EUR"

    @guarded_function_tool(world.guard, data="public", confidential_output=True)
    def report(query: str) -> str:
        """The payroll report."""
        return report_text

    agent = guard_agent(world.guard, world.agent(world.lookup))  # with guardrails
    other = Agent(name="other", model=world.model, tools=[report])
    agent.handoffs.append(handoff(other) if as_handoff else other)
    text = script([call("transfer_to_other", {})], [call("report", {"query": "q"})])
    with acting_as(READER), pytest.raises(OutputGuardrailTripwireTriggered) as caught:
        run(agent, text)
    info = caught.value.guardrail_result.output.output_info
    assert info["invariant"] == "I8"
    assert "4200" not in json.dumps(info)


def test_handoff_to_a_declared_tool_is_decided_for_the_user(world: World) -> None:
    other = Agent(name="other", model=world.model, tools=[world.raw("pay")])
    agent = guard_agent(world.guard, world.agent(handoffs=[other]), guardrails=False)
    text = script([call("transfer_to_other", {})], [call("pay", {"query": "q"})])
    with acting_as(NOBODY), pytest.raises(ModelBehaviorError, match="pay"):
        run(agent, text)
    assert world.ran == []
    with acting_as(READER):
        assert run(agent, text) == 'DONE:{"assistant": "other"}|pay ran'


# -- agents as tools -------------------------------------------------------------------


def test_nested_agents_as_tools_are_guarded_at_every_depth(world: World) -> None:
    inner = Agent(name="inner", model=world.model, tools=[world.raw("sneaky")])
    mid = Agent(
        name="mid",
        model=world.model,
        tools=[inner.as_tool(tool_name="ask_sub", tool_description="d")],
    )
    top = world.agent(mid.as_tool(tool_name="ask_sub", tool_description="d"))
    with pytest.raises(PolicyError, match="sneaky"):
        guard_agent(world.guard, top)


def test_an_agent_tool_appended_later_guards_its_agent(world: World) -> None:
    agent = guard_agent(world.guard, world.agent(world.lookup), guardrails=False)
    sub = Agent(name="sub", model=world.model, tools=[world.raw("sneaky")])
    agent.tools.append(sub.as_tool(tool_name="ask_sub", tool_description="d"))
    nested = script([call("sneaky", {"query": "q"})])
    with acting_as(READER), pytest.raises(PolicyError, match="sneaky"):
        run(agent, script([call("ask_sub", {"input": nested})]))
    assert getattr(type(sub), "_aiinvariants_guard", None) is world.guard
    assert world.ran == []


# -- arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments", ["[1]", '"query"', "1", "null", "true", "{", '{"query": }', "[]"]
)
def test_arguments_that_are_not_a_json_object_are_refused(
    world: World, arguments: str
) -> None:
    with acting_as(READER):
        out = run(world.agent(world.lookup), script([call("lookup", arguments)]))
    assert out.startswith("DONE:[I3/tool_arguments_invalid]")
    assert world.ran == []
    assert world.denials() == ["tool_arguments_invalid"]


def test_arguments_the_strict_schema_does_not_declare_are_refused(
    world: World,
) -> None:
    args = {"query": "x", "scope": "admin", "confirmed": True}
    with acting_as(READER):
        out = run(world.agent(world.lookup), script([call("lookup", args)]))
    assert out.startswith("DONE:[I3/tool_arguments_invalid]")
    assert world.ran == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(st.text(max_size=5), kids, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=_json)
def test_property_only_declared_object_arguments_reach_the_body(
    world: World, value: Any
) -> None:
    world.ran.clear()
    text = json.dumps(value)
    with acting_as(READER):
        out = invoke(world.lookup, text)
    reaches = (
        isinstance(value, dict)
        and set(value) <= {"query"}
        and isinstance(value.get("query"), str)
    )
    if reaches:
        assert out == f"found {value['query']}"
    elif not isinstance(value, dict) or not set(value) <= {"query"}:
        assert out.startswith("[I3/tool_arguments_invalid]")
        assert world.ran == []
    else:  # a declared key of the wrong type: the SDK refuses it
        assert world.ran == []


def test_a_secret_in_the_arguments_never_travels_in_the_denial(world: World) -> None:
    with acting_as(NOBODY):
        out = invoke(world.lookup, json.dumps({"query": SECRET}))
        bad = invoke(world.lookup, json.dumps([SECRET]))
        extra = invoke(world.lookup, json.dumps({"query": "x", SECRET: 1}))
    for text in (out, bad, extra):
        assert SECRET not in text
    for event in world.sink.events:
        assert SECRET not in json.dumps(dict(event.details)) + str(event.resource)


# -- names the model chooses -----------------------------------------------------------


@pytest.mark.parametrize("name", ["delete_all", "LOOKUP", "lookup ", "lookup\u200b"])
def test_a_tool_name_the_model_invents_runs_nothing(world: World, name: str) -> None:
    with acting_as(READER), pytest.raises(ModelBehaviorError):
        run(world.agent(world.lookup), script([call(name, {"query": "q"})]))
    assert world.ran == []


def test_a_hidden_tool_called_anyway_runs_nothing(world: World) -> None:
    hidden = guard_function_tool(world.guard, world.raw("pay"))
    with acting_as(NOBODY), pytest.raises(ModelBehaviorError, match="pay"):
        run(world.agent(hidden), script([call("pay", {"query": "q"})]))
    assert world.ran == []


# -- retries and error formatting ------------------------------------------------------


def test_a_denial_is_never_retried_into_success(world: World) -> None:
    attempt = [call("lookup", {"query": "q"})]
    with acting_as(NOBODY):
        out = run(world.agent(world.lookup), script(attempt, attempt, attempt))
    assert out.count("[I1/scope_missing]") == 3
    assert world.ran == []
    assert world.denials() == ["scope_missing"] * 3


def test_a_lenient_failure_formatter_never_sees_a_denial(world: World) -> None:
    @guarded_function_tool(
        world.guard,
        name_override="pay",
        failure_error_function=lambda ctx, error: "payment done",
        hide_denied=False,
    )
    def pay(query: str) -> str:
        """Pay."""
        world.ran.append("pay")
        return "paid"

    with acting_as(NOBODY):
        out = run(world.agent(pay), script([call("pay", {"query": "q"})]))
    assert out.startswith("DONE:[I1/scope_missing]")
    assert "payment done" not in out
    assert world.ran == []


# -- output shapes ---------------------------------------------------------------------


class _Leaky:
    def __str__(self) -> str:
        return f"config(token={SECRET})"


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(SECRET, id="str"),
        pytest.param({"nested": [{"token": SECRET}]}, id="dict"),
        pytest.param(ToolOutputText(text=SECRET), id="ToolOutputText"),
        pytest.param([ToolOutputText(text="ok"), {"type": "text", "text": SECRET}]),
        pytest.param(_Leaky(), id="__str__"),
        pytest.param(SECRET[:10] + "\u200b" + SECRET[10:], id="zero-width"),
        pytest.param({SECRET: "key"}, id="dict-key"),
    ],
)
def test_a_secret_in_any_result_shape_is_blocked(world: World, result: Any) -> None:
    @guarded_function_tool(world.guard, data="public", name_override="leak")
    def leak() -> Any:
        """Leak."""
        return result

    with acting_as(READER):
        out = invoke(leak, "{}")
    assert str(out).startswith("[I8/output_blocked]")
    assert SECRET not in str(out)
    assert str(out).endswith("(tool.leak)")
    assert any(e.invariant == "I8" and e.decision == "deny" for e in world.sink.events)


# -- human approval is not authorization ---------------------------------------------


def test_an_approved_call_is_still_decided_for_the_user_who_resumes(
    world: World,
) -> None:
    @guarded_function_tool(
        world.guard,
        name_override="pay",
        needs_approval=True,
        hide_denied=False,
    )
    def pay(query: str) -> str:
        """Pay."""
        world.ran.append("pay")
        return "paid"

    agent = world.agent(pay)
    text = script([call("pay", {"query": "q"})])

    async def approve_then_resume(resumer: Principal) -> Any:
        with acting_as(READER):
            first = await Runner.run(agent, text)
        assert [i.tool_name for i in first.interruptions] == ["pay"]
        state = first.to_state()
        state.approve(first.interruptions[0])
        with acting_as(resumer):
            return (await Runner.run(agent, state)).final_output

    out = asyncio.run(approve_then_resume(NOBODY))
    assert out.startswith("DONE:[I1/scope_missing]")
    assert world.ran == []
    assert asyncio.run(approve_then_resume(READER)) == "DONE:paid"
    assert world.ran == ["pay"]


# -- tools an agent gets from MCP servers ----------------------------------------------


def _mcp_server(world: World, names: list[str]) -> Any:
    from agents.mcp import MCPServer
    from mcp.types import (
        CallToolResult,
        GetPromptResult,
        ListPromptsResult,
        TextContent,
        Tool,
    )

    schema = {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    }

    class Local(MCPServer):  # an in-process server behind the SDK's MCP interface
        @property
        def name(self) -> str:
            return "local"

        async def connect(self) -> None:
            pass

        async def cleanup(self) -> None:
            pass

        async def list_tools(self, run_context: Any = None, agent: Any = None) -> Any:
            return [Tool(name=n, input_schema=schema) for n in names]

        async def call_tool(
            self, tool_name: str, arguments: Any, meta: Any = None
        ) -> Any:
            world.ran.append(f"mcp:{tool_name}")
            return CallToolResult(content=[TextContent(type="text", text="mcp ok")])

        async def list_prompts(self) -> Any:
            return ListPromptsResult(prompts=[])

        async def get_prompt(self, name: str, arguments: Any = None) -> Any:
            return GetPromptResult(messages=[])

    return Local()


def test_an_undeclared_mcp_tool_is_refused_before_the_model_is_called(
    world: World,
) -> None:
    agent = guard_agent(
        world.guard,
        world.agent(mcp_servers=[_mcp_server(world, ["pay", "wipe"])]),
        guardrails=False,
    )
    before = len(world.server.requests)
    with acting_as(READER), pytest.raises(PolicyError, match="wipe"):
        run(agent, script([call("pay", {"query": "q"})]))
    assert world.ran == []
    assert len(world.server.requests) == before


def test_a_declared_mcp_tool_is_decided_for_the_user(world: World) -> None:
    agent = guard_agent(
        world.guard,
        world.agent(mcp_servers=[_mcp_server(world, ["pay"])]),
        guardrails=False,
    )
    text = script([call("pay", {"query": "q"})])
    with acting_as(NOBODY), pytest.raises(ModelBehaviorError, match="pay"):
        run(agent, text)  # hidden from the model, refused when called anyway
    assert world.ran == []
    with acting_as(READER):
        assert run(agent, text) == "DONE:mcp ok"
    assert world.ran == ["mcp:pay"]


# -- two guards ------------------------------------------------------------------------


def test_an_agent_guarded_by_two_guards_obeys_both(world: World) -> None:
    strict = Guard(
        Policy(tools={"lookup": {"scopes": ["kb:audit"], "data": "public"}}),
        sinks=[world.sink],
    )
    other = Agent(name="other", model=world.model, tools=[world.raw("pay")])
    agent = guard_agent(world.guard, world.agent(world.lookup), guardrails=False)
    guard_agent(strict, agent, guardrails=False)
    depth = len(type(agent).__mro__)
    for _ in range(3):  # guarding again, in any order, adds nothing
        guard_agent(world.guard, agent, guardrails=False)
        guard_agent(strict, agent, guardrails=False)
    assert len(type(agent).__mro__) == depth
    # the strict guard's scope is missing: hidden, and refused when called
    with acting_as(READER), pytest.raises(ModelBehaviorError, match="lookup"):
        run(agent, script([call("lookup", {"query": "q"})]))
    with acting_as(READER):
        assert invoke(world.lookup, '{"query": "q"}').startswith("[I1/scope_missing]")
    assert world.ran == []
    # a handoff added later is checked by both guards' rules: pay is not
    # declared in the strict policy
    agent.handoffs.append(other)
    with acting_as(READER), pytest.raises(PolicyError, match="pay"):
        run(agent, script([call("transfer_to_other", {})], [call("pay", {})]))
    assert world.ran == []
