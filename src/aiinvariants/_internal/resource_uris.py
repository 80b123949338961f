"""Resource URIs and URI templates: one canonical form, exact and safe matching.

A policy declares resources by URI (``docs://public/faq``) or by URI
template (``docs://public/{name}``, ``file:///kb/{+path}``). A request names
a concrete URI. Both are brought to one canonical form before they are
compared, so two spellings of the same resource always meet the same entry:

- only the characters RFC 3986 allows (ASCII unreserved, reserved and
  ``%XX``); anything else (white space, controls, ``\\``, non-ASCII,
  a ``{`` smuggled into a concrete URI, a malformed ``%``) is refused;
- the scheme and the authority are lower-cased; userinfo (``user@``) and
  fragments (``#...``) are refused;
- percent-encoded unreserved characters are decoded (``%41`` -> ``A``), the
  hex digits of every other escape upper-cased (``%2f`` -> ``%2F``);
  ``%00`` is refused;
- ``.`` and ``..`` path segments (``%2E%2E`` too) and empty segments inside
  the path (``a//b``) are refused, never resolved.

Templates accept RFC 6570 ``{var}`` (one path segment), ``{+var}`` (one or
more segments; at most one per template) and a trailing ``{?a,b}`` (an
optional query). A variable's value, once percent-decoded, may not hold
``/`` (except ``{+var}``), ``\\``, NUL, a ``.``/``..`` segment or an empty
segment, nor still hold an escape (``%252E``, encoded twice); a URI whose
value breaks that is refused, not matched elsewhere.

Precedence: an exact key wins over every template; among templates, the
most specific wins (the most literal characters); templates equally specific
that all match are all applied (see ``aiinvariants.resources``).

Matching is linear: a bounded variable stops at the first character of the
literal after it, so no pattern backtracks over a URI.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_URI_LENGTH",
    "ResourceURIError",
    "Template",
    "canonical_uri",
    "parse_key",
]

MAX_URI_LENGTH: Final = 8192

_UNRESERVED: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_RESERVED: Final = frozenset(":/?#[]@!$&'()*+,;=")
_ALLOWED: Final = _UNRESERVED | _RESERVED | {"%"}
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_VARNAME: Final = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_HEX: Final = frozenset("0123456789abcdefABCDEF")


class ResourceURIError(ValueError):
    """A URI or template that does not parse; the message never quotes it."""


def _decode_unreserved(text: str) -> str:
    """Decode ``%XX`` of unreserved characters, upper-case the others."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        pair = text[i + 1 : i + 3]
        if len(pair) != 2 or not all(c in _HEX for c in pair):
            raise ResourceURIError("a '%' must be followed by two hex digits")
        value = chr(int(pair, 16))
        if value == "\0":
            raise ResourceURIError("a URI may not contain %00 (NUL)")
        out.append(value if value in _UNRESERVED else "%" + pair.upper())
        i += 3
    return "".join(out)


def _check_chars(text: str, *, braces: bool) -> None:
    extra = {"{", "}"} if braces else set()
    if any(c not in _ALLOWED and c not in extra for c in text):
        raise ResourceURIError(
            "a resource URI may hold only the characters RFC 3986 allows "
            "(ASCII letters, digits, -._~ :/?#[]@!$&'()*+,;= and %XX escapes)"
        )


def _split_scheme(text: str) -> tuple[str, str]:
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise ResourceURIError("a resource URI must start with a scheme ('docs:')")
    return scheme.lower(), rest


def _check_path(path: str) -> None:
    segments = path.split("/")
    # A leading "/" gives one empty first segment, a trailing "/" one empty
    # last segment: both are spelled, not smuggled. Empty ones between are not.
    for index, segment in enumerate(segments):
        if segment in (".", ".."):
            raise ResourceURIError("a resource URI may not hold '.' or '..' segments")
        if not segment and 0 < index < len(segments) - 1:
            raise ResourceURIError("a resource URI may not hold empty segments ('//')")


