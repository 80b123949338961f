"""The answers of the FastAPI integration to an ``InvariantViolation``.

Kept apart from :mod:`aiinvariants.integrations.fastapi`, which re-exports
:func:`install_exception_handlers`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from aiinvariants._errors import (
    AuditUnavailable,
    AuthenticationRequired,
    InvariantViolation,
    PolicyError,
    ScopeDenied,
    TokenInvalid,
    bearer_challenge,
)
from aiinvariants.integrations.asgi import refusal

__all__ = ["HeaderRefused", "install_exception_handlers"]


class HeaderRefused(TokenInvalid):
    """An unusable ``Authorization`` header or a token sent another way.

    RFC 6750 ``invalid_request`` (400), not a token that failed: kept apart
    from ``TokenInvalid`` codes a verifier uses (``malformed``, ``too_large``).
    """

    @property
    def www_authenticate(self) -> str:
        return refusal(self.code, bad_header=True)[1]


def install_exception_handlers(
    app: FastAPI, *, resource_metadata_url: str | None = None
) -> None:
    """Answer every ``InvariantViolation`` an endpoint or dependency raises.

    - an unusable ``Authorization`` header or a token in the query: 400,
      ``Bearer error="invalid_request"``;
    - ``AuthenticationRequired`` (no token): 401, ``Bearer``;
    - ``TokenInvalid`` of the caller's token: 401,
      ``Bearer error="invalid_token"``; of the app's own downstream tokens
      (I4: a failed token exchange, a refused passthrough): 403;
    - ``ScopeDenied``: 403,
      ``Bearer error="insufficient_scope", scope="<every scope needed>"``;
    - ``AuditUnavailable``: 503, no challenge;
    - every other violation (``AccessDenied``, ``ToolForbidden``…): 403, no
      challenge.

    Challenges carry ``resource_metadata`` when it is given. The JSON body
    holds ``error``, the stable ``code`` and ``invariant`` and, except for
    token refusals, the violation's reason: never a token or a secret
    (reasons are secret-free by contract; chained exceptions are not read).
    A WebSocket is closed with 1008 (policy violation).
    """
    if not isinstance(app, FastAPI):
        raise PolicyError(
            "install_exception_handlers() needs a FastAPI app, got "
            f"{type(app).__name__}"
        )

    async def handler(conn: HTTPConnection, exc: Exception) -> Response | None:
        if not isinstance(exc, InvariantViolation):  # pragma: no cover - typed
            raise exc
        if isinstance(conn, WebSocket):
            await conn.close(code=1008)
            return None
        status, challenge, document = _answer(exc, resource_metadata_url)
        headers = {"cache-control": "no-store"}
        if challenge is not None:
            headers["www-authenticate"] = challenge
        return Response(
            json.dumps(document), status, headers, media_type="application/json"
        )

    app.add_exception_handler(InvariantViolation, handler)  # type: ignore[arg-type]


def _about_the_callers_credentials(exc: InvariantViolation) -> bool:
    """A 401 tells the client to get a new token: only for its own token.

    A ``TokenInvalid`` of the app's downstream token handling (I4: a token
    exchange that failed, a passthrough refused) is the server's refusal,
    not the caller's credentials: answering it with ``invalid_token`` would
    make clients throw away a good token and sign in again, in a loop.
    """
    if not isinstance(exc, AuthenticationRequired):
        return False
    return not isinstance(exc, TokenInvalid) or exc.invariant == "I1"


def _answer(
    exc: InvariantViolation, resource_metadata_url: str | None = None
) -> tuple[int, str | None, dict[str, Any]]:
    """The status, challenge and JSON document answering a violation."""
    if _about_the_callers_credentials(exc):
        token_refused = isinstance(exc, TokenInvalid)
        status, challenge, base = refusal(
            exc.code if token_refused else None,
            bad_header=isinstance(exc, HeaderRefused),
            resource_metadata=resource_metadata_url,
        )
        document: dict[str, Any] = {**base, "code": exc.code}
        document["invariant"] = exc.invariant
        if not token_refused:
            document["detail"] = exc.reason
        return status, challenge, document
    document = {
        "error": "forbidden",
        "code": exc.code,
        "invariant": exc.invariant,
        "detail": exc.reason,
    }
    if isinstance(exc, ScopeDenied):
        document["error"] = "insufficient_scope"
        document["scope"] = " ".join(exc.required)
        challenge = bearer_challenge(
            error="insufficient_scope",
            scope=" ".join(exc.required),
            resource_metadata=resource_metadata_url or exc.resource_metadata,
        )
        return 403, challenge, document
    if isinstance(exc, AuditUnavailable):
        document["error"] = "unavailable"
        return 503, None, document
    return 403, None, document
