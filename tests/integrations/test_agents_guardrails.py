"""The policy guardrails on the real OpenAI Agents SDK, against a loopback model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from agents import (
    Agent,
    InputGuardrailTripwireTriggered,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    OutputGuardrailTripwireTriggered,
    Runner,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from pydantic import BaseModel

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.openai_agents import (
    guard_agent,
    guarded_function_tool,
    policy_input_guardrail,
    policy_output_guardrail,
)
from llm_support import LLMServer, _close_clients, _signed_in, llm_server

__all__ = ["_close_clients", "_signed_in", "llm_server"]

set_tracing_disabled(True)

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
INSTRUCTIONS = (
    "You are the payroll assistant of Example Corp. Never reveal salary bands "
    "to anyone outside the finance group."
)
PAYROLL = "Payroll run 2026-11: Ann Smith 4200 EUR, Bob Jones 3900 EUR, total 8100 EUR"
READER = Principal(subject="reader", authenticated=True, scopes=frozenset({"pay:read"}))


def call(name: str, arguments: dict[str, Any]) -> dict[str, str]:
    return {"name": name, "arguments": json.dumps(arguments)}


class World:
    def __init__(self, server: LLMServer, *, guarded: bool = True, kind: str = "chat"):
        self.server = server
        self.sink = MemorySink()
        self.guard = Guard(
            Policy(
                models={"allow": ["gpt-4.1*"], "deny": ["deepseek*"]},
                regions={"allow": ["eu-*"], "declared": {server.url: "eu-west-1"}},
                tools={"payroll": {"scopes": ["pay:read"], "data": "public"}},
            ),
            sinks=[self.sink],
        )
        http = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
        raw = AsyncOpenAI(
            api_key="k", base_url=server.url + "/v1", max_retries=0, http_client=http
        )
        self.client = self.guard.llm(raw) if guarded else raw
        self.kind = kind

        @guarded_function_tool(self.guard, confidential_output=True)
        def payroll(month: str) -> str:
            """Read the payroll."""
            return PAYROLL

        self.payroll = payroll

    def agent(self, model: str = "gpt-4.1", **kwargs: Any) -> Agent[Any]:
        cls = (
            OpenAIChatCompletionsModel if self.kind == "chat" else OpenAIResponsesModel
        )
        return guard_agent(
            self.guard,
            Agent(
                name="payroll-bot",
                instructions=INSTRUCTIONS,
                model=cls(model=model, openai_client=self.client),
                tools=[self.payroll],
                **kwargs,
            ),
        )


@pytest.fixture(params=["chat", "responses"])
def world(request: pytest.FixtureRequest, llm_server: LLMServer) -> Iterator[World]:
    w = World(llm_server, kind=request.param)
    yield w
    asyncio.run(w.client.close())


@pytest.fixture
def raw_world(llm_server: LLMServer) -> Iterator[World]:
    w = World(llm_server, guarded=False)
    yield w
    asyncio.run(w.client.close())


async def _run(agent: Agent[Any], text: str) -> Any:
    return (await Runner.run(agent, text)).final_output


async def _streamed(agent: Agent[Any], text: str) -> Any:
    result = Runner.run_streamed(agent, text)
    async for _ in result.stream_events():
        pass
    return result.final_output


def _info(exc: Any) -> dict[str, Any]:
    info = exc.guardrail_result.output.output_info
    assert isinstance(info, dict)
    return info


def test_a_clean_run_passes_both_guardrails(world: World) -> None:
    with acting_as(READER):
        assert asyncio.run(_run(world.agent(), "hello")) == "hello"


@pytest.mark.parametrize("runner", [_run, _streamed])
def test_a_denied_model_trips_the_input_guardrail_before_any_request(
    world: World, runner: Any
) -> None:
    before = len(world.server.requests)
    with (
        acting_as(READER),
        pytest.raises(InputGuardrailTripwireTriggered) as caught,
    ):
        asyncio.run(runner(world.agent("deepseek-chat"), "hello"))
    assert _info(caught.value) == {
        "invariant": "I5",
        "code": "model_denied",
        "rule_ids": [],
    }
    assert len(world.server.requests) == before  # nothing left the process
    assert "model_denied" in [e.reason for e in world.sink.events]


@pytest.mark.parametrize("runner", [_run, _streamed])
def test_a_secret_in_the_input_trips_before_any_request(
    world: World, runner: Any
) -> None:
    before = len(world.server.requests)
    text = f"please debug this: token={SECRET}"
    with (
        acting_as(READER),
        pytest.raises(InputGuardrailTripwireTriggered) as caught,
    ):
        asyncio.run(runner(world.agent(), text))
    info = _info(caught.value)
    assert info["invariant"] == "I8"
    assert info["code"] == "output_blocked"
    assert info["rule_ids"]
    assert SECRET not in json.dumps(info)
    assert len(world.server.requests) == before


@pytest.mark.parametrize("runner", [_run, _streamed])
def test_an_echoed_confidential_tool_output_trips_the_output_guardrail(
    world: World, runner: Any
) -> None:
    text = "CALL:" + json.dumps([call("payroll", {"month": "2026-11"})])
    with (
        acting_as(READER),
        pytest.raises(OutputGuardrailTripwireTriggered) as caught,
    ):
        asyncio.run(runner(world.agent(), text))
    info = _info(caught.value)
    assert info["invariant"] == "I8"
    assert info["rule_ids"]
    assert "4200" not in json.dumps(info)


def _scripted(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4.1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def test_a_secret_in_the_answer_trips_the_output_guardrail(raw_world: World) -> None:
    # An unguarded client lets the answer through: the guardrail still trips.
    raw_world.server.answer = _scripted(f"the key is {SECRET}")
    try:
        with (
            acting_as(READER),
            pytest.raises(OutputGuardrailTripwireTriggered) as caught,
        ):
            asyncio.run(_run(raw_world.agent(), "what is the key?"))
    finally:
        raw_world.server.answer = None
    info = _info(caught.value)
    assert info["code"] == "output_blocked"
    assert info["rule_ids"]
    assert SECRET not in json.dumps(info)


def test_the_agents_instructions_in_the_answer_trip_the_output_guardrail(
    raw_world: World,
) -> None:
    with (
        acting_as(READER),
        pytest.raises(OutputGuardrailTripwireTriggered) as caught,
    ):
        asyncio.run(_run(raw_world.agent(), f"My instructions: {INSTRUCTIONS}"))
    info = _info(caught.value)
    assert info["invariant"] == "I8"
    assert info["rule_ids"]


def test_structured_output_is_checked_as_its_json(raw_world: World) -> None:
    class Answer(BaseModel):
        text: str

    raw_world.server.answer = _scripted(json.dumps({"text": f"use {SECRET}"}))
    try:
        with (
            acting_as(READER),
            pytest.raises(OutputGuardrailTripwireTriggered) as caught,
        ):
            asyncio.run(_run(raw_world.agent(output_type=Answer), "hi"))
    finally:
        raw_world.server.answer = None
    assert _info(caught.value)["rule_ids"]


def test_guardrails_are_added_once(world: World) -> None:
    agent = world.agent()
    again = guard_agent(world.guard, agent)
    assert again is agent
    assert len(agent.input_guardrails) == 1
    assert len(agent.output_guardrails) == 1
    assert agent.input_guardrails[0].run_in_parallel is False


def test_standalone_guardrails_work_on_an_unguarded_agent(raw_world: World) -> None:
    agent = Agent(
        name="plain",
        model=OpenAIChatCompletionsModel(
            model="deepseek-chat", openai_client=raw_world.client
        ),
        input_guardrails=[policy_input_guardrail(raw_world.guard)],
        output_guardrails=[policy_output_guardrail(raw_world.guard)],
    )
    with acting_as(READER), pytest.raises(InputGuardrailTripwireTriggered):
        asyncio.run(_run(agent, "hello"))
