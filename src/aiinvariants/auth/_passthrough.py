"""Refuse token passthrough anywhere in an outgoing httpx request (I4).

:class:`PassthroughGuard` looks at the *whole* request, as it is about to be
sent: every header (name and value, cookies included), the URL (userinfo,
path, query, fragment) and the body (form, JSON, multipart, raw; a gzip or
deflate body is inflated). The current principal's inbound token is looked
for in each of them raw and in the common encodings a token travels in:
percent-encoding (twice, ``+`` as space), JSON string escapes, hex, and
base64 in both alphabets at any alignment (``Basic`` credentials, MIME
parts with line breaks, a token inside an encoded JSON blob). A bearer-like
``Authorization`` (``Bearer``, ``DPoP``, any white space after the scheme)
and every JWT found in a header or in the URL must also carry the
destination's audience.

It hooks httpx where httpx itself sends: a request event hook (run for every
request of a client, redirects and ``auth=`` flows included, after the auth
headers are set) or a wrapping transport. Streamed bodies are read into
memory first, so nothing leaves before the whole body was inspected.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import quopri
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn
from urllib.parse import unquote_to_bytes

import httpx

from aiinvariants._errors import AuditUnavailable, PolicyError, TokenInvalid
from aiinvariants._principal import Principal, current_principal

if TYPE_CHECKING:
    from aiinvariants.audit import AuditLog
    from aiinvariants.auth._exchange import TokenExchanger

__all__ = ["PassthroughGuard", "token_audiences", "unverified_claims"]

#: Authorization schemes whose credential is an access token bound to an
#: audience (RFC 6750 Bearer, RFC 9449 DPoP).
BEARER_SCHEMES: Final = frozenset({"bearer", "dpop"})
#: The default bound on a body read for inspection; larger ones are refused.
MAX_BODY_BYTES: Final = 32 * 1024 * 1024

_JWT: Final = re.compile(rb"[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")
_JSON_ESCAPE: Final = re.compile(rb'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_WHITE: Final = re.compile(rb"\s+")
#: A credential as it sits in a header or URL (RFC 6750 token68, cookie value).
_TOKEN_WORD: Final = re.compile(rb"[A-Za-z0-9\-._~+/]{8,}=*")
_B64_TABLE: Final = bytes.maketrans(b"-_", b"+/")


def _origin(url: httpx.URL) -> str:
    port = url.port
    default = {"http": 80, "https": 443}.get(url.scheme)
    netloc = url.host if port in (None, default) else f"{url.host}:{port}"
    return f"{url.scheme}://{netloc}"


_JSON_SIMPLE: Final = {
    b'"': b'"',
    b"\\": b"\\",
    b"/": b"/",
    b"b": b"\b",
    b"f": b"\f",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
}


def _json_unescape(data: bytes) -> bytes:
    """Undo one level of JSON string escapes (``\\u0065``, ``\\/``, ``\\\\``)."""
    if b"\\" not in data:
        return data

    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code is not None:
            return chr(int(code, 16)).encode("utf-8", "surrogatepass")
        return _JSON_SIMPLE[match.group(2)]

    return _JSON_ESCAPE.sub(one, data)


def _percent(data: bytes) -> bytes:
    return unquote_to_bytes(data.replace(b"+", b" "))


@functools.lru_cache(maxsize=64)
def _base64_runs(min_length: int) -> re.Pattern[bytes]:
    """Maximal runs of base64 (either alphabet) of ``min_length`` or more.

    A run may continue over MIME line breaks. Matches start only where a
    run starts (the look-behind), so scanning stays linear in the text.
    """
    char = rb"[A-Za-z0-9+/_\-\r\n]"
    return re.compile(rb"(?<!" + char + rb")" + char + b"{%d,}" % min_length)


def _base64_decodings(data: bytes, min_length: int) -> Iterator[bytes]:
    """Every long enough base64 run of ``data``, decoded at each alignment."""
    for run in _base64_runs(min_length).findall(data):
        if b"\n" in run or b"\r" in run:
            run = _WHITE.sub(b"", run)
        std = run.translate(_B64_TABLE)
        for start in range(4):
            part = std[start:]
            rest = len(part) % 4
            # A blob's last quad may be short (padding stripped or cut).
            part = part[:-1] if rest == 1 else part + b"=" * (-rest % 4)
            try:
                yield base64.b64decode(part)
            except (binascii.Error, ValueError):  # pragma: no cover - filtered
                continue


def views(data: bytes, *, min_base64: int = 8) -> Iterator[bytes]:
    """``data`` and the decodings a token may hide behind, each once.

    ``min_base64`` is the shortest base64 run worth decoding: one that
    encodes the whole token (4/3 of its length).
    """
    seen: set[bytes] = set()
    once = _percent(data)
    decoded = [data, once, _percent(once)]
    if b"=\n" in data or b"=\r\n" in data:
        # quoted-printable soft line breaks cut a long token every 76 chars
        decoded.append(data.replace(b"=\r\n", b"").replace(b"=\n", b""))
    if b"=3D" in data:
        # quoted-printable (an e-mail body) changes only one character a
        # token holds: "=" (base64 padding) travels as "=3D"
        decoded.append(quopri.decodestring(data))
    unescaped = [_json_unescape(view) for view in decoded]
    for view in [*decoded, *unescaped, *map(_json_unescape, unescaped)]:
        if view in seen:
            continue
        seen.add(view)
        yield view
        for inner in _base64_decodings(view, min_base64):
            yield inner
            if b"%" in inner:
                yield _percent(inner)


def _needles(token: str) -> tuple[bytes, ...]:
    raw = token.encode("utf-8")
    return (raw, raw.hex().encode(), raw.hex().upper().encode())


class _Unreadable(Exception):
    """The body's content encoding cannot be undone for inspection."""


