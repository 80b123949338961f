"""OAuth 2.0 Protected Resource Metadata (RFC 9728).

A protected resource publishes a JSON document at
``/.well-known/oauth-protected-resource`` (plus the resource's path, if it
has one) telling clients which authorization servers issue tokens for it
and which scopes it knows. Its URL goes into the ``resource_metadata``
parameter of every ``WWW-Authenticate: Bearer`` challenge, so a client that
got a 401 can find out where to get a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from aiinvariants._errors import PolicyError
from aiinvariants._internal.urls import require_url
from aiinvariants._principal import validate_scope_token

__all__ = ["WELL_KNOWN_PATH", "metadata_url", "protected_resource_metadata"]

WELL_KNOWN_PATH: Final = "/.well-known/oauth-protected-resource"


def _https_url(value: object, *, what: str) -> str:
    return require_url(value, what=what, query=False)


def metadata_url(resource: str) -> str:
    """The URL of a resource's metadata document (RFC 9728 section 3.1).

    The well-known segment goes between the host and the resource's path:
    ``https://api.example.com/v1`` ->
    ``https://api.example.com/.well-known/oauth-protected-resource/v1``.

    Raises:
        PolicyError: ``resource`` is not an https URL without query/fragment.
    """
    parts = urlsplit(_https_url(resource, what="resource"))
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN_PATH + path, "", ""))


def protected_resource_metadata(
    *,
    resource: str,
    authorization_servers: Sequence[str],
    scopes_supported: Sequence[str] = (),
    bearer_methods_supported: Sequence[str] = ("header",),
    resource_name: str | None = None,
    resource_documentation: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build an RFC 9728 protected resource metadata document.

    Args:
        resource: the resource identifier (the ``aud`` its tokens carry).
        authorization_servers: issuer URLs of the servers whose tokens it takes.
        scopes_supported: scope names the resource understands.
        bearer_methods_supported: how tokens may be sent; ``header`` only by
            default (tokens in query strings end up in logs).
        resource_name: a human-readable name.
        resource_documentation: a URL of the resource's documentation.
        **extra: further metadata members (e.g. ``jwks_uri``).

    Raises:
        PolicyError: a URL or scope is invalid.
    """
    if isinstance(authorization_servers, str) or not authorization_servers:
        raise PolicyError("authorization_servers must be a non-empty list of URLs")
    document: dict[str, Any] = {
        "resource": _https_url(resource, what="resource"),
        "authorization_servers": [
            _https_url(s, what="authorization server") for s in authorization_servers
        ],
        "bearer_methods_supported": list(bearer_methods_supported),
    }
    if scopes_supported:
        try:
            document["scopes_supported"] = [
                validate_scope_token(s) for s in scopes_supported
            ]
        except ValueError as exc:
            raise PolicyError(str(exc)) from None
    if resource_name is not None:
        document["resource_name"] = resource_name
    if resource_documentation is not None:
        document["resource_documentation"] = _https_url(
            resource_documentation, what="resource_documentation"
        )
    for key, value in extra.items():
        if key in document:
            raise PolicyError(f"metadata member {key!r} given twice")
        document[key] = value
    return document
