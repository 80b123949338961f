"""Red team, I4: passthrough shapes the whole-request scan missed.

Class 1 — a token cut in chunks: large cookies are split by frameworks
(``token.0``, ``token.1``) and a back-end-for-frontend forwards them as they
are; a value may also be spread over two headers. Joined in order, they are
the user's token.

Class 2 — an exchanged (opaque) token sent to another destination than
its audience in a shape other than ``Authorization: Bearer``: another
scheme (``Token``), another header (``X-Api-Key``), a query parameter, or a
second ``Authorization`` header behind a ``Basic`` one.

Class 2b — a quoted-printable e-mail body (a ``send_email`` tool posting
raw MIME to a mail API): an opaque token with base64 padding travels with
its ``=`` as ``=3D``.

Class 3 — an app's own request hook that runs after the guard's hook and
adds the token: the guard's hook saw the request before it changed.

Every request goes to a real loopback server that records what arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aiinvariants import Principal, TokenInvalid, acting_as
from aiinvariants.auth import PassthroughGuard, TokenExchanger
from recording_server import Recorder

USER_TOKEN = "user-opaque-token-7f3a9c2e41d8b6a0f5e3c1d9"
ISSUED = "billing-opaque-token-c0ffee1234567890abcdef"
BILLING_AUD = "https://billing.example.test"
CRM_AUD = "https://crm.example.test"
ALICE = Principal(
    subject="alice",
    authenticated=True,
    scopes=frozenset({"billing:read"}),
    token=USER_TOKEN,
)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    billing, crm = Recorder(), Recorder()
    try:
        yield billing, crm
    finally:
        for server in (billing, crm):
            server.close()


def exchanger() -> TokenExchanger:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"access_token": ISSUED, "token_type": "Bearer", "expires_in": 300},
        )

    return TokenExchanger(
        token_endpoint="https://login.example.test/token",
        client_id="agent",
        client_secret="not-a-real-secret",
        transport=httpx.MockTransport(answer),
    )


def guard_for(
    billing: Recorder, crm: Recorder, exchange: TokenExchanger | None = None
) -> PassthroughGuard:
    return PassthroughGuard(
        audiences={billing.url: BILLING_AUD, crm.url: CRM_AUD}, exchanger=exchange
    )


def refused(guard: PassthroughGuard, url: str, **request: Any) -> str:
    with (
        acting_as(ALICE),
        httpx.Client(event_hooks={"request": [guard]}) as client,
        pytest.raises(TokenInvalid) as info,
    ):
        client.get(url, **request)
    return str(info.value.code)


@pytest.mark.parametrize(
    "request_",
    [
        {"headers": {"Cookie": f"at.0={USER_TOKEN[:20]}; at.1={USER_TOKEN[20:]}"}},
        {"headers": {"X-Token-1": USER_TOKEN[:20], "X-Token-2": USER_TOKEN[20:]}},
    ],
    ids=["chunked_cookies", "two_headers"],
)
def test_a_token_in_chunks_is_refused(
    servers: tuple[Recorder, Recorder], request_: dict[str, Any]
) -> None:
    billing, crm = servers
    before = len(crm.seen)
    assert refused(guard_for(billing, crm), crm.url, **request_) == "token_passthrough"
    assert len(crm.seen) == before


@pytest.mark.parametrize(
    "place",
    ["token_scheme", "api_key_header", "query", "second_authorization"],
)
def test_an_exchanged_token_in_any_shape_goes_only_to_its_audience(
    servers: tuple[Recorder, Recorder], place: str
) -> None:
    billing, crm = servers
    exchange = exchanger()
    with acting_as(ALICE):
        token = exchange.exchange(audience=BILLING_AUD).access_token
    shapes: dict[str, dict[str, Any]] = {
        "token_scheme": {"headers": {"Authorization": f"Token {token}"}},
        "api_key_header": {"headers": {"X-Api-Key": token}},
        "query": {"params": {"api_key": token}},
        "second_authorization": {
            "headers": [
                ("Authorization", "Basic dXNlcjpwYXNz"),
                ("Authorization", f"Bearer {token}"),
            ]
        },
    }
    guard = guard_for(billing, crm, exchange)
    before = len(crm.seen)
    assert refused(guard, crm.url, **shapes[place]) == "token_audience_mismatch"
    assert len(crm.seen) == before
    # To its own audience, the same shape goes out.
    with acting_as(ALICE), httpx.Client(event_hooks={"request": [guard]}) as client:
        assert client.get(billing.url, **shapes[place]).status_code == 200


def test_a_second_authorization_header_to_an_unknown_destination_is_refused(
    servers: tuple[Recorder, Recorder],
) -> None:
    billing, crm = servers
    guard = PassthroughGuard(audiences={billing.url: BILLING_AUD})
    headers = [("Authorization", "Basic dXNlcjpwYXNz"), ("Authorization", "Bearer x")]
    before = len(crm.seen)
    assert refused(guard, crm.url, headers=headers) == "token_destination_unknown"
    assert len(crm.seen) == before


def test_a_quoted_printable_mail_body_is_refused(
    servers: tuple[Recorder, Recorder],
) -> None:
    from email.message import EmailMessage

    billing, crm = servers
    padded = "c2Vzc2lvbi1vZi1hbGljZS0wMTIzNDU2Nzg5YWJjZGVm+/Q=="
    who = Principal(subject="alice", authenticated=True, token=padded)
    mail = EmailMessage()
    mail["To"] = "someone@example.test"
    mail.set_content(f"Your session: {padded}\n", cte="quoted-printable")
    assert b"=3D=3D" in mail.as_bytes()
    before = len(crm.seen)
    with (
        acting_as(who),
        httpx.Client(event_hooks={"request": [guard_for(billing, crm)]}) as client,
        pytest.raises(TokenInvalid) as info,
    ):
        client.post(crm.url, content=mail.as_bytes())
    assert info.value.code == "token_passthrough"
    assert len(crm.seen) == before


@pytest.mark.xfail(
    strict=True,
    reason="an httpx request hook cannot see changes made by hooks that run "
    "after it; only the transport form (transport=guard.transport()) checks "
    "the final request — the hook form would need to move to the transport",
)
def test_an_app_hook_after_the_guard_cannot_add_the_token(
    servers: tuple[Recorder, Recorder],
) -> None:
    billing, crm = servers

    def add_token(request: httpx.Request) -> None:
        request.headers["X-Forwarded-Token"] = USER_TOKEN

    guard = guard_for(billing, crm)
    before = len(crm.seen)
    with (
        acting_as(ALICE),
        httpx.Client(event_hooks={"request": [guard, add_token]}) as client,
        pytest.raises(TokenInvalid),
    ):
        client.get(crm.url)
    assert len(crm.seen) == before
