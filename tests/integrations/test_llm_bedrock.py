"""guard.llm on a real boto3 bedrock-runtime client against a loopback server.

The server speaks Converse JSON and, for converse_stream, the binary AWS
event-stream encoding (see ``llm_support.event_frame``).
"""

from __future__ import annotations

from typing import Any

import boto3
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
CLAUDE_EU = "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"
LONG = (
    "Our opening hours are nine to five on weekdays and ten to two on Saturdays. " * 3
)


def raw_client(server: LLMServer, region: str = "eu-central-1") -> Any:
    return closing(
        boto3.client(
            "bedrock-runtime",
            region_name=region,
            endpoint_url=server.url,
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )
    )


def make(server: LLMServer, region: str = "eu-central-1") -> Any:
    guard = Guard(
        Policy(
            models={
                "allow": ["*anthropic.claude-*", "*meta.llama*"],
                "deny": ["deepseek*"],
            },
            regions={"allow": ["eu-*"]},
        )
    )
    return guard_llm(guard, raw_client(server, region), system_prompt="Be brief.")


def msg(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def test_converse(llm_server: LLMServer) -> None:
    client = make(llm_server)
    out = client.converse(
        modelId=CLAUDE_EU,
        system=[{"text": "Be brief."}],
        messages=msg("mail ops@example.com"),
    )
    assert out["output"]["message"]["content"] == [{"text": "mail [REDACTED]"}]
    assert "aiinv-canary-" in llm_server.last["system"][0]["text"]
    with pytest.raises(OutputBlocked):
        client.converse(modelId=CLAUDE_EU, messages=msg(SECRET))
    tool = client.converse(modelId=CLAUDE_EU, messages=msg("TOOL:ops@example.com"))
    assert tool["output"]["message"]["content"][0]["toolUse"]["input"] == {
        "query": "[REDACTED]"
    }


def test_converse_stream(llm_server: LLMServer) -> None:
    client = make(llm_server)
    text = f"{LONG}mail ops@example.com {LONG}"
    response = client.converse_stream(modelId=CLAUDE_EU, messages=msg(text))
    out = "".join(
        e["contentBlockDelta"]["delta"].get("text", "")
        for e in response["stream"]
        if "contentBlockDelta" in e
    )
    assert out == text.replace("ops@example.com", "[REDACTED]")


def test_converse_stream_blocks_and_tool_input(llm_server: LLMServer) -> None:
    client = make(llm_server)
    got: list[str] = []
    stream = client.converse_stream(modelId=CLAUDE_EU, messages=msg(f"{LONG}{SECRET}"))
    with pytest.raises(OutputBlocked):
        got.extend(
            e["contentBlockDelta"]["delta"]["text"]
            for e in stream["stream"]
            if "contentBlockDelta" in e
        )
    assert SECRET[:8] not in "".join(got)
    events = client.converse_stream(
        modelId=CLAUDE_EU, messages=msg("TOOL:ops@example.com")
    )
    args = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events["stream"]
        if "contentBlockDelta" in e
    )
    assert args == '{"query": "[REDACTED]"}'


@pytest.mark.parametrize(
    ("model", "exc", "code"),
    [
        ("deepseek.r1-v1:0", ModelDenied, "model_denied"),
        ("us.deepseek.r1-v1:0", ModelDenied, "model_denied"),
        (
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123",
            ModelDenied,
            "model_not_allowed",
        ),
    ],
)
def test_denials(
    llm_server: LLMServer, model: str, exc: type[Exception], code: str
) -> None:
    before = len(llm_server.requests)
    with pytest.raises(exc) as info:
        make(llm_server).converse(modelId=model, messages=msg("hi"))
    assert info.value.code == code  # type: ignore[attr-defined]
    assert len(llm_server.requests) == before


def test_client_region_outside_allow_list(llm_server: LLMServer) -> None:
    with pytest.raises(RegionDenied) as info:
        make(llm_server, region="us-east-1").converse(
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", messages=msg("hi")
        )
    assert info.value.code == "region_denied"


def test_only_converse_is_guarded(llm_server: LLMServer) -> None:
    with pytest.raises(PolicyError):
        _ = make(llm_server).invoke_model
    other = closing(
        boto3.client(
            "s3",
            region_name="eu-west-1",
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )
    )
    with pytest.raises(PolicyError):
        guard_llm(Guard(), other)
