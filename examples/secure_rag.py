"""Questions over a mixed-classification corpus, answered with the user's rights.

Run it: ``python examples/secure_rag.py`` (needs the ``langchain`` extra and
Starlette). A public ASGI app verifies bearer tokens with
``BearerAuthMiddleware`` (tokens minted here with a local ES256 key) and
answers from a LangChain ``InMemoryVectorStore`` through secure retrievers:

- ``/faq`` is open to anonymous users and can only return ``public`` chunks;
- ``/ask`` searches the whole corpus and needs a verified user; each user
  gets only what their groups clear them for (I1), anonymous users nothing
  (I2).

The app prints the document ids each request got (a real app would hand the
chunks to its model), then the audit events: counts only, never the text.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from aiinvariants import AuthenticationRequired, Guard, Policy, PolicyError
from aiinvariants.audit import MemorySink
from aiinvariants.auth import JWTVerifier
from aiinvariants.integrations.asgi import BearerAuthMiddleware
from aiinvariants.integrations.langchain import guard_retriever

ISSUER, AUDIENCE = "https://login.example.com", "https://kb.example.com/api"

policy = Policy.from_dict(
    {
        "app": "kb-assistant",
        "exposure": "public",
        "clearance": {"groups": {"employees": "internal", "finance": "confidential"}},
    }
)
audit = MemorySink()
guard = Guard(policy, sinks=[audit])

CORPUS = [
    ("handbook", "public", "holiday policy and office hours for everyone"),
    ("hours", "public", "office opening hours and holiday closures"),
    ("roadmap", "internal", "product roadmap for the holiday season"),
    ("salaries", "confidential", "salary bands and holiday bonus budget"),
    ("merger", "restricted", "merger plans to announce after the holiday"),
    ("draft", None, "unlabelled draft about holiday pay"),  # never returned
]


class HashEmbeddings(Embeddings):
    """A deterministic toy embedding, so the example needs no model."""

    def _one(self, text: str) -> list[float]:
        vec = [0.0] * 32
        for word in text.lower().split():
            digest = hashlib.sha256(word.encode()).digest()
            vec[digest[0] % 32] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


store = InMemoryVectorStore(HashEmbeddings())
store.add_texts(
    [text for _, _, text in CORPUS],
    metadatas=[
        {"doc_id": doc_id, **({"classification": label} if label else {})}
        for doc_id, label, _ in CORPUS
    ],
)

# A public app may not wire an anonymous endpoint to a corpus above public.
try:
    guard_retriever(guard, store)
except PolicyError:
    print("setup: a public app refuses an undeclared corpus (PolicyError)")

faq = guard_retriever(guard, store, k=5, labels=["public"], source="kb-faq")
ask = guard_retriever(
    guard, store, k=5, data="restricted", requires_authentication=True, source="kb"
)


async def answer(request: Request, retriever: Any) -> JSONResponse:
    question = request.query_params.get("q", "")
    try:
        docs = await retriever.ainvoke(question)
    except AuthenticationRequired as denied:
        return JSONResponse(
            {"error": denied.code},
            status_code=401,
            headers={"WWW-Authenticate": denied.www_authenticate},
        )
    return JSONResponse({"sources": sorted(d.metadata["doc_id"] for d in docs)})


async def faq_endpoint(request: Request) -> JSONResponse:
    return await answer(request, faq)


async def ask_endpoint(request: Request) -> JSONResponse:
    return await answer(request, ask)


key = ec.generate_private_key(ec.SECP256R1())
jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="k1", alg="ES256", use="sig")
verifier = JWTVerifier(
    issuer=ISSUER,
    audience=AUDIENCE,
    algorithms=["ES256"],
    jwks={"keys": [jwk]},
    clearance=policy.clearance,
    audit=guard.audit,
)
app = BearerAuthMiddleware(
    Starlette(routes=[Route("/faq", faq_endpoint), Route("/ask", ask_endpoint)]),
    verifier=verifier,
    allow_anonymous=True,
)


def mint(subject: str, groups: list[str], signer: Any = key) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + 300,
        "groups": groups,
    }
    return jwt.encode(
        claims, signer, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"}
    )


def main() -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    calls = [
        ("anonymous", "/faq", None),
        ("anonymous", "/ask", None),
        ("bob (employees)", "/ask", mint("bob", ["employees"])),
        ("alice (finance)", "/ask", mint("alice", ["finance"])),
        ("mallory (forged)", "/ask", mint("mallory", ["finance"], signer=forger)),
    ]
    with TestClient(app) as client:
        for who, path, token in calls:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = client.get(path, params={"q": "holiday"}, headers=headers)
            body = response.json() if response.status_code == 200 else None
            shown = body["sources"] if body else ""
            print(f"{who} {path}: {response.status_code} {shown}".rstrip())
    for event in audit.events:
        if event.reason == "retrieval":
            d = event.details
            print(
                f"  audit: {event.invariant} {event.subject} {event.resource} "
                f"returned={d['returned']} dropped={d['dropped']} "
                f"unlabelled={d['dropped_unlabelled']} pushdown={d['pushdown']}"
            )


if __name__ == "__main__":
    main()