def _authority_end(rest: str) -> int:
    ends = [i for i in (rest.find("/", 2), rest.find("?", 2)) if i != -1]
    return min(ends) if ends else len(rest)


def canonical_uri(uri: object) -> str:
    """The canonical form of a concrete resource URI (cached for strings).

    Raises:
        ResourceURIError: ``uri`` is not a string, too long, or does not
            parse by the rules in this module's docstring.
    """
    if not isinstance(uri, str) or not uri:
        raise ResourceURIError("a resource URI must be a non-empty string")
    return _canonical(uri)


@functools.lru_cache(maxsize=4096)
def _canonical(uri: str) -> str:
    if len(uri) > MAX_URI_LENGTH:
        raise ResourceURIError(f"a resource URI may be at most {MAX_URI_LENGTH} long")
    _check_chars(uri, braces=False)
    if "#" in uri:
        raise ResourceURIError("a resource URI may not carry a fragment ('#')")
    text = _decode_unreserved(uri)
    scheme, rest = _split_scheme(text)
    authority = ""
    if rest.startswith("//"):
        end = _authority_end(rest)
        authority, rest = rest[:end].lower(), rest[end:]
        if "@" in authority:
            raise ResourceURIError("a resource URI may not carry userinfo ('user@')")
    path, _, _query = rest.partition("?")
    _check_path(path)
    return f"{scheme}:{authority}{rest}"


# -- templates ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled URI template of a policy key.

    Attributes:
        key: the canonical template text.
        pattern: a regular expression over canonical URIs.
        variables: (name, operator) of each variable, in order.
        literal: how many literal characters it has (its specificity).
    """

    key: str
    pattern: re.Pattern[str]
    variables: tuple[tuple[str, str], ...]
    literal: int

    def match(self, canonical: str) -> bool:
        """Whether ``canonical`` (a :func:`canonical_uri`) is this template's.

        Raises:
            ResourceURIError: the URI has the template's shape, but a
                variable's value is unsafe (see the module docstring).
        """
        found = self.pattern.fullmatch(canonical)
        if found is None:
            return False
        for (_, op), value in zip(self.variables, found.groups(), strict=True):
            if op != "?":
                _check_value(value, op)
        return True


def _check_value(value: str, op: str) -> None:
    decoded = re.sub(
        "%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value
    )  # _decode_unreserved already upper-cased every escape
    if "\\" in decoded or "\0" in decoded or not decoded:
        raise ResourceURIError("a template variable holds '\\', NUL or nothing")
    if re.search("%[0-9A-Fa-f]{2}", decoded):
        # Encoded twice (%252E): a handler that decodes again sees '..'.
        raise ResourceURIError("a template variable is percent-encoded twice")
    parts = decoded.split("/")
    if op == "" and len(parts) > 1:
        raise ResourceURIError("a '{var}' value may not hold '/' (%2F)")
    if any(part in ("", ".", "..") for part in parts):
        raise ResourceURIError(
            "a template variable may not hold '.', '..' or empty segments"
        )


_TOKEN: Final = re.compile(r"\{([^{}]*)\}")


def _tokens(key: str) -> list[tuple[str, str]]:
    """``("lit", text)`` and ``("var", body)`` pieces; braces must pair."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    for found in _TOKEN.finditer(key):
        if found.start() > pos:
            pieces.append(("lit", key[pos : found.start()]))
        pieces.append(("var", found.group(1)))
        pos = found.end()
    if pos < len(key):
        pieces.append(("lit", key[pos:]))
    if any("{" in t or "}" in t for kind, t in pieces if kind == "lit"):
        raise ResourceURIError("a URI template's braces must pair ('{name}')")
    return pieces


