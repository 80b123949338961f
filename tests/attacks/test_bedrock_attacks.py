"""Attacks on the Bedrock guard, by class, against real boto3 clients.

What is checked is what botocore sends: the guard's handler runs on the
signed request in ``before-send``, so every test asserts both the stable
denial ``code`` and that the loopback server saw nothing. Denials for real
AWS hosts happen before any connection is opened.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiinvariants import (
    Guard,
    ModelDenied,
    OutputBlocked,
    Policy,
    PolicyError,
    RegionDenied,
)
from aiinvariants.integrations.bedrock import GUARDED_OPERATIONS
from aiinvariants.llm import guard_llm
from bedrock_support import (
    BedrockServer,
    _bedrock_caller,
    _close_bedrock_clients,
    bedrock_client,
    bedrock_server,
    other_server,
)

__all__ = [
    "_bedrock_caller",
    "_close_bedrock_clients",
    "bedrock_server",
    "other_server",
]

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
PAD = "The weather report says light rain in the morning and sun later. " * 3


def guard_for(
    server: BedrockServer, other: BedrockServer | None = None, **models: Any
) -> Guard:
    declared = {server.url: "eu-central-1"}
    if other is not None:
        declared[other.url] = "us-east-1"
    return Guard(
        Policy(
            models=models or {"allow": ["*anthropic.claude-*"], "deny": ["deepseek*"]},
            regions={"allow": ["eu-*"], "declared": declared},
        )
    )


def msg(text: str = "hi") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def eu_policy() -> Guard:
    return Guard(
        Policy(
            models={"allow": ["*anthropic.claude-*"]},
            regions={"allow": ["eu-*"]},
        )
    )


# -- the region is the endpoint's ---------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "code"),
    [
        ("https://bedrock-runtime.us-east-1.amazonaws.com", "region_denied"),
        ("https://BEDROCK-RUNTIME.US-EAST-1.AMAZONAWS.COM", "region_denied"),
        ("https://bedrock-runtime.us-east-1.amazonaws.com.", "region_denied"),
        ("https://bedrock-runtime-fips.us-east-1.amazonaws.com", "region_denied"),
        ("https://bedrock-runtime.us-east-1.api.aws", "region_denied"),
        (
            "https://vpce-0abc123-xyz.bedrock-runtime.us-east-1.vpce.amazonaws.com",
            "region_denied",
        ),
        ("https://bedrock-runtime.cn-north-1.amazonaws.com.cn", "region_denied"),
        ("https://bedrock-runtime.us-east-1.amazonaws.com:443/prefix", "region_denied"),
        # Hosts that only look like an EU endpoint name no region at all.
        (
            "https://bedrock-runtime.eu-central-1.amazonaws.com.evil.test",
            "region_unknown",
        ),
        (
            "https://evil.test/bedrock-runtime.eu-central-1.amazonaws.com",
            "region_unknown",
        ),
        ("https://eu-central-1.evil.test", "region_unknown"),
        # URLs the one URL rule refuses are denied before their region is read.
        (
            "https://bedrock-runtime.eu-central-1.amazonaws.com@evil.test",
            "insecure_url",
        ),
        ("http://bedrock-runtime.us-east-1.amazonaws.com:8080", "insecure_url"),
    ],
)
def test_endpoint_region_wins_over_region_name(endpoint: str, code: str) -> None:
    client = guard_llm(eu_policy(), bedrock_client(endpoint, region="eu-central-1"))
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == code


def test_no_endpoint_url_uses_the_resolved_host() -> None:
    client = bedrock_client(None, region="us-east-1")
    with pytest.raises(RegionDenied) as info:
        guard_llm(eu_policy(), client).converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "region_denied"


def test_undeclared_loopback_is_an_unknown_region(
    bedrock_server: BedrockServer,
) -> None:
    before = len(bedrock_server.requests)
    client = guard_llm(eu_policy(), bedrock_client(bedrock_server.url))
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "region_unknown"
    assert len(bedrock_server.requests) == before


def test_region_name_does_not_matter_when_the_endpoint_is_declared(
    bedrock_server: BedrockServer, other_server: BedrockServer
) -> None:
    guard = guard_for(bedrock_server, other_server)
    # An EU-declared endpoint with a US client region: the request goes to EU.
    eu = guard_llm(guard, bedrock_client(bedrock_server.url, region="us-east-1"))
    assert eu.converse(modelId=CLAUDE, messages=msg())["output"]
    # A US-declared endpoint with an EU client region: denied, nothing sent.
    us = guard_llm(guard, bedrock_client(other_server.url, region="eu-central-1"))
    with pytest.raises(RegionDenied) as info:
        us.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "region_denied"
    assert other_server.requests == []


# -- the endpoint changed after wrapping ----------------------------------------------


def _redirect_builtin(client: Any, url: str) -> None:
    client.converse.__self__._ruleset_resolver._builtins["SDK::Endpoint"] = url


def _redirect_before_sign(client: Any, url: str) -> None:
    def move(request: Any, **_: Any) -> None:
        request.url = request.url.replace(request.url.split("/model/")[0], url)

    client.converse.__self__.meta.events.register("before-sign.bedrock-runtime", move)


def _redirect_request_created(client: Any, url: str) -> None:
    def move(request: Any, **_: Any) -> None:
        request.url = request.url.replace(request.url.split("/model/")[0], url)

    client.converse.__self__.meta.events.register_first(
        "request-created.bedrock-runtime", move
    )


def _redirect_before_call(client: Any, url: str) -> None:
    def move(params: dict[str, Any], **_: Any) -> None:
        params["url"] = url + params["url_path"]

    client.converse.__self__.meta.events.register("before-call.bedrock-runtime", move)


@pytest.mark.parametrize(
    "redirect",
    [
        _redirect_builtin,
        _redirect_before_sign,
        _redirect_request_created,
        _redirect_before_call,
    ],
)
def test_endpoint_changed_after_wrapping(
    bedrock_server: BedrockServer, other_server: BedrockServer, redirect: Any
) -> None:
    guard = guard_for(bedrock_server, other_server)
    client = guard_llm(guard, bedrock_client(bedrock_server.url))
    redirect(client, other_server.url)
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "region_denied"
    assert other_server.requests == []


def test_region_builtin_changed_after_wrapping() -> None:
    raw = bedrock_client(None, region="eu-central-1")
    client = guard_llm(eu_policy(), raw)
    raw._ruleset_resolver._builtins["AWS::Region"] = "us-east-1"
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "region_denied"


def test_endpoint_attributes_that_do_not_route_are_harmless(
    bedrock_server: BedrockServer, other_server: BedrockServer
) -> None:
    raw = bedrock_client(bedrock_server.url)
    client = guard_llm(guard_for(bedrock_server, other_server), raw)
    raw._endpoint.host = other_server.url
    raw.meta._endpoint_url = other_server.url
    before = len(bedrock_server.requests)
    client.converse(modelId=CLAUDE, messages=msg())
    # The request went where the guard judged it would go.
    assert len(bedrock_server.requests) == before + 1
    assert other_server.requests == []


def test_model_rewritten_after_the_early_check(bedrock_server: BedrockServer) -> None:
    raw = bedrock_client(bedrock_server.url)
    client = guard_llm(guard_for(bedrock_server), raw)

    sent = CLAUDE.replace(":", "%3A")

    def swap(params: dict[str, Any], **_: Any) -> None:
        params["url_path"] = params["url_path"].replace(sent, "deepseek.r1-v1%3A0")
        params["url"] = params["url"].replace(sent, "deepseek.r1-v1%3A0")

    raw.meta.events.register("before-call.bedrock-runtime", swap)
    before = len(bedrock_server.requests)
    with pytest.raises(ModelDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "model_denied"
    assert len(bedrock_server.requests) == before


# -- every operation ----------------------------------------------------------------

_PARAMS: dict[str, dict[str, Any]] = {
    "Converse": {"messages": msg()},
    "ConverseStream": {"messages": msg()},
    "InvokeModel": {"body": b"{}"},
    "InvokeModelWithResponseStream": {"body": b"{}"},
    "CountTokens": {"input": {"converse": {"messages": msg()}}},
    "InvokeModelWithBidirectionalStream": {"body": iter(())},
}


def _operations() -> list[tuple[str, str]]:
    import boto3

    client = boto3.client(
        "bedrock-runtime",
        region_name="eu-central-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    ops = sorted(client.meta.method_to_api_mapping.items())
    client.close()
    return ops


@pytest.mark.parametrize(("method", "operation"), _operations())
def test_every_operation_is_guarded_or_refused(
    bedrock_server: BedrockServer, method: str, operation: str
) -> None:
    guarded = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))
    raw = guarded.converse.__self__
    before = len(bedrock_server.requests)
    if operation in GUARDED_OPERATIONS and operation != "ApplyGuardrail":
        with pytest.raises(ModelDenied) as info:
            getattr(guarded, method)(
                modelId="deepseek.r1-v1:0", **_PARAMS.get(operation, {})
            )
        assert info.value.code == "model_denied"
    elif operation == "ApplyGuardrail":
        assert getattr(guarded, method) is not None
    else:
        with pytest.raises(PolicyError):
            getattr(guarded, method)
        # The raw client is hooked too: the operation is refused before it
        # is even validated (botocore itself offers no bidirectional stream).
        if hasattr(raw, method):
            with pytest.raises(PolicyError):
                getattr(raw, method)(modelId=CLAUDE, **_PARAMS.get(operation, {}))
    with pytest.raises(PolicyError):
        raw.generate_presigned_url(method, Params={"modelId": CLAUDE})
    assert len(bedrock_server.requests) == before


def test_apply_guardrail_is_region_checked(
    bedrock_server: BedrockServer, other_server: BedrockServer
) -> None:
    client = guard_llm(
        guard_for(bedrock_server, other_server), bedrock_client(other_server.url)
    )
    with pytest.raises(RegionDenied):
        client.apply_guardrail(
            guardrailIdentifier="g",
            guardrailVersion="1",
            source="INPUT",
            content=[{"text": {"text": "x"}}],
        )
    assert other_server.requests == []


def test_paginators_of_refused_operations_are_refused(
    bedrock_server: BedrockServer,
) -> None:
    guarded = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))
    raw = guarded.converse.__self__
    with pytest.raises(PolicyError):
        list(raw.get_paginator("list_async_invokes").paginate())


# -- model ids as Bedrock spells them ----------------------------------------------


@pytest.mark.parametrize(
    ("model", "exc", "code"),
    [
        ("deepseek.r1-v1:0", ModelDenied, "model_denied"),
        ("us.deepseek.r1-v1:0", ModelDenied, "model_denied"),
        ("DEEPSEEK.R1-V1:0", ModelDenied, "model_denied"),
        ("d\u0435epseek.r1-v1:0", ModelDenied, "model_denied"),  # Cyrillic e
        ("deep\u200bseek.r1-v1:0", ModelDenied, "model_denied"),
        (
            "\uff44\uff45\uff45\uff50\uff53\uff45\uff45\uff4b.r1-v1:0",
            ModelDenied,
            "model_denied",
        ),
        ("deepseek.r1-v1%3A0", ModelDenied, "model_denied"),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/"
            "eu.deepseek.r1-v1:0",
            ModelDenied,
            "model_denied",
        ),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/" + CLAUDE,
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:provisioned-model/a1b2c3",
            ModelDenied,
            "model_unknown",
        ),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:imported-model/a1b2c3",
            ModelDenied,
            "model_unknown",
        ),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:custom-model/"
            "anthropic.claude-3-haiku-20240307-v1:0:200k/a1b2c3",
            ModelDenied,
            "model_unknown",
        ),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:application-inference-profile/abc",
            ModelDenied,
            "model_unknown",
        ),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:prompt/PROMPT12345:1",
            ModelDenied,
            "model_unknown",
        ),
        (
            "arn:aws:sagemaker:eu-central-1:123456789012:endpoint/my-endpoint",
            ModelDenied,
            "model_unknown",
        ),
        ("", ModelDenied, "model_unknown"),
        # A geographic prefix the guard does not know may route anywhere.
        (
            "me.anthropic.claude-3-5-sonnet-20240620-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "sa.anthropic.claude-3-5-sonnet-20240620-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/"
            "emea.anthropic.claude-3-5-sonnet-20240620-v1:0",
            RegionDenied,
            "cross_region_profile",
        ),
        ("\u0435u.anthropic.claude-3-5-sonnet-20240620-v1:0", None, None),
    ],
)
def test_model_id_forms(
    bedrock_server: BedrockServer,
    model: str,
    exc: type[Exception] | None,
    code: str | None,
) -> None:
    client = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))
    before = len(bedrock_server.requests)
    if exc is None:  # a lookalike of an allowed EU profile is that profile
        assert client.converse(modelId=model, messages=msg())["output"]
        assert len(bedrock_server.requests) == before + 1
        return
    with pytest.raises(exc) as info:
        client.converse(modelId=model, messages=msg())
    assert info.value.code == code  # type: ignore[attr-defined]
    assert len(bedrock_server.requests) == before


def test_an_arn_listed_in_the_policy_is_allowed(bedrock_server: BedrockServer) -> None:
    arn = "arn:aws:bedrock:eu-central-1:123456789012:provisioned-model/a1b2c3"
    guard = guard_for(bedrock_server, allow=[arn], deny=["deepseek*"])
    client = guard_llm(guard, bedrock_client(bedrock_server.url))
    assert client.converse(modelId=arn, messages=msg())["output"]
    assert bedrock_server.requests[-1][0] == f"/model/{arn}/converse"


# -- the secret never reaches the caller, from any field ---------------------------


def _converse(client: Any, text: str) -> Any:
    return client.converse(modelId=CLAUDE, messages=msg(text))


def _converse_stream(client: Any, text: str) -> Any:
    return list(client.converse_stream(modelId=CLAUDE, messages=msg(text))["stream"])


def _invoke(model: str) -> Any:
    def run(client: Any, text: str) -> Any:
        body = {"messages": [{"role": "user", "content": text}], "prompt": text}
        return client.invoke_model(modelId=model, body=json.dumps(body))["body"].read()

    return run


def _invoke_stream(model: str) -> Any:
    def run(client: Any, text: str) -> Any:
        body = {"messages": [{"role": "user", "content": text}], "prompt": text}
        response = client.invoke_model_with_response_stream(
            modelId=model, body=json.dumps(body)
        )
        return [e["chunk"]["bytes"] for e in response["body"]]

    return run


@pytest.mark.parametrize(
    ("call", "prefix"),
    [
        (_converse, ""),
        (_converse, "TOOL:"),
        (_converse, "ESC:"),
        (_converse, "REASON:"),
        (_converse, "CITE:"),
        (_converse, "EXTRA:"),
        (_converse_stream, PAD),
        (_converse_stream, "TOOL:"),
        (_converse_stream, "ESC:"),
        (_converse_stream, "REASON:" + PAD),
        (_converse_stream, "CITE:"),
        (_invoke("anthropic.claude-3-haiku-20240307-v1:0"), ""),
        (_invoke("anthropic.claude-3-haiku-20240307-v1:0"), "REASON:"),
        (_invoke("anthropic.claude-3-haiku-20240307-v1:0"), "ESC:"),
        (_invoke("meta.llama3-70b-instruct-v1:0"), ""),
        (_invoke("amazon.titan-text-express-v1"), ""),
        (_invoke("mistral.mistral-large-2402-v1:0"), ""),
        (_invoke("openai.gpt-oss-120b-1:0"), "ESC:"),
        (_invoke("cohere.embed-english-v3"), ""),
        (_invoke_stream("anthropic.claude-3-haiku-20240307-v1:0"), PAD),
        (_invoke_stream("anthropic.claude-3-haiku-20240307-v1:0"), "ESC:"),
        (_invoke_stream("meta.llama3-70b-instruct-v1:0"), PAD),
    ],
)
def test_secret_in_every_text_field_is_blocked(
    bedrock_server: BedrockServer, call: Any, prefix: str
) -> None:
    guard = guard_for(
        bedrock_server,
        allow=[
            "*anthropic.claude-*",
            "*meta.llama*",
            "*amazon.titan-*",
            "*mistral.*",
            "*openai.gpt-oss-*",
            "*cohere.embed-*",
        ],
        deny=["deepseek*"],
    )
    client = guard_llm(guard, bedrock_client(bedrock_server.url))
    seen: list[Any] = []

    def run() -> None:
        seen.append(call(client, prefix + SECRET))

    with pytest.raises(OutputBlocked):
        run()
    assert SECRET[:10] not in repr(seen)


def test_error_message_echoing_a_secret_is_blocked(
    bedrock_server: BedrockServer,
) -> None:
    client = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))
    with pytest.raises(OutputBlocked) as info:
        client.converse(modelId=CLAUDE, messages=msg("ERROR:" + SECRET))
    assert all(SECRET[:10] not in f"{e!s} {e!r}" for e in _chain(info.value))


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


@pytest.mark.parametrize("text", [SECRET, "mail ops@example.com"])
def test_stream_errors_carry_only_checked_text(
    bedrock_server: BedrockServer, text: str
) -> None:
    import botocore.exceptions

    client = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))
    body = json.dumps({"messages": [{"role": "user", "content": "ERROR:" + text}]})
    calls = [
        lambda: client.converse_stream(modelId=CLAUDE, messages=msg("ERROR:" + text))[
            "stream"
        ],
        lambda: client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)[
            "body"
        ],
    ]
    for call in calls:
        stream = call()
        with pytest.raises(
            (OutputBlocked, botocore.exceptions.EventStreamError)
        ) as info:
            list(stream)
        for error in _chain(info.value):
            assert text not in f"{error!s} {error!r}"
        if text == SECRET:
            assert isinstance(info.value, OutputBlocked)
        else:
            assert "[REDACTED]" in str(info.value)


def test_rewrapping_with_a_laxer_guard_does_not_weaken(
    bedrock_server: BedrockServer,
) -> None:
    raw = bedrock_client(bedrock_server.url)
    guard_llm(guard_for(bedrock_server), raw)
    lax = Guard(
        Policy(
            models={"allow": ["*"]},
            regions={"declared": {bedrock_server.url: "us-east-1"}},
        )
    )
    relaxed = guard_llm(lax, raw)
    before = len(bedrock_server.requests)
    with pytest.raises(ModelDenied):
        relaxed.converse(modelId="deepseek.r1-v1:0", messages=msg())
    assert len(bedrock_server.requests) == before


def test_concurrent_calls_keep_their_own_decisions(
    bedrock_server: BedrockServer,
) -> None:
    from aiinvariants import PrincipalExecutor

    client = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))

    def one(i: int) -> str:
        model = "deepseek.r1-v1:0" if i % 2 else CLAUDE
        try:
            out = client.converse(modelId=model, messages=msg(f"n{i} ops@example.com"))
        except ModelDenied as denial:
            return denial.code
        return str(out["output"]["message"]["content"][0]["text"])

    with PrincipalExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(40)))
    for i, result in enumerate(results):
        assert result == ("model_denied" if i % 2 else f"n{i} [REDACTED]")


def test_redirects_are_not_followed(
    bedrock_server: BedrockServer, other_server: BedrockServer
) -> None:
    import botocore.exceptions

    client = guard_llm(
        guard_for(bedrock_server, other_server), bedrock_client(bedrock_server.url)
    )
    with pytest.raises(botocore.exceptions.ClientError):
        client.converse(
            modelId=CLAUDE,
            messages=msg(f"REDIRECT:{other_server.url}/model/x/converse"),
        )
    assert other_server.requests == []


def test_an_unreadable_body_is_refused(bedrock_server: BedrockServer) -> None:
    guard = guard_for(bedrock_server, allow=["*stability.*"], deny=[])
    client = guard_llm(guard, bedrock_client(bedrock_server.url))
    with pytest.raises(OutputBlocked) as info:
        client.invoke_model(modelId="stability.sd3-5-large-v1:0", body=b"{}")
    assert info.value.code == "unreadable_output"


@pytest.mark.parametrize(
    "call",
    [
        _converse,
        _converse_stream,
        _invoke("anthropic.claude-3-haiku-20240307-v1:0"),
        _invoke_stream("anthropic.claude-3-haiku-20240307-v1:0"),
    ],
    ids=["converse", "converse_stream", "invoke", "invoke_stream"],
)
def test_secret_split_across_two_blocks_is_blocked(
    bedrock_server: BedrockServer, call: Any
) -> None:
    client = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))
    # Each half alone is no finding: only the joined answer holds the secret.
    assert Guard().output_pipeline().check(SECRET[:20]).findings == ()
    assert Guard().output_pipeline().check(SECRET[20:]).findings == ()
    seen: list[Any] = []

    def run() -> None:
        seen.append(call(client, "SPLIT:" + SECRET))

    with pytest.raises(OutputBlocked):
        run()
    assert SECRET not in repr(seen)


def test_split_secret_in_a_stream_never_reaches_the_caller_whole(
    bedrock_server: BedrockServer,
) -> None:
    client = guard_llm(guard_for(bedrock_server), bedrock_client(bedrock_server.url))
    response = client.converse_stream(modelId=CLAUDE, messages=msg("SPLIT:" + SECRET))
    received: list[str] = []
    with pytest.raises(OutputBlocked):
        received.extend(
            e["contentBlockDelta"]["delta"].get("text", "")
            for e in response["stream"]
            if "contentBlockDelta" in e
        )
    assert SECRET not in "".join(received)
    assert SECRET[20:] not in "".join(received)


def test_denials_are_audited_and_audit_carries_no_secret(
    bedrock_server: BedrockServer, other_server: BedrockServer
) -> None:
    from aiinvariants.audit import MemorySink

    sink = MemorySink()
    base = guard_for(bedrock_server, other_server)
    guard = Guard(base.policy, sinks=[sink])
    client = guard_llm(guard, bedrock_client(bedrock_server.url))
    with pytest.raises(ModelDenied):
        client.converse(modelId="deepseek.r1-v1:0", messages=msg())
    with pytest.raises(PolicyError):
        client.converse.__self__.start_async_invoke(
            modelId=CLAUDE, modelInput={}, outputDataConfig={}
        )
    with pytest.raises(OutputBlocked):
        client.converse(modelId=CLAUDE, messages=msg(SECRET))
    us = guard_llm(guard, bedrock_client(other_server.url))
    with pytest.raises(RegionDenied):
        us.converse(modelId=CLAUDE, messages=msg())
    reasons = {(e.invariant, e.decision, e.reason) for e in sink.events}
    assert ("I5", "deny", "model_denied") in reasons
    assert ("I5", "deny", "operation_unguarded") in reasons
    assert ("I6", "deny", "region_denied") in reasons
    assert any(e.invariant == "I8" and e.decision != "allow" for e in sink.events)
    assert all(SECRET[:10] not in f"{e!r} {e.details!r}" for e in sink.events)
