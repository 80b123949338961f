"""The one bearer-token parser: how a request's access token is read.

Every integration that reads a token from a request (the ASGI middleware,
FastAPI's dependencies, the MCP and FastMCP servers) calls
:func:`parse_bearer`, so a request one of them accepts is never read
differently by another. The rules are those of RFC 6750 section 2.1, the
strictest reading:

- exactly one ``Authorization`` header, its name matched in any case: with
  two, a proxy and the app may each read another one;
- ``credentials = "Bearer" 1*SP b64token``: the scheme in any case, then
  spaces (not tabs), then one token of ``A-Z a-z 0-9 - . _ ~ + /`` followed by
  ``=`` padding only. A comma (two headers joined), an inner space, a tab,
  a second token or a non-ASCII byte is a malformed header, never "the
  first token";
- white space around the whole value is HTTP's optional white space (RFC
  9110 section 5.5), not part of it;
- a token in the URI query (RFC 6750 section 2.3, ``access_token``) or in a
  form-encoded body (section 2.2) is refused, alone or next to a header: it
  leaks into logs, and it would be a second, unverified identity the app
  might read. The body is the caller's to read (:func:`form_problem`).
  A ``multipart/form-data`` body is a form too (``Form()`` fields and
  Starlette's ``request.form()`` read both encodings alike): a part named
  ``access_token`` is refused the same way (:class:`MultipartNames`);
- a token in ``Sec-WebSocket-Protocol`` (a browser cannot set
  ``Authorization`` on a WebSocket, so apps pass one there: ``access_token,
  <jwt>``, ``bearer.<token>``, Kubernetes'
  ``base64url.bearer.authorization.k8s.io.<token>``) is refused the same way:
  an entry naming a credential, or a JWT, is a second identity.

A refusal is a stable code (``PROBLEMS`` holds what each means), answered
as RFC 6750 ``invalid_request``: a malformed request, not a bad token.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Final
from urllib.parse import unquote_plus, unquote_to_bytes

__all__ = [
    "MAX_AUTHORIZATION_BYTES",
    "MAX_FORM_BYTES",
    "PROBLEMS",
    "MultipartNames",
    "form_charsets",
    "form_kinds",
    "form_problem",
    "is_b64token",
    "is_content_coded",
    "is_form",
    "parse_bearer",
]

#: A longer ``Authorization`` header is refused before it is read.
MAX_AUTHORIZATION_BYTES: Final = 65536

#: A form body is read whole to look for a token; a longer one is refused.
MAX_FORM_BYTES: Final = 4 * 1024 * 1024

#: Why a request's bearer credentials are unusable, by code.
PROBLEMS: Final[Mapping[str, str]] = {
    "not_bearer": "the Authorization header must use the Bearer scheme",
    "empty_token": "the Authorization header carries no bearer token",
    "duplicate_authorization": "the request has more than one Authorization header",
    "too_large": "the Authorization header is too large",
    "malformed": "the Authorization header is not 'Bearer <token>' in ASCII",
    "token_in_query": "an access token must travel in the Authorization header, "
    "not in the URI query",
    "token_in_body": "an access token must travel in the Authorization header, "
    "not in a form body",
    "token_in_subprotocol": "an access token must travel in the Authorization "
    "header, not in Sec-WebSocket-Protocol",
    "form_too_large": "the form body is too large to be checked for an access token",
    "form_encoded": "a form body with a Content-Encoding cannot be checked for an "
    "access token",
}

_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

#: Subprotocol labels that say "a credential follows" (or is this entry).
_CREDENTIAL_LABELS: Final = frozenset(
    {"access_token", "access-token", "accesstoken", "bearer", "authorization", "jwt"}
)
#: A JWS/JWE in compact form: a base64url JSON object header, then segments.
_COMPACT_JWT: Final = re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){2,4}")
_OWS: Final = " \t"


def is_b64token(text: str) -> bool:
    """Whether ``text`` is an RFC 6750 ``b64token`` (the token of a header)."""
    return _B64TOKEN.fullmatch(text) is not None


def _text(value: bytes | str) -> str | None:
    if isinstance(value, str):
        return value if value.isascii() else None
    try:
        return bytes(value).decode("ascii")
    except UnicodeDecodeError:
        return None


def _name(name: bytes | str) -> str:
    return (name if isinstance(name, str) else bytes(name).decode("latin-1")).lower()


def parse_bearer(
    headers: Iterable[tuple[bytes | str, bytes | str]],
    *,
    query: bytes | str = b"",
) -> tuple[str | None, str | None]:
    """The bearer token of a request, or the code of why it is unusable.

    Args:
        headers: every header of the request as ``(name, value)`` pairs, as
            sent (an ASGI scope's ``headers`` list): repeated names and any
            case are seen.
        query: the request's raw query string.

    Returns:
        ``(token, None)``; ``(None, None)`` when no credentials came;
        ``(None, code)`` for unusable credentials (a key of ``PROBLEMS``).
    """
    if _token_in_query(query):
        return None, "token_in_query"
    headers = list(headers)
    offered = [v for n, v in headers if _name(n) == "sec-websocket-protocol"]
    if any(map(_credential_subprotocol, offered)):
        return None, "token_in_subprotocol"
    values = [value for name, value in headers if _name(name) == "authorization"]
    if not values:
        return None, None
    if len(values) > 1:
        return None, "duplicate_authorization"
    raw = values[0]
    if len(raw) > MAX_AUTHORIZATION_BYTES:
        return None, "too_large"
    text = _text(raw)
    if text is None:
        return None, "malformed"
    scheme, _, rest = text.strip(_OWS).partition(" ")
    if scheme.lower() != "bearer":
        return None, "not_bearer"
    token = rest.lstrip(" ")  # 1*SP: spaces only, never a tab
    if not token:
        return None, "empty_token"
    if not is_b64token(token):
        return None, "malformed"
    return token, None


def _credential_subprotocol(value: bytes | str) -> bool:
    """Whether a ``Sec-WebSocket-Protocol`` value offers a credential: an
    entry that is, or whose dot-separated labels include, a credential
    label (``access_token``, ``bearer.<token>``), or a compact JWT."""
    text = value if isinstance(value, str) else bytes(value).decode("latin-1")
    for entry in text.split(","):
        entry = entry.strip(_OWS)
        labels = entry.lower().split(".")
        if _CREDENTIAL_LABELS.intersection(labels) or _COMPACT_JWT.fullmatch(entry):
            return True
    return False


def _token_in_query(query: bytes | str) -> bool:
    """Whether the query names ``access_token``, decoded as the frameworks
    behind the middleware decode it (``+``, percent escapes, ``;``)."""
    if not query:
        return False
    text = query if isinstance(query, str) else bytes(query).decode("latin-1")
    names = (part.partition("=")[0] for part in re.split("[&;]", text))
    return any(unquote_plus(name).strip().lower() == "access_token" for name in names)


_FORM_KINDS: Final[Mapping[str, str]] = {
    "application/x-www-form-urlencoded": "urlencoded",
    "multipart/form-data": "multipart",
}


def form_kinds(headers: Iterable[tuple[bytes | str, bytes | str]]) -> frozenset[str]:
    """The form encodings the ``Content-Type`` headers name: ``"urlencoded"``,
    ``"multipart"``, both or none.

    Every ``Content-Type`` header counts: with two, frameworks differ on
    which one they read, so the body is checked under each.
    """
    kinds: set[str] = set()
    for name, value in headers:
        if _name(name) == "content-type":
            text = value if isinstance(value, str) else bytes(value).decode("latin-1")
            kind = _FORM_KINDS.get(text.partition(";")[0].strip().lower())
            if kind is not None:
                kinds.add(kind)
    return frozenset(kinds)


def is_content_coded(headers: Iterable[tuple[bytes | str, bytes | str]]) -> bool:
    """Whether the body has a ``Content-Encoding`` (gzip…) other than identity:
    an app that decodes it reads names the raw bytes do not show."""
    for name, value in headers:
        if _name(name) == "content-encoding":
            text = value if isinstance(value, str) else bytes(value).decode("latin-1")
            if text.strip().lower() not in ("", "identity"):
                return True
    return False


def is_form(headers: Iterable[tuple[bytes | str, bytes | str]]) -> bool:
    """Whether the request body is a form (url-encoded or multipart)."""
    return bool(form_kinds(headers))


class MultipartNames:
    """Finds a part named ``access_token`` in a multipart body, chunk by chunk.

    Read conservatively rather than parsed: any ``Content-Disposition``
    line naming ``access_token`` (any case, percent escapes decoded, so
    RFC 2231 ``name*=`` too) is a token in the body, also when the name is
    written in a ``charset`` the ``Content-Type`` declares (Starlette
    decodes part names with it: UTF-16, UTF-7, EBCDIC…). Memory is bounded:
    an unfinished line keeps only its last bytes and whether it is a
    ``Content-Disposition`` line.

    Args:
        charsets: the ``charset`` parameters of the request's multipart
            ``Content-Type`` headers (:func:`form_charsets`).
    """

    _KEEP: Final = 256

    def __init__(self, charsets: Iterable[str] = ()) -> None:
        self._carry = b""
        self._disposition = False
        self._codecs = sorted({c for c in map(_codec, charsets) if c is not None})

    def feed(self, chunk: bytes) -> bool:
        """Whether the body read so far names ``access_token`` in a part."""
        lines = re.split(rb"[\r\n]", self._carry + bytes(chunk))
        self._carry = lines.pop()
        for line in lines:
            if self._names_token(line):
                return True
            self._disposition = False
        if self._names_token(self._carry):
            return True
        if len(self._carry) > 4 * self._KEEP:
            self._disposition = self._disposition or _is_disposition(self._carry)
            self._carry = self._carry[-self._KEEP :]
        return False

    def _names_token(self, line: bytes) -> bool:
        if not (self._disposition or _is_disposition(line)):
            return False
        return any(
            b"access_token" in unquote_to_bytes(form).lower()
            for form in self._forms(line)
        )

    def _forms(self, line: bytes) -> Iterator[bytes]:
        yield line
        yield line.replace(b"\x00", b"")  # UTF-16 and UTF-32 letters
        for codec in self._codecs:
            for start in range(4):  # a wide encoding may start at any byte
                text = line[start:].decode(codec, "ignore")
                yield text.encode("utf-8", "ignore")


def _codec(charset: str) -> str | None:
    try:
        name = codecs.lookup(charset).name
        b"\x00\x00\x00\x00".decode(name, "ignore")
    except (LookupError, ValueError):
        # Starlette reads an unknown charset, or a codec that is no text
        # encoding (rot13, hex), as latin-1
        return None
    return None if name in _ASCII_COMPATIBLE else name


_ASCII_COMPATIBLE: Final = frozenset({"utf-8", "ascii", "latin-1", "iso8859-1"})


def form_charsets(headers: Iterable[tuple[bytes | str, bytes | str]]) -> list[str]:
    """The ``charset`` parameters of the form ``Content-Type`` headers."""
    found: list[str] = []
    for name, value in headers:
        if _name(name) != "content-type":
            continue
        text = value if isinstance(value, str) else bytes(value).decode("latin-1")
        media, *params = text.split(";")
        if media.strip().lower() not in _FORM_KINDS:
            continue
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "charset":
                found.append(raw.strip().strip('"'))
    return found


def _is_disposition(line: bytes) -> bool:
    return b"content-disposition" in line.lower()


def form_problem(
    body: bytes, *, complete: bool, charsets: Iterable[str] = ()
) -> str | None:
    """Why a url-encoded form body is refused (a ``PROBLEMS`` code), or None.

    ``complete`` is False when only the first :data:`MAX_FORM_BYTES` (or
    fewer, the client gone) were read: what is unread cannot be checked.
    ``charsets`` are the ``Content-Type``'s ``charset`` parameters: a
    framework that decodes the body with one (Django does) reads names
    written in it (UTF-16, EBCDIC). (A multipart body is scanned as it
    streams: :class:`MultipartNames`.)
    """
    if not complete:
        return "form_too_large"
    forms: list[bytes | str] = [body, body.replace(b"\x00", b"")]
    for codec in {c for c in map(_codec, charsets) if c is not None}:
        forms += [body[start:].decode(codec, "ignore") for start in range(4)]
    return "token_in_body" if any(map(_token_in_query, forms)) else None
