"""A FastAPI app whose routes declare what they need: scopes, or anonymous access.

Run it: ``python examples/fastapi_app.py`` (needs the ``fastapi`` extra). It
calls the app in-process with FastAPI's TestClient and prints what each caller
gets; ``uvicorn examples.fastapi_app:app`` serves the same app (its tokens
would come from your identity provider).

- ``FastAPIAuth(guard)`` verifies bearer tokens with the verifier the
  policy's ``identity`` section describes (here an inline key set, with
  tokens minted by this script).
- ``Security(auth.user, scopes=[...])`` checks the route's scopes and runs
  the endpoint as the user, so the guarded tool it calls is checked for them.
- ``Depends(auth.optional_user)`` opens ``/health`` to anonymous callers,
  even though the policy is ``exposure: internal``; the app-wide
  ``Depends(auth.gate)`` closes every route that says nothing.
- ``auth.install(app)`` maps every ``InvariantViolation`` to 400/401/403
  with an RFC 6750 challenge and refuses to start an app that would serve
  a route by mistake.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI, Security
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm

from aiinvariants import Guard, Policy, PolicyError, Principal, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.fastapi import FastAPIAuth

ISSUER, AUDIENCE = "https://login.example.com", "https://support.example.com/api"

key = ec.generate_private_key(ec.SECP256R1())
jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="k1", alg="ES256", use="sig")

policy = Policy.from_dict(
    {
        "app": "support-api",
        "exposure": "internal",
        "identity": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithms": ["ES256"],
            "jwks": {"keys": [jwk]},
        },
        "clearance": {"groups": {"employees": "internal"}},
        "tools": {"read_ticket": {"scopes": ["tickets:read"], "data": "internal"}},
    }
)
audit = MemorySink()
guard = Guard(policy, sinks=[audit])
auth = FastAPIAuth(
    guard,
    authorization_url=f"{ISSUER}/authorize",
    token_url=f"{ISSUER}/token",
    scopes={"tickets:read": "Read support tickets"},
    anonymous_paths=["/docs", "/docs/oauth2-redirect", "/openapi.json"],
)
app = FastAPI(dependencies=[Depends(auth.gate)], redoc_url=None)


@guard.tool(name="read_ticket")
def read_ticket(ticket_id: str) -> dict[str, str]:
    return {"id": ticket_id, "read_for": current_principal().subject}


@app.get("/tickets/{ticket_id}")
async def get_ticket(
    ticket_id: str,
    user: Annotated[Principal, Security(auth.user, scopes=["tickets:read"])],
) -> dict[str, str]:
    return read_ticket(ticket_id)


@app.get("/health", dependencies=[Depends(auth.optional_user)])
def health() -> dict[str, str]:
    return {"status": "ok", "caller": current_principal().subject}


@app.get("/whoami")  # no dependency of its own: the gate requires a user
def whoami() -> dict[str, str]:
    return {"subject": current_principal().subject}


auth.install(app)


def mint(subject: str, scope: str, signer: Any = key) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + 300,
        "scope": scope,
        "groups": ["employees"],
    }
    return jwt.encode(
        claims, signer, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"}
    )


def show(who: str, response: Any) -> None:
    body = response.json()
    if response.status_code == 200:
        print(f"{who}: {response.status_code} {body}")
        return
    challenge = response.headers.get("www-authenticate", "-")
    print(f"{who}: {response.status_code} {body['code']} [{challenge}]")


def main() -> None:
    alice = {"Authorization": f"Bearer {mint('alice', 'tickets:read')}"}
    bob = {"Authorization": f"Bearer {mint('bob', 'kb:read')}"}
    forged = mint(
        "mallory", "tickets:read", signer=ec.generate_private_key(ec.SECP256R1())
    )
    with TestClient(app) as client:
        show("alice GET /tickets/T-7", client.get("/tickets/T-7", headers=alice))
        show("bob GET /tickets/T-7", client.get("/tickets/T-7", headers=bob))
        show("anonymous GET /tickets/T-7", client.get("/tickets/T-7"))
        show(
            "mallory (forged) GET /tickets/T-7",
            client.get("/tickets/T-7", headers={"Authorization": f"Bearer {forged}"}),
        )
        show("anonymous GET /health", client.get("/health"))
        show("anonymous GET /whoami", client.get("/whoami"))
        show("bob GET /whoami", client.get("/whoami", headers=bob))
        show(
            "token in the query",
            client.get(f"/whoami?access_token={mint('alice', 'tickets:read')}"),
        )
        scheme = client.get("/openapi.json").json()["components"]["securitySchemes"]
        flows = scheme["aiinvariants"]["flows"]["authorizationCode"]
        print(f"OpenAPI: oauth2 authorizationCode scopes {sorted(flows['scopes'])}")

    # A route nobody protected does not start under exposure: internal.
    forgotten = FastAPI(redoc_url=None, docs_url=None, openapi_url=None)

    @forgotten.get("/export")
    def export() -> dict[str, str]:
        return {"all": "the data"}

    auth.install(forgotten)
    try:
        with TestClient(forgotten):
            pass
    except PolicyError as refused:
        path, problem = refused.errors[0]
        print(f"startup refused: {path} {problem}")
    for event in audit.events:
        if event.resource == "tool.read_ticket":
            print(f"  audit: {event.invariant} {event.decision} {event.subject}")


if __name__ == "__main__":
    main()
