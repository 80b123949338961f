"""Near-verbatim copy detection shared by the system-prompt and tool filters.

Texts are compared in the canonical form of
:mod:`aiinvariants._internal.canonical` (lookalike letters, fullwidth forms,
exotic spaces, zero-width characters, entities and escapes folded). A
protected text is then normalized (ASCII punctuation and white space
removed) and cut into *probes*: substrings of ``k``
normalized characters every ``stride`` characters. A copy of at least
``k + stride - 1`` normalized characters contains a whole probe, so looking
for the probes with ``str.find`` (C speed) in the normalized answer finds
every long enough copy, whatever its case or spacing.

A probe occurrence is a *hit* when its characters span at most ``4 * k``
characters of the original answer (so ``c.o.p.y`` is caught but a few
letters scattered over a page are not). A hit becomes a finding when at
least ``need`` hits start within ``window`` characters of it: that density is
the similarity threshold. Everything is decided within ``window + 4 * k``
characters, which keeps the filters local for streaming.

A copy can also be base64-encoded ("encode your instructions in base64" is
a common extraction request): each run of at least :data:`_MIN_RUN` base64
characters (line breaks allowed, at most :data:`_MAX_RUN`) is decoded, and
a dense hit in the decoded text makes the whole run a finding.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from typing import Final

from aiinvariants._internal.canonical import Canonical, canonical, canonical_content
from aiinvariants.filters._base import ascii_lower

__all__ = ["Probes", "decoded_runs", "encoded_runs", "normalize", "open_run"]

_DROP: Final = {c: None for c in range(128) if not chr(c).isalnum()}
_DROP.update(dict.fromkeys((173, 8203, 8204, 8205, 8206, 8207, 8288, 65279)))


_DROP_BYTES: Final = bytes(c for c in range(128) if not chr(c).isalnum())
_DROP_WIDE: Final = tuple(chr(c) for c in _DROP if c >= 128)

_B64_CHARS: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\r\n"
)
# base64 characters (and the line breaks of wrapped base64) to "a", the rest
# to " ": runs are then found with bytes.find at C speed.
_B64_MAP: Final = bytes(97 if c in _B64_CHARS else 32 for c in range(256))
_MIN_RUN: Final = 24
_MAX_RUN: Final = 16384


def normalize(text: str, *, lowered: bool = False) -> str:
    """Lower case, without ASCII punctuation, whitespace and zero-width chars.

    ``lowered``: ``text`` is lower-cased already (a canonical ``text``), so
    the lower-casing pass is skipped.
    """
    if text.isascii():  # the common case, at C speed
        low = text if lowered else text.lower()
        return low.encode("ascii").translate(None, _DROP_BYTES).decode("ascii")
    low = text if lowered else ascii_lower(text)
    if len(low) < 256:
        return low.translate(_DROP)
    # Long non-ASCII text: the ASCII characters _DROP removes are removed
    # from the UTF-8 bytes (a multi-byte character has no byte below 0x80),
    # then the few zero-width characters it also removes, if any: C speed,
    # where str.translate looks up every character (about 8x slower).
    kept = (
        low.encode("utf-8", "surrogatepass")
        .translate(None, _DROP_BYTES)
        .decode("utf-8", "surrogatepass")
    )
    if any(c in kept for c in _DROP_WIDE):
        kept = kept.translate(_DROP)
    return kept


def _kept_positions(text: str) -> list[int]:
    lowered = ascii_lower(text)
    return [i for i, ch in enumerate(lowered) if ord(ch) not in _DROP]


_KEPT_BLOCK: Final = 1024


class _KeptIndex:
    """``_kept_positions(text)[j]`` without walking the whole text in Python.

    Whether :func:`normalize` keeps a character depends on that character
    alone, so the kept characters are counted block by block at C speed
    (``len(normalize(block))``) and only the blocks a hit falls in are
    walked, each once. A probe hit in a long answer (one quoted phrase of the
    system prompt in 1 MB) cost a Python pass over the whole answer.
    """

    __slots__ = ("_blocks", "_counts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._counts = [0]
        total = 0
        for at in range(0, len(text), _KEPT_BLOCK):
            total += len(normalize(text[at : at + _KEPT_BLOCK]))
            self._counts.append(total)
        self._blocks: dict[int, list[int]] = {}

    def __getitem__(self, index: int) -> int:
        block = bisect_right(self._counts, index) - 1
        positions = self._blocks.get(block)
        if positions is None:
            at = block * _KEPT_BLOCK
            chunk = self._text[at : at + _KEPT_BLOCK]
            positions = [at + i for i in _kept_positions(chunk)]
            self._blocks[block] = positions
        return positions[index - self._counts[block]]


# From this many probes on (a system prompt of about 500 characters and
# more), a long answer is searched for all probes in one pass over aligned
# blocks (see Probes._block_hits) instead of one str.find pass per probe:
# the blocks cost about as much as 50 such passes (measured side by side in
# benchmarks/bench_filters.py), and each probe one pass.
_BLOCKS_FROM: Final = 50
_BLOCKS_TEXT: Final = 4096


# Probes._blocks: version, block size, the blocks' possible texts, the
# longest probe length, the shorter probes.
_BlockIndex = tuple[object, int, frozenset[bytes], int, tuple[str, ...]]


@dataclass(frozen=True)
class _Probe:
    text: str
    source: int
    need: int


class Probes:
    """The probes of a set of protected texts, and the hits they find."""

    def __init__(self, *, k: int, stride: int, window: int) -> None:
        self.k = k
        self.stride = stride
        self.window = window
        self._probes: dict[str, _Probe] = {}
        # What is derived from the probes (the prefixes hold() reads, the
        # aligned-block index) is tagged with the ``_version`` it was built
        # from: a text protected while another thread builds one (a tool
        # output registered during a check) changes ``_version`` after its
        # probes are in, so a stale build is never reused.
        self._version = object()
        self._prefixes: tuple[object, frozenset[str]] | None = None
        self._last: tuple[Canonical, list[tuple[int, int, _Probe]]] | None = None
        self._sources = 0
        self._shortest = 0
        # The aligned-block index (version, block size, the blocks' possible
        # texts, the longest probe length, the shorter probes), built on
        # first use after a change.
        self._blocks: _BlockIndex | None = None

    @property
    def empty(self) -> bool:
        """True when nothing is protected."""
        return not self._probes

    @property
    def context(self) -> int:
        """Characters on each side a decision depends on."""
        return self.window + 4 * self.k

    def add(self, text: str, *, threshold: float, cap: int = 16) -> None:
        """Protect ``text``; ``threshold`` sets how dense a copy must be."""
        norm = normalize(canonical(text).text)
        if len(norm) < 8:
            return
        k = min(self.k, len(norm))
        starts = list(range(0, len(norm) - k + 1, self.stride))
        if starts[-1] != len(norm) - k:
            starts.append(len(norm) - k)
        need = max(1, round(threshold * min(len(starts), cap) + 0.4999))
        source = self._sources
        self._sources += 1
        self._shortest = min(self._shortest, k) if self._probes else k
        for start in starts:
            probe = norm[start : start + k]
            old = self._probes.get(probe)
            if old is None or need < old.need:
                self._probes[probe] = _Probe(probe, source, need)
        self._version = object()  # after the probes are in (see __init__)

    def clear(self) -> None:
        """Forget every protected text."""
        self._probes.clear()
        self._shortest = 0
        self._version = object()

    def _hits(
        self, text: str, *, shared: bool = False
    ) -> list[tuple[int, int, _Probe]]:
        """Every probe occurrence in ``text`` (canonical), sorted by start.

        ``shared``: ``text`` is a whole answer every protecting filter
        scans; its normalized form is computed once for all of them.
        """
        norm = _normalized(text) if shared else normalize(text)
        if len(norm) < self._shortest:  # no probe fits (a decoded short run)
            return []
        if (
            len(self._probes) >= _BLOCKS_FROM
            and len(norm) >= _BLOCKS_TEXT
            and norm.isascii()
        ):
            raw = self._block_hits(norm)
        else:
            raw = []
            for probe in self._probes.values():
                at = norm.find(probe.text)
                while at != -1:
                    raw.append((at, at + len(probe.text), probe))
                    at = norm.find(probe.text, at + 1)
        if not raw:
            return []
        kept = (
            _KeptIndex(text) if len(text) > 4 * _KEPT_BLOCK else _kept_positions(text)
        )
        hits: list[tuple[int, int, _Probe]] = []
        for a, b, probe in raw:
            start, end = kept[a], kept[b - 1] + 1
            if end - start <= 4 * self.k:
                hits.append((start, end, probe))
        hits.sort(key=lambda h: (h[0], h[1]))
        return hits

    def _block_hits(self, norm: str) -> list[tuple[int, int, _Probe]]:
        """Every probe occurrence in the ASCII text ``norm``, overlapping ones
        included: what one ``str.find`` pass per probe finds, in one pass.

        The probes of the longest length ``k`` (every protected text at
        least ``k`` long gives only those) are found over blocks of ``size =
        (k + 1) // 2`` characters at multiples of ``size``: every occurrence
        (``2 * size - 1`` characters or more) holds a whole block, and that
        block is a substring of its probe. So only the blocks whose text is
        a ``size``-substring of some probe (cut and looked up in a set at C
        speed) can lie in an occurrence, and each occurrence is found by
        trying the ``k - size + 1`` starts around such a block: about one
        try per character of a copy. The few shorter probes (one per
        protected text shorter than ``k``) take one ``str.find`` pass each:
        blocks sized for them would cost ``k / size`` tries per character.
        """
        version = self._version  # read before the probes (see __init__)
        index = self._blocks
        if index is None or index[0] is not version:
            # One snapshot of the probes (list() copies the keys at once).
            texts = [t for t in list(self._probes) if t.isascii()]  # norm: ASCII
            longest = max(map(len, texts), default=0)
            size = max(1, (longest + 1) // 2)
            grams = frozenset(
                t[i : i + size].encode("ascii")
                for t in texts
                if len(t) == longest
                for i in range(longest - size + 1)
            )
            shorter = tuple(t for t in texts if len(t) < longest)
            index = (version, size, grams, longest, shorter)
            self._blocks = index
        _, size, grams, longest, shorter = index
        if not longest:
            return []
        raw: list[tuple[int, int, _Probe]] = []
        for text in shorter:
            short = self._probes.get(text)
            at = norm.find(text)
            while short is not None and at != -1:
                raw.append((at, at + len(text), short))
                at = norm.find(text, at + 1)
        data = norm.encode("ascii")
        usable = len(data) - len(data) % size
        blocks = map(
            itemgetter(0), struct.iter_unpack(f"{size}s", memoryview(data)[:usable])
        )
        found: set[int] = set()
        last = len(norm) - longest  # the last start a whole probe fits at
        for start in compress(range(0, usable, size), map(grams.__contains__, blocks)):
            for at in range(max(0, start + size - longest), min(start, last) + 1):
                probe = self._probes.get(norm[at : at + longest])
                if probe is not None and at not in found:
                    found.add(at)
                    raw.append((at, at + longest, probe))
        return raw

    def _dense(self, hits: list[tuple[int, int, _Probe]]) -> list[int]:
        """Indexes of the hits dense enough to be a leak."""
        starts = [h[0] for h in hits]
        out: list[int] = []
        for index, (start, _end, probe) in enumerate(hits):
            lo = bisect_left(starts, start - self.window)
            hi = bisect_right(starts, start + self.window)
            dense = sum(1 for h in hits[lo:hi] if h[2].source == probe.source)
            if dense >= probe.need:
                out.append(index)
        return out

    def _encoded(self, canon: Canonical) -> list[tuple[int, int, int]]:
        """Base64 runs that decode to a dense copy, as original spans."""
        out: list[tuple[int, int, int]] = []
        for start, end, texts in decoded_runs(canon):
            for decoded in texts:
                hits = self._hits(decoded.text)
                dense = self._dense(hits)
                if dense:
                    out.append((*canon.span(start, end), hits[dense[0]][2].source))
                    break
        return out

    def findings(self, canon: Canonical) -> list[tuple[int, int, int]]:
        """``(start, end, source)`` of every hit dense enough to be a leak.

        Spans are in the original text of ``canon``.
        """
        if not self._probes:
            return []
        encoded = self._encoded(canon)
        hits = self._hits(canon.text, shared=True)
        self._last = (canon, hits)  # hold() on the same text reuses them
        starts = [h[0] for h in hits]
        out: list[tuple[int, int, int]] = []
        for start, end, probe in hits:
            lo = bisect_left(starts, start - self.window)
            hi = bisect_right(starts, start + self.window)
            dense = sum(1 for h in hits[lo:hi] if h[2].source == probe.source)
            if dense >= probe.need:
                out.append((*canon.span(start, end), probe.source))
        return out + encoded

    def hold(self, canon: Canonical) -> int:
        """The canonical index from which more text could change a finding.

        A hit not complete yet starts at the longest suffix of the
        normalized text that begins some probe; a complete hit within
        ``window`` of that point may still gain the neighbours that make it
        dense. Everything before is decided.
        """
        text = canon.text
        if not self._probes:
            return len(text)
        tail = text[-8 * self.k :]
        norm = normalize(tail)
        version = self._version  # read before the probes (see __init__)
        built = self._prefixes
        if built is None or built[0] is not version:
            built = (
                version,
                frozenset(p[:i] for p in list(self._probes) for i in range(1, len(p))),
            )
            self._prefixes = built
        prefixes = built[1]
        hold = len(text)
        for size in range(min(len(norm), self.k - 1), 0, -1):
            if norm[-size:] in prefixes:
                hold = len(text) - len(tail) + _nth_kept_from_end(tail, size)
                break
        run = open_run(canon)
        if run is not None:
            hold = min(hold, run)
        if self.window:
            lo = max(0, hold - self.window - 4 * self.k)
            last = self._last
            if last is not None and last[0] is canon:
                hits = [h for h in last[1] if h[0] >= lo]
            else:
                hits = [(s + lo, e + lo, p) for s, e, p in self._hits(text[lo:])]
            if hits:
                hold = min(hold, hits[0][0])
        return hold


def _nth_kept_from_end(text: str, n: int) -> int:
    """Index in ``text`` of the ``n``-th character :func:`normalize` keeps,
    counting from the end."""
    at = len(text)
    while n:
        at -= 1
        if normalize(text[at]):
            n -= 1
    return at


def _ascii_bytes(text: str) -> bytes:
    # One byte per character: positions in the bytes are positions in text.
    return text.encode("ascii", "replace")


def _stretches(text: str, table: bytes, least: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each maximal stretch of at least ``least``
    characters that ``table`` maps to ``a`` (found at C speed)."""
    if text.isascii():
        # str.translate of ASCII through an ASCII table is about twice as
        # fast as bytes.translate; the same stretches, found the same way.
        yield from _ascii_stretches(text, _str_table(table), least)
        return
    mapped = _ascii_bytes(text).translate(table)
    needle = b"a" * least
    pos = mapped.find(needle)
    while pos != -1:
        while pos > 0 and mapped[pos - 1] == 97:
            pos -= 1
        end = mapped.find(b" ", pos)
        end = len(mapped) if end == -1 else end
        yield pos, end
        pos = mapped.find(needle, end)


