"""Values judged as written where the canonical form split them.

The rules judge the canonical form, where ``%3B``, ``%20``, ``&#9;`` or a
JSON ``\\t`` are decoded: a character that ends or splits a value (``;``, a
space, a tab, ``&``, a quote…) appears inside it, and the judge sees a short
value (``S3cr``) or a spaced phrase (``Tr0ub dor!Qx9z``). The answer shows
``S3cr%3Bt!Pass99``: one value.

This module finds those decoded characters (an escape in the original that
the canonical form turned into one splitting character, glued to value
characters on both sides) and builds, around them, windows of the canonical
text where each is written back as ``_``: the value stays one value, as in
the answer, and the character joins its parts the way an identifier does,
so ``YOUR%20API%20KEY`` reads as the placeholder ``YOUR_API_KEY`` and a
phrase of words stays a phrase. Same length, so the canonical offset map
still maps a finding back to the original; the filter scans those windows
too and keeps what they add over a decoded character. Cost: nothing unless
the original has an escape that decoded to a splitter; then a window of
about two thousand characters around each (overlapping ones merged).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from aiinvariants._internal.canonical import Canonical

__all__ = ["SPLITTERS", "WrittenWindow", "written_windows"]

SPLITTERS: Final = frozenset(" \t;&\"'`#,|<>()[]{}@/\\")
"""Characters that end or split a value (``@`` and ``/`` end a URL's
password). A line break only when percent-encoded (``%0A`` is inside a URL;
a decoded ``&#10;`` is a line break where it is rendered)."""
_PERCENT_BREAKS: Final = frozenset("\n\r")

# Escapes the canonical form decodes, located in the original (what each
# decodes to is the canonical form's business: read back through its map).
_ESCAPE: Final = re.compile(
    r"%[0-9A-Fa-f]{2}"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,9});?"
    r"|\\(?:[tbfv\"'\\/ ]|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})"
)
# one character may come from several escapes (UTF-8 bytes: %E2%80%83)
_ESCAPES: Final = re.compile(f"(?:{_ESCAPE.pattern})+")
_EDGE: Final = frozenset(" \t\n\r\f\v").union(SPLITTERS - frozenset("@/\\"))


class WrittenWindow:
    """A stretch of canonical text with decoded splitters written back.

    Attributes:
        start: where the window starts in the canonical text.
        text: the window, same length as the canonical stretch.
        written: the canonical positions written back (absolute).
    """

    __slots__ = ("start", "text", "written")

    def __init__(self, start: int, text: str, written: tuple[int, ...]) -> None:
        self.start = start
        self.text = text
        self.written = written

    def __repr__(self) -> str:
        return f"WrittenWindow(start={self.start}, {len(self.text)} chars)"


def decoded_splitters(canon: Canonical) -> list[tuple[int, str]]:
    """(canonical position, ``_``) of each decoded splitting character
    glued to value characters on both sides (a run of them counts as one
    gap)."""
    original, cased = canon.original, canon.cased
    if canon.identity or _ESCAPE.search(original) is None:
        return []
    out: list[tuple[int, str]] = []
    for at in canon.changed():
        char = cased[at]
        if char not in SPLITTERS and char not in _PERCENT_BREAKS:
            continue
        start, end = canon.span(at, at + 1)
        # decoded as one character from escapes only
        if _ESCAPES.fullmatch(original, start, end) is None:
            continue
        if char in SPLITTERS or original[start] == "%":
            out.append((at, "_"))
    written = {at for at, _ in out}
    return [p for p in out if _glued(cased, p[0], written)]


def _glued(cased: str, at: int, written: set[int]) -> bool:
    """A value character on each side of the gap ``at`` is in: not white
    space, not the text's edge, not a delimiter written as such (``&`` of a
    query, a quote…; ``@`` and ``/`` are characters of a value too)."""
    left = at - 1
    while left >= 0 and left in written:
        left -= 1
    right = at + 1
    while right < len(cased) and right in written:
        right += 1
    return (
        left >= 0
        and right < len(cased)
        and cased[left] not in _EDGE
        and cased[right] not in _EDGE
    )


def written_windows(
    canon: Canonical, text: str, left: int, right: int
) -> Iterator[WrittenWindow]:
    """Windows of ``text`` (the canonical text being scanned, same length as
    ``canon.cased``) around each decoded splitter, reaching ``left``
    characters before and ``right`` after it, overlapping ones merged."""
    found = decoded_splitters(canon)
    if not found:
        return
    group: list[tuple[int, str]] = []
    for item in found:
        if group and item[0] - left > group[-1][0] + right:
            yield _window(text, group, left, right)
            group = []
        group.append(item)
    yield _window(text, group, left, right)


def _window(
    text: str, group: list[tuple[int, str]], left: int, right: int
) -> WrittenWindow:
    start = max(0, group[0][0] - left)
    end = min(len(text), group[-1][0] + right + 1)
    chars = list(text[start:end])
    for at, char in group:
        chars[at - start] = char
    return WrittenWindow(start, "".join(chars), tuple(at for at, _ in group))
