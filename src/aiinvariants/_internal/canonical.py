"""The one canonical text form every text matcher compares in.

An answer can spell a protected text in many ways that a reader sees as the
same: fullwidth or mathematical letters, Cyrillic or Greek lookalikes,
zero-width characters between letters, non-breaking or em spaces, combining
marks, HTML entities, JSON or Python escapes. :func:`canonical` maps all of
them to one form, and keeps an offset map so that a finding in the canonical
text redacts the original span (:meth:`Canonical.span`).

The canonical form of a text, character by character:

1. HTML character references (``&#65;``, ``&#x41;``, ``&amp;``; an
   escaped reference such as ``&amp;#x41;`` is decoded through),
   ``\\uXXXX``, ``\\UXXXXXXXX``, ``\\xXX`` escapes, JSON's ``\\/`` and runs of URL
   percent-escapes (``%41%42``, UTF-8) are decoded, one level. Text hidden
   in invisible characters is decoded too: Unicode tag characters
   (U+E0020..U+E007E, "ASCII smuggling") become the ASCII they mirror, and
   a run of four or more variation selectors (U+FE00..U+FE0F,
   U+E0100..U+E01EF, one byte each) becomes the UTF-8 text of its bytes.
2. Every white space character (any Unicode space, line or paragraph
   separator) becomes one space, or one line break if it breaks lines. Runs
   keep their length, so offsets do not move; matchers that compare words
   skip white space (``fold`` also collapses runs).
3. Compatibility decomposition (NFKD: fullwidth, ligatures, circled and
   mathematical letters), then combining marks (Mn, Me) and format
   characters (Cf: zero-width spaces and joiners, soft hyphens, bidi
   controls) are dropped, and so are control characters (Cc) other than
   white space: a NUL or an ESC renders as nothing.
4. Decimal digits of every script become ASCII digits (Arabic-Indic ``٤`` is
   ``4``); lookalike letters become the ASCII letter they imitate (UTS #39
   confusables restricted to ASCII letter and digit prototypes, see
   :mod:`aiinvariants._internal._confusables`), and letters whose Unicode
   name spells their letter (small capitals, negative circled or squared
   letters, regional indicators) become it; the result is recomposed
   (NFKC).

:attr:`Canonical.cased` keeps letter case (for case-sensitive formats such
as credential prefixes); :attr:`Canonical.text` is also lower-cased. Both
have the same length and share one offset map. ASCII text without ``&``,
``%`` or ``\\`` keeps its offsets and costs three C-speed passes.
"""

from __future__ import annotations

import html.entities
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from aiinvariants._internal._confusables import LOOKALIKES

__all__ = ["Canonical", "canonical", "canonical_content", "fold"]

_LOOKALIKE: Final[dict[str, str]] = {
    src: target for target, sources in LOOKALIKES.items() for src in sources
}
_LINE_BREAKS: Final = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# Hangul fillers are letters (Lo) that render as nothing.
_INVISIBLE: Final = frozenset("\u115f\u1160\u3164\uffa0")
_DROPPED_CATEGORIES: Final = frozenset(("Mn", "Me", "Cf"))
# An entity may be escaped again (``&amp;#x41;``, ``&amp;amp;lt;``): the
# ``amp;`` layers are peeled, so double encoding decodes to the character.
_ENTITY = (
    r"&(?:amp;){0,4}"
    r"(?:#[0-9]{1,7};?|#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};)"
)
# JSON writes ``/`` as ``\/`` too (PHP's json_encode, many Java encoders):
# ``postgres:\/\/admin:…@db`` is a URL with its credentials
_ESCAPE = r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|/)"
_SELECTORS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"


