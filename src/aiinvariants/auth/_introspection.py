"""Opaque access tokens, verified by OAuth 2.0 Token Introspection (RFC 7662).

:class:`IntrospectionVerifier` posts the token to the authorization server's
introspection endpoint and builds the principal from the answer. It follows
the same fail-closed rules as :class:`~aiinvariants.auth.JWTVerifier`: a
token that is not ``"active": true``, from another issuer or for another
audience is refused, and an endpoint that is slow, down or answers garbage
is a denial (``introspection_unavailable``), never an acceptance.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from aiinvariants._errors import (
    InsecureUsageWarning,
    InvariantViolation,
    PolicyError,
    TokenInvalid,
)
from aiinvariants._internal.urls import env_proxies_allowed
from aiinvariants._principal import Principal
from aiinvariants.auth._cache import VerifiedTokenCache, check_cache_size, token_digest
from aiinvariants.auth._claims import (
    ClaimMapping,
    audience_matches,
    check_leeway,
    numeric_date,
    principal_from_claims,
    string_claim,
)
from aiinvariants.auth._jwks import check_fetch_url
from aiinvariants.auth._jws import invalid, loads_object

if TYPE_CHECKING:
    from aiinvariants.audit import AuditLog
    from aiinvariants.policy import ClearancePolicy, Policy

__all__ = ["IntrospectionVerifier"]

_MAX_RESPONSE_BYTES: Final = 64 * 1024


class _Failed(Exception):
    """One introspection attempt failed."""


class IntrospectionVerifier:
    """Verify opaque tokens at an RFC 7662 introspection endpoint.

    Args:
        endpoint: the introspection endpoint (https, or http on loopback).
        issuer: the issuer; an ``iss`` in the answer must equal it.
        audience: the audience(s) this API accepts. The answer must carry an
            ``aud`` naming one (stops tokens minted for another API).
        client_id: the client id used to authenticate at the endpoint.
        client_secret: its secret (HTTP Basic); kept out of reprs.
        leeway_s: clock skew tolerated on ``exp``/``nbf``, 0-60 s.
        max_token_bytes: longer tokens are refused before any request.
        scope_claims, groups_claims, tenant_claim: claim mapping, as for
            :class:`~aiinvariants.auth.JWTVerifier`.
        clearance: the policy's clearance map.
        audit: where decisions are recorded.
        cache_size: how many answers are remembered (0 disables).
        cache_ttl_s: the longest an answer is remembered (a revoked token
            stays usable at most this long; default 60 s).
        timeout_s: deadline of one verification's request, retries included.
        retries: extra attempts after a failed one.
        client: an ``httpx.Client``; async_client: an ``httpx.AsyncClient``.
        unsafe_allow_missing_audience: accept answers without ``aud``. Costs:
            a token minted for another API of the same server is accepted.
        unsafe_allow_http: accept plain http on a non-loopback host. Costs:
            the token and the verdict travel unprotected.

    Raises:
        PolicyError: a parameter is missing, unsafe or out of range.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        issuer: str,
        audience: str | Sequence[str],
        client_id: str | None = None,
        client_secret: str | SecretStr | None = None,
        leeway_s: float = 30,
        max_token_bytes: int = 8192,
        scope_claims: Sequence[str] = ("scope", "scp"),
        groups_claims: Sequence[str] = ("groups", "roles"),
        tenant_claim: str | None = "tid",
        clearance: ClearancePolicy | None = None,
        audit: AuditLog | None = None,
        cache_size: int = 10_000,
        cache_ttl_s: float = 60.0,
        timeout_s: float = 5.0,
        retries: int = 1,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        unsafe_allow_missing_audience: bool = False,
        unsafe_allow_http: bool = False,
    ) -> None:
        self._endpoint = check_fetch_url(
            endpoint, what="introspection endpoint", unsafe_allow_http=unsafe_allow_http
        )
        if not isinstance(issuer, str) or not issuer:
            raise PolicyError("IntrospectionVerifier needs issuer=")
        self._issuer = issuer
        if isinstance(audience, str):
            audience = [audience]
        if not audience or not all(isinstance(a, str) and a for a in audience):
            raise PolicyError("IntrospectionVerifier needs audience=")
        self._audiences = frozenset(audience)
        self._leeway = check_leeway(leeway_s)
        self._max_bytes = int(max_token_bytes)
        self._mapping = ClaimMapping(
            scope_claims=scope_claims,
            groups_claims=groups_claims,
            tenant_claim=tenant_claim,
        )
        self._clearance = clearance
        self._audit = audit
        if client_secret is not None and client_id is None:
            raise PolicyError("client_secret needs client_id")
        self._client_id = client_id
        self._secret = (
            client_secret
            if isinstance(client_secret, SecretStr) or client_secret is None
            else SecretStr(client_secret)
        )
        if not 0.05 <= timeout_s <= 60:
            raise PolicyError("timeout_s must be between 0.05 and 60")
        self._timeout = float(timeout_s)
        if not 0 <= retries <= 5:
            raise PolicyError("retries must be between 0 and 5")
        self._retries = int(retries)
        self._client = client
        self._async_client = async_client
        self._allow_missing_aud = bool(unsafe_allow_missing_audience)
        if self._allow_missing_aud:
            warnings.warn(
                "unsafe_allow_missing_audience=True: a token minted for another "
                "API of the same server is accepted",
                InsecureUsageWarning,
                stacklevel=2,
            )
        check_cache_size(cache_size, where="IntrospectionVerifier")
        self._cache = (
            VerifiedTokenCache(max_entries=cache_size, max_ttl_s=cache_ttl_s)
            if cache_size
            else None
        )

    @classmethod
    def from_policy(
        cls, policy: Policy, *, audit: AuditLog | None = None, **overrides: Any
    ) -> IntrospectionVerifier:
        """Build the verifier a policy's ``identity`` section describes.

        The client secret is read from the environment variable the policy
        names (``introspection_client_secret_env``).

        Raises:
            PolicyError: the identity has no introspection endpoint, or the
                named environment variable is unset.
        """
        identity = getattr(policy, "identity", None)
        if identity is None or identity.introspection_endpoint is None:
            raise PolicyError("the policy's identity has no introspection_endpoint")
        secret = None
        if identity.introspection_client_secret_env is not None:
            secret = os.environ.get(identity.introspection_client_secret_env)
            if not secret:
                raise PolicyError(
                    f"environment variable {identity.introspection_client_secret_env}"
                    " (introspection client secret) is not set"
                )
        audience = identity.audience
        kwargs: dict[str, Any] = {
            "endpoint": identity.introspection_endpoint,
            "issuer": identity.issuer,
            "audience": [audience] if isinstance(audience, str) else list(audience),
            "client_id": identity.introspection_client_id,
            "client_secret": secret,
            "leeway_s": identity.leeway_s,
            "max_token_bytes": identity.max_token_bytes,
            "scope_claims": identity.scope_claims,
            "groups_claims": identity.groups_claims,
            "tenant_claim": identity.tenant_claim,
            "clearance": policy.clearance,
            "audit": audit,
            "timeout_s": identity.jwks_timeout_s,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- verification -----------------------------------------------------

    def _precheck(self, token: object) -> tuple[str, bytes]:
        if not isinstance(token, str) or not token:
            raise invalid("malformed", "the token is not a non-empty string")
        if len(token) > self._max_bytes:
            raise invalid(
                "too_large", f"the token is longer than {self._max_bytes} bytes"
            )
        if not token.isascii() or not token.isprintable() or " " in token:
            raise invalid("malformed", "the token has characters a bearer token cannot")
        return token, token_digest(token)

    def _request_args(self, token: str) -> dict[str, Any]:
        auth = None
        if self._client_id is not None:
            secret = "" if self._secret is None else self._secret.get_secret_value()
            auth = httpx.BasicAuth(self._client_id, secret)
        return {
            "data": {"token": token, "token_type_hint": "access_token"},
            "headers": {"Accept": "application/json"},
            "auth": auth,
        }

    def _decode(self, status: int, body: bytes) -> dict[str, Any]:
        if status != 200:
            raise _Failed(f"HTTP {status}")
        try:
            return loads_object(body, what="introspection response")
        except TokenInvalid as exc:
            raise _Failed("not a JSON object") from exc

    def _stop(self) -> Any:
        return stop_after_attempt(self._retries + 1) | stop_after_delay(self._timeout)

    def _unavailable(self) -> TokenInvalid:
        return invalid(
            "introspection_unavailable",
            "the introspection endpoint could not be reached; failing closed",
            resource=self._endpoint,
        )

    def _post(self, token: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout

        def once() -> dict[str, Any]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failed("deadline passed")
            try:
                client = self._client or httpx.Client(
                    follow_redirects=False,
                    trust_env=env_proxies_allowed(self._endpoint),
                )
                try:
                    with client.stream(
                        "POST",
                        self._endpoint,
                        timeout=httpx.Timeout(remaining),
                        **self._request_args(token),
                    ) as response:
                        body = bytearray()
                        for chunk in response.iter_bytes():
                            body += chunk
                            if len(body) > _MAX_RESPONSE_BYTES:
                                raise _Failed("response too large")
                            if time.monotonic() > deadline:
                                raise _Failed("deadline passed")
                        return self._decode(response.status_code, bytes(body))
                finally:
                    if self._client is None:
                        client.close()
            except (InvariantViolation, _Failed):
                raise
            except Exception as exc:
                # Not chained: an httpx error's request holds the token and
                # the client credentials.
                raise _Failed(type(exc).__name__) from None

        answer: dict[str, Any] | None = None
        try:
            for attempt in Retrying(
                stop=self._stop(),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type(_Failed),
            ):
                with attempt:
                    answer = once()
        except RetryError:
            answer = None
        if answer is None:
            # Raised outside the ``except``: nothing of the attempts chains.
            raise self._unavailable()
        return answer

    async def _apost(self, token: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout

        async def read(client: httpx.AsyncClient, remaining: float) -> dict[str, Any]:
            async with client.stream(
                "POST",
                self._endpoint,
                timeout=httpx.Timeout(remaining),
                **self._request_args(token),
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_RESPONSE_BYTES:
                        raise _Failed("response too large")
                return self._decode(response.status_code, bytes(body))

        async def once() -> dict[str, Any]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failed("deadline passed")
            try:
                if self._async_client is not None:
                    return await asyncio.wait_for(
                        read(self._async_client, remaining), remaining
                    )
                async with httpx.AsyncClient(
                    follow_redirects=False,
                    trust_env=env_proxies_allowed(self._endpoint),
                ) as client:
                    return await asyncio.wait_for(read(client, remaining), remaining)
            except (InvariantViolation, _Failed):
                raise
            except Exception as exc:
                raise _Failed(type(exc).__name__) from None

        answer: dict[str, Any] | None = None
        try:
            async for attempt in AsyncRetrying(
                stop=self._stop(),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type(_Failed),
            ):
                with attempt:
                    answer = await once()
        except RetryError:
            answer = None
        if answer is None:
            raise self._unavailable()
        return answer

    def _principal(
        self, token: str, digest: bytes, answer: Mapping[str, Any]
    ) -> Principal:
        if answer.get("active") is not True:
            raise invalid("inactive", "the token is not active")
        iss = string_claim(answer, "iss", required=False)
        if iss is not None and iss != self._issuer:
            raise invalid("wrong_issuer", "the token is from another issuer")
        if "aud" in answer:
            if not audience_matches(answer["aud"], self._audiences):
                raise invalid(
                    "wrong_audience",
                    "the token is for another audience than this API's",
                    resource=" ".join(sorted(self._audiences)),
                )
        elif not self._allow_missing_aud:
            raise invalid("missing_claim", "the introspection answer has no 'aud'")
        subject = string_claim(answer, "sub", required=True)
        if subject is None:  # pragma: no cover - required=True raised
            raise invalid("missing_claim", "the answer has no 'sub'")
        exp = numeric_date(answer, "exp", required=False)
        nbf = numeric_date(answer, "nbf", required=False)
        now = time.time()
        if exp is not None and exp <= now - self._leeway:
            raise invalid("expired", "the token has expired")
        if nbf is not None and nbf > now + self._leeway:
            raise invalid("not_yet_valid", "the token is not valid yet (nbf)")
        principal = principal_from_claims(
            answer,
            subject=subject,
            issuer=self._issuer,
            mapping=self._mapping,
            clearance=self._clearance,
            token=token,
        )
        if self._cache is not None:
            self._cache.put(
                digest,
                principal,
                exp=exp if exp is not None else now + 60,
                key_fingerprint=None,
            )
        return principal

    def _hit(self, digest: bytes) -> Principal | None:
        if self._cache is None:
            return None
        entry = self._cache.get(digest)
        return None if entry is None else entry.principal

    def verify(self, token: str) -> Principal:
        """Introspect ``token`` and return its principal.

        Raises:
            TokenInvalid: ``inactive``, ``wrong_issuer``, ``wrong_audience``,
                ``expired``, ``introspection_unavailable``…
        """
        try:
            raw, digest = self._precheck(token)
            principal = self._hit(digest)
            if principal is None:
                principal = self._principal(raw, digest, self._post(raw))
        except TokenInvalid as exc:
            self._record("deny", exc.code, None)
            raise
        self._record("allow", "token_valid", principal)
        return principal

    async def averify(self, token: str) -> Principal:
        """Async :meth:`verify`.

        Raises:
            TokenInvalid: as :meth:`verify`.
        """
        try:
            raw, digest = self._precheck(token)
            principal = self._hit(digest)
            if principal is None:
                principal = self._principal(raw, digest, await self._apost(raw))
        except TokenInvalid as exc:
            self._record("deny", exc.code, None)
            raise
        self._record("allow", "token_valid", principal)
        return principal

    def _record(self, decision: Any, reason: str, principal: Principal | None) -> None:
        if self._audit is not None and (decision == "deny" or self._audit.active):
            self._audit.record(
                invariant="I1",
                decision=decision,
                reason=reason,
                resource=self._issuer,
                principal=principal,
            )

    def __repr__(self) -> str:
        return (
            f"IntrospectionVerifier(endpoint={self._endpoint!r}, "
            f"issuer={self._issuer!r}, client_id={self._client_id!r})"
        )
