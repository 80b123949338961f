"""JWTVerifier.verify versus a bare jwt.decode with the same checks (issue #3)."""

from __future__ import annotations

import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from aiinvariants.auth import JWTVerifier

from ._harness import compare, print_table

ISSUER = "https://login.example.test"
AUDIENCE = "https://api.example.test"


def run() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": ISSUER,
            "sub": "alice",
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "scope": "tickets:read kb:read",
            "groups": ["employees"],
            "tid": "example",
        },
        key,
        algorithm="RS256",
        headers={"kid": "k1", "typ": "at+jwt"},
    )
    public = key.public_key()
    jwks = {"keys": [jwk]}
    options = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["RS256"]}
    cold = JWTVerifier(jwks=jwks, cache_size=0, **options)
    warm = JWTVerifier(jwks=jwks, **options)
    warm.verify(token)

    def bare() -> object:
        return jwt.decode(
            token,
            public,
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=30,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )

    results = compare(
        {
            "jwt.decode (pyjwt, same key and checks)": bare,
            "JWTVerifier.verify, cache off": lambda: cold.verify(token),
            "JWTVerifier.verify, cache hit": lambda: warm.verify(token),
        },
        baseline="jwt.decode (pyjwt, same key and checks)",
        number=500,
        repeat=9,
    )
    print_table("JWT verification per call (RS256, 2048-bit key)", results)