# Where something may need decoding or folding is found at C speed (str.find
# for "&", "%" and "\\", isascii() over blocks for the rest), then the
# pattern of that kind is tried there.
_NON_ASCII: Final = re.compile("[^\\x00-\\x7f]|[\\x00-\\x08\\x0e-\\x1b\\x7f]")
# ASCII control characters render as nothing: a NUL or an ESC inside a
# credential must not hide it. (\\t-\\r and \\x1c-\\x1f are white space.)
_CONTROLS: Final = tuple(chr(c) for c in (*range(0x09), *range(0x0E, 0x1C), 0x7F))
_BLOCK: Final = 512
_KINDS: Final = (
    ("ent", re.compile(_ENTITY)),
    ("esc", re.compile(_ESCAPE)),
    ("pct", re.compile("%[0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2})*")),
    ("vs", re.compile(f"[{_SELECTORS}]+")),
    (
        "uni",
        re.compile(f"(?:[^\\x00-\\x7f{_SELECTORS}]|[\\x00-\\x08\\x0e-\\x1b\\x7f])+"),
    ),
)
_SELECTOR: Final = re.compile(f"[{_SELECTORS}]")
_KIND_OF: Final = {"&": 0, "\\": 1, "%": 2}
_MIN_SMUGGLED: Final = 4
_OTHER_SPACES: Final = "\t\r\x0b\x0c\x1c\x1d\x1e\x1f"
_ASCII_SPACE: Final = str.maketrans(
    {c: ("\n" if c in _LINE_BREAKS else " ") for c in _OTHER_SPACES}
)
_MAX_CODEPOINT: Final = 0x10FFFF

_Emit = Callable[[int, int, str], None]
# Letters that neither NFKD nor the confusables table maps to ASCII, though
# their Unicode name says which letter they are: Latin small capitals
# (``ᴀʙᴄ``), negative circled and squared letters, regional indicators.
_LETTER_NAMED: Final = re.compile(
    r"(?:LATIN LETTER SMALL CAPITAL|NEGATIVE (?:CIRCLED|SQUARED) LATIN CAPITAL LETTER"
    r"|REGIONAL INDICATOR SYMBOL LETTER) ([A-Z])\Z"
)


