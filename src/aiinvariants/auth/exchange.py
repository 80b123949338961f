"""Token exchange (RFC 8693) and a guard against token passthrough (I4).

A tool that calls a downstream API on the user's behalf must not forward the
user's inbound token: that token was issued for *this* service, and a
downstream that accepts it can replay it against every other service of the
same audience (the "confused deputy" the MCP authorization spec forbids).
Instead, :class:`TokenExchanger` asks the authorization server for a new
token bound to the downstream audience with only the scopes the call needs
(``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``), and
:class:`PassthroughGuard` is an httpx event hook that refuses to send a
request whose ``Authorization`` carries the inbound token, or a token for
another audience than the destination's.

Failure codes (``TokenInvalid.code``, invariant I4):

- ``exchange_no_subject_token``: the principal carries no verified token
  (raised as :class:`~aiinvariants.AuthenticationRequired`).
- ``exchange_scope_not_delegated``: the call asks for a scope the user did
  not delegate (raised as :class:`~aiinvariants.ScopeDenied`).
- ``exchange_unavailable``: the token endpoint could not be reached.
- ``exchange_refused``: the token endpoint answered with an error.
- ``exchange_bad_response``: the answer is not a usable token response.
- ``exchange_scope_widened``: the issued token has scopes not asked for.
- ``exchange_audience_mismatch``: the issued JWT is for another audience.
- ``token_passthrough``: a request carried the inbound user token.
- ``token_audience_mismatch``: a request carried a token for another audience.
- ``token_destination_unknown``: a request with a token goes to a
  destination with no configured audience.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NoReturn
from urllib.parse import quote, urlsplit

import httpx

from aiinvariants.errors import (
    AuditUnavailable,
    AuthenticationRequired,
    InvariantViolation,
    PolicyError,
    ScopeDenied,
    TokenInvalid,
)
from aiinvariants.principal import Principal, current_principal, validate_scope_token

if TYPE_CHECKING:
    from aiinvariants.audit import AuditLog

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "TOKEN_EXCHANGE_GRANT",
    "ExchangedToken",
    "PassthroughGuard",
    "TokenExchanger",
]

TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
_MAX_RESPONSE_BYTES: Final = 64 * 1024


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWS compact token, unverified; None if it is not one.

    Used only to compare ``aud``/``act`` with what was asked for: the token
    came from the trusted token endpoint over TLS, or is about to be sent by
    this process. It never grants anything.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _audiences(claims: Mapping[str, Any]) -> frozenset[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return frozenset({aud})
    if isinstance(aud, list):
        return frozenset(a for a in aud if isinstance(a, str))
    return frozenset()


@dataclass(frozen=True)
class ExchangedToken:
    """A token bound to one downstream audience.

    ``repr`` never shows the token; read it with :attr:`access_token` only
    where it is sent.

    Attributes:
        access_token: the issued token (secret).
        audience: the downstream audience it was asked for.
        scopes: the scopes it carries.
        expires_at: POSIX time after which it is no longer used.
        subject: the user it acts for.
        actor: who acts for the user (``act.sub`` of the token, else our
            client id).
    """

    access_token: str = field(repr=False)
    audience: str
    scopes: frozenset[str]
    expires_at: float
    subject: str
    actor: str

    def authorization(self) -> str:
        """The ``Authorization`` header value: ``Bearer <token>``."""
        return f"Bearer {self.access_token}"


def _https(url: str, *, what: str) -> str:
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise PolicyError(f"{what} must be an https URL (http only on loopback)")
    return url


class TokenExchanger:
    """Exchange the current user's token for a downstream one (RFC 8693).

    Args:
        token_endpoint: the authorization server's token endpoint (https,
            or http on loopback).
        client_id: this service's client id at the authorization server;
            it becomes the ``act`` (actor) of the issued tokens.
        client_secret: the client secret (``client_secret_basic``).
        audit: where exchanges are recorded (never the tokens).
        cache_size: the most exchanged tokens kept (LRU).
        refresh_margin_s: a cached token is renewed this long before expiry.
        timeout_s: bound on each call to the token endpoint.
        transport: an httpx transport (tests, proxies).

    Raises:
        PolicyError: a missing client id, a non-https endpoint, bad bounds.
    """

    def __init__(
        self,
        *,
        token_endpoint: str,
        client_id: str,
        client_secret: str | None = None,
        audit: AuditLog | None = None,
        cache_size: int = 1024,
        refresh_margin_s: float = 30.0,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._endpoint = _https(token_endpoint, what="token_endpoint")
        if not client_id:
            raise PolicyError("TokenExchanger needs client_id=")
        if not 1 <= cache_size <= 1_000_000:
            raise PolicyError("cache_size must be between 1 and 1000000")
        if not 0 <= refresh_margin_s <= 3600 or not 0 < timeout_s <= 120:
            raise PolicyError("refresh_margin_s or timeout_s out of range")
        self._client_id = client_id
        self._secret = client_secret
        self._audit = audit
        self._cache_size = cache_size
        self._margin = refresh_margin_s
        self._timeout = timeout_s
        self._transport = transport
        self._async_transport = async_transport
        self._cache: OrderedDict[tuple[Any, ...], ExchangedToken] = OrderedDict()
        self._issued: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    # -- public -----------------------------------------------------------

    def audience_of(self, token: str) -> str | None:
        """The audience this exchanger issued ``token`` for, if it did."""
        with self._lock:
            return self._issued.get(_digest(token))

    def exchange(
        self,
        *,
        audience: str,
        scopes: Iterable[str] = (),
        principal: Principal | None = None,
    ) -> ExchangedToken:
        """A token for ``audience`` with ``scopes``, acting for the user.

        Raises:
            AuthenticationRequired: the principal has no verified token.
            ScopeDenied: a scope asked for was not delegated by the user.
            TokenInvalid: the exchange failed (see the module's codes).
        """
        who, key, form = self._prepare(audience, scopes, principal)
        cached = self._cached(key)
        if cached is not None:
            return cached
        try:
            with httpx.Client(
                transport=self._transport, timeout=self._timeout
            ) as client:
                response = client.post(
                    self._endpoint, data=form, headers=self._headers()
                )
        except httpx.HTTPError:
            self._fail(who, audience, "exchange_unavailable")
        return self._accept(who, key, audience, response)

    async def aexchange(
        self,
        *,
        audience: str,
        scopes: Iterable[str] = (),
        principal: Principal | None = None,
    ) -> ExchangedToken:
        """The async form of :meth:`exchange`."""
        who, key, form = self._prepare(audience, scopes, principal)
        cached = self._cached(key)
        if cached is not None:
            return cached
        try:
            async with httpx.AsyncClient(
                transport=self._async_transport, timeout=self._timeout
            ) as client:
                response = await client.post(
                    self._endpoint, data=form, headers=self._headers()
                )
        except httpx.HTTPError:
            self._fail(who, audience, "exchange_unavailable")
        return self._accept(who, key, audience, response)

    # -- internals --------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._secret is not None:
            pair = f"{quote(self._client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(
                pair.encode()
            ).decode("ascii")
        return headers

    def _prepare(
        self, audience: str, scopes: Iterable[str], principal: Principal | None
    ) -> tuple[Principal, tuple[Any, ...], dict[str, str]]:
        who = current_principal() if principal is None else principal
        if not isinstance(audience, str) or not audience:
            raise PolicyError("exchange() needs audience=")
        if isinstance(scopes, str):
            raise PolicyError("scopes= takes a collection of scope names")
        wanted = frozenset(validate_scope_token(s) for s in scopes)
        token = who.raw_token()
        if not who.authenticated or not token:
            self._deny(
                who,
                audience,
                AuthenticationRequired(
                    "token exchange needs the user's verified token",
                    code="exchange_no_subject_token",
                    invariant="I4",
                    subject=who.subject,
                    resource=audience,
                ),
            )
        missing = wanted - who.scopes
        if missing:
            self._deny(
                who,
                audience,
                ScopeDenied(
                    "the downstream call needs a scope the user did not delegate",
                    required=sorted(wanted),
                    missing=sorted(missing),
                    code="exchange_scope_not_delegated",
                    subject=who.subject,
                    resource=audience,
                ),
            )
        key = (who.issuer, who.subject, audience, wanted)
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": audience,
        }
        if wanted:
            form["scope"] = " ".join(sorted(wanted))
        if self._secret is None:
            form["client_id"] = self._client_id
        return who, key, form

    def _cached(self, key: tuple[Any, ...]) -> ExchangedToken | None:
        now = time.time()
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if hit.expires_at - self._margin <= now:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return hit

    def _accept(
        self,
        who: Principal,
        key: tuple[Any, ...],
        audience: str,
        response: httpx.Response,
    ) -> ExchangedToken:
        if response.status_code != 200:
            self._fail(who, audience, "exchange_refused", status=response.status_code)
        if len(response.content) > _MAX_RESPONSE_BYTES:
            self._fail(who, audience, "exchange_bad_response")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._fail(who, audience, "exchange_bad_response")
        token = body.get("access_token")
        token_type = str(body.get("token_type", "")).lower()
        if (
            not isinstance(token, str)
            or not token
            or token_type not in ("bearer", "n_a")
        ):
            self._fail(who, audience, "exchange_bad_response")
        if token == who.raw_token():
            # An authorization server echoing the subject token back would
            # turn the exchange into passthrough.
            self._fail(who, audience, "exchange_bad_response")
        wanted: frozenset[str] = key[3]
        granted_raw = body.get("scope")
        granted = (
            frozenset(granted_raw.split()) if isinstance(granted_raw, str) else wanted
        )
        if not granted <= wanted:
            self._fail(who, audience, "exchange_scope_widened")
        claims = _unverified_claims(token)
        actor = self._client_id
        now = time.time()
        ends: list[float] = []
        if claims is not None:
            if audience not in _audiences(claims):
                self._fail(who, audience, "exchange_audience_mismatch")
            act = claims.get("act")
            if isinstance(act, dict) and isinstance(act.get("sub"), str):
                actor = act["sub"]
            exp = claims.get("exp")
            if isinstance(exp, (int, float)) and not isinstance(exp, bool):
                ends.append(float(exp))
        expires_in = body.get("expires_in")
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
            ends.append(now + float(expires_in))
        # Neither says when it ends: keep it a minute at most.
        expires_at = min(ends) if ends else now + 60.0
        issued = ExchangedToken(
            access_token=token,
            audience=audience,
            scopes=granted,
            expires_at=expires_at,
            subject=who.subject,
            actor=actor,
        )
        with self._lock:
            self._cache[key] = issued
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            self._issued[_digest(token)] = audience
            while len(self._issued) > self._cache_size * 4:
                self._issued.popitem(last=False)
        if self._audit is not None:
            self._audit.record(
                invariant="I4",
                decision="allow",
                reason="token_exchanged",
                resource=audience,
                details={"scopes": " ".join(sorted(granted)), "actor": actor},
                principal=who,
            )
        return issued

    def _fail(
        self, who: Principal, audience: str, code: str, *, status: int | None = None
    ) -> NoReturn:
        reason = f"token exchange failed ({code})"
        if status is not None:
            reason += f", HTTP {status}"
        self._deny(
            who,
            audience,
            TokenInvalid(
                reason,
                code=code,
                invariant="I4",
                subject=who.subject,
                resource=audience,
            ),
        )

    def _deny(
        self, who: Principal, audience: str, denial: InvariantViolation
    ) -> NoReturn:
        if self._audit is None:
            raise denial
        self._audit.deny(denial, principal=who, resource=audience, invariant="I4")

    def __repr__(self) -> str:
        return (
            f"TokenExchanger(token_endpoint={self._endpoint!r}, "
            f"client_id={self._client_id!r}, cached={len(self._cache)})"
        )


def _origin(url: httpx.URL) -> str:
    port = url.port
    default = {"http": 80, "https": 443}.get(url.scheme)
    netloc = url.host if port in (None, default) else f"{url.host}:{port}"
    return f"{url.scheme}://{netloc}"


class PassthroughGuard:
    """An httpx event hook that refuses token passthrough (I4).

    ``httpx.Client(event_hooks={"request": [guard]})`` or, for an
    ``httpx.AsyncClient``, ``{"request": [guard.async_hook]}``. A request
    with a bearer ``Authorization`` is refused (:class:`TokenInvalid`,
    invariant I4, before anything is sent) when the token is the current
    principal's inbound token, when the destination has no configured
    audience, or when the token's audience is not the destination's (a JWT's
    ``aud``, or the audience the given exchanger issued an opaque token for).

    Args:
        audiences: destination origin or URL prefix (``https://api.x.com``
            or ``https://x.com/billing/``) -> the audience its tokens carry.
        exchanger: lets opaque tokens it issued be recognised.
        audit: where refusals are recorded (never the tokens).
    """

    def __init__(
        self,
        *,
        audiences: Mapping[str, str],
        exchanger: TokenExchanger | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        if not audiences:
            raise PolicyError("PassthroughGuard needs audiences= (destination -> aud)")
        # Longest prefix first, so a path-specific entry beats its origin.
        self._audiences = sorted(
            ((prefix.rstrip("/"), aud) for prefix, aud in audiences.items()),
            key=lambda item: -len(item[0]),
        )
        self._exchanger = exchanger
        self._audit = audit

    def expected_audience(self, url: httpx.URL) -> str | None:
        """The audience configured for ``url``'s destination, if any."""
        origin = _origin(url)
        full = origin + url.path
        for prefix, aud in self._audiences:
            if full == prefix or full.startswith(prefix + "/") or origin == prefix:
                return aud
        return None

    def check(self, request: httpx.Request) -> None:
        """Raise :class:`TokenInvalid` if the request would pass a token on."""
        header = request.headers.get("authorization")
        if header is None:
            return
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return
        who = current_principal()
        destination = _origin(request.url)
        if token == who.raw_token():
            self._refuse(who, destination, "token_passthrough")
        expected = self.expected_audience(request.url)
        if expected is None:
            self._refuse(who, destination, "token_destination_unknown")
        claims = _unverified_claims(token)
        if claims is not None:
            if expected not in _audiences(claims):
                self._refuse(who, destination, "token_audience_mismatch")
            return
        known = self._exchanger.audience_of(token) if self._exchanger else None
        if known != expected:
            self._refuse(who, destination, "token_audience_mismatch")

    def __call__(self, request: httpx.Request) -> None:
        self.check(request)

    async def async_hook(self, request: httpx.Request) -> None:
        """The hook for ``httpx.AsyncClient``."""
        self.check(request)

    def _refuse(self, who: Principal, destination: str, code: str) -> NoReturn:
        denial = TokenInvalid(
            "refused to send a bearer token not bound to the destination",
            code=code,
            invariant="I4",
            subject=who.subject,
            resource=destination,
        )
        if self._audit is not None:
            try:
                self._audit.record(
                    invariant="I4",
                    decision="deny",
                    reason=code,
                    resource=destination,
                    principal=who,
                )
            except AuditUnavailable as exc:
                raise denial from exc
        raise denial

    def __repr__(self) -> str:
        return f"PassthroughGuard(destinations={len(self._audiences)})"
