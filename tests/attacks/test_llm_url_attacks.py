"""Attacks on where a guarded LLM client sends its requests (and its API key).

Every request a guarded client lets out carries a credential (an API key, a
SigV4 signature), so it goes only to a URL the one URL rule accepts: https,
or plain http to a loopback host; no credentials inside the URL; one reading
for every parser. The check runs on the final request at the wire, so every
route that changes the destination (base_url set after wrapping,
``with_options``, a redirect, a Bedrock ``endpoint_url``, a plain callable's
``endpoint=``) meets it. Each test uses the real SDK and asserts that the
request was refused with ``insecure_url`` before any transport was reached.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import Guard, Policy, PolicyError, RegionDenied
from aiinvariants.audit import MemorySink
from aiinvariants.llm import guard_llm
from bedrock_support import _bedrock_caller, _close_bedrock_clients, bedrock_client
from llm_support import LLMServer, _close_clients, _signed_in, closing, llm_server

__all__ = [
    "_bedrock_caller",
    "_close_bedrock_clients",
    "_close_clients",
    "_signed_in",
    "llm_server",
]

MSGS = [{"role": "user", "content": "hello"}]
API_KEY = "sk-url-attack-key-0123456789"
PASSWORD = "hunter2-in-the-url"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"

#: URLs the rule refuses, each by a different route to a readable credential.
#: None of these hosts is contacted: the request is refused before that.
REFUSED_BASES = [
    "http://10.0.0.1/v1",  # plain http to a private address
    "http://example.invalid/v1",  # plain http to a name
    "http://localhost.evil.test/v1",  # a name that starts like loopback
    "http://127.0.0.1.evil.test/v1",  # a name that starts like a loopback IP
    "http://[::ffff:10.0.0.1]/v1",  # IPv4-mapped IPv6, not loopback
    "http://0x7f000001/v1",  # a spelling only some resolvers read as loopback
    "http://10.0.0.1:443/v1",  # http on the https port is still http
    f"https://user:{PASSWORD}@127.0.0.1:9/v1",  # credentials, even to loopback
    f"https://{PASSWORD}@example.invalid/v1",  # a user name alone
    "https://127.0.0.1@example.invalid/v1",  # '@' disguising the host
    "http://127.0.0.1\\@example.invalid/v1",  # backslash: httpx sends %5C@
    "https://example.invalid/v1#frag",  # a fragment
]


def _policy(**kw: Any) -> Policy:
    doc: dict[str, Any] = {"models": {"allow": ["gpt-4.1*", "claude-*"]}}
    doc.update(kw)
    return Policy(**doc)


class Recording(httpx.HTTPTransport):
    """The real httpx transport, remembering every request it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[httpx.URL] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url)
        return super().handle_request(request)


class AsyncRecording(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url)
        return await super().handle_async_request(request)


def _openai(base_url: str, transport: httpx.BaseTransport) -> Any:
    return closing(
        openai.OpenAI(
            api_key=API_KEY,
            base_url=base_url,
            max_retries=0,
            http_client=httpx.Client(transport=transport, follow_redirects=True),
        )
    )


def _assert_refused(err: RegionDenied, sink: MemorySink) -> None:
    """``insecure_url``, audited, and no URL or credential in either."""
    assert err.code == "insecure_url"
    assert err.invariant == "I6"
    denials = [
        e
        for e in sink.events
        if e.decision == "deny" and e.reason == "insecure_url" and e.invariant == "I6"
    ]
    assert denials, "the refusal was not audited"
    exposed = [str(err), repr(err)]
    chained = err.__cause__ or err.__context__
    while chained is not None:
        exposed.append(repr(chained))
        chained = chained.__cause__ or chained.__context__
    exposed.extend(repr(e) for e in sink.events)
    for text in exposed:
        assert PASSWORD not in text
        assert API_KEY not in text


# -- the SDK clients ---------------------------------------------------------------