class _FoldTable(dict[int, str]):
    """``str.translate`` table folding any character, filled on first use."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < 65536:
            self[code] = folded
        return folded


"""Records that original ``[start, end)`` became a canonical string."""


def _named_letter(char: str) -> str | None:
    letter = _LETTER_NAMED.match(unicodedata.name(char, ""))
    if letter is None:
        return None
    return letter.group(1).lower() if "SMALL" in letter.group(0) else letter[1]


def _lookalike(part: str) -> str:
    folded = _LOOKALIKE.get(part)
    if folded is None:
        # A part of a decomposition can be a letter known only by its name
        # (a modifier small capital decomposes to the small capital).
        folded = _named_letter(part)
    if folded is None:
        # A capital whose small letter is a lookalike (U+0548, U+0578 for "n"):
        # folding only the small one would change the text a second time.
        folded = _LOOKALIKE.get(part.lower(), part)
    return folded


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """The canonical form of one character (cached: texts reuse few)."""
    if char in _LINE_BREAKS:
        return "\n"
    if char.isspace():
        return " "
    if char in _INVISIBLE or unicodedata.category(char) == "Cc":
        return ""
    code = ord(char)
    if 0xE0020 <= code <= 0xE007E:  # a tag character mirrors printable ASCII
        return chr(code - 0xE0000)
    letter = _named_letter(char)
    if letter is not None:  # small capitals, negative circled, regional
        return letter
    parts: list[str] = []
    for part in unicodedata.normalize("NFKD", char):
        category = unicodedata.category(part)
        if category in _DROPPED_CATEGORIES or part in _INVISIBLE:
            continue
        if category == "Nd":
            parts.append(str(unicodedata.decimal(part)))
        elif part.isspace():
            parts.append("\n" if part in _LINE_BREAKS else " ")
        else:
            parts.append(_lookalike(part))
    folded = unicodedata.normalize("NFKC", "".join(parts))
    if folded and folded.isspace():
        # A spacing diacritic (U+00A8, U+00B4...) decomposes to a space
        # and a combining mark; it is a visible character, not white space,
        # and splitting a value there would hide a password that holds one.
        return char
    return folded


_TABLE: Final = _FoldTable({c: chr(c) for c in range(128)})
_TABLE.update(_ASCII_SPACE)


def _decode_entity(ref: str) -> str | None:
    body = ref[1:]
    while body.startswith("amp;") and len(body) > 4:
        body = body[4:]
    body = body.rstrip(";")
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    else:
        return html.entities.html5.get(body + ";")
    if code > _MAX_CODEPOINT or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _decode_bytes(run: str, start: int, kind: str, replaced: _Emit) -> None:
    """A run of percent-escapes, or of variation selectors, as text.

    Each decoded character maps back to the escapes (or selectors) of its
    own bytes, so a finding redacts just those.
    """
    if kind == "pct":
        unit = 3
        data = bytes(int(run[i + 1 : i + 3], 16) for i in range(0, len(run), 3))
    else:
        unit = 1
        if len(run) < _MIN_SMUGGLED:  # an emoji's presentation selector
            replaced(start, start + len(run), "")
            return
        data = bytes(
            ord(c) - 0xFE00 if ord(c) <= 0xFE0F else ord(c) - 0xE0100 + 16 for c in run
        )
    i = 0
    while i < len(data):
        lead = data[i]
        size = 1 if lead < 0xC2 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        try:
            char = data[i : i + size].decode("utf-8")
        except UnicodeDecodeError:
            char, size = chr(lead), 1  # not UTF-8: the byte as Latin-1
        out = "".join(_fold_char(c) for c in char)
        replaced(start + i * unit, start + (i + size) * unit, out)
        i += size


def _decode_escape(esc: str) -> str | None:
    if esc == "\\/":
        return "/"
    code = int(esc[2:], 16)
    if code > _MAX_CODEPOINT or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


class Canonical:
    """A text in canonical form, with the map back to the original.

    Attributes:
        original: the text as given.
        cased: the canonical form, letter case kept.
        text: the canonical form, lower-cased (same length as ``cased``).
    """

    __slots__ = ("_canon_at", "_orig_at", "_text", "_whole", "cased", "original")

    def __init__(
        self,
        original: str,
        cased: str,
        canon_at: list[int],
        orig_at: list[int],
        whole: list[bool],
    ) -> None:
        self.original = original
        self.cased = cased
        self._text: str | None = None
        # Segment k starts at canonical index canon_at[k] and original index
        # orig_at[k]; it ends where segment k + 1 starts. In a segment with
        # whole[k] False both advance together; with whole[k] True every
        # canonical character stands for the whole original segment.
        self._canon_at = canon_at
        self._orig_at = orig_at
        self._whole = whole

    def __repr__(self) -> str:
        return (
            f"Canonical(original={len(self.original)} chars, {len(self.cased)} chars)"
        )

    @property
    def text(self) -> str:
        """The canonical form, lower-cased (computed on first use)."""
        if self._text is None:
            cased = self.cased
            lowered = cased.lower()
            if len(lowered) != len(cased):  # U+0130 and a few others grow
                lowered = "".join(
                    c if len(c.lower()) != 1 else c.lower() for c in cased
                )
            self._text = lowered
        return self._text

    @property
    def identity(self) -> bool:
        """True when the canonical form has the original's offsets."""
        return len(self._canon_at) <= 1 and not (self._whole and self._whole[0])

    def position(self, index: int) -> int:
        """The original index where canonical character ``index`` starts."""
        if self.identity:
            return index
        k = bisect_right(self._canon_at, index) - 1
        if k < 0:
            return 0
        if self._whole[k]:
            return self._orig_at[k]
        return self._orig_at[k] + index - self._canon_at[k]

    def end_position(self, index: int) -> int:
        """The original index where canonical character ``index`` ends."""
        if self.identity:
            return index + 1
        k = bisect_right(self._canon_at, index) - 1
        if k < 0:
            return 0
        if self._whole[k]:
            return self._orig_at[k + 1]  # a replaced segment is always followed
        return self._orig_at[k] + index - self._canon_at[k] + 1

    def index(self, position: int) -> int:
        """The canonical index of the first character that original
        ``position`` (or the replaced run it is in) gives; the index of the
        next character where it was dropped."""
        if self.identity:
            return position
        k = bisect_right(self._orig_at, position) - 1
        if k < 0:
            return 0
        if self._whole[k]:
            return self._canon_at[k]
        return self._canon_at[k] + position - self._orig_at[k]

    def changed(self, start: int = 0, end: int | None = None) -> list[int]:
        """The canonical positions in ``[start, end)`` whose character the
        original does not have there, sorted: every character of a decoded
        or replaced run (``&quot;``, ``%22``), the character after a dropped
        one (a zero-width character, a combining mark), and each folded one
        (fullwidth, a lookalike letter, a no-break space). ASCII white space
        (a tab, a carriage return) folding to a space or a line break is
        not a change."""
        cased, original = self.cased, self.original
        end = len(cased) if end is None else min(end, len(cased))
        if start >= end:
            return []
        if self.identity:
            runs = [(0, 0, False, len(cased))]
        else:
            k = max(0, bisect_right(self._canon_at, start) - 1)
            stop = bisect_right(self._canon_at, end - 1)
            ends = [*self._canon_at[k + 1 : stop + 1], len(cased)][: stop - k]
            runs = list(
                zip(
                    self._canon_at[k:stop],
                    self._orig_at[k:stop],
                    self._whole[k:stop],
                    ends,
                    strict=True,
                )
            )
        out: set[int] = set()
        for c0, o0, whole, c1 in runs:
            lo, hi = max(c0, start), min(c1, end)
            if lo >= hi:
                continue
            if whole:
                out.update(range(lo, hi))
                continue
            if c0 and lo == c0:
                out.add(c0)  # something was dropped or replaced before
            if original[o0 + lo - c0 : o0 + hi - c0] == cased[lo:hi]:
                continue  # nothing folded in this run
            for m in _NOT_ASCII.finditer(original, o0 + lo - c0, o0 + hi - c0):
                i = c0 + m.start() - o0
                if cased[i] != m.group():
                    out.add(i)
        return sorted(out)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span ``[s, e)`` covering canonical ``[start, end)``."""
        if self.identity:
            return (start, end)
        if end <= start:
            at = self.position(start) if start < len(self.text) else len(self.original)
            return (at, at)
        return (self.position(start), self.end_position(end - 1))


class _Built:
    """A canonical text as it is built piece by piece, with its offset map."""

    __slots__ = ("canon_at", "orig_at", "pieces", "size", "text", "whole")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pieces: list[str] = []
        self.canon_at: list[int] = [0]
        self.orig_at: list[int] = [0]
        self.whole: list[bool] = [False]
        self.size = 0

    def plain(self, start: int, end: int, out: str) -> None:
        """Original [start, end) became ``out`` character for character."""
        if not out:
            return
        if self.whole[-1] or self.orig_at[-1] + self.size - self.canon_at[-1] != start:
            self.canon_at.append(self.size)
            self.orig_at.append(start)
            self.whole.append(False)
        self.pieces.append(out)
        self.size += len(out)

    def replaced(self, start: int, end: int, out: str) -> None:
        """Original [start, end) became ``out`` as a whole."""
        self.canon_at.append(self.size)
        self.orig_at.append(start)
        self.whole.append(True)
        self.pieces.append(out)
        self.size += len(out)
        self.canon_at.append(self.size)
        self.orig_at.append(end)
        self.whole.append(False)

    def canonical(self) -> Canonical:
        return Canonical(
            self.text, "".join(self.pieces), self.canon_at, self.orig_at, self.whole
        )


def canonical(text: str) -> Canonical:
    """The canonical form of ``text`` (see the module docstring).

    Args:
        text: any text.

    Returns:
        The :class:`Canonical` form with its offset map.
    """
    if (
        "&" not in text
        and "\\" not in text
        and "%" not in text
        and not any(c in text for c in _CONTROLS)
    ):
        if text.isascii():
            return Canonical(text, _spaces(text), [0], [0], [False])
        if all(len(_fold_char(c)) == 1 for c in set(text) if not c.isascii()):
            # Every character folds to one: offsets do not move (C speed).
            return Canonical(text, text.translate(_TABLE), [0], [0], [False])
    elif not text.isascii() and _dense(text):
        built = _between_decoders(text)
        if built is not None:
            return built
    return _full(text)


def _dense(text: str) -> bool:
    """Whether ``text`` has more than about one non-ASCII character in 24
    (UTF-8 bytes beyond one per character, counted at C speed): then one
    ``str.translate`` of it (about 30 ns a character once any is non-ASCII)
    beats walking its non-ASCII runs one by one (about 1-3 us each)."""
    return (len(text.encode("utf-8", "surrogatepass")) - len(text)) * 24 > len(text)


def _between_decoders(text: str) -> Canonical | None:
    """:func:`_full` of a text whose only characters that do not fold to
    exactly one are in decoder matches (entities, escapes, percent-escapes,
    selector runs), or None for any other text.

    Decoder matches are ASCII or selectors, so they never start inside a run
    of other non-ASCII characters, nor such a run inside them: the matches
    found left to right by one search are those :func:`_full` decodes, and
    the text between two of them folds character for character (one
    ``str.translate``). Prose in any language that holds one ``%``, ``&``
    or backslash (a URL, code, an entity) walked every non-ASCII run in
    Python: about 450 ms per MB of French-like accented text instead of
    about 50.
    """
    if any(c in text for c in _CONTROLS):
        return None
    for c in set(text):
        if not c.isascii() and len(_fold_char(c)) != 1 and not _SELECTOR.match(c):
            return None
    built = _Built(text)
    plain, replaced = built.plain, built.replaced
    at = 0
    for match in _ANY_DECODER.finditer(text):
        start, end = match.span()
        if start > at:
            plain(at, start, text[at:start].translate(_TABLE))
        chunk = match.group()
        lead = chunk[0]
        if lead == "%":
            _decode_bytes(chunk, start, "pct", replaced)
        elif lead in "&\\":
            decoder = _decode_entity if lead == "&" else _decode_escape
            decoded = decoder(chunk)
            if decoded is None:
                plain(start, end, chunk)
            else:
                replaced(start, end, "".join(_fold_char(c) for c in decoded))
        else:
            _decode_bytes(chunk, start, "vs", replaced)
        at = end
    if at < len(text):
        plain(at, len(text), text[at:].translate(_TABLE))
    return built.canonical()


# Where a decoder would start: an entity, an escape, a percent-escape, a run
# of selectors (the patterns of _KINDS but the last), in one search.
_ANY_DECODER: Final = re.compile("|".join(f"(?:{p.pattern})" for _, p in _KINDS[:4]))
# Every character folded on its own, as step 3 and 4 fold it: ASCII kept
# (white space folded), ASCII controls dropped, the rest by _fold_char.
_CONTENT_TABLE: Final = _FoldTable({c: chr(c) for c in range(128)})
_CONTENT_TABLE.update(_ASCII_SPACE)
_CONTENT_TABLE.update(dict.fromkeys(map(ord, _CONTROLS), ""))


def canonical_content(text: str) -> Canonical:
    """:func:`canonical` of ``text`` for a caller that reads only the
    characters of the result (``cased``, ``text``), not where each came from.

    Where no decoder matches (no entity, escape, percent-escape or variation
    selector), the canonical form is each character folded on its own: one
    ``str.translate`` (C speed, each distinct character folded once) instead
    of the offset-keeping walk, which bytes decoded from base64 (control
    characters, combining marks, odd letters), many per long answer, would
    otherwise all take. The offset map is coarse: every canonical character
    maps to the whole of ``text``.
    """
    if _ANY_DECODER.search(text) is not None:
        return canonical(text)
    cased = text.translate(_CONTENT_TABLE)
    if cased == text:
        return Canonical(text, cased, [0], [0], [False])
    return Canonical(
        text, cased, [0, 0, len(cased)], [0, 0, len(text)], [False, True, False]
    )


def _full(text: str) -> Canonical:
    """The canonical form without the fast paths (every text goes through
    the decoders and the offset map); ``canonical`` of a text the fast paths
    take must equal it, which a property test checks."""
    built = _Built(text)
    plain, replaced = built.plain, built.replaced
    at = 0
    upcoming = {c: _next_special(text, c, 0) if c in text else -1 for c in "&%\\"}
    upcoming[""] = _next_non_ascii(text, 0)
    while True:
        pos = min((p for p in upcoming.values() if p != -1), default=-1)
        if pos == -1:
            break
        index = _KIND_OF.get(text[pos])
        if index is None:
            index = 3 if _SELECTOR.match(text, pos) else 4
        kind, pattern = _KINDS[index]
        match = pattern.match(text, pos)
        end = pos + 1 if match is None else match.end()
        if match is not None:
            start = pos
            if start > at:
                plain(at, start, _spaces(text[at:start]))
            chunk = match.group()
            if kind == "uni":
                _fold_run(chunk, start, plain, replaced)
            elif kind in ("pct", "vs"):
                _decode_bytes(chunk, start, kind, replaced)
            else:
                decoder = _decode_entity if kind == "ent" else _decode_escape
                decoded = decoder(chunk)
                if decoded is None:
                    plain(start, end, chunk)
                else:
                    replaced(start, end, "".join(_fold_char(c) for c in decoded))
            at = end
        for key, value in upcoming.items():
            if value != -1 and value < end:
                upcoming[key] = (
                    _next_non_ascii(text, end)
                    if key == ""
                    else _next_special(text, key, end)
                )
    if at < len(text):
        plain(at, len(text), _spaces(text[at:]))
    return built.canonical()


def _spaces(ascii_text: str) -> str:
    """ASCII white space other than space and line feed folded (C speed)."""
    if not any(c in ascii_text for c in _OTHER_SPACES):
        return ascii_text
    return ascii_text.translate(_ASCII_SPACE)


def _next_special(text: str, char: str, pos: int) -> int:
    """Where the next entity, escape or percent-escape starts, or -1."""
    found = _KINDS[_KIND_OF[char]][1].search(text, pos)
    return found.start() if found else -1


def _next_non_ascii(text: str, pos: int) -> int:
    """Index of the first non-ASCII character at or after ``pos``, or -1."""
    size = len(text)
    # The common case, decided at C speed: the whole text is plain ASCII.
    # Only from the start: a slice of the rest would copy it at every call
    # (once per non-ASCII run: quadratic on text that alternates them).
    if not pos and text.isascii() and not any(c in text for c in _CONTROLS):
        return -1
    while pos < size:
        end = min(size, pos + _BLOCK)
        block = text[pos:end]
        if not block.isascii() or any(c in block for c in _CONTROLS):
            found = _NON_ASCII.search(text, pos, end)
            return found.start() if found else end
        pos = end
    return -1


def _fold_run(run: str, start: int, plain: _Emit, replaced: _Emit) -> None:
    folded = [_fold_char(c) for c in run]  # cached: one dict lookup each
    if all(len(f) == 1 for f in folded):
        plain(start, start + len(run), "".join(folded))
        return
    for i, out in enumerate(folded):
        if len(out) == 1:
            plain(start + i, start + i + 1, out)
        else:
            replaced(start + i, start + i + 1, out)


def fold(text: str) -> str:
    """The lower-cased canonical form of a short text (names, model ids).

    White space runs become one space; leading and trailing white space is
    removed.
    """
    return " ".join(canonical(text).text.split())
