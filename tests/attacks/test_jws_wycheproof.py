"""Project Wycheproof JWS vectors through the verifier's signature layer.

Reads ``../shared/corpora/jwt-wycheproof`` at test time (never copied into the
repository) and skips cleanly when it is absent. The signature layer is the
part of :class:`~aiinvariants.auth.JWTVerifier` before claim checks: size and
structure pre-checks, header rules, key choice from the key set, pyjwt's
signature check. Claims are not checked (the vectors' payloads are not claim
sets) and ``typ`` is not required.

Disagreements are deliberate and counted by kind:

* HMAC vectors: ``HS*`` is refused by design (RFC 8725 key confusion), so
  their valid vectors are rejected.
* JSON serialization: only the compact form is accepted (RFC 9068).
* RFC 7520 Figures 20 and 27 (4 vectors): the key declares ``alg`` PS256 but
  the token uses PS384, or the key declares ``ES521`` (not a JWA name). A key
  is used only with the algorithm it declares (RFC 7517 section 4.4), so
  these are refused.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aiinvariants._errors import PolicyError, TokenInvalid
from aiinvariants.auth import JWKSet
from aiinvariants.auth._jws import (
    ASYMMETRIC_ALGORITHMS,
    parse_compact,
    verify_signature,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "jwt-wycheproof"
VECTORS = CORPUS / "json_web_signature_test.json"


def accepts(jws: Any, keys: JWKSet | None) -> bool:
    if keys is None or not isinstance(jws, str):
        return False
    try:
        parsed = parse_compact(
            jws,
            max_bytes=65536,
            algorithms=ASYMMETRIC_ALGORITHMS,
            accepted_types=None,
            allow_missing_typ=True,
        )
        found = keys.find(parsed.kid, parsed.alg)
        if found is None:
            return False
        verify_signature(parsed, found[0])
    except TokenInvalid:
        return False
    return True


def test_wycheproof_jws_vectors() -> None:
    if not VECTORS.is_file():
        pytest.skip(f"Wycheproof corpus not found at {CORPUS}")
    data = json.loads(VECTORS.read_text())
    tally: Counter[str] = Counter()
    disagreements: list[str] = []
    for group in data["testGroups"]:
        public = group.get("public")
        keys: JWKSet | None
        try:
            keys = (
                JWKSet(
                    {"keys": [public]}, algorithms=ASYMMETRIC_ALGORITHMS, strict=False
                )
                if public
                else None
            )
        except PolicyError:
            keys = None
        hmac = (group.get("private") or {}).get("kty") == "oct"
        for case in group["tests"]:
            expected = case["result"] == "valid"
            got = accepts(case["jws"], keys)
            tally["total"] += 1
            if got == expected:
                tally["agree"] += 1
                continue
            if expected and hmac:
                tally["hmac refused by design"] += 1
            elif expected and not isinstance(case["jws"], str):
                tally["json serialization refused"] += 1
            elif expected:
                tally["valid rejected (other)"] += 1
                disagreements.append(
                    f"{group['comment']}#{case['tcId']} {case['comment']}"
                )
            else:
                tally["INVALID ACCEPTED"] += 1
                disagreements.append(
                    f"ACCEPTED {group['comment']}#{case['tcId']} {case['comment']}"
                )
    print("\nWycheproof JWS:", dict(tally))
    for line in disagreements:
        print("  ", line)
    # Never accept a vector Wycheproof calls invalid; agree on at least 85 %.
    assert tally["INVALID ACCEPTED"] == 0
    assert tally["agree"] >= 0.85 * tally["total"]
