"""Where verification keys come from: a static JWK Set, or one fetched over HTTP.

A :class:`JWKSet` is an immutable, parsed JWK Set holding public signature
keys only. A *key source* hands one out: :class:`StaticJWKS` always the same,
:class:`HTTPJWKS` the one at a ``jwks_uri``, cached for a TTL, fetched again
for an unknown ``kid`` at most once per cooldown, with bounded retries and an
overall deadline. When no key set can be had, every verification fails
closed with ``TokenInvalid(code="jwks_unavailable")``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import weakref
from collections.abc import Collection, Mapping
from typing import Any, Final, Protocol, runtime_checkable

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWTError
from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from aiinvariants._errors import PolicyError, TokenInvalid
from aiinvariants._internal import strict_json
from aiinvariants._internal.urls import env_proxies_allowed, require_url
from aiinvariants.auth._jws import ASYMMETRIC_ALGORITHMS, invalid

__all__ = ["HTTPJWKS", "JWKSet", "KeySource", "StaticJWKS"]

_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVE_ALG: Final = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_MAX_KEYS: Final = 100
_MAX_JWKS_BYTES: Final = 512 * 1024


def _algorithms_for(jwk: Mapping[str, Any], pinned: Collection[str]) -> list[str]:
    kty = jwk.get("kty")
    declared = jwk.get("alg")
    if kty == "RSA":
        family = {a for a in ASYMMETRIC_ALGORITHMS if a[:2] in ("RS", "PS")}
    elif kty == "EC":
        curve_alg = _CURVE_ALG.get(jwk.get("crv", ""))
        family = {curve_alg} if curve_alg else set()
    elif kty == "OKP" and jwk.get("crv") in ("Ed25519", "Ed448"):
        family = {"EdDSA"}
    else:
        family = set()  # oct (HMAC) and unknown key types are never used
    if declared is not None:
        family &= {declared}
    return sorted(family & set(pinned))


def _thaw(value: Any) -> Any:
    # Policies hold read-only mappings and tuples; pyjwt wants plain JSON.
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    # The members of an RFC 7638 thumbprint; enough to tell whether the same
    # key is still published after a refresh, even under a reused kid.
    members = {k: jwk[k] for k in ("crv", "e", "kty", "n", "x", "y") if k in jwk}
    digest = hashlib.sha256(json.dumps(members, sort_keys=True).encode()).digest()
    return digest.hex()[:32]


class JWKSet:
    """An immutable set of public signature keys, looked up by ``kid`` and alg.

    Keys that cannot verify one of the pinned algorithms (encryption keys,
    HMAC secrets, unknown types or curves) are left out. ``kid`` is an
    opaque string: it is compared, never parsed, joined to a path or fetched.

    Args:
        jwks: a JWK Set (``{"keys": [...]}``).
        algorithms: the pinned algorithms.
        strict: raise on private or symmetric key material (for sets given
            in code or a policy); a fetched set only skips such keys.

    Raises:
        PolicyError: the set is not a JWK Set, or (``strict``) it holds a
            private or symmetric key, or it holds no usable key.
    """

    __slots__ = ("_by_kid", "_fingerprints", "_keys")

    def __init__(
        self,
        jwks: Mapping[str, Any],
        *,
        algorithms: Collection[str],
        strict: bool = True,
    ) -> None:
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, (list, tuple)):
            raise PolicyError("a JWK Set is an object with a 'keys' list")
        if len(keys) > _MAX_KEYS:
            raise PolicyError(f"a JWK Set may hold at most {_MAX_KEYS} keys")
        self._keys: list[tuple[str | None, str, PyJWK, str]] = []
        for index, jwk in enumerate(keys):
            if not isinstance(jwk, Mapping):
                raise PolicyError(f"JWK Set key {index} is not an object")
            if _PRIVATE_MEMBERS & set(jwk):
                if strict:
                    raise PolicyError(
                        f"JWK Set key {index} holds private or symmetric key "
                        "material; publish public keys only"
                    )
                continue
            if jwk.get("use", "sig") != "sig":
                continue
            ops = jwk.get("key_ops")
            if ops is not None and (
                not isinstance(ops, (list, tuple)) or "verify" not in ops
            ):
                continue
            kid = jwk.get("kid")
            if kid is not None and not isinstance(kid, str):
                continue
            for alg in _algorithms_for(jwk, algorithms):
                try:
                    key = PyJWK(_thaw(jwk), algorithm=alg)
                except (PyJWTError, ValueError, TypeError):
                    continue  # a malformed key cannot verify anything
                self._keys.append((kid, alg, key, _thumbprint(jwk)))
        if not self._keys:
            raise PolicyError(
                "the JWK Set holds no public key usable with the pinned algorithms"
            )
        self._by_kid: dict[tuple[str | None, str], PyJWK | None] = {}
        for kid, alg, key, _ in self._keys:
            slot = (kid, alg)
            # Two keys under one (kid, alg) would make the choice ambiguous.
            self._by_kid[slot] = None if slot in self._by_kid else key
        self._fingerprints = frozenset(
            f"{kid}|{alg}|{thumb}" for kid, alg, _, thumb in self._keys
        )

    def find(self, kid: str | None, alg: str) -> tuple[PyJWK, str] | None:
        """The key for ``kid`` and ``alg`` and its fingerprint, or None.

        Without a ``kid`` a key is chosen only when exactly one key of the
        set fits ``alg``.
        """
        if kid is None:
            fits = [entry for entry in self._keys if entry[1] == alg]
            if len(fits) != 1:
                return None
            _, _, key, thumb = fits[0]
            return key, f"{fits[0][0]}|{alg}|{thumb}"
        match = self._by_kid.get((kid, alg))
        if match is None:
            return None
        thumb = next(t for k, a, _, t in self._keys if k == kid and a == alg)
        return match, f"{kid}|{alg}|{thumb}"

    def has(self, fingerprint: str) -> bool:
        """True when the key with this fingerprint is still in the set."""
        return fingerprint in self._fingerprints

    @property
    def kids(self) -> frozenset[str | None]:
        """The key ids in the set."""
        return frozenset(kid for kid, _, _, _ in self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"JWKSet({len(self._keys)} keys)"


@runtime_checkable
class KeySource(Protocol):
    """Where a verifier gets its keys. Every failure raises ``TokenInvalid``."""

    def get_keys(self) -> JWKSet:
        """The current key set (fetching it if it is stale)."""

    def refresh_for(self, kid: str | None) -> JWKSet:
        """The key set after a refresh for an unknown ``kid``, if allowed now."""

    async def aget_keys(self) -> JWKSet:
        """Async :meth:`get_keys`."""

    async def arefresh_for(self, kid: str | None) -> JWKSet:
        """Async :meth:`refresh_for`."""


class StaticJWKS:
    """A key set given in code or in the policy: never fetched, never changes.

    Args:
        jwks: the JWK Set of public keys.
        algorithms: the pinned algorithms.

    Raises:
        PolicyError: see :class:`JWKSet`.
    """

    def __init__(self, jwks: Mapping[str, Any], *, algorithms: Collection[str]):
        self._keys = JWKSet(jwks, algorithms=algorithms, strict=True)

    def get_keys(self) -> JWKSet:
        return self._keys

    def refresh_for(self, kid: str | None) -> JWKSet:
        return self._keys

    async def aget_keys(self) -> JWKSet:
        return self._keys

    async def arefresh_for(self, kid: str | None) -> JWKSet:
        return self._keys

    def __repr__(self) -> str:
        return f"StaticJWKS({len(self._keys)} keys)"


def check_fetch_url(
    url: str,
    *,
    what: str,
    unsafe_allow_http: bool,
    unsafe_flag: str = "unsafe_allow_http",
) -> str:
    """Refuse a key or introspection URL an attacker on the path could answer.

    The library's one URL rule (:mod:`aiinvariants._internal.urls`).

    Raises:
        PolicyError: not https (http is accepted for loopback hosts and,
            with a warning, when ``unsafe_allow_http`` is set), or has
            credentials or a fragment.
    """
    return require_url(
        url, what=what, unsafe_allow_http=unsafe_allow_http, unsafe_flag=unsafe_flag
    )


class _FetchFailed(Exception):
    """One fetch attempt failed (network, status, size or content)."""


def _check_number(value: float, *, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"{name} must be a number")
    if not low <= value <= high:
        raise PolicyError(f"{name} must be between {low} and {high}")
    return float(value)


class HTTPJWKS:
    """A JWK Set fetched from ``jwks_uri``, cached and refreshed with bounds.

    Args:
        uri: the ``jwks_uri``; https, or http on a loopback host.
        algorithms: the pinned algorithms.
        ttl_s: how long a fetched set is used before it is fetched again.
            After that, a set that cannot be fetched is a denial: keys the
            issuer has revoked are not trusted past the TTL.
        cooldown_s: an unknown ``kid`` triggers at most one fetch per
            cooldown, so a flood of tokens with random ``kid`` values cannot
            turn the verifier into a traffic amplifier against the issuer.
        timeout_s: the deadline for a whole fetch, retries included; a
            verification never waits longer than this on the network.
        retries: extra attempts after a failed one (with a short backoff).
        max_bytes: a larger response is refused (bounded memory).
        client: an ``httpx.Client`` to use (e.g. with a proxy or CA bundle).
        async_client: an ``httpx.AsyncClient`` for :meth:`aget_keys`.
        unsafe_allow_http: accept plain http on a non-loopback host.

    Raises:
        PolicyError: an argument is out of range or the URL is unsafe.
    """

    def __init__(
        self,
        uri: str,
        *,
        algorithms: Collection[str],
        ttl_s: float = 300.0,
        cooldown_s: float = 30.0,
        timeout_s: float = 5.0,
        retries: int = 2,
        max_bytes: int = _MAX_JWKS_BYTES,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        unsafe_allow_http: bool = False,
    ) -> None:
        self._uri = check_fetch_url(
            uri, what="jwks_uri", unsafe_allow_http=unsafe_allow_http
        )
        self._algorithms = frozenset(algorithms)
        self._ttl = _check_number(ttl_s, name="ttl_s", low=1, high=86400)
        self._cooldown = _check_number(cooldown_s, name="cooldown_s", low=0, high=3600)
        self._timeout = _check_number(timeout_s, name="timeout_s", low=0.05, high=60)
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise PolicyError("retries must be an int")
        if not 0 <= retries <= 5:
            raise PolicyError("retries must be between 0 and 5")
        self._retries = retries
        self._max_bytes = int(max_bytes)
        self._client = client
        self._async_client = async_client
        self._keys: JWKSet | None = None
        self._fetched_at = -float("inf")
        self._last_attempt = -float("inf")
        self._failed_at = -float("inf")
        self._lock = threading.Lock()
        self._alocks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Lock
        ] = weakref.WeakKeyDictionary()
        self.fetches = 0
        """How many fetches were attempted (for tests and monitoring)."""

    @property
    def uri(self) -> str:
        """The ``jwks_uri``."""
        return self._uri

    def _fresh(self) -> JWKSet | None:
        now = time.monotonic()
        keys = self._keys
        if keys is not None and now - self._fetched_at < self._ttl:
            return keys
        if now - self._failed_at < self._cooldown:
            # The issuer just failed us: deny at once instead of making every
            # request wait out another fetch (and hammer a struggling issuer).
            raise self._unavailable()
        return None

    def _parse(self, response: httpx.Response, body: bytes) -> JWKSet:
        if response.status_code != 200:
            raise _FetchFailed(f"HTTP {response.status_code}")
        try:
            document = strict_json.loads(body)
            return JWKSet(document, algorithms=self._algorithms, strict=False)
        except (ValueError, PolicyError) as exc:
            raise _FetchFailed("not a usable JWK Set") from exc

    def _store(self, keys: JWKSet) -> JWKSet:
        self._keys = keys
        self._fetched_at = time.monotonic()
        return keys

    def _unavailable(self) -> TokenInvalid:
        return invalid(
            "jwks_unavailable",
            "the signing keys could not be fetched; failing closed",
            resource=self._uri,
        )

    def _stop(self) -> Any:
        return stop_after_attempt(self._retries + 1) | stop_after_delay(self._timeout)

    # -- sync ----------------------------------------------------------------

    def _fetch_once(self, deadline: float) -> JWKSet:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _FetchFailed("deadline passed")
        timeout = httpx.Timeout(remaining)
        try:
            if self._client is not None:
                return self._read(self._client, timeout, deadline)
            with httpx.Client(
                follow_redirects=False, trust_env=env_proxies_allowed(self._uri)
            ) as client:
                return self._read(client, timeout, deadline)
        except httpx.HTTPError as exc:
            raise _FetchFailed(type(exc).__name__) from exc

    def _read(
        self, client: httpx.Client, timeout: httpx.Timeout, deadline: float
    ) -> JWKSet:
        with client.stream("GET", self._uri, timeout=timeout) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise _FetchFailed("deadline passed")
                if len(body) > self._max_bytes:
                    raise _FetchFailed("response too large")
            return self._parse(response, bytes(body))

    def _fetch(self) -> JWKSet:
        self.fetches += 1
        self._last_attempt = time.monotonic()
        deadline = self._last_attempt + self._timeout
        try:
            for attempt in Retrying(
                stop=self._stop(),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type(_FetchFailed),
                reraise=False,
            ):
                with attempt:
                    keys = self._fetch_once(deadline)
        except RetryError:
            self._failed_at = time.monotonic()
            raise self._unavailable() from None
        return self._store(keys)

    def get_keys(self) -> JWKSet:
        keys = self._fresh()
        if keys is not None:
            return keys
        with self._lock:
            keys = self._fresh()
            return keys if keys is not None else self._fetch()

    def refresh_for(self, kid: str | None) -> JWKSet:
        with self._lock:
            keys = self._keys
            if keys is not None and kid in keys.kids:
                return keys  # another thread already fetched it
            if time.monotonic() - self._last_attempt < self._cooldown:
                if keys is None:
                    raise self._unavailable()
                return keys
            return self._fetch()

    # -- async ---------------------------------------------------------------

    def _alock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._alocks.get(loop)
        if lock is None:
            lock = self._alocks[loop] = asyncio.Lock()
        return lock

    async def _afetch_once(self, deadline: float) -> JWKSet:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _FetchFailed("deadline passed")
        try:
            return await asyncio.wait_for(self._aget(remaining), remaining)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise _FetchFailed(type(exc).__name__) from exc

    async def _aget(self, remaining: float) -> JWKSet:
        if self._async_client is not None:
            return await self._aread(self._async_client, remaining)
        async with httpx.AsyncClient(
            follow_redirects=False, trust_env=env_proxies_allowed(self._uri)
        ) as client:
            return await self._aread(client, remaining)

    async def _aread(self, client: httpx.AsyncClient, remaining: float) -> JWKSet:
        timeout = httpx.Timeout(remaining)
        async with client.stream("GET", self._uri, timeout=timeout) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise _FetchFailed("response too large")
            return self._parse(response, bytes(body))

    async def _afetch(self) -> JWKSet:
        self.fetches += 1
        self._last_attempt = time.monotonic()
        deadline = self._last_attempt + self._timeout
        try:
            async for attempt in AsyncRetrying(
                stop=self._stop(),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type(_FetchFailed),
                reraise=False,
            ):
                with attempt:
                    keys = await self._afetch_once(deadline)
        except RetryError:
            self._failed_at = time.monotonic()
            raise self._unavailable() from None
        return self._store(keys)

    async def aget_keys(self) -> JWKSet:
        keys = self._fresh()
        if keys is not None:
            return keys
        async with self._alock():
            keys = self._fresh()
            return keys if keys is not None else await self._afetch()

    async def arefresh_for(self, kid: str | None) -> JWKSet:
        async with self._alock():
            keys = self._keys
            if keys is not None and kid in keys.kids:
                return keys
            if time.monotonic() - self._last_attempt < self._cooldown:
                if keys is None:
                    raise self._unavailable()
                return keys
            return await self._afetch()

    def __repr__(self) -> str:
        return f"HTTPJWKS({self._uri!r}, ttl_s={self._ttl:g})"
