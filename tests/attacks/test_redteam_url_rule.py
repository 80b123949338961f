"""Red team, I4/I1: plain http on loopback that really goes elsewhere.

The URL rule accepts plain http only for loopback hosts, because nothing
crosses the network. With a proxy in the environment (``HTTP_PROXY`` or
``ALL_PROXY``, common on corporate hosts and CI runners, and httpx honours
them without ``NO_PROXY``), httpx sent the request to the proxy instead:
the token exchange carried the user's token and the client secret in clear
text to another host, and a JWKS fetch let that host answer with its own
keys. The endpoint really contacted must be the loopback one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aiinvariants import acting_as
from aiinvariants.auth import JWTVerifier, TokenExchanger
from oauth_support import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server

API = "https://agent.example.test"
BILLING = "https://billing.example.test"


class Proxy:
    """A "proxy" that records what reaches it and answers nothing useful."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                seen.append(self.requestline)
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any  # noqa: N815 - http.server names

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        ).start()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    server = Proxy()
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.setenv("ALL_PROXY", server.url)
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def test_jwks_and_token_exchange_on_loopback_never_go_through_a_proxy(
    oauth: OAuthServer, proxy: Proxy
) -> None:
    token = oauth.mint_user("alice", audience=API, scopes="billing:read")
    who = JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks_uri=oauth.jwks_uri
    ).verify(token)
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    with acting_as(who):
        issued = exchanger.exchange(audience=BILLING, scopes=["billing:read"])
    assert issued.audience == BILLING
    assert proxy.seen == []


def test_the_async_exchange_never_goes_through_a_proxy(
    oauth: OAuthServer, proxy: Proxy
) -> None:
    import asyncio

    token = oauth.mint_user("alice", audience=API, scopes="billing:read")
    who = JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    ).verify(token)
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )

    async def go() -> str:
        with acting_as(who):
            return (await exchanger.aexchange(audience=BILLING)).audience

    assert asyncio.run(go()) == BILLING
    assert proxy.seen == []


def test_a_loopback_classifier_never_sends_its_key_through_a_proxy(
    proxy: Proxy,
) -> None:
    import socket

    from aiinvariants.filters.classifiers import (
        ClassifierError,
        OpenAIModerationClassifier,
    )

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    classifier = OpenAIModerationClassifier(
        api_key="sk-not-real-0123456789",
        base_url=f"http://127.0.0.1:{port}/v1",
        attempts=1,
        timeout_s=1,
        budget_s=2,
    )
    try:
        with pytest.raises(ClassifierError):  # the port is closed: fails closed
            classifier.classify("hello")
    finally:
        classifier.close()
    assert proxy.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost.:8080/token",
        "http://LOCALHOST.:8080/token",
        "http://127.0.0.1.:8080/token",
    ],
)
def test_a_trailing_dot_is_not_loopback(url: str) -> None:
    # glibc does not find "localhost." or "127.0.0.1." in /etc/hosts and
    # asks DNS: whoever answers gets the token in clear text.
    from aiinvariants import PolicyError
    from aiinvariants._internal.urls import url_problem

    assert url_problem(url) is not None
    with pytest.raises(PolicyError):
        TokenExchanger(token_endpoint=url, client_id=CLIENT_ID)
