"""The optional vectorscan pre-scan of :class:`~aiinvariants.filters.SecretsFilter`.

With the ``hyperscan`` extra (the ``hyperscan`` package, which bundles
vectorscan) installed, one vectorscan pass finds every place where a rule
could fire, like the RE2 pre-scan of :mod:`aiinvariants.filters._prescan`,
over the same anchors and the same bytes; the same pure-Python candidate
tests then run in the windows, and the same judges decide. Only the way the
places are found differs:

* vectorscan reports every match of every anchor (not RE2's leftmost,
  non-overlapping ones) with its leftmost start (``HS_FLAG_SOM_LEFTMOST``):
  more places, never fewer, so every window RE2 would open is opened.
* An anchor vectorscan cannot compile with a start offset (the assignment
  shape's anchors are too large for it), or cannot track one cheaply (an
  anchor led by a character class), is replaced by its *keywords* (the
  literals one of which each of its matches holds, where the pure path
  tries the rule), which match wherever the anchor does. The anchor itself
  is compiled without a start offset, as a gate: a keyword occurrence after
  its last match end lies in no match and opens no window.
* Past a bounded number of reports (text made of anchors, or a long run
  a gate reports at every character), the scan stops
  and the text takes the pure-Python path: the same findings, at its cost.

The database is compiled once per process and ruleset (about 2 s of CPU,
on the first scan); each thread gets its own scratch space. An engine
error during a scan hands the text to the pure path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Final

from aiinvariants.filters._prescan import _NEVER, ascii_bytes

__all__ = ["HyperscanPrescan", "hyperscan_prescan"]

# RE2's empty class; in vectorscan's byte mode a byte the scanned bytes
# never hold (every non-ASCII character is read as "?").
_NEVER_BYTE: Final = r"\xff"
# Matches reported per scan before the text takes the pure-Python path.
_MIN_CAP: Final = 4096


class HyperscanPrescan:
    """One vectorscan pass that finds the windows where rules may fire.

    Args:
        db: the anchors compiled with start offsets, then the gates (ids
            from ``len(keywords)`` on... see :func:`hyperscan_prescan`).
        gates: the id in ``db`` of each gate.
        keywords: per gate, its keyword prefix compiled on its own, scanned
            only up to the gate's last match end (an open gate, None in
            ``gates``, lets every keyword occurrence through).
    """

    __slots__ = ("_db", "_gates", "_keywords", "_local", "reach")

    def __init__(
        self, db: Any, gates: list[int | None], keywords: list[Any], reach: int
    ) -> None:
        self._db = db
        self._gates = {
            ident: slot for slot, ident in enumerate(gates) if ident is not None
        }
        self._keywords = list(zip(keywords, [g is None for g in gates], strict=True))
        self._local = threading.local()
        self.reach = reach

    def __deepcopy__(self, memo: dict[int, Any]) -> HyperscanPrescan:
        # compiled and read-only (scratch is per thread): a deep copy of a
        # filter shares it, as with the pure path (a database cannot be copied)
        return self

    def windows(self, text: str) -> Iterator[tuple[int, int]] | None:
        """The spans of ``text`` around every anchor match, or None when the
        text must take the pure-Python path."""
        data = ascii_bytes(text)
        if data is None:
            return None
        hits = self._hits(data)
        return None if hits is None else iter(self._spans(hits, len(data)))

    def _scratch(self, slot: int, db: Any) -> Any:
        """This thread's scratch space for database ``slot`` (0: the main one)."""
        scratches: dict[int, Any] | None = getattr(self._local, "scratches", None)
        if scratches is None:
            scratches = self._local.scratches = {}
        scratch = scratches.get(slot)
        if scratch is None:
            import hyperscan  # type: ignore[import-untyped,import-not-found,unused-ignore]

            scratch = scratches[slot] = hyperscan.Scratch(db)
        return scratch

    def _hits(self, data: bytes) -> list[tuple[int, int]] | None:
        import hyperscan

        hits: list[tuple[int, int]] = []
        gates = self._gates
        gate_end = [-1] * len(self._keywords)
        # every report costs a Python call, a gate's too (it reports every
        # end offset: ``[A-Za-z0-9_-]{33,}`` one per character of a long
        # run), so all count against the cap
        left = [_MIN_CAP + len(data) // 16]
        append = hits.append

        def on_match(ident: int, start: int, end: int, _flags: int, _ctx: Any) -> bool:
            left[0] -= 1
            if left[0] < 0:
                return True
            slot = gates.get(ident)
            if slot is not None:
                if end > gate_end[slot]:
                    gate_end[slot] = end
                return False
            append((start, end))
            return False

        try:
            self._db.scan(
                data, match_event_handler=on_match, scratch=self._scratch(0, self._db)
            )
            for slot, (keyword, is_open) in enumerate(self._keywords):
                # a keyword occurrence after the gate's last match end cannot
                # start a match of the anchor: only the text before it is read
                stop = len(data) if is_open else gate_end[slot]
                if stop > 0:
                    keyword.scan(
                        data[:stop],
                        match_event_handler=on_match,
                        scratch=self._scratch(slot + 1, keyword),
                    )
        except hyperscan.error:  # the cap (ScanTerminated) or an engine error:
            return None  # the pure path decides, with the same findings
        return hits

    def _spans(self, hits: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
        reach = self.reach
        out: list[tuple[int, int]] = []
        start = end = -1
        for hit_start, hit_end in sorted(hits):
            if start != -1 and hit_start > end:
                out.append((start, min(end, size)))
                start = -1
            if start == -1:
                start = hit_start
            end = max(end, hit_end + reach)
        if start != -1:
            out.append((start, min(end, size)))
        return out


def _literal_led(anchor: str) -> bool:
    """Whether ``anchor`` starts with a literal character: then vectorscan
    tracks its start offsets cheaply. An anchor led by a class
    (``[0-9a-f]{32,}-us…``) costs many times more with start offsets than
    as a gate (measured: 5.2x against 0.25x ``str.lower()`` over 1 MB)."""
    body = anchor.removeprefix("(?i:").removeprefix("(?:")
    return bool(body) and (body[0].isalnum() or body[0] in "_-")


def _compiles(hyperscan: Any, expression: bytes, flags: int) -> bool:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(expressions=[expression], ids=[0], flags=[flags])
    except hyperscan.error:
        return False
    return True


def hyperscan_prescan(
    pairs: list[tuple[str, str]], reach: int
) -> HyperscanPrescan | None:
    """The compiled vectorscan pre-scan over the ``(anchor, keyword prefix)``
    pairs of :func:`~aiinvariants.filters._prescan.anchor_pairs`, or None
    without the ``hyperscan`` extra (or when an anchor is not ASCII).

    ``hyperscan`` is imported here, on first use, so ``import aiinvariants``
    does not pay for it.
    """
    try:
        import hyperscan
    except ImportError:
        return None
    if not pairs or not all(a.isascii() and k.isascii() for a, k in pairs):
        return None  # a rule with a non-ASCII literal: the engine sees "?"
    som = hyperscan.HS_FLAG_SOM_LEFTMOST
    expressions: list[bytes] = []
    gated: list[tuple[bytes, bytes]] = []
    for anchor, keyword in pairs:
        expression = anchor.replace(_NEVER, _NEVER_BYTE).encode("ascii")
        if _literal_led(anchor) and _compiles(hyperscan, expression, som):
            expressions.append(expression)
        else:
            gated.append((keyword.encode("ascii"), expression))
    flags = [som] * len(expressions)
    gates: list[int | None] = []
    keywords: list[Any] = []
    for literal, expression in gated:
        words = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            words.compile(expressions=[literal], ids=[0], flags=[som])
        except hyperscan.error:
            return None
        keywords.append(words)
        if _compiles(hyperscan, expression, 0):
            gates.append(len(expressions))
            expressions.append(expression)
            flags.append(0)
        else:
            gates.append(None)
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(
            expressions=expressions, ids=list(range(len(expressions))), flags=flags
        )
    except hyperscan.error:
        return None
    return HyperscanPrescan(db, gates, keywords, reach)
