"""The one rule for a URL that receives a credential or serves trust.

A token endpoint gets the user's token, an introspection endpoint and a
classifier get our client secret or API key, a JWKS or metadata URL serves
the keys and documents we trust. For each of them:

- the scheme is ``https``; plain ``http`` only to a loopback host
  (``localhost``, ``127.0.0.0/8``, ``::1``) — anyone else on the path could
  read the credential or answer in the server's place. An ``unsafe_…``
  argument may accept http elsewhere, with an ``InsecureUsageWarning``;
- no credentials inside the URL (``user:pass@``): they would travel in logs,
  reprs and ``Referer`` headers, and a ``@`` is how a host is disguised;
- no fragment; no white space, control characters or backslashes (parsers
  disagree on them);
- the standard library and httpx (which sends the request) must read the
  same scheme, host and port, so the host checked is the host contacted.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from typing import Final
from urllib.parse import urlsplit

__all__ = ["env_proxies_allowed", "is_loopback", "require_url", "url_problem"]

MAX_URL_LENGTH: Final = 2048
_BAD_CHARS: Final = re.compile(r"[\x00-\x20\x7f\\]")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals, nothing else.

    ``*.localhost`` names are not trusted: a resolver may send them anywhere.
    Nor is a trailing dot (``localhost.``, ``127.0.0.1.``): the system
    resolver does not find such a name in ``/etc/hosts`` and asks DNS, so
    the network decides where the request goes.
    """
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same_target(value: str, scheme: str, host: str, port: int | None) -> bool:
    import httpx

    try:
        sent = httpx.URL(value)
    except (httpx.InvalidURL, ValueError, TypeError):
        return False
    ours = port if port is not None else _DEFAULT_PORTS.get(scheme)
    theirs = sent.port if sent.port is not None else _DEFAULT_PORTS.get(sent.scheme)
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    return (
        sent.scheme == scheme
        and sent.raw_host.decode("ascii", "replace").lower() == ascii_host
        and theirs == ours
        and not sent.userinfo
    )


def url_problem(
    value: object, *, query: bool = True, allow_http: bool = False
) -> str | None:
    """What is wrong with ``value`` under the rule, or None when it passes.

    Args:
        value: the URL.
        query: whether a query string is acceptable.
        allow_http: accept plain http to any host (the caller warns).

    Returns:
        a phrase that completes "<what> ...", e.g. "must use https".
    """
    if not isinstance(value, str):
        return "must be a URL string"
    if len(value) > MAX_URL_LENGTH or _BAD_CHARS.search(value):
        return (
            f"must be a URL of at most {MAX_URL_LENGTH} characters without "
            "spaces, control characters or backslashes"
        )
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "must be an absolute https URL"
    scheme = parts.scheme.lower()
    if not host or scheme not in ("https", "http"):
        return "must be an absolute https URL"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not contain credentials (user:password@): pass them separately"
    if parts.fragment or value.endswith("#"):
        return "must not have a fragment"
    if not query and (parts.query or value.split("#")[0].endswith("?")):
        return "must not have a query"
    if not _same_target(value, scheme, host, port):
        return "is ambiguous: its host reads differently to different parsers"
    if scheme == "http" and not is_loopback(host) and not allow_http:
        return (
            "must use https; plain http is allowed only for loopback hosts "
            "(localhost, 127.0.0.1, ::1)"
        )
    return None


def env_proxies_allowed(url: str) -> bool:
    """httpx's ``trust_env=`` for a URL that passed the rule.

    Plain http is accepted for loopback hosts only because nothing crosses
    the network; a proxy from the environment (``HTTP_PROXY``,
    ``ALL_PROXY``) would carry the credential to another host in clear text.
    So plain http ignores the environment's proxies; https keeps them (a
    ``CONNECT`` tunnel keeps TLS end to end).
    """
    return urlsplit(url).scheme.lower() != "http"


def require_url(
    value: object,
    *,
    what: str,
    query: bool = True,
    unsafe_allow_http: bool = False,
    unsafe_flag: str | None = None,
    warn: bool = True,
) -> str:
    """Return ``value`` if it passes the rule, else raise :class:`PolicyError`.

    Args:
        value: the URL.
        what: how the error names it (``"token_endpoint"``, ``"jwks_uri"``).
        query: whether a query string is acceptable.
        unsafe_allow_http: accept plain http to a non-loopback host, with an
            ``InsecureUsageWarning``.
        unsafe_flag: the caller's argument that sets ``unsafe_allow_http``,
            named in the error so the fix is exact; None when there is none.
        warn: False when the caller warns about accepted plain http itself.
    """
    from aiinvariants._errors import InsecureUsageWarning, PolicyError

    problem = url_problem(value, query=query, allow_http=unsafe_allow_http)
    if problem is not None:
        if problem.startswith("must use https") and unsafe_flag:
            problem += f"; {unsafe_flag}=True accepts it at your own risk"
        raise PolicyError(f"{what} {problem}")
    url = str(value)
    host = urlsplit(url).hostname or ""
    if warn and urlsplit(url).scheme.lower() == "http" and not is_loopback(host):
        warnings.warn(
            f"{what} is plain http: anyone on the network path can read what is "
            "sent to it and answer in its place",
            InsecureUsageWarning,
            stacklevel=3,
        )
    return url
