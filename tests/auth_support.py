"""Helpers for the token-verification tests: keys, token minting, a JWKS server.

Everything runs locally: keys are generated with cryptography, the JWKS is
served by a real HTTP server on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from aiinvariants.auth import JWTVerifier

ISSUER = "https://login.example.test"
AUDIENCE = "https://api.example.test"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algo = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        jwk = json.loads(algo.to_jwk(self.private.public_key()))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            PublicFormat,
        )

        return self.private.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )


@cache
def rsa_key(kid: str = "rsa-1") -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(65537, 2048))


@cache
def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid access-token claim set; a None override removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now - 5,
        "nbf": now - 5,
        "client_id": "web-app",
        "jti": "id-1",
        "scope": "tickets:read kb:read",
        "groups": ["employees"],
        "tid": "example",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(
    key: SigningKey | None = None,
    *,
    payload: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    **claim_overrides: Any,
) -> str:
    """Sign an access token (typ at+jwt, kid of the key) with pyjwt."""
    key = key or rsa_key()
    body = dict(payload) if payload is not None else claims(**claim_overrides)
    head: dict[str, Any] = {"typ": "at+jwt", "kid": key.kid}
    head.update(headers or {})
    # pyjwt adds typ=JWT unless typ is given as None; other Nones are removed.
    head = {k: v for k, v in head.items() if v is not None or k == "typ"}
    return jwt.encode(body, key.private, algorithm=key.alg, headers=head)


def verifier(**kwargs: Any) -> JWTVerifier:
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["RS256", "ES256"],
    }
    if "jwks_uri" not in kwargs and "key_source" not in kwargs:
        options["jwks"] = jwks_of(rsa_key(), ec_key())
    options.update(kwargs)
    return JWTVerifier(**options)


# -- a JWKS server on loopback -------------------------------------------------


@dataclass
class JWKSState:
    document: Any = field(default_factory=lambda: jwks_of(rsa_key()))
    mode: str = "ok"  # ok | down | slow | garbage | huge | not_json | raw
    raw: bytes = b""  # the body served in mode "raw"
    delay_s: float = 2.0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class JWKSServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``state.document``."""

    def __init__(self) -> None:
        state = self.state = JWKSState()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                with state.lock:
                    state.requests += 1
                mode = state.mode
                if mode == "down":
                    self.send_response(503)
                    self.end_headers()
                    return
                if mode == "slow":
                    time.sleep(state.delay_s)
                if mode == "garbage":
                    body = b"<html>this is not a key set</html>"
                elif mode == "not_json":
                    body = b'{"keys": ['
                elif mode == "raw":
                    body = state.raw
                elif mode == "huge":
                    body = b'{"keys": [], "pad": "' + b"x" * 2_000_000 + b'"}'
                else:
                    body = json.dumps(state.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        )
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}/.well-known/jwks.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    try:
        yield server
    finally:
        server.close()
