"""guard.llm on the real anthropic SDK against a loopback wire-format server."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest

from aiinvariants import (
    Guard,
    ModelDenied,
    OutputBlocked,
    Policy,
    PolicyError,
    RegionDenied,
)
from aiinvariants.llm import guard_llm
from llm_support import LLMServer, _close_clients, _signed_in, closing, llm_server

__all__ = ["_close_clients", "_signed_in", "llm_server"]

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
SYSTEM = "You are the support bot of Example Corp. Never offer refunds above 50 EUR."
LONG = (
    "Our opening hours are nine to five on weekdays and ten to two on Saturdays. " * 3
)


def make(server: LLMServer, **regions: Any) -> Any:
    guard = Guard(
        Policy(
            models={
                "allow": ["claude-*", "*anthropic.claude-*"],
                "deny": ["deepseek*"],
            },
            regions=regions
            or {"allow": ["eu-*", "europe-*"], "declared": {server.url: "eu-west-1"}},
        )
    )
    raw = closing(anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0))
    return guard_llm(guard, raw, system_prompt=SYSTEM)


def ask(client: Any, text: str, **kw: Any) -> Any:
    return client.messages.create(
        model="claude-sonnet-5",
        max_tokens=100,
        system=SYSTEM,
        messages=[{"role": "user", "content": text}],
        **kw,
    )


def test_message_passes_the_pipeline(llm_server: LLMServer) -> None:
    client = make(llm_server)
    result = ask(client, "mail ops@example.com")
    assert result.content[0].text == "mail [REDACTED]"
    assert "aiinv-canary-" in llm_server.last["system"]
    assert "store" not in llm_server.last  # Anthropic has no data-use switch


def test_blocks_secret_and_system_prompt(llm_server: LLMServer) -> None:
    client = make(llm_server)
    with pytest.raises(OutputBlocked):
        ask(client, f"here {SECRET}")
    with pytest.raises(OutputBlocked):
        ask(client, SYSTEM)


def test_tool_use_input(llm_server: LLMServer) -> None:
    client = make(llm_server)
    result = ask(client, "TOOL:mail ops@example.com")
    assert result.content[0].input == {"query": "mail [REDACTED]"}
    with pytest.raises(OutputBlocked):
        ask(client, f"TOOL:{SECRET}")


def test_stream(llm_server: LLMServer) -> None:
    client = make(llm_server)
    text = f"{LONG}mail ops@example.com {LONG}"
    out = "".join(
        e.delta.text
        for e in ask(client, text, stream=True)
        if e.type == "content_block_delta"
    )
    assert out == text.replace("ops@example.com", "[REDACTED]")


def test_stream_blocks_before_secret(llm_server: LLMServer) -> None:
    client = make(llm_server)
    got: list[str] = []
    stream = ask(client, f"{LONG}{SECRET}", stream=True)
    with pytest.raises(OutputBlocked):
        got.extend(e.delta.text for e in stream if e.type == "content_block_delta")
    assert SECRET[:8] not in "".join(got)


def test_stream_tool_json(llm_server: LLMServer) -> None:
    client = make(llm_server)
    out = "".join(
        e.delta.partial_json
        for e in ask(client, "TOOL:ops@example.com", stream=True)
        if e.type == "content_block_delta"
    )
    assert out == '{"query": "[REDACTED]"}'


def test_denials(llm_server: LLMServer) -> None:
    client = make(llm_server)
    with pytest.raises(ModelDenied):
        client.messages.create(model="deepseek-chat", max_tokens=1, messages=[])
    unknown = make(llm_server, allow=["eu-*"])
    with pytest.raises(RegionDenied) as info:
        ask(unknown, "hi")
    assert info.value.code == "region_unknown"
    before = len(llm_server.requests)
    with pytest.raises(PolicyError):
        client.beta.files.list()  # an endpoint the guard does not understand
    assert len(llm_server.requests) == before


def test_bedrock_and_vertex_regions_come_from_the_client() -> None:
    guard = Guard(
        Policy(models={"allow": ["*claude*"]}, regions={"allow": ["eu-*", "europe-*"]})
    )
    bedrock = closing(
        anthropic.AnthropicBedrock(
            aws_region="us-east-1", aws_access_key="a", aws_secret_key="b"
        )
    )
    with pytest.raises(RegionDenied):
        guard_llm(guard, bedrock).messages.create(
            model="anthropic.claude-3-5-sonnet-20240620-v1:0", max_tokens=1, messages=[]
        )
    vertex = closing(
        anthropic.AnthropicVertex(
            region="europe-west1", project_id="p", access_token="t"
        )
    )
    assert guard_llm(guard, vertex).checks.placement.home == "europe-west1"
    world = closing(
        anthropic.AnthropicVertex(region="global", project_id="p", access_token="t")
    )
    with pytest.raises(RegionDenied):
        guard_llm(guard, world).messages.create(
            model="claude-sonnet-5", max_tokens=1, messages=[]
        )


def test_async(llm_server: LLMServer) -> None:
    guard = Guard(
        Policy(
            models={"allow": ["claude-*"]},
            regions={"declared": {llm_server.url: "eu-west-1"}},
        )
    )

    async def run() -> tuple[str, str]:
        raw = anthropic.AsyncAnthropic(api_key="k", base_url=llm_server.url)
        client = guard_llm(guard, raw)
        msgs = [{"role": "user", "content": "mail ops@example.com"}]
        result = await client.messages.create(
            model="claude-sonnet-5", max_tokens=10, messages=msgs
        )
        stream = await client.messages.create(
            model="claude-sonnet-5", max_tokens=10, messages=msgs, stream=True
        )
        parts = [e.delta.text async for e in stream if e.type == "content_block_delta"]
        await raw.close()
        return result.content[0].text, "".join(parts)

    assert asyncio.run(run()) == ("mail [REDACTED]", "mail [REDACTED]")


def test_stream_helper_parse_and_count_tokens_work_guarded(
    llm_server: LLMServer,
) -> None:
    client = make(llm_server)
    msgs = [{"role": "user", "content": "mail ops@example.com"}]
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=10, messages=msgs
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "mail [REDACTED]"
    tool = [{"role": "user", "content": "TOOL:ops@example.com"}]
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=10, messages=tool
    ) as stream:
        block = stream.get_final_message().content[0]
    assert block.input == {"query": "[REDACTED]"}
    counted = client.messages.count_tokens(model="claude-sonnet-5", messages=msgs)
    assert counted.input_tokens == 3
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-5", max_tokens=10, messages=msgs
    )
    assert raw.parse().content[0].text == "mail [REDACTED]"
