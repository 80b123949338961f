"""IntrospectionVerifier against a real RFC 7662 endpoint on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from aiinvariants import Policy, PolicyError, TokenInvalid
from aiinvariants._errors import InsecureUsageWarning
from aiinvariants.auth import IntrospectionVerifier
from auth_support import AUDIENCE, ISSUER
from secret_graph import assert_no_secret_reachable

ANSWERS: dict[str, dict[str, Any]] = {
    "good-token": {
        "active": True,
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "scope": "tickets:read",
        "groups": ["employees"],
    },
    "inactive-token": {"active": False},
    "active-string": {"active": "true", "sub": "alice", "aud": AUDIENCE},
    "other-aud": {"active": True, "sub": "alice", "aud": "https://other.test"},
    "other-iss": {"active": True, "sub": "a", "aud": AUDIENCE, "iss": "https://x"},
    "no-aud": {"active": True, "sub": "alice"},
    "tok-exp-1000": {"active": True, "sub": "alice", "aud": AUDIENCE, "exp": 1000},
}


class Endpoint:
    def __init__(self) -> None:
        self.mode = "ok"
        self.requests = 0
        self.auth: list[str | None] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                endpoint.requests += 1
                endpoint.auth.append(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if endpoint.mode == "down":
                    self.send_response(500)
                    self.end_headers()
                    return
                if endpoint.mode == "slow":
                    time.sleep(2)
                token = form.get("token", [""])[0]
                body = (
                    b"garbage"
                    if endpoint.mode == "garbage"
                    else json.dumps(ANSWERS.get(token, {"active": False})).encode()
                )
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.server.shutdown()
    e.server.server_close()


def make(endpoint: Endpoint, **kwargs: Any) -> IntrospectionVerifier:
    options: dict[str, Any] = {
        "endpoint": endpoint.url,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "client_id": "api",
        "client_secret": "s3cret",
        "timeout_s": 0.5,
    }
    options.update(kwargs)
    return IntrospectionVerifier(**options)


def code(v: IntrospectionVerifier, token: str) -> str:
    with pytest.raises(TokenInvalid) as info:
        v.verify(token)
    assert_no_secret_reachable(info.value, token, "s3cret")
    return info.value.code


def test_active_token(endpoint: Endpoint) -> None:
    v = make(endpoint)
    p = v.verify("good-token")
    assert (p.subject, p.scopes, p.groups) == ("alice", {"tickets:read"}, {"employees"})
    expected = "Basic " + base64.b64encode(b"api:s3cret").decode()
    assert endpoint.auth == [expected]
    v.verify("good-token")
    assert endpoint.requests == 1  # cached
    assert "s3cret" not in repr(v)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("inactive-token", "inactive"),
        ("active-string", "inactive"),
        ("unknown", "inactive"),
        ("other-aud", "wrong_audience"),
        ("other-iss", "wrong_issuer"),
        ("no-aud", "missing_claim"),
        ("tok-exp-1000", "expired"),
        ("x" * 9000, "too_large"),
        ("has space", "malformed"),
    ],
)
def test_rejections(endpoint: Endpoint, token: str, expected: str) -> None:
    assert code(make(endpoint), token) == expected


@pytest.mark.parametrize("mode", ["down", "garbage", "slow"])
def test_fails_closed(endpoint: Endpoint, mode: str) -> None:
    endpoint.mode = mode
    start = time.perf_counter()
    assert code(make(endpoint), "good-token") == "introspection_unavailable"
    assert time.perf_counter() - start < 1.0


def test_missing_audience_opt_out(endpoint: Endpoint) -> None:
    with pytest.warns(InsecureUsageWarning):
        v = make(endpoint, unsafe_allow_missing_audience=True)
    assert v.verify("no-aud").subject == "alice"


def test_async(endpoint: Endpoint) -> None:
    v = make(endpoint)

    async def main() -> None:
        assert (await v.averify("good-token")).subject == "alice"
        with pytest.raises(TokenInvalid):
            await v.averify("inactive-token")
        endpoint.mode = "slow"
        with pytest.raises(TokenInvalid) as info:
            await v.averify("other-aud")
        assert info.value.code == "introspection_unavailable"

    asyncio.run(main())


def test_from_policy(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = Policy.from_dict(
        {
            "clearance": {"groups": {"employees": "internal"}},
            "identity": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["RS256"],
                "introspection_endpoint": endpoint.url,
                "introspection_client_id": "api",
                "introspection_client_secret_env": "TEST_INTROSPECTION_SECRET",
            },
        }
    )
    with pytest.raises(PolicyError, match="TEST_INTROSPECTION_SECRET"):
        IntrospectionVerifier.from_policy(policy)
    monkeypatch.setenv("TEST_INTROSPECTION_SECRET", "s3cret")
    v = IntrospectionVerifier.from_policy(policy)
    assert v.verify("good-token").clearance == "internal"


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/introspect"


def test_unreachable_endpoint_leaks_neither_token_nor_secret() -> None:
    # A refused connection raises an httpx error whose request holds the
    # token and the client credentials: none of it may be reachable.
    v = IntrospectionVerifier(
        endpoint=closed_port_url(),
        issuer=ISSUER,
        audience=AUDIENCE,
        client_id="api",
        client_secret="s3cret",
        timeout_s=0.5,
    )
    token = "opaque-user-token-123"
    assert code(v, token) == "introspection_unavailable"

    async def main() -> TokenInvalid:
        with pytest.raises(TokenInvalid) as info:
            await v.averify(token)
        return info.value

    denial = asyncio.run(main())
    assert denial.code == "introspection_unavailable"
    assert denial.__context__ is None
    assert_no_secret_reachable(denial, token, "s3cret")
