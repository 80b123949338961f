"""Values judged as written where the canonical form split them.

The rules judge the canonical form, where ``%3B``, ``%20``, ``&#9;`` or a
JSON ``\\t`` are decoded: a character that ends or splits a value (``;``, a
space, a tab, ``&``, a quote…) appears inside it, and the judge sees a short
value (``S3cr``) or a spaced phrase (``Tr0ub dor!Qx9z``). The answer shows
``S3cr%3Bt!Pass99``: one value.

This module finds those decoded characters (what the canonical form turned
into one splitting character: escapes, read back through its offset map so
that every decoder counts, or a non-ASCII character folded into one between
ASCII characters; glued to value characters on both sides) and builds,
around them, windows of the canonical
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
password). A line break only when percent-encoded (``%0A`` is inside a URL)
or a backslash escape (``\\u000a`` is inside a JSON or code string, shown as
written, like ``\\n``); a decoded ``&#10;`` is a line break where it is
rendered."""
_PERCENT_BREAKS: Final = frozenset("\n\r")

# Where the canonical form may have turned something into a splitter: an
# escape (``%``, ``&``, a backslash: whatever it decodes is read back through
# its offset map, so every decoder counts, double-encoded entities and long
# names included), or a non-ASCII character whose fold holds one (fullwidth
# and small forms, lookalikes, parenthesized or fraction forms, tag
# characters), listed in full by ``tests/attacks/test_redteam_secret_written``.
# Each is looked at where it starts (C speed), never every changed character:
# text in a script without spaces (CJK) is mostly non-ASCII.
_FOLDS: Final = (
    "[\u00bc-\u00be\u037e\u1735\u1fef\u2041\u2044\u207d-\u207e"
    "\u208d-\u208e\u2100-\u2101\u2105-\u2106\u2150-\u215f\u2189\u2215"
    "\u226e-\u226f\u2474-\u2487\u249c-\u24b5\u2571\u27cb\u29f8\u2cc6\u2f03"
    "\u3033\u30ce\u31d3\u3200-\u321e\u3220-\u3243\u32e8\u3328-\u3329"
    "\u33a7-\u33a8\u33ae-\u33af\u33c6\u33de-\u33df\u4e3f\ufe10\ufe14"
    "\ufe35-\ufe38\ufe47-\ufe48\ufe50\ufe54\ufe59-\ufe5c\ufe5f-\ufe60"
    "\ufe64-\ufe65\ufe68\ufe6b\uff02-\uff03\uff06-\uff09\uff0c\uff0f"
    "\uff1b-\uff1c\uff1e\uff20\uff3b-\uff3d\uff40\uff5b-\uff5d\uff89"
    "\U0001d23a\U0001f101-\U0001f10a\U0001f110-\U0001f129"
    "\U000e0022-\U000e0023\U000e0026-\U000e0029\U000e002c\U000e002f"
    "\U000e003b-\U000e003c\U000e003e\U000e0040\U000e005b-\U000e005d"
    "\U000e0060\U000e007b-\U000e007d]"
)
# what a value's character may be written as next to it: ASCII, or a form
# the canonical form folds to it (fullwidth, Latin, Greek and Cyrillic
# lookalikes, mathematical letters and digits), not ideographs or kana
_VALUE_CHAR: Final = "[!-~\u00c0-\u04ff\uff01-\uff5e\U0001d400-\U0001d7ff]"
# a folded character counts between value characters only (tried at the
# places the offset map gives, never at every position of the answer)
_ONE_FOLD: Final = re.compile(_FOLDS)
_FOLD_IN_VALUE: Final = re.compile(f"(?<={_VALUE_CHAR}){_FOLDS}+(?={_VALUE_CHAR})")

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
    out: list[tuple[int, str]] = []
    folded: set[int] = set()
    for origin in _origins(canon):
        at = canon.index(origin)
        # every character it gives (a parenthesized digit gives three)
        while at < len(cased):
            start, end = canon.span(at, at + 1)
            if start != origin:
                break
            kind = _kind(original[start:end], cased[at])
            if not kind and _escaped_splitter(original, start):
                # a quote escaped in a string, a ';' or a space escaped
                # in a shell word: the backslash and what it escapes
                # are the value's
                out.append((at, "_"))
                if cased[at + 1 : at + 2] in SPLITTERS:
                    out.append((at + 1, "_"))
                break
            if kind:
                out.append((at, "_"))
                if kind == "folded":
                    folded.add(at)
            at += 1
    gaps = _gaps(sorted({at for at, _ in out}))
    return [
        p
        for p in out
        if _glued(cased, *gaps[p[0]])
        and (p[0] not in folded or _ascii_around(cased, *gaps[p[0]]))
        and not _scheme_slash(cased, p[0])
    ]


