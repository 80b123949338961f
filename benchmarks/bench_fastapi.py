"""A FastAPI request with FastAPIAuth versus the same app without it (issue #14).

Every case is one GET through the whole FastAPI stack (httpx's in-process
ASGI transport, one event loop), with the same signed token in the header:

- the bare route, no authentication (the baseline);
- the route behind ``BearerAuthMiddleware`` (all-or-nothing, for comparison);
- what an app writes by hand: FastAPI's ``HTTPBearer``, the verifier and a
  ``yield`` dependency holding ``acting_as`` (no scope check, no gate);
- ``Security(auth.user, scopes=[...])`` plus the app-wide ``auth.gate``.

The verifier's cache is warm in both authenticated cases: what is measured
is the cost of the dependencies themselves.
"""

# No "from __future__ import annotations": FastAPI evaluates the route's
# Annotated[..., Security(auth.user)] hint, which names a local "auth".

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt.algorithms import ECAlgorithm

from aiinvariants import Guard, Principal, acting_as, current_principal
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.asgi import BearerAuthMiddleware
from aiinvariants.integrations.fastapi import FastAPIAuth

from ._harness import compare, print_table

ISSUER = "https://login.example.test"
AUDIENCE = "https://api.example.test"


def _token_and_verifier() -> tuple[str, JWTVerifier]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", alg="ES256", use="sig")
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + 3600,
            "scope": "orders:read",
        },
        key,
        algorithm="ES256",
        headers={"kid": "k1", "typ": "at+jwt"},
    )
    verifier = JWTVerifier(
        issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"], jwks={"keys": [jwk]}
    )
    return token, verifier


def _apps(verifier: JWTVerifier) -> dict[str, Any]:
    bare = FastAPI(openapi_url=None)

    @bare.get("/orders")
    async def bare_orders() -> dict[str, str]:
        return {"sub": current_principal().subject}

    auth = FastAPIAuth(Guard(), verifier=verifier)
    guarded = FastAPI(dependencies=[Depends(auth.gate)], openapi_url=None)

    @guarded.get("/orders")
    async def orders(
        user: Annotated[Principal, Security(auth.user, scopes=["orders:read"])],
    ) -> dict[str, str]:
        return {"sub": current_principal().subject}

    auth.install(guarded)

    scheme = HTTPBearer()

    async def by_hand(
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(scheme)],
    ) -> AsyncIterator[Principal]:
        principal = await verifier.averify(credentials.credentials)
        async with acting_as(principal):
            yield principal

    manual = FastAPI(openapi_url=None)

    @manual.get("/orders")
    async def manual_orders(
        user: Annotated[Principal, Depends(by_hand)],
    ) -> dict[str, str]:
        return {"sub": current_principal().subject}

    return {
        "bare FastAPI route (no authentication)": bare,
        "BearerAuthMiddleware around the app": BearerAuthMiddleware(
            bare, verifier=verifier
        ),
        "by hand: HTTPBearer + verifier + acting_as": manual,
        "FastAPIAuth: Security(auth.user, scopes) + gate": guarded,
    }


def run() -> None:
    token, verifier = _token_and_verifier()
    headers = {"Authorization": f"Bearer {token}"}
    loop = asyncio.new_event_loop()
    clients = {
        name: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example.test"
        )
        for name, app in _apps(verifier).items()
    }

    def case(client: httpx.AsyncClient) -> Any:
        def one() -> object:
            response = loop.run_until_complete(client.get("/orders", headers=headers))
            if response.status_code != 200:  # pragma: no cover - a broken bench
                raise RuntimeError(f"unexpected {response.status_code}")
            return response

        return one

    try:
        results = compare(
            {name: case(client) for name, client in clients.items()},
            baseline="bare FastAPI route (no authentication)",
            number=200,
            repeat=7,
        )
    finally:
        for client in clients.values():
            loop.run_until_complete(client.aclose())
        loop.close()
    print_table("FastAPI request, whole stack in-process (ES256 token)", results)


if __name__ == "__main__":
    run()
