"""Bearer-token authentication for ASGI apps (Starlette, FastAPI, any ASGI 3 app).

:class:`BearerAuthMiddleware` verifies the ``Authorization: Bearer`` token of
every HTTP and WebSocket request with a verifier (``JWTVerifier`` or
``IntrospectionVerifier``) and runs the rest of the app inside
``acting_as(principal)``, so the principal holds for the whole request,
streaming bodies included. A missing or rejected token gets a 401, an
unusable ``Authorization`` header (another scheme, two headers in any case,
no token) or an ``access_token`` in the query a 400 ``invalid_request``;
the JSON body names the same RFC 6750 error as the challenge header, which
carries ``resource_metadata`` (RFC 9728). The
middleware can also serve that metadata document itself.

Pure ASGI: it imports no framework, so it needs no extra.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from aiinvariants._errors import PolicyError, TokenInvalid, bearer_challenge
from aiinvariants._internal.deprecation import allow_anonymous as _allow_anonymous
from aiinvariants._principal import ANONYMOUS, Principal, acting_as
from aiinvariants.auth._bearer import (
    PROBLEMS,
    MultipartNames,
    form_charsets,
    form_kinds,
    form_problem,
    is_content_coded,
    parse_bearer,
)
from aiinvariants.auth._metadata import metadata_url
from aiinvariants.integrations._mcp_http import read_body, replay

__all__ = ["PRINCIPAL_SCOPE_KEY", "AsyncVerifier", "BearerAuthMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The ASGI scope key holding the request's verified principal.
PRINCIPAL_SCOPE_KEY: Final = "aiinvariants.principal"


def _oauth_error(code: str | None, *, bad_header: bool) -> str | None:
    """The RFC 6750 ``error`` of a refusal: one answer for header and body."""
    if code is None:
        return None
    return "invalid_request" if bad_header else "invalid_token"


class AsyncVerifier(Protocol):
    """Anything with ``await averify(token) -> Principal`` raising TokenInvalid."""

    async def averify(self, token: str) -> Principal: ...


class BearerAuthMiddleware:
    """Verify the bearer token per request and act as its principal.

    Args:
        app: the ASGI app to protect.
        verifier: a ``JWTVerifier`` or ``IntrospectionVerifier``.
        metadata: an RFC 9728 document (see
            :func:`~aiinvariants.auth.protected_resource_metadata`); served
            unauthenticated at its well-known path, and its URL is put in
            every challenge's ``resource_metadata``.
        resource_metadata_url: the metadata URL when it is served elsewhere.
        allow_anonymous: let requests without an ``Authorization`` header
            through as :data:`~aiinvariants.ANONYMOUS` (for public apps whose
            endpoints check authentication themselves). A token that is
            present but invalid is refused either way: a bad token never
            silently downgrades to anonymous.
        exclude_paths: exact paths served without authentication (health
            checks). The metadata path is always excluded.

    Raises:
        PolicyError: ``verifier`` has no ``averify``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: AsyncVerifier,
        metadata: Mapping[str, Any] | None = None,
        resource_metadata_url: str | None = None,
        allow_anonymous: bool = False,
        exclude_paths: Collection[str] = (),
    ) -> None:
        if not callable(getattr(verifier, "averify", None)):
            raise PolicyError("BearerAuthMiddleware needs a verifier with averify()")
        self.app = app
        self.verifier = verifier
        self._metadata_body: bytes | None = None
        self._metadata_path: str | None = None
        if metadata is not None:
            url = metadata_url(str(metadata.get("resource", "")))
            self._metadata_body = json.dumps(dict(metadata)).encode()
            self._metadata_path = urlsplit(url).path
            resource_metadata_url = resource_metadata_url or url
        self.resource_metadata_url = resource_metadata_url
        self.allow_anonymous = _allow_anonymous(
            "BearerAuthMiddleware", allow_anonymous, None
        )
        self._excluded = frozenset(exclude_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":  # startup and shutdown: no request, no principal
            await self.app(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            # A protocol this middleware cannot authenticate (a server's
            # "webtransport" extension, say) never reaches the app unchecked.
            raise PolicyError(
                f"BearerAuthMiddleware cannot authenticate ASGI scope type "
                f"{str(kind)[:40]!r}; refused"
            )
        path = scope.get("path", "")
        metadata = self._metadata_body is not None and path == self._metadata_path
        if metadata and kind == "http":
            await self._send_metadata(send)
            return
        if path in self._excluded:
            await self.app(scope, receive, send)
            return
        token, problem = bearer_token(scope)
        forms = form_kinds(scope.get("headers", ())) if kind == "http" else None
        if problem is None and forms:
            # RFC 6750 section 2.2: a token in a form body is refused too.
            headers = scope.get("headers", ())
            if is_content_coded(headers):
                problem = "form_encoded"  # compressed: its names are unread
            else:
                charsets = form_charsets(headers)
                receive, problem = await _form_checked(receive, forms, charsets)
        if problem is not None:
            await self._refuse(scope, send, error=problem, bad_header=True)
            return
        if token is None:
            if not self.allow_anonymous:
                await self._refuse(scope, send, error=None)
                return
            principal = ANONYMOUS
        else:
            try:
                principal = await self.verifier.averify(token)
            except TokenInvalid as exc:
                await self._refuse(scope, send, error=exc.code)
                return
            if not isinstance(principal, Principal) or not principal.authenticated:
                # A custom verifier that answers a token it does not accept
                # with an anonymous principal must not downgrade the caller.
                await self._refuse(scope, send, error="token_invalid")
                return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        async with acting_as(principal):
            await self.app(scope, receive, send)

    async def _send_metadata(self, send: Send) -> None:
        body = self._metadata_body or b"{}"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"public, max-age=3600"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def challenge(self, error: str | None, *, bad_header: bool = False) -> str:
        """The ``WWW-Authenticate`` value for a refusal with ``error`` (a code).

        ``bad_header`` marks an unusable ``Authorization`` header (RFC 6750
        ``invalid_request``) rather than a token that failed verification.
        """
        return refusal(
            error, bad_header=bad_header, resource_metadata=self.resource_metadata_url
        )[1]

    async def _refuse(
        self, scope: Scope, send: Send, *, error: str | None, bad_header: bool = False
    ) -> None:
        header = self.challenge(error, bad_header=bad_header).encode("latin-1")
        if scope.get("type") == "websocket":
            # Before accept, a close is turned into a 403 by servers; 1008 is
            # "policy violation".
            await send({"type": "websocket.close", "code": 1008})
            return
        status, _, document = refusal(error, bad_header=bad_header)
        body = json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"www-authenticate", header),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _form_checked(
    receive: Receive, forms: frozenset[str], charsets: list[str]
) -> tuple[Receive, str | None]:
    """The request's ``receive`` (replaying what was read) and why its form
    body is refused, if it is.

    A url-encoded body is read whole (up to ``MAX_FORM_BYTES``). A multipart
    body (a file upload may be large) is read as far as the pre-check
    reads; what follows is scanned as the app reads it, and a part named
    ``access_token`` found there ends the body (``http.disconnect``): the
    app never reads that form. A body under both content types is checked
    as both.
    """
    body, complete = await read_body(receive)
    if "urlencoded" in forms:
        problem = form_problem(body, complete=complete, charsets=charsets)
        if problem is not None or "multipart" not in forms:
            return replay(body, complete, receive), problem
    names = MultipartNames(charsets)
    if names.feed(body):
        return receive, "token_in_body"
    return replay(body, complete, scanned_receive(receive, names)), None


def scanned_receive(receive: Receive, names: MultipartNames) -> Receive:
    """``receive`` with each body chunk fed to ``names``: from the chunk that
    names ``access_token`` on, the body ends (``http.disconnect``)."""
    refused = False

    async def scanned() -> Message:
        nonlocal refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        if message.get("type") == "http.request" and names.feed(
            bytes(message.get("body", b""))
        ):
            refused = True
            return {"type": "http.disconnect"}
        return message

    return scanned


def refusal(
    error: str | None, *, bad_header: bool = False, resource_metadata: str | None = None
) -> tuple[int, str, dict[str, str | None]]:
    """The status, ``WWW-Authenticate`` value and JSON document of a refusal.

    One answer for every integration that refuses a bearer request (this
    middleware, the FastAPI dependencies): ``error`` is the refusal's code
    (None when no credentials came), ``bad_header`` marks an unusable
    ``Authorization`` header or a token sent another way (RFC 6750
    ``invalid_request``, 400) rather than a token that failed (401).
    """
    oauth_error = _oauth_error(error, bad_header=bad_header)
    if error is None:
        # RFC 6750 section 3.1: no error code when no credentials came.
        challenge = bearer_challenge(resource_metadata=resource_metadata)
    else:
        challenge = bearer_challenge(
            error=oauth_error,
            error_description=error,
            resource_metadata=resource_metadata,
        )
    document: dict[str, str | None] = {
        "error": oauth_error or "unauthorized",
        "code": error,
    }
    if bad_header and error is not None and error in PROBLEMS:
        document["error_description"] = PROBLEMS[error]
    status = 400 if oauth_error == "invalid_request" else 401
    return status, challenge, document


def bearer_token(scope: Scope) -> tuple[str | None, str | None]:
    """The bearer token of a request, or the code of why it is unusable.

    :func:`aiinvariants.auth._bearer.parse_bearer` on the scope's raw
    headers and query string: ``(token, None)``, ``(None, None)`` when no
    credentials came, ``(None, code)`` for an unusable header or a token in
    the query (a code answered with ``invalid_request``).
    """
    return parse_bearer(
        scope.get("headers", ()), query=scope.get("query_string") or b""
    )
