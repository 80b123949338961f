"""The JWS layer: strict pre-checks, then pyjwt's signature check.

Everything here runs before a claim is looked at. The order is the point:
the size cap comes before any decoding (a 5 MB token costs a ``len``), the
structure and header rules come before any key is chosen, and the key comes
only from the configured key set, chosen by ``kid`` as an opaque string.

No message raised here contains the token or any part of it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from jwt import PyJWK
from jwt.api_jws import PyJWS
from jwt.exceptions import InvalidKeyError, InvalidSignatureError, PyJWTError

from aiinvariants._errors import TokenInvalid
from aiinvariants._internal import strict_json

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "FORBIDDEN_HEADERS",
    "ParsedJWS",
    "invalid",
    "loads_object",
    "parse_compact",
    "verify_signature",
]

#: The algorithms a verifier may pin (RFC 7518, RFC 8037). No ``none``, no HMAC.
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "EdDSA",
    }
)  # fmt: skip

#: Header parameters that would let the token choose its own key (RFC 8725
#: section 3.10): refused outright, never followed.
FORBIDDEN_HEADERS: Final = ("jku", "x5u", "jwk", "x5c")

_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]*")
_KID: Final = re.compile(r"[\x21-\x7e]{1,256}")
_MAX_HEADER_CHARS: Final = 2048

# Signature checks only; claims are ours. Short keys are refused, not warned.
_PYJWS: Final = PyJWS(
    options={"verify_signature": True, "enforce_minimum_key_length": True}
)


def invalid(code: str, reason: str, *, resource: str | None = None) -> TokenInvalid:
    """A TokenInvalid with a fixed, token-free message."""
    return TokenInvalid(reason, code=code, resource=resource)


def loads_object(data: bytes, *, what: str) -> dict[str, Any]:
    """Parse a JSON object strictly: UTF-8, no duplicate members, no NaN.

    Raises:
        TokenInvalid: ``malformed`` when ``data`` is not such an object.
    """
    try:
        return strict_json.loads_object(data)
    except strict_json.StrictJSONError as exc:
        if exc.problem == "not_object":
            raise invalid("malformed", f"the {what} is not a JSON object") from None
        raise invalid("malformed", f"the {what} is not valid JSON") from None


def _b64decode(segment: str, *, what: str) -> bytes:
    if len(segment) % 4 == 1:
        raise invalid("malformed", f"the {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise invalid("malformed", f"the {what} is not base64url") from None


@dataclass(frozen=True, slots=True)
class ParsedJWS:
    """A compact JWS whose structure and header passed the pre-checks."""

    token: str
    header: dict[str, Any]
    alg: str
    kid: str | None
    payload_segment: str


def parse_compact(
    token: object,
    *,
    max_bytes: int,
    algorithms: Collection[str],
    accepted_types: Collection[str] | None,
    allow_missing_typ: bool,
) -> ParsedJWS:
    """Check size, structure and header of a compact JWS, cheapest first.

    Args:
        token: the presented token.
        max_bytes: longer tokens are refused before any decoding.
        algorithms: the pinned algorithms; ``alg`` must be one of them.
        accepted_types: lower-cased ``typ`` values accepted (with or without
            the ``application/`` prefix); None skips the ``typ`` rule
            (signature-only use, e.g. test vectors).
        allow_missing_typ: accept a token without ``typ`` (a present but
            wrong ``typ`` is still refused).

    Raises:
        TokenInvalid: ``too_large``, ``malformed``, ``alg_not_allowed``,
            ``forbidden_header``, ``unknown_crit`` or ``wrong_type``.
    """
    if not isinstance(token, str):
        raise invalid("malformed", "the token is not a string")
    if len(token) > max_bytes:
        raise invalid("too_large", f"the token is longer than {max_bytes} bytes")
    if not token.isascii():
        raise invalid("malformed", "the token is not ASCII")
    parts = token.split(".")
    if len(parts) != 3:
        # Five parts would be a JWE; anything else is not a compact JWS.
        raise invalid("malformed", "the token is not a compact JWS")
    header_segment, payload_segment, signature_segment = parts
    if not header_segment:
        raise invalid("malformed", "the token has an empty header")
    if len(header_segment) > _MAX_HEADER_CHARS:
        raise invalid("malformed", "the token header is too long")
    for segment in parts:
        if not _SEGMENT.fullmatch(segment):
            raise invalid("malformed", "the token is not base64url")
    header = loads_object(_b64decode(header_segment, what="header"), what="header")

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        # Covers "none", HS256-with-the-RSA-public-key and every other
        # algorithm the configuration did not pin (RFC 8725 section 3.1).
        raise invalid("alg_not_allowed", "the token's algorithm is not allowed")
    for name in FORBIDDEN_HEADERS:
        if name in header:
            raise invalid(
                "forbidden_header",
                f"the token header carries '{name}'; keys come only from the "
                "configured key set",
            )
    if "crit" in header:
        # We implement no extension, so any critical one must be refused
        # (RFC 7515 section 4.1.11), including b64=false (RFC 7797).
        raise invalid("unknown_crit", "the token header has critical extensions")
    if "b64" in header:
        raise invalid("malformed", "unencoded payloads (b64) are not accepted")
    if not signature_segment:
        raise invalid("malformed", "the token has no signature")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not _KID.fullmatch(kid)):
        raise invalid("malformed", "the token's kid is not a short printable string")
    if accepted_types is not None:
        typ = header.get("typ")
        if typ is None:
            if not allow_missing_typ:
                raise invalid(
                    "wrong_type", "the token has no typ; an access token needs at+jwt"
                )
        elif not isinstance(typ, str) or _media_type(typ) not in accepted_types:
            raise invalid("wrong_type", "the token is not an access token (typ)")
    return ParsedJWS(token, header, alg, kid, payload_segment)


def _media_type(typ: str) -> str:
    lowered = typ.lower()
    # RFC 7515 section 4.1.9: "application/" may be omitted.
    return lowered[12:] if lowered.startswith("application/") else lowered


def verify_signature(parsed: ParsedJWS, key: PyJWK) -> bytes:
    """Check the signature with pyjwt and return the decoded payload bytes.

    ``key`` is bound to one algorithm; pyjwt refuses a token whose ``alg``
    differs from it, and keys shorter than the algorithm's minimum.

    Raises:
        TokenInvalid: ``bad_signature`` or ``malformed``.
    """
    try:
        result = _PYJWS.decode_complete(
            parsed.token, key=key, algorithms=[key.algorithm_name]
        )
    except InvalidSignatureError:
        raise invalid("bad_signature", "the token's signature is invalid") from None
    except InvalidKeyError:
        raise invalid("bad_signature", "the signing key is not acceptable") from None
    except PyJWTError:
        raise invalid("malformed", "the token could not be decoded") from None
    payload = result["payload"]
    if not isinstance(payload, bytes):  # pragma: no cover - pyjwt contract
        raise invalid("malformed", "the token payload is not bytes")
    return payload
