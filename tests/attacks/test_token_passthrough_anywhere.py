"""I4 attacks: the user's token placed anywhere in a request never leaves.

The class: any place of an outgoing httpx request a token can travel in —
any header (any scheme, any white space, any name), a cookie, the URL's
userinfo, path, query or fragment, a form, JSON, multipart or raw body, a
streamed or compressed body — in any common encoding (raw, percent-encoded
once or twice, base64 in either alphabet, hex, JSON escapes). A hypothesis
property draws place and encoding; every request goes to a real loopback
server that records what arrives, and must arrive nowhere.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import Principal, TokenInvalid, acting_as
from aiinvariants.audit import AuditLog, MemorySink
from aiinvariants.auth import JWTVerifier, PassthroughGuard
from oauth_support import OAuthServer, running_oauth_server
from recording_server import Recorder
from secret_graph import assert_no_secret_reachable

API = "https://agent.example.test"
BILLING_AUD = "https://billing.example.test"


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(scope="module")
def downstream() -> Iterator[Recorder]:
    api = Recorder()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="module")
def who(oauth: OAuthServer) -> Principal:
    token = oauth.mint_user("alice", audience=API, scopes="billing:read")
    return JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    ).verify(token)


ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda t: t,
    "percent": lambda t: quote(t, safe=""),
    "percent_twice": lambda t: quote(quote(t, safe=""), safe=""),
    "plus": quote_plus,
    "base64": lambda t: base64.b64encode(t.encode()).decode(),
    "base64url": lambda t: base64.urlsafe_b64encode(t.encode()).decode().rstrip("="),
    "base64_prefixed": lambda t: base64.b64encode(b"user:" + t.encode()).decode(),
    "hex": lambda t: t.encode().hex(),
    "json_escaped": lambda t: "".join(f"\\u{ord(c):04x}" for c in t),
}

Place = Callable[[str, str], dict[str, Any]]


def _multipart(name: str, value: str) -> dict[str, Any]:
    return {"files": {name: ("f.txt", value.encode(), "text/plain")}}


PLACES: dict[str, Callable[[str, str, str], dict[str, Any]]] = {
    "authorization": lambda url, v, extra: {
        "headers": {"Authorization": f"{extra}{v}"}
    },
    "custom_header": lambda url, v, extra: {"headers": {f"X-{extra or 'Auth'}": v}},
    "cookie": lambda url, v, extra: {"headers": {"Cookie": f"session={v}; a=b"}},
    "query": lambda url, v, extra: {"url": f"{url}/q?access_token={v}&x=1"},
    "path": lambda url, v, extra: {"url": f"{url}/t/{quote(v, safe='')}/x"},
    "fragment": lambda url, v, extra: {"url": f"{url}/p#{v}"},
    "userinfo": lambda url, v, extra: {
        "url": url.replace("http://", f"http://u:{quote(v, safe='')}@")
    },
    "form": lambda url, v, extra: {"data": {"note": "hi", "token": v}},
    "json": lambda url, v, extra: {"json": {"nested": [{"t": v}]}},
    "multipart": lambda url, v, extra: _multipart("upload", f"header\n{v}\nend"),
    "raw": lambda url, v, extra: {"content": f"prefix {v} suffix".encode()},
    "stream": lambda url, v, extra: {
        "content": iter([b"part-one ", v[:7].encode(), v[7:].encode(), b" end"])
    },
    "gzip": lambda url, v, extra: {
        "content": gzip.compress(v.encode()),
        "headers": {"Content-Encoding": "gzip"},
    },
}
SCHEMES = ["Bearer ", "Bearer\t", "Bearer   ", "bearer ", "Token ", "JWT ", "", "DPoP "]


def send(guard: PassthroughGuard, request: dict[str, Any], url: str) -> None:
    target = request.pop("url", url)
    with httpx.Client(event_hooks={"request": [guard]}) as client:
        client.post(target, **request)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    place=st.sampled_from(sorted(PLACES)),
    encoding=st.sampled_from(sorted(ENCODINGS)),
    scheme=st.sampled_from(SCHEMES),
)
def test_the_token_anywhere_in_a_request_is_refused(
    who: Principal, downstream: Recorder, place: str, encoding: str, scheme: str
) -> None:
    token = who.raw_token()
    assert token
    guard = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    before = len(downstream.seen)
    value = ENCODINGS[encoding](token)
    extra = scheme if place == "authorization" else scheme.strip()
    request = PLACES[place](downstream.url, value, extra)
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        send(guard, request, downstream.url)
    assert info.value.code == "token_passthrough"
    assert info.value.invariant == "I4"
    assert_no_secret_reachable(info.value, token)
    assert len(downstream.seen) == before  # nothing left the process


def test_async_client_streamed_body_is_read_before_sending(
    who: Principal, downstream: Recorder
) -> None:
    token = who.raw_token()
    assert token
    guard = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    before = len(downstream.seen)

    async def body() -> Any:
        yield b"chunk "
        yield token.encode()

    async def go(hooked: bool) -> None:
        client = (
            httpx.AsyncClient(event_hooks={"request": [guard.async_hook]})
            if hooked
            else httpx.AsyncClient(transport=guard.async_transport())
        )
        async with acting_as(who), client:
            await client.post(downstream.url, content=body())

    for hooked in (True, False):
        with pytest.raises(TokenInvalid) as info:
            asyncio.run(go(hooked))
        assert info.value.code == "token_passthrough"
    assert len(downstream.seen) == before


def test_sync_transport_wrapper_and_auth_flow_are_checked(
    who: Principal, downstream: Recorder
) -> None:
    token = who.raw_token()
    assert token
    memory = MemorySink()
    guard = PassthroughGuard(
        audiences={downstream.url: BILLING_AUD}, audit=AuditLog(sinks=[memory])
    )
    before = len(downstream.seen)
    with (
        acting_as(who),
        httpx.Client(transport=guard.transport()) as client,
        pytest.raises(TokenInvalid),
    ):
        client.get(downstream.url, params={"t": token})
    # httpx's auth= builds the Basic header after the request is made: the
    # hook still sees it.
    with (
        acting_as(who),
        httpx.Client(event_hooks={"request": [guard]}, auth=("svc", token)) as c,
        pytest.raises(TokenInvalid),
    ):
        c.get(downstream.url)
    assert len(downstream.seen) == before
    assert [e.details.get("where") for e in memory.events] == [
        "url",
        "header:authorization",
    ]
    assert token not in repr(memory.events)


def test_a_clean_request_still_goes_out(who: Principal, downstream: Recorder) -> None:
    guard = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    before = len(downstream.seen)
    with acting_as(who), httpx.Client(event_hooks={"request": [guard]}) as client:
        response = client.post(
            downstream.url + "/ok?x=1",
            json={"text": "a" * 5000, "b64": base64.b64encode(b"x" * 300).decode()},
            headers={"X-Api-Key": "app-own-key", "Cookie": "a=b"},
        )
    assert response.status_code == 200
    assert len(downstream.seen) == before + 1


def test_a_foreign_jwt_in_any_header_is_refused_without_context(
    oauth: OAuthServer, downstream: Recorder
) -> None:
    # Code that lost the request context: no principal to compare with, but
    # a JWT for another audience in any header or the URL is still refused.
    token = oauth.mint_user("bob", audience=API)
    guard = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    before = len(downstream.seen)
    for request in (
        {"headers": {"X-Auth-Token": token}},
        {"headers": {"Authorization": f"Token {token}"}},
        {"headers": {"Cookie": f"jwt={token}"}},
        {"url": f"{downstream.url}/?id_token={token}"},
    ):
        with pytest.raises(TokenInvalid) as info:
            send(guard, dict(request), downstream.url)
        assert info.value.code == "token_audience_mismatch"
    assert len(downstream.seen) == before


def test_an_oversized_body_is_refused_unread(
    who: Principal, downstream: Recorder
) -> None:
    guard = PassthroughGuard(
        audiences={downstream.url: BILLING_AUD}, max_body_bytes=1024
    )
    before = len(downstream.seen)
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        send(guard, {"content": b"x" * 2048}, downstream.url)
    assert info.value.code == "token_scan_too_large"
    with acting_as(who), pytest.raises(TokenInvalid):
        send(guard, {"content": iter([b"x" * 1000, b"y" * 1000])}, downstream.url)
    assert len(downstream.seen) == before


def test_json_body_of_the_token_in_a_string_is_refused(
    who: Principal, downstream: Recorder
) -> None:
    token = who.raw_token()
    assert token
    guard = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    body = json.dumps({"t": token.replace(".", "\\u002e")}).encode()
    with acting_as(who), pytest.raises(TokenInvalid):
        send(guard, {"content": body}, downstream.url)


def test_mime_wrapped_base64_in_a_multipart_body_is_refused(
    who: Principal, downstream: Recorder
) -> None:
    token = who.raw_token()
    assert token
    encoded = base64.b64encode(b"report:\n" + token.encode()).decode()
    wrapped = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    body = (
        "--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{wrapped}\r\n--b--\r\n"
    ).encode()
    guard = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    before = len(downstream.seen)
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        send(
            guard,
            {
                "content": body,
                "headers": {"Content-Type": "multipart/mixed; boundary=b"},
            },
            downstream.url,
        )
    assert info.value.code == "token_passthrough"
    assert len(downstream.seen) == before


def test_quoted_printable_soft_breaks_do_not_hide_the_token(
    who: Principal, downstream: Recorder
) -> None:
    token = who.raw_token()
    assert token
    wrapped = "=\r\n".join(token[i : i + 75] for i in range(0, len(token), 75))
    body = (
        "--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"{wrapped}\r\n--b--\r\n"
    ).encode()
    guard = PassthroughGuard(audiences={downstream.url: BILLING_AUD})
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        send(guard, {"content": body}, downstream.url)
    assert info.value.code == "token_passthrough"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("br", b"\x1b\x00\x00"),
        ("zstd", b"(\xb5/\xfd"),
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(b"x" * 5000)),  # inflates beyond the bound
        ("identity, br", b"abc"),
    ],
)
def test_a_body_that_cannot_be_inspected_is_not_sent(
    who: Principal, downstream: Recorder, encoding: str, body: bytes
) -> None:
    guard = PassthroughGuard(
        audiences={downstream.url: BILLING_AUD}, max_body_bytes=4096
    )
    before = len(downstream.seen)
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        send(
            guard,
            {"content": body, "headers": {"Content-Encoding": encoding}},
            downstream.url,
        )
    assert info.value.code == "token_scan_unreadable"
    assert len(downstream.seen) == before
    # Without a user token in context there is nothing to look for.
    with httpx.Client(event_hooks={"request": [guard]}) as client:
        client.post(
            downstream.url, content=body, headers={"Content-Encoding": encoding}
        )
    assert len(downstream.seen) == before + 1
