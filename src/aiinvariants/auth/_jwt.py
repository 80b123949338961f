"""JWT access-token verification, strict by default (RFC 8725, RFC 9068).

:class:`JWTVerifier` turns a bearer token into a verified
:class:`~aiinvariants.Principal` or raises
:class:`~aiinvariants.TokenInvalid` with a stable ``code``. The checks, in
the order they run:

1. size cap on the raw string (``too_large``), before any decoding;
2. structure: three base64url segments, header a JSON object without
   duplicate members (``malformed``);
3. header: ``alg`` pinned by configuration, never ``none`` or HMAC
   (``alg_not_allowed``); no ``jku``/``x5u``/``jwk``/``x5c``
   (``forbidden_header``); no ``crit`` (``unknown_crit``); ``typ`` is
   ``at+jwt`` (``wrong_type``); ``kid`` a short opaque string;
4. key: only from the configured key set, by ``kid`` (``unknown_kid``,
   ``jwks_unavailable``);
5. signature, checked by pyjwt (``bad_signature``);
6. claims: ``iss`` exact (``wrong_issuer``), ``sub``, ``aud`` contains ours
   (``wrong_audience``), ``exp``/``iat`` required and numeric
   (``missing_claim``, ``claim_type``), ``exp`` (``expired``), ``nbf``
   (``not_yet_valid``), ``iat`` (``issued_in_future``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from aiinvariants._errors import InsecureUsageWarning, PolicyError, TokenInvalid
from aiinvariants._internal.urls import require_url
from aiinvariants._principal import Principal
from aiinvariants.auth import _jws
from aiinvariants.auth._cache import VerifiedTokenCache, check_cache_size, token_digest
from aiinvariants.auth._claims import (
    ClaimMapping,
    audience_matches,
    check_leeway,
    numeric_date,
    principal_from_claims,
    string_claim,
)
from aiinvariants.auth._jwks import HTTPJWKS, JWKSet, KeySource, StaticJWKS

if TYPE_CHECKING:
    from aiinvariants.audit import AuditLog
    from aiinvariants.policy import ClearancePolicy, Policy

__all__ = ["ACCESS_TOKEN_TYPES", "REASON_CODES", "JWTVerifier"]

#: The ``typ`` values of an RFC 9068 access token (compared case-insensitively).
ACCESS_TOKEN_TYPES: Final = ("at+jwt", "application/at+jwt")

#: Every ``TokenInvalid.code`` the verifiers raise, with its meaning.
REASON_CODES: Final[Mapping[str, str]] = {
    "malformed": "not a compact JWS / JSON object, bad base64url, duplicate members",
    "too_large": "longer than max_token_bytes; refused before decoding",
    "alg_not_allowed": "alg not among the pinned algorithms (none, HS*, other)",
    "forbidden_header": "jku, x5u, jwk or x5c header present",
    "unknown_crit": "crit header present (no extension is understood)",
    "wrong_type": "typ missing or not at+jwt (e.g. an ID token)",
    "unknown_kid": "no key in the key set for the kid and alg",
    "jwks_unavailable": "the key set could not be fetched; fail closed",
    "bad_signature": "signature does not verify, or key too short",
    "missing_claim": "iss, sub, aud, exp or iat missing",
    "claim_type": "a claim has the wrong JSON type (e.g. exp as a string, inf)",
    "claim_range": "exp, nbf or iat is negative or beyond year 9999 (e.g. 1e308)",
    "scope_malformed": "scope is not scope-tokens separated by single U+0020",
    "wrong_issuer": "iss is not exactly the configured issuer",
    "wrong_audience": "aud does not contain the configured audience",
    "expired": "exp is in the past (beyond the leeway)",
    "not_yet_valid": "nbf is in the future (beyond the leeway)",
    "issued_in_future": "iat is in the future (beyond the leeway)",
    "inactive": "introspection says the token is not active",
    "introspection_unavailable": "the introspection endpoint failed; fail closed",
}


def _warn(what: str, cost: str) -> None:
    warnings.warn(f"{what}: {cost}", InsecureUsageWarning, stacklevel=4)


class JWTVerifier:
    """Verify JWT access tokens and return the verified principal.

    Every trust parameter must be pinned; the verifier refuses to be built
    otherwise. Each opt-out is a keyword whose name starts with ``unsafe_``
    and emits :class:`~aiinvariants._errors.InsecureUsageWarning`.

    HMAC algorithms are refused entirely: a shared secret lets every
    resource server mint tokens, and HS* beside asymmetric keys enables the
    classic key-confusion forgery (HS256 "signed" with the RSA public key).

    Args:
        issuer: the exact ``iss``. Stops tokens from another issuer.
        audience: the ``aud`` value(s) this API accepts. Stops a token minted
            for another API being replayed here (token confusion).
        algorithms: the accepted JWS algorithms, all asymmetric. Stops
            ``alg: none`` and algorithm-confusion attacks.
        jwks: an inline JWK Set of public keys.
        jwks_uri: where to fetch the JWK Set (https, or http on loopback).
        key_source: any :class:`~aiinvariants.auth._jwks.KeySource`.
            Exactly one of ``jwks``, ``jwks_uri`` and ``key_source``.
        leeway_s: clock skew tolerated on ``exp``/``nbf``/``iat``, 0-60 s.
        max_token_bytes: longer tokens are refused before any decoding.
            Stops CPU/memory exhaustion with huge tokens.
        scope_claims: claims read for scopes (``scope`` string, ``scp`` list).
        groups_claims: claims read for groups or roles.
        tenant_claim: the tenant claim; None for single-tenant apps.
        clearance: the policy's clearance map; the principal's clearance
            is resolved from its groups and scopes. None leaves it unset.
        audit: every decision (allow / deny with its code) is recorded here.
        cache_size: how many verified tokens are remembered; 0 disables.
        cache_ttl_s: the longest a verified token is remembered.
        jwks_cache_ttl_s: how long a fetched key set is used (``jwks_uri``).
        jwks_refresh_cooldown_s: an unknown ``kid`` refetches the key set at
            most once per cooldown. Stops random-kid floods hitting the IdP.
        jwks_timeout_s: the deadline of a key-set fetch, retries included.
        unsafe_allow_missing_typ: accept tokens without ``typ``. Costs: an ID
            token or any other JWT of the same issuer and audience is taken
            for an access token (RFC 8725 section 3.11). A wrong ``typ`` is
            still refused.
        unsafe_allow_http_jwks_uri: accept a plain-http ``jwks_uri`` on a
            non-loopback host. Costs: anyone on the path can serve keys.

    Raises:
        PolicyError: a trust parameter is missing, unsafe or out of range.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Sequence[str],
        algorithms: Sequence[str],
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        key_source: KeySource | None = None,
        leeway_s: float = 30,
        max_token_bytes: int = 8192,
        scope_claims: Sequence[str] = ("scope", "scp"),
        groups_claims: Sequence[str] = ("groups", "roles"),
        tenant_claim: str | None = "tid",
        clearance: ClearancePolicy | None = None,
        audit: AuditLog | None = None,
        cache_size: int = 10_000,
        cache_ttl_s: float = 300.0,
        jwks_cache_ttl_s: float = 300.0,
        jwks_refresh_cooldown_s: float = 30.0,
        jwks_timeout_s: float = 5.0,
        unsafe_allow_missing_typ: bool = False,
        unsafe_allow_http_jwks_uri: bool = False,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise PolicyError("JWTVerifier needs issuer= (the exact 'iss' value)")
        self._issuer = issuer
        self._audiences = _audiences(audience)
        self._algorithms = _algorithms(algorithms)
        self._leeway = check_leeway(leeway_s)
        if isinstance(max_token_bytes, bool) or not isinstance(max_token_bytes, int):
            raise PolicyError("max_token_bytes must be an int")
        if not 256 <= max_token_bytes <= 65536:
            raise PolicyError("max_token_bytes must be between 256 and 65536")
        self._max_bytes = max_token_bytes
        self._mapping = ClaimMapping(
            scope_claims=scope_claims,
            groups_claims=groups_claims,
            tenant_claim=tenant_claim,
        )
        self._clearance = clearance
        self._audit = audit
        sources = [s for s in (jwks, jwks_uri, key_source) if s is not None]
        if len(sources) != 1:
            raise PolicyError(
                "JWTVerifier needs exactly one of jwks=, jwks_uri= or key_source="
            )
        if jwks is not None:
            self._source: KeySource = StaticJWKS(jwks, algorithms=self._algorithms)
        elif jwks_uri is not None:
            # Checked here too, so the error names this class's argument.
            require_url(
                jwks_uri,
                what="jwks_uri",
                unsafe_allow_http=unsafe_allow_http_jwks_uri,
                unsafe_flag="unsafe_allow_http_jwks_uri",
                warn=False,
            )
            if unsafe_allow_http_jwks_uri:
                _warn("unsafe_allow_http_jwks_uri=True", "keys may be substituted")
            self._source = HTTPJWKS(
                jwks_uri,
                algorithms=self._algorithms,
                ttl_s=jwks_cache_ttl_s,
                cooldown_s=jwks_refresh_cooldown_s,
                timeout_s=jwks_timeout_s,
                unsafe_allow_http=unsafe_allow_http_jwks_uri,
            )
        else:
            if not isinstance(key_source, KeySource):
                raise PolicyError("key_source must implement KeySource")
            self._source = key_source
        self._allow_missing_typ = bool(unsafe_allow_missing_typ)
        if self._allow_missing_typ:
            _warn(
                "unsafe_allow_missing_typ=True",
                "an ID token or other JWT of this issuer may pass as an access token",
            )
            self._record("flag", "insecure_setting", "unsafe_allow_missing_typ")
        check_cache_size(cache_size, where="JWTVerifier")
        self._cache = (
            VerifiedTokenCache(max_entries=cache_size, max_ttl_s=cache_ttl_s)
            if cache_size
            else None
        )

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        *,
        audit: AuditLog | None = None,
        **overrides: Any,
    ) -> JWTVerifier:
        """Build the verifier a policy's ``identity`` section describes.

        Args:
            policy: a validated Policy with an ``identity`` using ``jwks_uri``
                or ``jwks``.
            audit: where decisions are recorded (e.g. ``guard.audit``).
            **overrides: keyword arguments of :class:`JWTVerifier` that win
                over the policy (e.g. ``cache_size=0``).

        Raises:
            PolicyError: the policy has no identity section, or it names an
                introspection endpoint (use ``IntrospectionVerifier``).
        """
        identity = getattr(policy, "identity", None)
        if identity is None:
            raise PolicyError("the policy has no identity section")
        if identity.introspection_endpoint is not None:
            raise PolicyError(
                "this identity uses introspection: build an "
                "IntrospectionVerifier.from_policy(policy)"
            )
        audience = identity.audience
        kwargs: dict[str, Any] = {
            "issuer": identity.issuer,
            "audience": [audience] if isinstance(audience, str) else list(audience),
            "algorithms": list(identity.algorithms),
            "leeway_s": identity.leeway_s,
            "max_token_bytes": identity.max_token_bytes,
            "scope_claims": identity.scope_claims,
            "groups_claims": identity.groups_claims,
            "tenant_claim": identity.tenant_claim,
            "clearance": policy.clearance,
            "audit": audit,
            "jwks_cache_ttl_s": identity.jwks_cache_ttl_s,
            "jwks_timeout_s": identity.jwks_timeout_s,
            "unsafe_allow_missing_typ": not identity.require_typ,
        }
        if identity.jwks is not None:
            kwargs["jwks"] = identity.jwks
        else:
            kwargs["jwks_uri"] = identity.jwks_uri
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- properties -------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The pinned issuer."""
        return self._issuer

    @property
    def audiences(self) -> frozenset[str]:
        """The accepted audiences."""
        return self._audiences

    @property
    def algorithms(self) -> frozenset[str]:
        """The pinned algorithms."""
        return self._algorithms

    @property
    def key_source(self) -> KeySource:
        """Where keys come from."""
        return self._source

    @property
    def cache(self) -> VerifiedTokenCache | None:
        """The verified-token cache, or None when disabled."""
        return self._cache

    # -- verification -----------------------------------------------------

    def verify(self, token: str) -> Principal:
        """Verify ``token`` and return its principal.

        Raises:
            TokenInvalid: with one of :data:`REASON_CODES`; never containing
                the token.
        """
        try:
            digest = self._digest(token)
            if digest is not None:
                keys = self._source.get_keys()
                hit = self._cached(digest, keys)
                if hit is not None:
                    return self._allowed(hit, cached=True)
            parsed = self._parse(token)
            keys = self._source.get_keys()
            found = keys.find(parsed.kid, parsed.alg)
            if found is None:
                found = self._source.refresh_for(parsed.kid).find(
                    parsed.kid, parsed.alg
                )
            principal = self._finish(parsed, found, digest)
        except TokenInvalid as exc:
            self._denied(exc)
            raise
        return self._allowed(principal, cached=False)

    async def averify(self, token: str) -> Principal:
        """Async :meth:`verify`: key fetches do not block the event loop.

        Raises:
            TokenInvalid: as :meth:`verify`.
        """
        try:
            digest = self._digest(token)
            if digest is not None:
                keys = await self._source.aget_keys()
                hit = self._cached(digest, keys)
                if hit is not None:
                    return self._allowed(hit, cached=True)
            parsed = self._parse(token)
            keys = await self._source.aget_keys()
            found = keys.find(parsed.kid, parsed.alg)
            if found is None:
                refreshed = await self._source.arefresh_for(parsed.kid)
                found = refreshed.find(parsed.kid, parsed.alg)
            principal = self._finish(parsed, found, digest)
        except TokenInvalid as exc:
            self._denied(exc)
            raise
        return self._allowed(principal, cached=False)

    def _digest(self, token: object) -> bytes | None:
        if self._cache is None:
            return None
        if not isinstance(token, str) or len(token) > self._max_bytes:
            # Hash nothing an attacker made huge; parsing rejects it next.
            return None
        return token_digest(token)

    def _cached(self, digest: bytes, keys: JWKSet) -> Principal | None:
        if self._cache is None:  # pragma: no cover - only called with a cache
            return None
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if entry.key_fingerprint is None or not keys.has(entry.key_fingerprint):
            # The key that verified it left the key set: so does the token.
            self._cache.discard(digest)
            return None
        return entry.principal

    def _parse(self, token: object) -> _jws.ParsedJWS:
        return _jws.parse_compact(
            token,
            max_bytes=self._max_bytes,
            algorithms=self._algorithms,
            accepted_types=ACCESS_TOKEN_TYPES,
            allow_missing_typ=self._allow_missing_typ,
        )

    def _finish(
        self,
        parsed: _jws.ParsedJWS,
        found: tuple[Any, str] | None,
        digest: bytes | None,
    ) -> Principal:
        if found is None:
            raise _jws.invalid("unknown_kid", "no configured key matches the token")
        key, fingerprint = found
        payload = _jws.verify_signature(parsed, key)
        claims = _jws.loads_object(payload, what="payload")
        exp = self._check_claims(claims)
        principal = principal_from_claims(
            claims,
            subject=claims["sub"],
            issuer=self._issuer,
            mapping=self._mapping,
            clearance=self._clearance,
            token=parsed.token,
        )
        if self._cache is not None and digest is not None:
            self._cache.put(digest, principal, exp=exp, key_fingerprint=fingerprint)
        return principal

    def _check_claims(
        self, claims: Mapping[str, Any], now: float | None = None
    ) -> float:
        """Check the registered claims; return ``exp``."""
        iss = string_claim(claims, "iss", required=True)
        if iss != self._issuer:
            raise _jws.invalid("wrong_issuer", "the token is from another issuer")
        string_claim(claims, "sub", required=True)
        if "aud" not in claims:
            raise _jws.invalid("missing_claim", "the token has no 'aud' claim")
        if not audience_matches(claims["aud"], self._audiences):
            raise _jws.invalid(
                "wrong_audience",
                "the token is for another audience than this API's",
                resource=" ".join(sorted(self._audiences)),
            )
        exp = numeric_date(claims, "exp", required=True)
        iat = numeric_date(claims, "iat", required=True)
        nbf = numeric_date(claims, "nbf", required=False)
        if exp is None or iat is None:  # pragma: no cover - required=True raised
            raise _jws.invalid("missing_claim", "the token has no 'exp' or 'iat'")
        current = time.time() if now is None else now
        if exp <= current - self._leeway:
            raise _jws.invalid("expired", "the token has expired")
        if nbf is not None and nbf > current + self._leeway:
            raise _jws.invalid("not_yet_valid", "the token is not valid yet (nbf)")
        if iat > current + self._leeway:
            raise _jws.invalid("issued_in_future", "the token is issued in the future")
        return exp

    # -- audit ------------------------------------------------------------

    def _record(self, decision: Any, reason: str, resource: str) -> None:
        if self._audit is not None:
            self._audit.record(
                invariant="I1", decision=decision, reason=reason, resource=resource
            )

    def _allowed(self, principal: Principal, *, cached: bool) -> Principal:
        audit = self._audit
        if audit is not None and audit.active:
            audit.record(
                invariant="I1",
                decision="allow",
                reason="token_valid",
                resource=self._issuer,
                details={"cached": cached},
                principal=principal,
            )
        return principal

    def _denied(self, exc: TokenInvalid) -> None:
        if exc.resource is None:
            exc.resource = self._issuer
        self._record("deny", exc.code, self._issuer)

    def __repr__(self) -> str:
        return (
            f"JWTVerifier(issuer={self._issuer!r}, "
            f"audience={sorted(self._audiences)!r}, "
            f"algorithms={sorted(self._algorithms)!r}, source={self._source!r})"
        )


def _audiences(audience: object) -> frozenset[str]:
    if isinstance(audience, str):
        values: list[object] = [audience]
    elif isinstance(audience, Collection) and not isinstance(audience, Mapping):
        values = list(audience)
    else:
        raise PolicyError("JWTVerifier needs audience= (this API's 'aud' value)")
    if not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyError("JWTVerifier needs audience= (this API's 'aud' value)")
    return frozenset(v for v in values if isinstance(v, str))


def _algorithms(algorithms: object) -> frozenset[str]:
    if isinstance(algorithms, str) or not isinstance(algorithms, Collection):
        raise PolicyError("JWTVerifier needs algorithms=[...] (e.g. ['RS256'])")
    values = list(algorithms)
    if not values:
        raise PolicyError("JWTVerifier needs algorithms=[...] (e.g. ['RS256'])")
    for alg in values:
        if not isinstance(alg, str):
            raise PolicyError("algorithms must be strings")
        if alg.lower() == "none":
            raise PolicyError("algorithm 'none' is refused: it accepts unsigned tokens")
        if alg.upper().startswith("HS"):
            raise PolicyError(
                f"algorithm {alg} is refused: HMAC shares the signing secret with "
                "every verifier and enables key-confusion forgeries (RFC 8725)"
            )
        if alg not in _jws.ASYMMETRIC_ALGORITHMS:
            raise PolicyError(
                f"algorithm {alg!r} is not supported; use one of "
                + ", ".join(sorted(_jws.ASYMMETRIC_ALGORITHMS))
            )
    return frozenset(values)