_STR_TABLES: dict[bytes, dict[int, int]] = {}


def _str_table(table: bytes) -> dict[int, int]:
    """``table`` (a bytes.translate table) for str.translate over ASCII."""
    found = _STR_TABLES.get(table)
    if found is None:
        found = {c: table[c] for c in range(128)}
        _STR_TABLES[table] = found
    return found


def _ascii_stretches(
    text: str, table: dict[int, int], least: int
) -> Iterator[tuple[int, int]]:
    mapped = text.translate(table)
    needle = "a" * least
    pos = mapped.find(needle)
    while pos != -1:
        while pos > 0 and mapped[pos - 1] == "a":
            pos -= 1
        end = mapped.find(" ", pos)
        end = len(mapped) if end == -1 else end
        yield pos, end
        pos = mapped.find(needle, end)


def _b64_runs(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of base64 characters long enough."""
    return [
        (start, end)
        for start, end in _stretches(text, _B64_MAP, _MIN_RUN)
        if end - start <= _MAX_RUN
    ]


# Hex written byte by byte ("5a d5 a6", "5a:d5:a6", "0x5a, 0xd5", "0x5ad5",
# a line break and its indentation between two bytes):
# the separators and the "0x" end a base64 run, so these runs are found on
# their own. Each repetition takes two hex digits: no backtracking to speak of.
_HEX_RUN: Final = re.compile(
    r"(?:0[xX])?[0-9a-fA-F]{2}"
    r"(?:(?:, ?|[ \t:-]|\r?\n[ \t]{0,16})?(?:0[xX])?[0-9a-fA-F]{2})"
    r"{7,8191}"
)
_HEX_SEPARATORS: Final = re.compile(r"0[xX]|[\s:,-]")
_HEX_RUN_CHARS: Final = "0123456789abcdefABCDEFxX \t\r\n:,-"


_HEX_MAP: Final = bytes(97 if chr(c) in _HEX_RUN_CHARS else 32 for c in range(256))


def _hex_runs(text: str) -> Iterator[re.Match[str]]:
    """Each :data:`_HEX_RUN` of ``text``; the regex only runs inside
    stretches of hex digits and separators long enough (found at C speed).

    A stretch longer than :data:`_MAX_RUN` is not decoded, like a base64
    run past it: the regex cut it into pieces of 8192 bytes counted from
    the stretch's start, which a stream (holding an open run up to
    ``_MAX_RUN`` characters, see :func:`open_run`) cannot know once that
    start is behind it, so a copy hex-encoded after 8 KB of hex filler was
    blocked by the one-shot check and streamed out whole."""
    for start, end in _stretches(text, _HEX_MAP, 16):
        if end - start <= _MAX_RUN:
            yield from _HEX_RUN.finditer(text, start, end)


def encoded_runs(canon: Canonical) -> Iterator[tuple[int, int, list[str]]]:
    """Each base64 run and each run of hex bytes of ``canon`` (canonical
    start and end) with the texts it may encode. The length cap counts the
    original characters: combining marks, escapes or invisible characters
    between its letters do not stretch it."""
    seen: set[tuple[int, int, str]] = set()
    for start, end in _b64_runs(canon.cased):
        span = canon.span(start, end)
        if span[1] - span[0] <= _MAX_RUN:
            seen.add((start, end, canon.cased[start:end]))
            yield start, end, _b64_texts(canon.cased[start:end])
    for match in _hex_runs(canon.cased):
        start, end = match.span()
        span = canon.span(start, end)
        digits = _HEX_SEPARATORS.sub("", match.group())
        if (start, end, digits) in seen:
            continue  # a base64 run of hex digits only: already decoded
        if span[1] - span[0] <= _MAX_RUN:
            texts = _hex_texts(digits)
            if texts:
                yield start, end, texts


# The last text's normalized form and decoded base64 runs, matched by
# identity: the system-prompt, canary and tool-output probes and the secrets
# filter all scan the same canonical text of one check (one entry each, so a
# different text is never confused with it; a concurrent check at worst
# computes them again).
_last_norm: tuple[str, str] | None = None
_last_decoded: tuple[Canonical, list[tuple[int, int, list[Canonical]]]] | None = None


def _normalized(text: str) -> str:
    global _last_norm
    last = _last_norm
    if last is not None and last[0] is text:
        return last[1]
    norm = normalize(text, lowered=True)  # a canonical text: lower-cased
    _last_norm = (text, norm)
    return norm


def decoded_runs(canon: Canonical) -> list[tuple[int, int, list[Canonical]]]:
    """:func:`encoded_runs` with each decoded text in canonical form,
    computed once per canonical text."""
    global _last_decoded
    last = _last_decoded
    if last is not None and last[0] is canon:
        return last[1]
    runs = [
        # Only the decoded characters are read, never their offsets.
        (start, end, [canonical_content(text) for text in texts])
        for start, end, texts in encoded_runs(canon)
    ]
    _last_decoded = (canon, runs)
    return runs


def open_run(canon: Canonical) -> int | None:
    """Canonical index where a base64 run still open at the end starts (it
    may still decode to something), capped like :func:`encoded_runs`."""
    found = (_open_b64_run(canon.cased), _open_hex_run(canon.cased))
    runs = [r for r in found if r is not None]
    runs = [r for r in runs if len(canon.original) - canon.position(r) <= _MAX_RUN]
    return min(runs, default=None)


def _open_hex_run(text: str) -> int | None:
    """Where a run of hex bytes still open at the end starts ("5a d5 a6 "
    goes on after its separator; see :data:`_HEX_RUN`)."""
    tail = text[-64:]
    run = len(tail) - len(tail.rstrip(_HEX_RUN_CHARS))
    if run == len(tail):  # a long run: look further back
        tail = text[-_MAX_RUN - 1 :]
        run = len(tail) - len(tail.rstrip(_HEX_RUN_CHARS))
    at = len(text) - run
    while at < len(text) and text[at] not in _HEX_DIGITS:
        at += 1
    return at if at < len(text) and run <= _MAX_RUN else None


def _open_b64_run(text: str) -> int | None:
    """Where a base64 run still open at the end starts (it may still decode)."""
    tail = _ascii_bytes(text[-64:]).translate(_B64_MAP)
    if b" " not in tail:  # a long run: look further back
        tail = _ascii_bytes(text[-_MAX_RUN - 1 :]).translate(_B64_MAP)
    at = tail.rfind(b" ") + 1
    size = len(tail) - at
    if size == 0 or size > _MAX_RUN:
        return None
    return len(text) - size


_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def _hex_texts(run: str) -> list[str]:
    """The text a run of hex digits encodes (both alignments of an odd run):
    hex of a lookalike or fullwidth copy is not the hex of the value's own
    bytes, so it is decoded and left to the canonical form."""
    if len(run) < 16 or not _HEX_DIGITS.issuperset(run):
        return []
    pieces = [run] if len(run) % 2 == 0 else [run[1:], run[:-1]]
    out: list[str] = []
    for piece in pieces:
        decoded = bytes.fromhex(piece).decode("utf-8", "ignore")
        if decoded:
            out.append(decoded)
    return out


def _b64_texts(run: str) -> list[str]:
    """The texts a base64 run may encode (a run of hex digits: its bytes
    first, see :func:`_hex_texts`): one per piece between padding
    (two encodings can be glued together) and per alignment of the piece's
    start (it may begin with characters that are not part of it). Whether a
    text is a copy is left to the probes: bytes that are not text find none.
    """
    joined = "".join(run.split())
    data = joined.replace("-", "+").replace("_", "/")
    out: list[str] = _hex_texts(joined)
    for piece in data.split("="):
        for skip in range(min(4, len(piece))):
            body = piece[skip:]
            rest = len(body) % 4
            body = body[:-1] if rest == 1 else body + "=" * (-rest % 4)
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                continue
            decoded = raw.decode("utf-8", "ignore")
            if decoded:
                out.append(decoded)
    return out
