"""I4 attacks: the user's inbound token must never reach a downstream API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from aiinvariants import Principal, TokenInvalid, acting_as
from aiinvariants.audit import AuditLog, MemorySink
from aiinvariants.auth import JWTVerifier, PassthroughGuard, TokenExchanger
from oauth_support import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server

API = "https://agent.example.test"
BILLING_AUD = "https://billing.example.test"


class Downstream:
    """A loopback API that records every Authorization header it receives."""

    def __init__(self) -> None:
        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    api = Downstream()
    try:
        yield api
    finally:
        api.close()


def verified_user(oauth: OAuthServer) -> Principal:
    token = oauth.mint_user("alice", audience=API, scopes="billing:read")
    return JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    ).verify(token)


def test_inbound_token_passthrough_is_refused(
    oauth: OAuthServer, downstream: Downstream
) -> None:
    memory = MemorySink()
    hook = PassthroughGuard(
        audiences={downstream.url: BILLING_AUD}, audit=AuditLog(sinks=[memory])
    )
    who = verified_user(oauth)
    token = who.raw_token()
    assert token
    with (
        acting_as(who),
        httpx.Client(event_hooks={"request": [hook]}) as client,
        pytest.raises(TokenInvalid) as info,
    ):
        client.get(downstream.url, headers={"Authorization": f"Bearer {token}"})
    assert info.value.code == "token_passthrough"
    assert info.value.invariant == "I4"
    assert downstream.seen == []  # nothing left the process
    assert memory.events[-1].reason == "token_passthrough"
    assert token not in repr(memory.events)


def test_inbound_token_refused_even_outside_the_request_context(
    oauth: OAuthServer, downstream: Downstream
) -> None:
    # A background task that lost the principal still cannot forward the
    # token: its audience is this API, not the destination's.
    hook = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    token = verified_user(oauth).raw_token()
    with (
        httpx.Client(event_hooks={"request": [hook]}) as client,
        pytest.raises(TokenInvalid) as info,
    ):
        client.get(downstream.url, headers={"Authorization": f"Bearer {token}"})
    assert info.value.code == "token_audience_mismatch"
    assert downstream.seen == []


def test_exchanged_token_reaches_its_audience(
    oauth: OAuthServer, downstream: Downstream
) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    hook = PassthroughGuard(
        audiences={downstream.url: BILLING_AUD}, exchanger=exchanger
    )
    with acting_as(verified_user(oauth)):
        issued = exchanger.exchange(audience=BILLING_AUD, scopes=["billing:read"])
        with httpx.Client(event_hooks={"request": [hook]}) as client:
            response = client.get(
                downstream.url, headers={"Authorization": issued.authorization()}
            )
    assert response.status_code == 200
    assert downstream.seen == [issued.authorization()]


def test_token_for_another_downstream_is_refused(
    oauth: OAuthServer, downstream: Downstream
) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    hook = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    with acting_as(verified_user(oauth)):
        other = exchanger.exchange(audience="https://crm.example.test")
        with (
            httpx.Client(event_hooks={"request": [hook]}) as client,
            pytest.raises(TokenInvalid) as info,
        ):
            client.get(downstream.url, headers={"Authorization": other.authorization()})
    assert info.value.code == "token_audience_mismatch"
    assert downstream.seen == []


def test_unknown_destination_and_opaque_tokens(downstream: Downstream) -> None:
    hook = PassthroughGuard(audiences={"https://billing.example.test": BILLING_AUD})
    with httpx.Client(event_hooks={"request": [hook]}) as client:
        with pytest.raises(TokenInvalid) as info:
            client.get(downstream.url, headers={"Authorization": "Bearer opaque"})
        assert info.value.code == "token_destination_unknown"
        # No bearer token: nothing to check.
        assert client.get(downstream.url).status_code == 200
    opaque = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    with (
        httpx.Client(event_hooks={"request": [opaque]}) as client,
        pytest.raises(TokenInvalid) as unknown,
    ):
        client.get(downstream.url, headers={"Authorization": "Bearer opaque"})
    assert unknown.value.code == "token_audience_mismatch"


def test_async_client_hook(oauth: OAuthServer, downstream: Downstream) -> None:
    import asyncio

    hook = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    who = verified_user(oauth)

    async def run() -> None:
        async with (
            acting_as(who),
            httpx.AsyncClient(event_hooks={"request": [hook.async_hook]}) as client,
        ):
            await client.get(
                downstream.url,
                headers={"Authorization": f"Bearer {who.raw_token()}"},
            )

    with pytest.raises(TokenInvalid):
        asyncio.run(run())
    assert downstream.seen == []
