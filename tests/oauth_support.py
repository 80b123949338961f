"""A small OAuth 2.0 authorization server on loopback, for the tests.

It issues RS256 JWT access tokens (``mint_user``) and answers the RFC 8693
token-exchange grant at ``/token`` with ``client_secret_basic`` client
authentication: the subject token must be one it issued (signature, expiry),
the requested scopes a subset of the subject token's, and the issued token
carries ``aud=<audience>`` and ``act={"sub": <client_id>}``. ``/jwks`` serves
its public keys. Started by the tests on 127.0.0.1, stopped by them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt

from auth_support import SigningKey, jwks_of, rsa_key

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CLIENT_ID = "mcp-server"
CLIENT_SECRET = "test-secret-not-real"


@dataclass
class OAuthState:
    key: SigningKey = field(default_factory=lambda: rsa_key("oauth-1"))
    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    exchanges: int = 0
    token_lifetime_s: int = 300
    mode: str = "ok"  # ok | error | echo | wrong_audience | wide_scope | garbage
    last_form: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class OAuthServer:
    """A ThreadingHTTPServer on 127.0.0.1: ``/token`` and ``/jwks``."""

    def __init__(self) -> None:
        state = self.state = OAuthState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(state))
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.issuer = f"http://{host}:{port}"
        self.token_endpoint = f"{self.issuer}/token"
        self.jwks_uri = f"{self.issuer}/jwks"
        issuer = self.issuer
        self._issuer_for_handler = issuer
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        )
        self.thread.start()

    def jwks(self) -> dict[str, Any]:
        return jwks_of(self.state.key)

    def mint_user(
        self,
        subject: str,
        *,
        audience: str,
        scopes: str = "",
        lifetime_s: int = 600,
        **extra: Any,
    ) -> str:
        """A user's access token, as the authorization server would issue it."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now - 1,
            "nbf": now - 1,
            "exp": now + lifetime_s,
            "client_id": "agent-app",
            "jti": uuid.uuid4().hex,
            "scope": scopes,
        }
        claims.update(extra)
        key = self.state.key
        return jwt.encode(
            claims,
            key.private,
            algorithm=key.alg,
            headers={"typ": "at+jwt", "kid": key.kid},
        )

    def _handler(self, state: OAuthState) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/jwks":
                    self._send(200, server.jwks())
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if self.path != "/token":
                    self._send(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(min(length, 65536)).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                with state.lock:
                    state.exchanges += 1
                    state.last_form = dict(form)
                client = self._client()
                if client is None:
                    self._send(401, {"error": "invalid_client"})
                    return
                if state.mode == "error":
                    self._send(400, {"error": "invalid_request"})
                    return
                if state.mode == "garbage":
                    self._send(200, b"<html>")
                    return
                if form.get("grant_type") != TOKEN_EXCHANGE:
                    self._send(400, {"error": "unsupported_grant_type"})
                    return
                if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
                    self._send(400, {"error": "invalid_request"})
                    return
                subject_token = form.get("subject_token", "")
                try:
                    subject = jwt.decode(
                        subject_token,
                        state.key.private.public_key(),
                        algorithms=[state.key.alg],
                        options={"verify_aud": False},
                        issuer=server.issuer,
                    )
                except jwt.PyJWTError:
                    self._send(400, {"error": "invalid_grant"})
                    return
                audience = form.get("audience")
                if not audience:
                    self._send(400, {"error": "invalid_target"})
                    return
                held = set(str(subject.get("scope", "")).split())
                asked = set(form.get("scope", "").split())
                if not asked <= held:
                    self._send(400, {"error": "invalid_scope"})
                    return
                if state.mode == "echo":
                    self._send(
                        200,
                        {
                            "access_token": subject_token,
                            "issued_token_type": ACCESS_TOKEN_TYPE,
                            "token_type": "Bearer",
                        },
                    )
                    return
                granted = asked
                if state.mode == "wide_scope":
                    granted = asked | {"admin:all"}
                now = int(time.time())
                claims = {
                    "iss": server.issuer,
                    "sub": subject["sub"],
                    "aud": "https://elsewhere.test"
                    if state.mode == "wrong_audience"
                    else audience,
                    "iat": now,
                    "exp": now + state.token_lifetime_s,
                    "scope": " ".join(sorted(granted)),
                    "client_id": client,
                    "act": {"sub": client},
                    "jti": uuid.uuid4().hex,
                }
                key = state.key
                token = jwt.encode(
                    claims,
                    key.private,
                    algorithm=key.alg,
                    headers={"typ": "at+jwt", "kid": key.kid},
                )
                self._send(
                    200,
                    {
                        "access_token": token,
                        "issued_token_type": ACCESS_TOKEN_TYPE,
                        "token_type": "Bearer",
                        "expires_in": state.token_lifetime_s,
                        "scope": " ".join(sorted(granted)),
                    },
                )

            def _client(self) -> str | None:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                try:
                    pair = base64.b64decode(header[6:]).decode()
                except ValueError:
                    return None
                client_id, _, secret = pair.partition(":")
                client_id, secret = unquote(client_id), unquote(secret)
                if state.clients.get(client_id) != secret:
                    return None
                return client_id

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def running_oauth_server() -> Iterator[OAuthServer]:
    server = OAuthServer()
    try:
        yield server
    finally:
        server.close()