@pytest.mark.parametrize("base_url", REFUSED_BASES)
def test_openai_refuses_before_the_transport(base_url: str) -> None:
    sink = MemorySink()
    transport = Recording()
    client = guard_llm(Guard(_policy(), sinks=[sink]), _openai(base_url, transport))
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    assert transport.seen == [], "the refused request reached the transport"
    _assert_refused(info.value, sink)


@pytest.mark.parametrize("base_url", ["http://10.0.0.1", "http://localhost.evil.test"])
def test_anthropic_refuses_before_the_transport(base_url: str) -> None:
    sink = MemorySink()
    seen: list[Any] = []

    class Recording2(httpx2.HTTPTransport):  # anthropic sends through httpx2
        def handle_request(self, request: Any) -> Any:
            seen.append(request.url)
            return super().handle_request(request)

    raw = closing(
        anthropic.Anthropic(
            api_key=API_KEY,
            base_url=base_url,
            max_retries=0,
            http_client=httpx2.Client(transport=Recording2()),
        )
    )
    client = guard_llm(Guard(_policy(), sinks=[sink]), raw)
    with pytest.raises(RegionDenied) as info:
        client.messages.create(model="claude-3-5-sonnet", max_tokens=8, messages=MSGS)
    assert seen == []
    _assert_refused(info.value, sink)


def test_azure_endpoint_over_http() -> None:
    sink = MemorySink()
    transport = Recording()
    raw = closing(
        openai.AzureOpenAI(
            api_key=API_KEY,
            azure_endpoint="http://myresource.openai.azure.com",
            api_version="2024-06-01",
            max_retries=0,
            http_client=httpx.Client(transport=transport),
        )
    )
    policy = _policy(
        models={"allow": ["gpt-4.1*"], "azure_deployments": {"d": "gpt-4.1"}}
    )
    client = guard_llm(Guard(policy, sinks=[sink]), raw)
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="d", messages=MSGS)
    assert transport.seen == []
    _assert_refused(info.value, sink)


def test_async_openai_refuses_before_the_transport() -> None:
    sink = MemorySink()
    transport = AsyncRecording()

    async def run() -> RegionDenied:
        raw = openai.AsyncOpenAI(
            api_key=API_KEY,
            base_url="http://10.0.0.1/v1",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=transport),
        )
        client = guard_llm(Guard(_policy(), sinks=[sink]), raw)
        try:
            with pytest.raises(RegionDenied) as info:
                await client.chat.completions.create(model="gpt-4.1", messages=MSGS)
            return info.value
        finally:
            await raw.close()

    err = asyncio.run(run())
    assert transport.seen == []
    _assert_refused(err, sink)


def test_requests_without_a_body_are_refused_too(llm_server: LLMServer) -> None:
    """``models.list`` sends the API key as well: it is no exception."""
    sink = MemorySink()
    transport = Recording()
    client = guard_llm(
        Guard(_policy(), sinks=[sink]), _openai("http://10.0.0.1/v1", transport)
    )
    with pytest.raises(RegionDenied) as info:
        client.models.list()
    assert transport.seen == []
    _assert_refused(info.value, sink)


def test_langchain_chat_models_refuse_before_the_transport() -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    sink = MemorySink()
    guard = Guard(_policy(), sinks=[sink])
    transport = Recording()
    lc_openai = ChatOpenAI(
        model="gpt-4.1",
        api_key=API_KEY,
        base_url="http://10.0.0.1/v1",
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )
    lc_anthropic = ChatAnthropic(
        model="claude-3-5-sonnet",
        api_key=API_KEY,
        base_url="http://localhost.evil.test",
        max_retries=0,
    )
    for chat in (lc_openai, lc_anthropic):
        with pytest.raises(RegionDenied) as info:
            guard_llm(guard, chat).invoke("hello")
        _assert_refused(info.value, sink)
    assert transport.seen == []


# -- changing the destination after wrapping ---------------------------------------


