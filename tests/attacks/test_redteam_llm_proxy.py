"""Red team: a plain-http loopback LLM endpoint reached through a proxy.

Plain http is accepted only to a loopback host because nothing crosses the
network. A proxy (``HTTP_PROXY`` from the environment, which the SDKs'
default httpx clients trust, or an app's ``httpx.Client(proxy=...)``)
receives a plain-http request in clear, API key included, and is another
host. So such a request is refused with ``insecure_url`` before the proxy is
contacted; https through a proxy stays allowed (a CONNECT tunnel keeps TLS).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aiinvariants import Guard, Policy, RegionDenied
from aiinvariants.audit import MemorySink
from aiinvariants.llm import guard_llm
from bedrock_support import _bedrock_caller, _close_bedrock_clients
from llm_support import LLMServer, QuietServer, _close_clients, _signed_in, closing

__all__ = [
    "_bedrock_caller",
    "_close_bedrock_clients",
    "_close_clients",
    "_signed_in",
]

API_KEY = "sk-proxy-attack-key-0123456789"
MSGS = [{"role": "user", "content": "hello"}]


class Proxy:
    """A loopback stand-in for a remote proxy: it records what it reads."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                state.seen.append(f"{self.command} {self.path} {dict(self.headers)}")
                self.send_response(502)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = do_CONNECT = _any  # noqa: N815

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Any:
    p = Proxy()
    yield p
    p.close()


@pytest.fixture
def server() -> Any:
    s = LLMServer()
    yield s
    s.close()


def _policy() -> Policy:
    return Policy(models={"allow": ["gpt-4.1*", "claude-*"]})


def _refused(info: Any, sink: MemorySink, proxy: Proxy) -> None:
    assert proxy.seen == [], "the API key went to a proxy in clear"
    assert info.value.code == "insecure_url"
    assert any(e.reason == "insecure_url" for e in sink.events)
    for text in [str(info.value), *(repr(e) for e in sink.events)]:
        assert API_KEY not in text


def test_env_http_proxy_with_loopback_http_openai(
    monkeypatch: pytest.MonkeyPatch, proxy: Proxy, server: LLMServer
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sink = MemorySink()
    raw = closing(
        openai.OpenAI(api_key=API_KEY, base_url=server.url + "/v1", max_retries=0)
    )
    client = guard_llm(Guard(_policy(), sinks=[sink]), raw)
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    _refused(info, sink, proxy)


def test_env_http_proxy_with_loopback_http_anthropic(
    monkeypatch: pytest.MonkeyPatch, proxy: Proxy, server: LLMServer
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sink = MemorySink()
    raw = closing(
        anthropic.Anthropic(api_key=API_KEY, base_url=server.url, max_retries=0)
    )
    client = guard_llm(Guard(_policy(), sinks=[sink]), raw)
    with pytest.raises(RegionDenied) as info:
        client.messages.create(model="claude-3-5-sonnet", max_tokens=8, messages=MSGS)
    _refused(info, sink, proxy)


def test_app_client_proxy_with_loopback_http(proxy: Proxy, server: LLMServer) -> None:
    sink = MemorySink()
    raw = closing(
        openai.OpenAI(
            api_key=API_KEY,
            base_url=server.url + "/v1",
            max_retries=0,
            http_client=httpx.Client(proxy=proxy.url),
        )
    )
    client = guard_llm(Guard(_policy(), sinks=[sink]), raw)
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    _refused(info, sink, proxy)


def test_async_app_mount_proxy_with_loopback_http(
    proxy: Proxy, server: LLMServer
) -> None:
    import asyncio

    sink = MemorySink()

    async def run() -> Any:
        raw = openai.AsyncOpenAI(
            api_key=API_KEY,
            base_url=server.url + "/v1",
            max_retries=0,
            http_client=httpx.AsyncClient(
                mounts={"http://": httpx.AsyncHTTPTransport(proxy=proxy.url)}
            ),
        )
        client = guard_llm(Guard(_policy(), sinks=[sink]), raw)
        try:
            with pytest.raises(RegionDenied) as info:
                await client.chat.completions.create(model="gpt-4.1", messages=MSGS)
            return info
        finally:
            await raw.close()

    _refused(asyncio.run(run()), sink, proxy)


def test_loopback_http_without_proxy_still_works(
    monkeypatch: pytest.MonkeyPatch, server: LLMServer
) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    raw = closing(
        openai.OpenAI(api_key=API_KEY, base_url=server.url + "/v1", max_retries=0)
    )
    client = guard_llm(Guard(_policy()), raw)
    out = client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    assert out.choices[0].message.content


def test_bedrock_env_http_proxy_with_loopback_http(
    monkeypatch: pytest.MonkeyPatch, proxy: Proxy, server: LLMServer
) -> None:
    from bedrock_support import bedrock_client

    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sink = MemorySink()
    policy = Policy(models={"allow": ["anthropic.claude-*"]})
    client = guard_llm(Guard(policy, sinks=[sink]), bedrock_client(server.url))
    msgs = [{"role": "user", "content": [{"text": "hello"}]}]
    with pytest.raises(RegionDenied) as info:
        client.converse(
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", messages=msgs
        )
    _refused(info, sink, proxy)


def test_bedrock_config_proxy_with_loopback_http(
    proxy: Proxy, server: LLMServer
) -> None:
    from bedrock_support import bedrock_client

    sink = MemorySink()
    policy = Policy(models={"allow": ["anthropic.claude-*"]})
    raw = bedrock_client(server.url, proxies={"http": proxy.url})
    client = guard_llm(Guard(policy, sinks=[sink]), raw)
    msgs = [{"role": "user", "content": [{"text": "hello"}]}]
    with pytest.raises(RegionDenied) as info:
        client.converse(
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", messages=msgs
        )
    _refused(info, sink, proxy)


class RetryTransport(httpx.BaseTransport):
    """An app's wrapper (retries) around a proxied httpx transport."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.transport.handle_request(request)


def test_app_wrapped_proxied_transport_with_loopback_http(
    proxy: Proxy, server: LLMServer
) -> None:
    sink = MemorySink()
    inner = httpx.HTTPTransport(proxy=proxy.url)
    raw = closing(
        openai.OpenAI(
            api_key=API_KEY,
            base_url=server.url + "/v1",
            max_retries=0,
            http_client=httpx.Client(transport=RetryTransport(inner)),
        )
    )
    client = guard_llm(Guard(_policy(), sinks=[sink]), raw)
    with pytest.raises(RegionDenied) as info:
        client.chat.completions.create(model="gpt-4.1", messages=MSGS)
    _refused(info, sink, proxy)
