"""Registered secrets of :class:`~aiinvariants.filters.SecretsFilter`.

Split from :mod:`aiinvariants.filters._secrets` (size): a value the
application knows, compiled once to its literals (as written, canonical,
URL-encoded, base64 at every alignment, hex) and a normalized regex (any
case, up to three separators between characters), and the search for them
in a text, also when an encoding is broken by white space.
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

from aiinvariants._internal.canonical import canonical
from aiinvariants.filters._base import Action, Finding, fingerprint

__all__ = [
    "ALNUM_ONLY",
    "MIN_REGISTERED",
    "Registered",
    "nth_alnum_from_end",
    "scan_registered",
]

MIN_REGISTERED: Final = 8
_MIN_REGISTERED: Final = MIN_REGISTERED


def _b64_variants(raw: bytes) -> set[str]:
    out: set[str] = set()
    for pad in range(3):
        data = b"\0" * pad + raw
        first = -(-8 * pad // 6)
        last = (8 * len(data)) // 6
        for enc in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            part = enc.decode("ascii")[first:last]
            if len(part) >= _MIN_REGISTERED:
                out.add(part)
    return out


class Registered:
    """One registered secret, compiled to literals and a normalized regex."""

    __slots__ = (
        "hex_spaced",
        "literals",
        "lowered",
        "normalized",
        "reach",
        "skeletons",
    )

    def __init__(self, value: str) -> None:
        raw = value.encode("utf-8")
        folded = canonical(value).cased
        literals = {value, folded, quote(value, safe="")} | _b64_variants(raw)
        self.literals = tuple(sorted(v for v in literals if len(v) >= 8))
        hexed = binascii.hexlify(raw).decode("ascii")
        self.lowered = (hexed,)
        # Hex with a separator, ``0x`` or ``%`` between bytes (``de:ad``,
        # ``0xde, 0xad``, ``%de%ad``); ``\\xde\\xad`` is decoded by the
        # canonical form and found as the value itself.
        pairs = [hexed[i : i + 2] for i in range(0, len(hexed), 2)]
        self.hex_spaced = re.compile("(?:0x|%)?" + _HEX_SEP.join(pairs), re.IGNORECASE)
        # What a partial match at the end of a streamed text can look like.
        self.skeletons = {
            _skeleton(v) for v in (*self.literals, hexed, "0x" + "0x".join(pairs))
        }
        # Between two letters or digits of the secret, allow up to three
        # inserted separators per gap the value itself has there (a value
        # "ab-cd" spaced out as "a b - c d" has five).
        parts: list[str] = []
        gap = 0
        for char in value:
            if not char.isalnum():
                gap += 1
                continue
            if parts:
                parts.append(rf"[\W_]{{0,{3 * (gap + 1) + gap}}}")
            parts.append(re.escape(char.lower()))
            gap = 0
        self.normalized = re.compile("".join(parts), re.IGNORECASE)
        # Base64 broken by a line break every few characters, or hex with
        # three separators per byte, is at most this long.
        # An encoding broken by white space has gaps of at most _MAX_GAP.
        longest = max(len(v) for v in (*self.literals, hexed))
        self.reach = max(
            8 * len(value), 6 * len(raw) + 8, 3 * len(raw) + 8, longest * (_MAX_GAP + 1)
        )


_MAX_GAP: Final = 16
"""White space between two pieces of a broken encoding (a line break and its
indentation): a longer gap ends the encoding, which keeps findings local."""
# Starts only where a piece starts, and never backtracks into a piece: linear.
_GROUPS: Final = re.compile(rf"(?<!\S)\S++(?:\s{{1,{_MAX_GAP}}}+\S++)+")


def _without_white_space(text: str, needles: Iterable[str]) -> list[tuple[int, int]]:
    """Where ``needles`` occur once white space is removed (base64 or hex
    broken by line breaks or spaces), as spans of ``text``. Only gaps of at
    most ``_MAX_GAP`` white space characters are bridged."""
    out: list[tuple[int, int]] = []
    needles = tuple(needles)
    for group in _GROUPS.finditer(text):
        _joined_hits(group.group(), group.start(), needles, out)
    return out


def _joined_hits(
    text: str, offset: int, needles: tuple[str, ...], out: list[tuple[int, int]]
) -> None:
    pieces = text.split()
    joined = "".join(pieces)
    # starts[i]: where piece i begins in text; at[i]: where in joined.
    starts: list[int] = []
    at: list[int] = []
    pos = 0
    size = 0
    for piece in pieces:
        pos = text.index(piece, pos)
        starts.append(pos)
        at.append(size)
        pos += len(piece)
        size += len(piece)
    for needle in needles:
        hit = joined.find(needle)
        while hit != -1:
            first = bisect_right(at, hit) - 1
            last = bisect_right(at, hit + len(needle) - 1) - 1
            if first != last:  # a match inside one piece is found directly
                start = starts[first] + hit - at[first]
                end = starts[last] + hit + len(needle) - at[last]
                out.append((offset + start, offset + end))
            hit = joined.find(needle, hit + 1)


_HEX_SEP: Final = r"(?:[\s:,;\-]{0,3}(?:0x|%)?)"
_ALNUM_ONLY: Final = re.compile(r"[^0-9a-z]+")


def _nth_alnum_from_end(text: str, n: int) -> int:
    """Index in ``text`` of its ``n``-th ASCII letter or digit from the end."""
    at = len(text)
    while n:
        at -= 1
        if "0" <= text[at] <= "9" or "a" <= text[at] <= "z":
            n -= 1
    return at


def _skeleton(text: str) -> str:
    """Lower-case letters and digits only: what every encoding keeps."""
    return _ALNUM_ONLY.sub("", text.lower())


ALNUM_ONLY: Final = _ALNUM_ONLY
nth_alnum_from_end = _nth_alnum_from_end


def scan_registered(
    text: str,
    lowered: str,
    entry: Registered,
    found: dict[tuple[int, int, str], Finding],
    action: Action,
) -> None:
    """Record every place of ``text`` where ``entry`` occurs, in any of its
    encodings (``lowered``: ``text`` lower-cased)."""
    hits: list[tuple[int, int]] = []
    for haystack, needles in ((text, entry.literals), (lowered, entry.lowered)):
        for needle in needles:
            pos = haystack.find(needle)
            while pos != -1:
                hits.append((pos, pos + len(needle)))
                pos = haystack.find(needle, pos + 1)
    for pattern in (entry.normalized, entry.hex_spaced):
        match = pattern.search(text)
        while match is not None:
            hits.append(match.span())
            match = pattern.search(text, match.start() + 1)
    hits.extend(_without_white_space(text, entry.literals))
    hits.extend(_without_white_space(lowered, entry.lowered))
    for start, end in hits:
        key = (start, end, "registered-secret")
        if key not in found:
            found[key] = Finding(
                "registered-secret",
                start,
                end,
                "critical",
                fingerprint(text[start:end]),
                action,
            )