def test_base_url_changed_after_wrapping(llm_server: LLMServer) -> None:
    sink = MemorySink()
    transport = Recording()
    client = guard_llm(
        Guard(_policy(), sinks=[sink]), _openai(llm_server.url + "/v1", transport)
    )
    client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    assert len(transport.seen) == 1  # loopback http is accepted
    client.base_url = "http://10.0.0.1/v1"
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    assert len(transport.seen) == 1
    _assert_refused(info.value, sink)


def test_with_options_base_url(llm_server: LLMServer) -> None:
    sink = MemorySink()
    transport = Recording()
    client = guard_llm(
        Guard(_policy(), sinks=[sink]), _openai(llm_server.url + "/v1", transport)
    )
    for moved in (
        client.with_options(base_url="http://example.invalid/v1"),
        client.copy(base_url=f"https://u:{PASSWORD}@127.0.0.1:9/v1"),
    ):
        with pytest.raises(RegionDenied) as info:
            moved.chat.completions.create(model="gpt-4.1", messages=MSGS)
        _assert_refused(info.value, sink)
    assert transport.seen == []


def test_absolute_url_in_a_raw_request(llm_server: LLMServer) -> None:
    """The SDK's own ``post`` with an absolute URL goes past base_url."""
    sink = MemorySink()
    transport = Recording()
    client = guard_llm(
        Guard(_policy(), sinks=[sink]), _openai(llm_server.url + "/v1", transport)
    )
    with pytest.raises(RegionDenied) as info:
        client.post(
            "http://10.0.0.1/v1/chat/completions",
            body={"model": "gpt-4.1", "messages": MSGS},
            cast_to=httpx.Response,
        )
    assert transport.seen == []
    _assert_refused(info.value, sink)


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1:9",
        "http://localhost.evil.test:9",
        f"http://user:{PASSWORD}@127.0.0.1:9",
    ],
)
def test_redirect_to_a_refused_url(llm_server: LLMServer, target: str) -> None:
    """The server the rule accepts answers 307 to one it refuses."""
    sink = MemorySink()
    transport = Recording()
    client = guard_llm(
        Guard(_policy(), sinks=[sink]), _openai(llm_server.url + "/v1", transport)
    )
    llm_server.answer = None
    llm_server.redirect_to = target
    try:
        with pytest.raises(RegionDenied) as info:
            client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    finally:
        llm_server.redirect_to = None
    # the first request went to the loopback server; the redirect never left
    assert [u.host for u in transport.seen] == ["127.0.0.1"]
    _assert_refused(info.value, sink)


# -- Bedrock -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://10.0.0.1",
        "http://bedrock-runtime.eu-central-1.amazonaws.com",
        "http://localhost.evil.test:9",
        "https://bedrock-runtime.eu-central-1.amazonaws.com@example.invalid",
    ],
)
def test_bedrock_endpoint_url(endpoint: str) -> None:
    sink = MemorySink()
    raw = bedrock_client(endpoint, connect_timeout=1, read_timeout=1)
    client = guard_llm(Guard(_policy(models={"allow": ["*"]}), sinks=[sink]), raw)
    sent: list[str] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(str(request.url))

    # Runs after the guard's own before-send handler; botocore sends only
    # after every handler ran, so an empty list means nothing was sent.
    raw.meta.events.register_last("before-send.bedrock-runtime", record)
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": []}])
    assert sent == []
    assert info.value.code == "insecure_url"
    assert any(e.reason == "insecure_url" for e in sink.events)


def test_bedrock_endpoint_changed_after_wrapping() -> None:
    raw = bedrock_client("https://bedrock-runtime.eu-central-1.amazonaws.com")
    client = guard_llm(Guard(_policy(models={"allow": ["*"]})), raw)
    sent: list[str] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(str(request.url))

    def move(request: Any, **_: Any) -> None:
        request.url = request.url.replace("https://", "http://", 1)

    # A handler that rewrites the prepared request before the guard's runs.
    raw.meta.events.register_first("before-send.bedrock-runtime", move)
    raw.meta.events.register_last("before-send.bedrock-runtime", record)
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": []}])
    assert sent == []
    assert info.value.code == "insecure_url"