def _expression(body: str) -> tuple[str, tuple[str, ...]]:
    op = body[:1] if body[:1] in ("+", "?") else ""
    names = tuple(body[len(op) :].split(","))
    if not all(_VARNAME.fullmatch(n) for n in names):
        raise ResourceURIError(
            "a template expression is '{name}', '{+name}' or '{?a,b}' (names of "
            "letters, digits and '_'); other RFC 6570 operators are not supported"
        )
    if op != "?" and len(names) > 1:
        raise ResourceURIError("'{a,b}' is not supported: one variable per braces")
    return op, names


def _compile(pieces: list[tuple[str, str]]) -> Template:
    regex: list[str] = []
    variables: list[tuple[str, str]] = []
    literal = 0
    seen_plus = False
    for index, (kind, text) in enumerate(pieces):
        if kind == "lit":
            regex.append(re.escape(text))
            literal += len(text)
            continue
        op, names = _expression(text)
        after = pieces[index + 1] if index + 1 < len(pieces) else None
        if op == "?":
            if after is not None:
                raise ResourceURIError("'{?...}' must end the template")
            variables.append((",".join(names), "?"))
            regex.append(r"(\?[^#]*)?")
            continue
        if index == 0 or pieces[index - 1][0] == "var":
            raise ResourceURIError(
                "a template variable needs literal text before it (no '{a}{b}')"
            )
        if op == "+":
            if seen_plus:
                raise ResourceURIError("a template may hold one '{+name}' at most")
            seen_plus = True
            regex.append(r"([^?#]+)")
        else:
            # Stops at the first character of the next literal: linear, and
            # a value never swallows the text that anchors the rest.
            stop = after[1][:1] if after is not None and after[0] == "lit" else ""
            regex.append("([^/?#" + re.escape(stop) + "]+)")
        variables.append((names[0], op))
    key = "".join(t if k == "lit" else "{" + t + "}" for k, t in pieces)
    return Template(key, re.compile("".join(regex)), tuple(variables), literal)


def parse_key(key: object) -> str | Template:
    """A policy key: the canonical URI, or a compiled :class:`Template`.

    Raises:
        ResourceURIError: the key is neither a URI nor a supported template.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_URI_LENGTH:
        raise ResourceURIError(
            f"a resource key must be a URI or URI template of 1-{MAX_URI_LENGTH} "
            "characters"
        )
    if "{" not in key and "}" not in key:
        return canonical_uri(key)
    _check_chars(key, braces=True)
    if "#" in key:
        raise ResourceURIError("a resource URI may not carry a fragment ('#')")
    pieces = _tokens(key)
    if pieces[0][0] != "lit":
        raise ResourceURIError("a resource URI template must start with a scheme")
    scheme, rest = _split_scheme(pieces[0][1])
    pieces[0] = ("lit", f"{scheme}:{rest}")
    # Canonical literals: decode unreserved escapes; lower-case the
    # authority's literal text (a request's authority is lower-cased whole).
    in_authority = rest.startswith("//")
    out: list[tuple[str, str]] = []
    for index, (kind, text) in enumerate(pieces):
        if kind == "var":
            out.append((kind, text))
            continue
        text = _decode_unreserved(text)
        if in_authority:
            start = len(scheme) + 3 if index == 0 else 0
            cut = [i for i in (text.find("/", start), text.find("?", start)) if i >= 0]
            end = min(cut) if cut else len(text)
            if "@" in text[:end]:
                raise ResourceURIError("a resource URI may not carry userinfo")
            text = text[:end].lower() + text[end:]
            in_authority = not cut
        out.append((kind, text))
    # Dot and empty segments in the literal path are refused as in URIs.
    flat = "".join(t if k == "lit" else "x" for k, t in out)
    path = flat.split("?", 1)[0]
    if path.partition(":")[2].startswith("//"):
        after_scheme = path.partition(":")[2]
        end = after_scheme.find("/", 2)
        path = after_scheme[end:] if end >= 0 else ""
    _check_path(path)
    return _compile(out)
