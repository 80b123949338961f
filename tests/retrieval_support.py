"""Shared helpers for the secure-retrieval tests: a deterministic embedding,
a labelled corpus and a few principals."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from aiinvariants import Policy, Principal

DIM = 32

POLICY = Policy.from_dict(
    {
        "clearance": {
            "groups": {"employees": "internal", "finance": "confidential"},
            "default_authenticated": "public",
        }
    }
)
PUBLIC_POLICY = Policy.from_dict({"exposure": "public"})
# POLICY opened to anonymous callers (an internal app refuses them at every
# enforcement point), for tests of what an anonymous caller gets.
OPEN_POLICY = POLICY.model_copy(update={"exposure": "public"})

ANON = Principal(subject="anonymous")
ALICE = Principal(
    subject="alice", authenticated=True, groups=frozenset({"finance"}), tenant="acme"
)
BOB = Principal(
    subject="bob", authenticated=True, groups=frozenset({"employees"}), tenant="acme"
)
EVE = Principal(subject="eve", authenticated=True, tenant="globex")
# Signed in, but the policy grants nothing above public: what an anonymous
# caller read before internal apps refused anonymous callers everywhere.
READER = Principal(subject="pat", authenticated=True)


def embed(text: str) -> list[float]:
    """A deterministic bag-of-words hashing embedding, unit length."""
    vec = [0.0] * DIM
    for word in text.lower().split():
        digest = hashlib.sha256(word.encode()).digest()
        vec[digest[0] % DIM] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def corpus() -> list[tuple[str, dict[str, Any]]]:
    """A small mixed-classification corpus: (text, metadata)."""
    return [
        ("holiday policy for everyone public handbook", {"classification": "public"}),
        ("office opening hours public", {"classification": "public", "doc_id": "p2"}),
        ("internal roadmap for employees", {"classification": "internal"}),
        ("salary bands finance confidential", {"classification": "confidential"}),
        ("merger plans restricted board", {"classification": "restricted"}),
        ("unlabelled secret notes about salary", {}),
        ("mystery label salary", {"classification": "secret"}),
        (
            "acme finance forecast confidential salary",
            {"classification": "confidential", "tenant": "acme"},
        ),
        (
            "globex finance forecast confidential salary",
            {"classification": "confidential", "tenant": "globex"},
        ),
        (
            "alice only salary review",
            {"classification": "internal", "allowed_users": "alice"},
        ),
        (
            "web page about salary from the internet",
            {"classification": "public", "untrusted": True},
        ),
    ]
