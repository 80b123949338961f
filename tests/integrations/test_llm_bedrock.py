"""guard.llm on real boto3 bedrock-runtime clients against a loopback server.

The server (``bedrock_support``) speaks Converse JSON, InvokeModel bodies of
several model families and the binary AWS event-stream framing. The region
is the endpoint's: the loopback URL is declared in the policy.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from langchain_aws import ChatBedrockConverse
from pydantic import BaseModel

from aiinvariants import Guard, ModelDenied, OutputBlocked, Policy, PolicyError
from aiinvariants.audit import MemorySink
from aiinvariants.llm import guard_llm
from bedrock_support import (
    BedrockServer,
    _bedrock_caller,
    _close_bedrock_clients,
    bedrock_client,
    bedrock_server,
)

__all__ = ["_bedrock_caller", "_close_bedrock_clients", "bedrock_server"]

CLAUDE_EU = "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"
EMAIL = "ops@example.com"
LONG = (
    "Our opening hours are nine to five on weekdays and ten to two on Saturdays. " * 3
)


def policy(server: BedrockServer) -> Policy:
    return Policy(
        models={
            "allow": [
                "*anthropic.claude-*",
                "*meta.llama*",
                "*amazon.titan-*",
                "*mistral.*",
                "*cohere.embed-*",
                "*openai.gpt-oss-*",
            ],
            "deny": ["deepseek*"],
        },
        regions={"allow": ["eu-*"], "declared": {server.url: "eu-central-1"}},
    )


def make(server: BedrockServer, guard: Guard | None = None) -> Any:
    guard = guard or Guard(policy(server))
    return guard_llm(guard, bedrock_client(server.url), system_prompt="Be brief.")


def msg(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def deltas(events: Any, *path: str) -> str:
    out = []
    for event in events:
        value: Any = event.get("contentBlockDelta", {}).get("delta", {})
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        if isinstance(value, str):
            out.append(value)
    return "".join(out)


def test_converse_redacts_and_plants_the_canary(bedrock_server: BedrockServer) -> None:
    client = make(bedrock_server)
    out = client.converse(
        modelId=CLAUDE_EU,
        system=[{"text": "Be brief."}],
        messages=msg(f"mail {EMAIL}"),
    )
    assert out["output"]["message"]["content"] == [{"text": "mail [REDACTED]"}]
    assert "aiinv-canary-" in bedrock_server.last["system"][0]["text"]


@pytest.mark.parametrize(
    ("prompt", "where"),
    [
        (f"TOOL:{EMAIL}", lambda r: r["output"]["message"]["content"][0]["toolUse"]),
        (f"REASON:{EMAIL}", lambda r: r["output"]["message"]["content"][0]),
        (f"CITE:{EMAIL}", lambda r: r["output"]["message"]["content"][0]),
        (f"EXTRA:{EMAIL}", lambda r: r["additionalModelResponseFields"]),
    ],
    ids=["tool_input", "reasoning", "citation", "additional_fields"],
)
def test_converse_every_text_field(
    bedrock_server: BedrockServer, prompt: str, where: Any
) -> None:
    out = make(bedrock_server).converse(modelId=CLAUDE_EU, messages=msg(prompt))
    field = json.dumps(where(out))
    assert EMAIL not in field
    assert "[REDACTED]" in field


def test_converse_stream_text(bedrock_server: BedrockServer) -> None:
    text = f"{LONG}mail {EMAIL} {LONG}"
    response = make(bedrock_server).converse_stream(
        modelId=CLAUDE_EU, messages=msg(text)
    )
    assert deltas(response["stream"], "text") == text.replace(EMAIL, "[REDACTED]")


@pytest.mark.parametrize(
    ("prompt", "path"),
    [
        (f"TOOL:{EMAIL}", ("toolUse", "input")),
        (f"ESC:{EMAIL}", ("toolUse", "input")),
        (f"REASON:{LONG}{EMAIL}", ("reasoningContent", "text")),
    ],
    ids=["tool_input", "tool_input_escaped", "reasoning"],
)
def test_converse_stream_fields(
    bedrock_server: BedrockServer, prompt: str, path: tuple[str, ...]
) -> None:
    response = make(bedrock_server).converse_stream(
        modelId=CLAUDE_EU, messages=msg(prompt)
    )
    out = deltas(list(response["stream"]), *path)
    assert EMAIL not in out
    assert "[REDACTED]" in out
    if path[0] == "toolUse":
        assert json.loads(out) == {"query": "[REDACTED]"}


def test_converse_stream_citation(bedrock_server: BedrockServer) -> None:
    response = make(bedrock_server).converse_stream(
        modelId=CLAUDE_EU, messages=msg(f"CITE:{EMAIL}")
    )
    events = list(response["stream"])
    cited = [
        e["contentBlockDelta"]["delta"]["citation"]
        for e in events
        if "citation" in e.get("contentBlockDelta", {}).get("delta", {})
    ]
    assert cited
    assert all(c["title"] == "manual" for c in cited)
    assert "".join(c["sourceContent"][0]["text"] for c in cited) == "[REDACTED]"


INVOKE_BODIES = {
    "anthropic.claude-3-haiku-20240307-v1:0": lambda t: {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": t}],
    },
    "meta.llama3-70b-instruct-v1:0": lambda t: {"prompt": t},
    "amazon.titan-text-express-v1": lambda t: {"inputText": t},
    "mistral.mistral-large-2402-v1:0": lambda t: {"prompt": t},
    "openai.gpt-oss-120b-1:0": lambda t: {"messages": [{"role": "user", "content": t}]},
}


@pytest.mark.parametrize("model", sorted(INVOKE_BODIES))
@pytest.mark.parametrize("prompt", [f"hi {EMAIL}", f"TOOL:{EMAIL}", f"ESC:{EMAIL}"])
def test_invoke_model_bodies_per_family(
    bedrock_server: BedrockServer, model: str, prompt: str
) -> None:
    response = make(bedrock_server).invoke_model(
        modelId=model, body=json.dumps(INVOKE_BODIES[model](prompt))
    )
    body = json.loads(response["body"].read())
    text = json.dumps(body)
    assert EMAIL not in text
    assert "\\u006f\\u0070\\u0073" not in text  # the escaped form is gone too
    assert "REDACTED" in text


def test_invoke_stream_anthropic_and_llama(bedrock_server: BedrockServer) -> None:
    client = make(bedrock_server)
    for model, body in [
        (CLAUDE_EU, {"messages": [{"role": "user", "content": f"{LONG}{EMAIL}"}]}),
        ("meta.llama3-70b-instruct-v1:0", {"prompt": f"{LONG}{EMAIL}"}),
        (CLAUDE_EU, {"messages": [{"role": "user", "content": f"ESC:{EMAIL}"}]}),
    ]:
        response = client.invoke_model_with_response_stream(
            modelId=model, body=json.dumps(body)
        )
        events = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
        text = json.dumps(events)
        assert EMAIL not in text
        assert "\\\\u006f" not in text
        assert "REDACTED" in text


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": "hello"}),
        ("cohere.embed-english-v3", {"texts": [f"hi {EMAIL}"], "input_type": "x"}),
    ],
)
def test_embeddings_are_guarded(
    bedrock_server: BedrockServer, model: str, body: dict[str, Any]
) -> None:
    client = make(bedrock_server)
    out = json.loads(
        client.invoke_model(modelId=model, body=json.dumps(body))["body"].read()
    )
    assert EMAIL not in json.dumps(out)
    before = len(bedrock_server.requests)
    with pytest.raises(ModelDenied) as info:
        client.invoke_model(modelId="deepseek.embed-v1:0", body=json.dumps(body))
    assert info.value.code == "model_denied"
    assert len(bedrock_server.requests) == before


def test_count_tokens_and_apply_guardrail(bedrock_server: BedrockServer) -> None:
    client = make(bedrock_server)
    assert (
        client.count_tokens(
            modelId=CLAUDE_EU, input={"converse": {"messages": msg("hi")}}
        )["inputTokens"]
        == 5
    )
    out = client.apply_guardrail(
        guardrailIdentifier="gr-1",
        guardrailVersion="1",
        source="OUTPUT",
        content=[{"text": {"text": "hello"}}],
    )
    assert out["action"] == "NONE"


def test_error_messages_are_filtered(bedrock_server: BedrockServer) -> None:
    client = make(bedrock_server)
    with pytest.raises(client.exceptions.ValidationException) as info:
        client.converse(modelId=CLAUDE_EU, messages=msg(f"ERROR:bad {EMAIL}"))
    assert EMAIL not in str(info.value)


def test_secret_blocks_before_it_is_yielded(bedrock_server: BedrockServer) -> None:
    secret = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
    client = make(bedrock_server)
    with pytest.raises(OutputBlocked):
        client.converse(modelId=CLAUDE_EU, messages=msg(secret))
    got: list[str] = []
    stream = client.converse_stream(modelId=CLAUDE_EU, messages=msg(f"{LONG}{secret}"))
    with pytest.raises(OutputBlocked):
        got.extend(json.dumps(event) for event in stream["stream"])
    assert secret[:8] not in "".join(got)


def test_audit_records_the_wire_decision(bedrock_server: BedrockServer) -> None:
    sink = MemorySink()
    guard = Guard(policy(bedrock_server), sinks=[sink])
    make(bedrock_server, guard).converse(modelId=CLAUDE_EU, messages=msg("hi"))
    region = [e for e in sink.events if e.invariant == "I6"]
    assert region[-1].details["region"] == "eu-central-1"
    assert region[-1].details["source"] == "declared"


def test_guarded_object_offers_guarded_operations_only(
    bedrock_server: BedrockServer,
) -> None:
    import botocore.client

    client = make(bedrock_server)
    for name in dir(client):
        if not name.startswith("_"):
            value = getattr(client, name)
            assert not isinstance(value, botocore.client.BaseClient), name
    # The client a bound method leads back to is hooked itself: no way round.
    raw = client.converse.__self__
    before = len(bedrock_server.requests)
    with pytest.raises(ModelDenied):
        raw.converse(modelId="deepseek.r1-v1:0", messages=msg("hi"))
    with pytest.raises(PolicyError):
        raw.start_async_invoke(modelId=CLAUDE_EU, modelInput={}, outputDataConfig={})
    assert len(bedrock_server.requests) == before
    with pytest.raises(PolicyError):
        _ = client.start_async_invoke
    with pytest.raises(PolicyError):
        _ = client.client
    with pytest.raises(PolicyError):
        _ = client.meta
    s3 = boto3.client(
        "s3", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with pytest.raises(PolicyError):
        guard_llm(Guard(), s3)
    s3.close()


class Answer(BaseModel):
    query: str


def test_langchain_chat_bedrock_converse(bedrock_server: BedrockServer) -> None:
    chat = ChatBedrockConverse(
        model=CLAUDE_EU,
        client=bedrock_client(bedrock_server.url),
        bedrock_client=object(),
        region_name="eu-central-1",
    )
    guarded = guard_llm(Guard(policy(bedrock_server)), chat, system_prompt="Be brief.")
    assert guarded is chat
    assert chat.invoke(
        [("system", "Be brief."), ("human", f"mail {EMAIL}")]
    ).content == ("mail [REDACTED]")
    assert "aiinv-canary-" in bedrock_server.last["system"][0]["text"]
    streamed = "".join(
        part.get("text", "")
        for chunk in chat.stream(f"{LONG}{EMAIL}")
        for part in (chunk.content if isinstance(chunk.content, list) else [])
    )
    assert EMAIL not in streamed
    assert "[REDACTED]" in streamed
    assert [m.content for m in chat.batch([f"a {EMAIL}", "b"])] == ["a [REDACTED]", "b"]
    assert chat.with_structured_output(Answer).invoke(f"TOOL:{EMAIL}") == Answer(
        query="[REDACTED]"
    )
    denied = ChatBedrockConverse(
        model="deepseek.r1-v1:0",
        client=chat.client,
        bedrock_client=object(),
        region_name="eu-central-1",
    )
    before = len(bedrock_server.requests)
    with pytest.raises(ModelDenied):
        denied.invoke("hi")
    assert len(bedrock_server.requests) == before


def test_langchain_chat_bedrock_and_embeddings(bedrock_server: BedrockServer) -> None:
    from langchain_aws import BedrockEmbeddings, ChatBedrock

    guard = Guard(policy(bedrock_server))
    client = bedrock_client(bedrock_server.url)
    chat = ChatBedrock(
        model_id="anthropic.claude-3-haiku-20240307-v1:0",
        client=client,
        bedrock_client=object(),
        region_name="eu-central-1",
        beta_use_converse_api=False,
    )
    assert guard.llm(chat) is chat
    assert chat.invoke(f"hello {EMAIL}").content == "hello [REDACTED]"
    streamed = "".join(str(c.content) for c in chat.stream(f"{LONG}{EMAIL}"))
    assert streamed == f"{LONG}[REDACTED]"
    embeddings = BedrockEmbeddings(
        model_id="amazon.titan-embed-text-v2:0", client=client, region_name="x"
    )
    assert guard.llm(embeddings) is embeddings
    assert embeddings.embed_query("hi") == [0.1, 0.2, 0.3]
    denied = BedrockEmbeddings(
        model_id="deepseek.embed-v1:0", client=client, region_name="x"
    )
    before = len(bedrock_server.requests)
    with pytest.raises(ModelDenied):
        denied.embed_query("hi")
    assert len(bedrock_server.requests) == before


def test_invoke_model_system_prompts_are_protected(
    bedrock_server: BedrockServer,
) -> None:
    client = make(bedrock_server)  # system_prompt="Be brief."
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
    }
    client.invoke_model(modelId=CLAUDE_EU, body=json.dumps(body))
    assert "aiinv-canary-" in bedrock_server.last["system"]
    other = {
        "system": [{"type": "text", "text": "Internal rule 7: never refund twice."}],
        "messages": [
            {"role": "user", "content": "Internal rule 7: never refund twice."}
        ],
    }
    with pytest.raises(OutputBlocked):
        client.invoke_model(modelId=CLAUDE_EU, body=json.dumps(other).encode())


@pytest.mark.parametrize(
    "body",
    [
        # a provider keeping the first "system" reads a prompt never registered
        b'{"system": "Internal rule 7: never refund twice.", "system": "Be brief.",'
        b' "messages": [{"role": "user", "content": "hi"}]}',
        b'{"system": "Be brief.", "messages": [], "temperature": NaN}',
    ],
)
def test_an_invoke_model_body_that_is_not_strict_json_is_not_sent(
    bedrock_server: BedrockServer, body: bytes
) -> None:
    client = make(bedrock_server)
    before = len(bedrock_server.requests)
    with pytest.raises(PolicyError, match="not strict JSON") as info:
        client.invoke_model(modelId=CLAUDE_EU, body=body)
    assert len(bedrock_server.requests) == before
    assert "refund" not in str(info.value)
    assert info.value.__cause__ is None
