"""Token verification: JWT access tokens, JWKS, introspection, resource metadata.

:class:`JWTVerifier` verifies RFC 9068 JWT access tokens against a pinned
issuer, audience and algorithm list, with keys only from a configured JWK
Set (:class:`StaticJWKS`, :class:`HTTPJWKS`). :class:`IntrospectionVerifier`
verifies opaque tokens (RFC 7662). Both return a verified
:class:`~aiinvariants.Principal` or raise
:class:`~aiinvariants.TokenInvalid` with a stable ``code``
(:data:`REASON_CODES`). :class:`TokenExchanger` exchanges the user's
token for a downstream one (RFC 8693) and :class:`PassthroughGuard` refuses
to send the inbound token on (I4). :func:`protected_resource_metadata` builds the
RFC 9728 document; the ASGI middleware lives in
:mod:`aiinvariants.integrations.asgi`.

See ``docs/verifying-tokens.md``.
"""

from __future__ import annotations

from aiinvariants.auth._cache import CachedToken, VerifiedTokenCache
from aiinvariants.auth._exchange import (
    ExchangedToken,
    PassthroughGuard,
    TokenExchanger,
)
from aiinvariants.auth._introspection import IntrospectionVerifier
from aiinvariants.auth._jwks import HTTPJWKS, JWKSet, KeySource, StaticJWKS
from aiinvariants.auth._jwt import ACCESS_TOKEN_TYPES, REASON_CODES, JWTVerifier
from aiinvariants.auth._metadata import (
    WELL_KNOWN_PATH,
    metadata_url,
    protected_resource_metadata,
)

__all__ = [
    "ACCESS_TOKEN_TYPES",
    "HTTPJWKS",
    "REASON_CODES",
    "WELL_KNOWN_PATH",
    "CachedToken",
    "ExchangedToken",
    "IntrospectionVerifier",
    "JWKSet",
    "JWTVerifier",
    "KeySource",
    "PassthroughGuard",
    "StaticJWKS",
    "TokenExchanger",
    "VerifiedTokenCache",
    "metadata_url",
    "protected_resource_metadata",
]