def _gaps(written: list[int]) -> dict[int, tuple[int, int]]:
    """For each written position, the positions just outside the run of
    written positions it is in (one pass: a run of thousands of them costs
    no more than its length)."""
    gaps: dict[int, tuple[int, int]] = {}
    first = 0
    for i, at in enumerate(written):
        if i + 1 < len(written) and written[i + 1] == at + 1:
            continue
        bounds = (written[first] - 1, at + 1)
        for member in written[first : i + 1]:
            gaps[member] = bounds
        first = i + 1
    return gaps


def _origins(canon: Canonical) -> list[int]:
    """Where in the original a decoded or folded character starts (from the
    offset map: every decoder counts), and every backslash (a splitter it
    escapes is not decoded). Found at C speed: a pattern tried at every
    position of the answer cost several times the whole scan."""
    original = canon.original
    found: set[int] = set()
    run_end, covered = -1, set[int]()  # the run of folds last looked at
    for origin in sorted({canon.span(at, at + 1)[0] for at in canon.changed()}):
        # an escape starts with an ASCII character; a fold counts only in a
        # run of folds between value characters
        if original[origin].isascii():
            found.add(origin)
            continue
        if origin > run_end:
            run_end, covered = _folds_in_value(original, origin)
        if origin in covered:
            found.add(origin)
    slash = original.find("\\")
    while slash != -1:
        found.add(slash)
        slash = original.find("\\", slash + 1)
    return sorted(found)


def _folds_in_value(original: str, at: int) -> tuple[int, set[int]]:
    """The end of the run of folds ``at`` starts or is in, and the positions
    in it that lie between value characters (what the pattern finds searching
    the run from its start). Origins come sorted: a run is read once."""
    start = at
    while start > 0 and _ONE_FOLD.match(original, start - 1):
        start -= 1
    end = at
    while _ONE_FOLD.match(original, end + 1):
        end += 1
    covered: set[int] = set()
    for found in _FOLD_IN_VALUE.finditer(original, start):
        if found.start() > end:
            break
        covered.update(range(found.start(), found.end()))
    return end, covered


# What a backslash escapes inside a value: a splitter, or a character a
# shell would read (an escaped '!' or '$'); not a backslash (a Windows path
# in JSON) nor a letter (a newline escape, a Windows path: judged as written).
_ESCAPED: Final = (SPLITTERS - frozenset("\\")).union("!$")


def _escaped_splitter(original: str, at: int) -> bool:
    """A backslash at ``at`` escaping a splitter (not itself escaped)."""
    return (
        original[at] == "\\"
        and original[at + 1 : at + 2] in _ESCAPED
        and original[at + 1 : at + 2] != ""
        and original[at - 1 : at] != "\\"
    )


def _scheme_slash(cased: str, at: int) -> bool:
    """A ``/`` of a URL's ``://`` (JSON writes it ``:\\/\\/``): the URL's
    structure, not a character inside a value."""
    return cased[at] == "/" and (
        cased.startswith("://", at - 1) or cased.startswith("://", at - 2)
    )


def _kind(written: str, char: str) -> str:
    """``decoded``, ``folded`` or ``""``: whether ``written`` (the original
    of one canonical character ``char``) put a splitter there."""
    if written == char or not written:
        return ""  # the character itself (after a dropped one)
    if written.isascii():
        # decoded from escapes (ASCII changes only through a decoder)
        if char in SPLITTERS or (char in _PERCENT_BREAKS and written[0] in "%\\"):
            return "decoded"
        return ""
    if char in SPLITTERS and len(written) == 1 and not written.isspace():
        # a character folded into one (fullwidth, a lookalike): shown as
        # itself, glued to the value (a space folded stays a space)
        return "folded"
    return ""


def _ascii_around(cased: str, left: int, right: int) -> bool:
    """ASCII on both sides of a folded character's gap (``left``, ``right``:
    just outside it): a value, not CJK prose and its fullwidth punctuation
    (a fullwidth comma between two ideographs)."""
    return left >= 0 and right < len(cased) and (cased[left] + cased[right]).isascii()


def _glued(cased: str, left: int, right: int) -> bool:
    """A value character on each side of a gap (``left``, ``right``: just
    outside it): not white space, not the text's edge, not a delimiter
    written as such (``&`` of a query, a quote…; ``@`` and ``/`` are
    characters of a value too)."""
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
