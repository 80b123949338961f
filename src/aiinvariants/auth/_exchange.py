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
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NoReturn
from urllib.parse import quote

import httpx

from aiinvariants._errors import (
    AuthenticationRequired,
    InvariantViolation,
    PolicyError,
    ScopeDenied,
    TokenInvalid,
)
from aiinvariants._internal.urls import env_proxies_allowed, require_url
from aiinvariants._principal import Principal, current_principal, validate_scope_token
from aiinvariants.auth._cache import check_cache_size
from aiinvariants.auth._claims import numeric_date, scope_claim
from aiinvariants.auth._passthrough import (
    PassthroughGuard,
    token_audiences,
    unverified_claims,
)

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
#: The longest ``expires_in`` accepted (a year); more is a bad answer.
_MAX_EXPIRES_IN_S: Final = 366 * 86400


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class _Key:
    """What an exchanged token is cached under: the whole identity."""

    issuer: str | None
    subject: str
    tenant: str | None
    delegated: frozenset[str]
    groups: frozenset[str]
    clearance: str | None
    subject_token: bytes = field(repr=False)
    actor: str
    audience: str
    resource: str | None
    scopes: frozenset[str]


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


class TokenExchanger:
    """Exchange the current user's token for a downstream one (RFC 8693).

    Args:
        token_endpoint: the authorization server's token endpoint (https,
            or http on loopback; no credentials or fragment in it): it
            receives the user's token.
        client_id: this service's client id at the authorization server;
            it becomes the ``act`` (actor) of the issued tokens.
        client_secret: the client secret (``client_secret_basic``).
        audit: where exchanges are recorded (never the tokens).
        cache_size: the most exchanged tokens kept (LRU); 0 disables the
            cache (every call exchanges).
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
        self._endpoint = require_url(token_endpoint, what="token_endpoint")
        if not client_id:
            raise PolicyError("TokenExchanger needs client_id=")
        if check_cache_size(cache_size, where="TokenExchanger") > 1_000_000:
            raise PolicyError("TokenExchanger: cache_size must be <= 1000000")
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
        self._cache: OrderedDict[_Key, ExchangedToken] = OrderedDict()
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
        resource: str | None = None,
    ) -> ExchangedToken:
        """A token for ``audience`` with ``scopes``, acting for the user.

        Args:
            audience: the downstream audience the token is bound to.
            scopes: the scopes the call needs; each must be delegated.
            principal: defaults to the current principal.
            resource: the RFC 8693 ``resource`` (a URI of the downstream
                service), when the authorization server needs it.

        Raises:
            AuthenticationRequired: the principal has no verified token.
            ScopeDenied: a scope asked for was not delegated by the user.
            TokenInvalid: the exchange failed (see the module's codes). No
                exception raised here, chained ones included, holds a token.
        """
        who, key = self._prepare(audience, scopes, principal, resource)
        cached = self._cached(key)
        if cached is not None:
            return cached
        response = self._post(who, key)
        if response is None:
            # Raised outside any ``except`` block: the transport's exception
            # (whose request holds ``subject_token``) is not chained to it.
            self._fail(who, audience, "exchange_unavailable")
        return self._accept(who, key, audience, response)

    async def aexchange(
        self,
        *,
        audience: str,
        scopes: Iterable[str] = (),
        principal: Principal | None = None,
        resource: str | None = None,
    ) -> ExchangedToken:
        """The async form of :meth:`exchange`."""
        who, key = self._prepare(audience, scopes, principal, resource)
        cached = self._cached(key)
        if cached is not None:
            return cached
        response = await self._apost(who, key)
        if response is None:
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
        self,
        audience: str,
        scopes: Iterable[str],
        principal: Principal | None,
        resource: str | None,
    ) -> tuple[Principal, _Key]:
        who = current_principal() if principal is None else principal
        if not isinstance(audience, str) or not audience:
            raise PolicyError("exchange() needs audience=")
        if resource is not None and (not isinstance(resource, str) or not resource):
            raise PolicyError("resource= must be a URI string or None")
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
        # The whole identity: one subject in two tenants, with two tokens or
        # two delegations, never shares an exchanged token.
        key = _Key(
            issuer=who.issuer,
            subject=who.subject,
            tenant=who.tenant,
            delegated=who.scopes,
            groups=who.groups,
            clearance=who.clearance,
            subject_token=_digest(token),
            actor=self._client_id,
            audience=audience,
            resource=resource,
            scopes=wanted,
        )
        return who, key

    def _form(self, who: Principal, key: _Key) -> dict[str, str]:
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": who.raw_token() or "",
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": key.audience,
        }
        if key.resource is not None:
            form["resource"] = key.resource
        if key.scopes:
            form["scope"] = " ".join(sorted(key.scopes))
        if self._secret is None:
            form["client_id"] = self._client_id
        return form

    def _post(self, who: Principal, key: _Key) -> httpx.Response | None:
        """POST the exchange; None when it could not be done (no chaining)."""
        try:
            with httpx.Client(
                transport=self._transport,
                timeout=self._timeout,
                trust_env=env_proxies_allowed(self._endpoint),
            ) as client:
                return client.post(
                    self._endpoint, data=self._form(who, key), headers=self._headers()
                )
        except Exception:  # any transport failure fails closed, unchained
            return None

    async def _apost(self, who: Principal, key: _Key) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(
                transport=self._async_transport,
                timeout=self._timeout,
                trust_env=env_proxies_allowed(self._endpoint),
            ) as client:
                return await client.post(
                    self._endpoint, data=self._form(who, key), headers=self._headers()
                )
        except Exception:  # any transport failure fails closed, unchained
            return None

    def _cached(self, key: _Key) -> ExchangedToken | None:
        if not self._cache_size:
            return None
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
        key: _Key,
        audience: str,
        response: httpx.Response,
    ) -> ExchangedToken:
        if response.status_code != 200:
            self._fail(who, audience, "exchange_refused", status=response.status_code)
        # Read in a frame that returns before any refusal is raised: the
        # parsed answer (an echoed subject token, an issued token refused
        # for its audience or scopes) never sits in a raised exception's
        # frame locals, which error trackers print.
        issued = self._read_answer(who, key, audience, response)
        if isinstance(issued, str):
            self._fail(who, audience, issued)
        with self._lock:
            if self._cache_size:
                self._cache[key] = issued
                self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            self._issued[_digest(issued.access_token)] = audience
            # Bounded, and never too small to know the tokens just issued.
            while len(self._issued) > max(self._cache_size, 1024) * 4:
                self._issued.popitem(last=False)
        if self._audit is not None:
            self._audit.record(
                invariant="I4",
                decision="allow",
                reason="token_exchanged",
                resource=audience,
                details={
                    "scopes": " ".join(sorted(issued.scopes)),
                    "actor": issued.actor,
                },
                principal=who,
            )
        return issued

    def _read_answer(
        self, who: Principal, key: _Key, audience: str, response: httpx.Response
    ) -> ExchangedToken | str:
        """The issued token, or the failure code of a refused answer."""
        if len(response.content) > _MAX_RESPONSE_BYTES:
            return "exchange_bad_response"
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return "exchange_bad_response"
        token = body.get("access_token")
        token_type = str(body.get("token_type", "")).lower()
        if (
            not isinstance(token, str)
            or not token
            or token_type not in ("bearer", "n_a")
        ):
            return "exchange_bad_response"
        if token == who.raw_token():
            # An authorization server echoing the subject token back would
            # turn the exchange into passthrough.
            return "exchange_bad_response"
        wanted = key.scopes
        granted_raw = body.get("scope")
        granted: frozenset[str] | None = wanted
        if isinstance(granted_raw, str):
            try:
                granted = scope_claim(granted_raw)
            except TokenInvalid:
                granted = None
        elif granted_raw is not None:
            granted = None
        if granted is None:
            return "exchange_bad_response"
        if not granted <= wanted:
            return "exchange_scope_widened"
        claims = unverified_claims(token)
        actor = self._client_id
        now = time.time()
        ends: list[float] = []
        if claims is not None:
            if audience not in token_audiences(claims):
                return "exchange_audience_mismatch"
            act = claims.get("act")
            if isinstance(act, dict) and isinstance(act.get("sub"), str):
                actor = act["sub"]
            if "exp" in claims:
                try:
                    exp = numeric_date(claims, "exp", required=True)
                except TokenInvalid:
                    exp = None
                if exp is None:
                    return "exchange_bad_response"
                ends.append(exp)
        expires_in = body.get("expires_in")
        if expires_in is not None:
            if (
                isinstance(expires_in, bool)
                or not isinstance(expires_in, (int, float))
                or not 0 <= expires_in <= _MAX_EXPIRES_IN_S
            ):
                # Checked before any float(): 10**400 or 1e308 is a bad
                # answer, not an OverflowError or a token cached forever.
                return "exchange_bad_response"
            ends.append(now + float(expires_in))
        # Neither says when it ends: keep it a minute at most.
        expires_at = min(ends) if ends else now + 60.0
        return ExchangedToken(
            access_token=token,
            audience=audience,
            scopes=granted,
            expires_at=expires_at,
            subject=who.subject,
            actor=actor,
        )

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