# -- a plain callable and the policy -----------------------------------------------


@pytest.mark.parametrize(
    "endpoint", ["http://10.0.0.1/v1", f"https://u:{PASSWORD}@llm.example/v1", ""]
)
def test_callable_endpoint_is_checked_when_wrapping(endpoint: str) -> None:
    sink = MemorySink()
    calls: list[str] = []

    def complete(prompt: str) -> str:
        calls.append(prompt)
        return "ok"

    with pytest.raises(RegionDenied) as info:
        guard_llm(
            Guard(_policy(), sinks=[sink]),
            complete,
            model="gpt-4.1",
            endpoint=endpoint,
        )
    assert calls == []
    _assert_refused(info.value, sink)


def test_callable_with_an_accepted_endpoint_still_runs() -> None:
    def complete(prompt: str) -> str:
        return "ok"

    for endpoint in ("https://llm.example/v1", "http://127.0.0.1:9/v1"):
        guarded = guard_llm(
            Guard(_policy()), complete, model="gpt-4.1", endpoint=endpoint
        )
        assert guarded("hi") == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/v1",
        f"https://u:{PASSWORD}@bedrock.example",
        "http://localhost.evil.test",
    ],
)
def test_declared_endpoints_follow_the_rule_at_policy_load(url: str) -> None:
    """``regions.declared`` keys are policy URLs: the same rule, at load."""
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"regions": {"allow": ["eu-*"], "declared": {url: "eu-1"}}})
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value.errors)
    assert any(path.startswith("regions.declared") for path, _ in info.value.errors)


# -- the property ------------------------------------------------------------------

_HOSTS = [
    "127.0.0.1",
    "127.9.8.7",
    "localhost",
    "[::1]",
    "10.0.0.1",
    "example.invalid",
    "localhost.evil.test",
    "127.0.0.1.evil.test",
    "[::ffff:127.0.0.1]",
    "0x7f000001",
    "2130706433",
]
_LOOPBACK = {"127.0.0.1", "127.9.8.7", "localhost", "::1"}
#: numeric spellings parsers read differently: refused or not, never sent as http
_ODD = {"::ffff:127.0.0.1", "0x7f000001", "2130706433"}


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4.1",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"},
                }
            ],
        },
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "HtTpS"]),
    userinfo=st.sampled_from(["", "u@", "u:p@", ":@", "@"]),
    host=st.sampled_from(_HOSTS),
    port=st.sampled_from(["", ":9", ":443", ":80"]),
)
def test_only_accepted_urls_reach_the_transport(
    scheme: str, userinfo: str, host: str, port: str
) -> None:
    """Whatever the base_url, the transport sees https or loopback http, no userinfo."""
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return _answer(request)

    base = f"{scheme}://{userinfo}{host}{port}/v1"
    try:
        raw = openai.OpenAI(
            api_key=API_KEY,
            base_url=base,
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        )
    except (ValueError, httpx.InvalidURL):
        return  # the SDK itself cannot build it: nothing can be sent
    try:
        client = guard_llm(Guard(_policy()), raw)
        codes: list[str] = []
        try:
            client.chat.completions.create(model="gpt-4.1", messages=MSGS)
        except RegionDenied as err:
            codes.append(err.code)
        except openai.APIConnectionError:
            pass  # httpx refused the URL itself; nothing was sent
        assert set(codes) <= {"insecure_url"}
    finally:
        raw.close()
    for url in seen:
        assert not url.userinfo
        assert url.scheme == "https" or url.host in _LOOPBACK
    # and the rule is no blanket refusal: a clean https or loopback URL goes
    plain = host.strip("[]")
    if (
        not userinfo
        and plain not in _ODD
        and (scheme.lower() == "https" or plain in _LOOPBACK)
    ):
        assert len(seen) == 1, base