def _decoded_body(body: bytes, header: str, limit: int) -> bytes | None:
    """The body with its ``Content-Encoding`` undone; None when there is none.

    Raises:
        _Unreadable: an encoding we cannot undo (``br``, ``zstd``…), a
            corrupt stream, or more than ``limit`` bytes once inflated — a
            body that cannot be inspected is not sent.
    """
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    if not body or not codings or codings == ["identity"]:
        return None
    data = body
    for coding in reversed(codings):  # applied in order, undone in reverse
        if coding == "identity":
            continue
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise _Unreadable(coding)
        inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header
        try:
            data = inflater.decompress(data, limit + 1)
        except zlib.error:
            raise _Unreadable(coding) from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise _Unreadable(coding)
    return data


class PassthroughGuard:
    """An httpx hook that refuses to send the user's token downstream (I4).

    ``httpx.Client(event_hooks={"request": [guard]})``,
    ``httpx.AsyncClient(event_hooks={"request": [guard.async_hook]})``, or
    ``transport=guard.transport()`` / ``guard.async_transport()`` for
    clients an SDK builds. A request is refused (:class:`TokenInvalid`,
    invariant I4) before anything is sent when:

    - the current principal's inbound token appears anywhere in it (any
      header, cookie, the URL or the body, raw or encoded) —
      ``token_passthrough``;
    - it carries a bearer-like ``Authorization`` to a destination with no
      configured audience — ``token_destination_unknown``;
    - a bearer-like ``Authorization`` token, or any JWT in a header or the
      URL, is not for the destination's audience (a JWT's ``aud``, or the
      audience the exchanger issued an opaque token for) —
      ``token_audience_mismatch``; this also catches the inbound JWT in code
      that lost the request context;
    - its body is larger than ``max_body_bytes`` — ``token_scan_too_large``;
    - its body's ``Content-Encoding`` cannot be undone for inspection
      (``br``, ``zstd``, corrupt or too large once inflated) while a user
      token is in context — ``token_scan_unreadable``.

    Args:
        audiences: destination origin or URL prefix (``https://api.x.com``
            or ``https://x.com/billing/``) -> the audience its tokens carry.
        exchanger: lets opaque tokens it issued be recognised.
        audit: where refusals are recorded (never the tokens).
        max_body_bytes: the largest body inspected; a larger one is refused
            rather than sent unread.
    """

    def __init__(
        self,
        *,
        audiences: Mapping[str, str],
        exchanger: TokenExchanger | None = None,
        audit: AuditLog | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if not audiences:
            raise PolicyError("PassthroughGuard needs audiences= (destination -> aud)")
        if (
            isinstance(max_body_bytes, bool)
            or not isinstance(max_body_bytes, int)
            or max_body_bytes < 1
        ):
            raise PolicyError("max_body_bytes must be a positive number of bytes")
        # Longest prefix first, so a path-specific entry beats its origin.
        self._audiences = sorted(
            ((prefix.rstrip("/"), aud) for prefix, aud in audiences.items()),
            key=lambda item: -len(item[0]),
        )
        self._exchanger = exchanger
        self._audit = audit
        self._max_body = max_body_bytes

    def expected_audience(self, url: httpx.URL) -> str | None:
        """The audience configured for ``url``'s destination, if any."""
        origin = _origin(url)
        full = origin + url.path
        for prefix, aud in self._audiences:
            if full == prefix or full.startswith(prefix + "/") or origin == prefix:
                return aud
        return None

    # -- hooks ------------------------------------------------------------

    def check(self, request: httpx.Request) -> None:
        """Raise :class:`TokenInvalid` if the request would pass a token on."""
        self._check_length(request)
        self._inspect(request, request.read())

    async def acheck(self, request: httpx.Request) -> None:
        """The async form of :meth:`check` (reads an async body stream)."""
        self._check_length(request)
        self._inspect(request, await request.aread())

    def __call__(self, request: httpx.Request) -> None:
        self.check(request)

    async def async_hook(self, request: httpx.Request) -> None:
        """The hook for ``httpx.AsyncClient``."""
        await self.acheck(request)

    def transport(
        self, inner: httpx.BaseTransport | None = None
    ) -> httpx.BaseTransport:
        """A transport that checks each request, then sends it with ``inner``."""
        return _Transport(self, inner or httpx.HTTPTransport())

    def async_transport(
        self, inner: httpx.AsyncBaseTransport | None = None
    ) -> httpx.AsyncBaseTransport:
        """The async form of :meth:`transport`."""
        return _AsyncTransport(self, inner or httpx.AsyncHTTPTransport())

    # -- the decision -----------------------------------------------------

    def _check_length(self, request: httpx.Request) -> None:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._max_body:
            self._refuse(current_principal(), request, "token_scan_too_large", "body")

    def _parts(
        self, request: httpx.Request, body: bytes
    ) -> Iterator[tuple[str, bytes]]:
        yield "url", str(request.url).encode("utf-8")
        yield "url", request.url.raw_path
        cookies: list[bytes] = []
        for name, value in request.headers.raw:
            where = "header:" + name.decode("latin-1").lower()[:60]
            yield where, name
            yield where, value
            if name.lower() == b"cookie":
                cookies += (c.partition(b"=")[2].strip() for c in value.split(b";"))
        # A token cut in chunks (large cookies split as ``t.0``, ``t.1``; a
        # value spread over two headers) is whole again once joined in order.
        yield "headers", b"".join(value for _, value in request.headers.raw)
        if len(cookies) > 1:
            yield "header:cookie", b"".join(cookies)
        yield "body", body
        decoded = _decoded_body(
            body, request.headers.get("content-encoding", ""), self._max_body
        )
        if decoded is not None:
            yield "body", decoded

    def _inspect(self, request: httpx.Request, body: bytes) -> None:
        who = current_principal()
        if len(body) > self._max_body:
            self._refuse(who, request, "token_scan_too_large", "body")
        inbound = who.raw_token()
        if inbound:
            needles = _needles(inbound)
            try:
                parts = list(self._parts(request, body))
            except _Unreadable:
                self._refuse(who, request, "token_scan_unreadable", "body")
            for where, data in parts:
                if _contains(data, needles):
                    self._refuse(who, request, "token_passthrough", where)
        self._check_audiences(who, request)

    def _check_audiences(self, who: Principal, request: httpx.Request) -> None:
        expected = self.expected_audience(request.url)
        # Every Authorization header (a second one is not hidden by a first
        # ``Basic`` one).
        for value in request.headers.get_list("authorization"):
            words = [*value.split(None, 1), "", ""]
            scheme, credential = words[0], words[1].strip()
            if scheme.lower() not in BEARER_SCHEMES or not credential:
                continue
            if expected is None:
                self._refuse(who, request, "token_destination_unknown", "authorization")
            if not self._bound_to(credential, expected):
                self._refuse(who, request, "token_audience_mismatch", "authorization")
        for where, data in self._parts(request, b""):
            if where == "body":
                continue
            self._check_issued(who, request, where, data, expected)
            for candidate in _JWT.findall(data):
                claims = _claims_of(candidate)
                if claims is None or "aud" not in claims:
                    continue
                if expected is None or expected not in token_audiences(claims):
                    self._refuse(who, request, "token_audience_mismatch", where)

    def _check_issued(
        self,
        who: Principal,
        request: httpx.Request,
        where: str,
        data: bytes,
        expected: str | None,
    ) -> None:
        """A token the exchanger issued, anywhere in a header or the URL (any
        scheme, any header name, a cookie, a query parameter), goes only to
        the audience it was issued for."""
        if self._exchanger is None:
            return
        for view in {data, _percent(data)}:
            for word in _TOKEN_WORD.findall(view):
                issued_for = self._exchanger.audience_of(word.decode("ascii"))
                if issued_for is not None and issued_for != expected:
                    self._refuse(who, request, "token_audience_mismatch", where)

    def _bound_to(self, token: str, expected: str) -> bool:
        claims = _claims_of(token.encode("utf-8", "replace"))
        if claims is not None:
            return expected in token_audiences(claims)
        known = self._exchanger.audience_of(token) if self._exchanger else None
        return known == expected

    def _refuse(
        self, who: Principal, request: httpx.Request, code: str, where: str
    ) -> NoReturn:
        destination = _origin(request.url)
        denial = TokenInvalid(
            f"refused to send a token not bound to the destination (in {where})",
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
                    details={"where": where},
                    principal=who,
                )
            except AuditUnavailable as exc:
                raise denial from exc
        raise denial

    def __repr__(self) -> str:
        return f"PassthroughGuard(destinations={len(self._audiences)})"


def _contains(data: bytes, needles: Iterable[bytes]) -> bool:
    wanted = tuple(needles)
    # A base64 run holding the whole token is 4/3 of the token or longer.
    min_base64 = max(8, min(len(n) for n in wanted) * 4 // 3)
    return any(n in view for view in views(data, min_base64=min_base64) for n in wanted)


def unverified_claims(token: str) -> dict[str, Any] | None:
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


def _claims_of(token: bytes) -> dict[str, Any] | None:
    return unverified_claims(token.decode("ascii", "replace"))


def token_audiences(claims: Mapping[str, Any]) -> frozenset[str]:
    """The ``aud`` of ``claims`` as a set (empty when absent or malformed)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return frozenset({aud})
    if isinstance(aud, list):
        return frozenset(a for a in aud if isinstance(a, str))
    return frozenset()


class _Transport(httpx.BaseTransport):
    def __init__(self, guard: PassthroughGuard, inner: httpx.BaseTransport) -> None:
        self._guard = guard
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._guard.check(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class _AsyncTransport(httpx.AsyncBaseTransport):
    def __init__(
        self, guard: PassthroughGuard, inner: httpx.AsyncBaseTransport
    ) -> None:
        self._guard = guard
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._guard.acheck(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
