"""The optional native pre-scan of :class:`~aiinvariants.filters.SecretsFilter`.

With the ``re2`` extra (``google-re2``) installed, one RE2 pass over the
text finds every place where a rule could fire; the pure-Python candidate
search (its keyword passes, the token-run scan) then runs only in small
windows around those places, and every rule still runs in ``re``, unchanged.
Without ``re2`` nothing here is used and the filter is exactly what it was.

Why the findings are the same. Each rule fires only where the pure-Python
path *tries* it, and only when its own regex matches there. The RE2 pattern
is one alternation of *anchors*, each a superset of one such place:

* a token rule: its own regex, loosened into RE2 syntax (lookarounds
  dropped, a back-reference replaced by what its group matches, a
  conditional by both branches, long counted repeats made open-ended),
  which matches wherever the rule does;
* a context keyword: the keyword and its rules' shapes, loosened the same
  way; the assignment rule's shape, whose "the value is not code" test is a
  negative lookahead, gets a positive RE2 form from
  :mod:`aiinvariants.filters._assignment_syntax`;
* an upper-case keyword of a rule with a ``cased_shape`` (tried over the
  text as written: ``ENV PASSWORD value``): the keyword, case-sensitive, and
  its cased shape loosened (the assignment rule's from its RE2 form, which
  consumes the value's first 8 characters instead of looking ahead at them).

A match of an anchor that RE2 skips (it reports leftmost, non-overlapping
matches) lies inside one it reports, so the windows around the reported
matches cover every place a rule can fire. Inside a window the pure-Python
tests run exactly as before (the keyword, the token run of at least 16
characters with a digit or capital, the shape), so no place is tried that
the pure path would not try. A differential test proves both engines report
the same findings on the corpora, the fresh-format cases and generated text.

RE2 runs over bytes: in text that is not ASCII every non-ASCII character is
replaced by ``?`` (offsets kept; classes that match such a character in
Python match ``?`` in the loosened form). Four characters that Python's
case-insensitive matching equates with an ASCII letter (U+0130, U+0131,
U+017F, U+212A) would be lost that way; a text holding one of them takes
the pure path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = ["Prescan", "anchor_pairs", "ascii_bytes", "loosen", "native_prescan"]

_QUANT: Final = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")
# Counted repeats above this become open-ended: RE2 compiles a repeat to as
# many copies, which makes its DFA large and slow for no selectivity.
_MAX_COUNT: Final = 16
_MAX_LOW: Final = 64
# Python's \s (str patterns) also matches \v and \x1c-\x1f, RE2's does not;
# "?" stands for the non-ASCII white space (canonical text has none).
_SPACES: Final = r"\s\x0b\x1c-\x1f?"
_NEVER: Final = r"[^\x00-\x{10FFFF}]"  # an empty class: RE2 has no (?!)
# Characters Python's case-insensitive matching (or ``str.lower``) equates
# with an ASCII letter; replaced by "?" they would no longer match.
_CASE_FOLDS_TO_ASCII: Final = ("\u0130", "\u0131", "\u017f", "\u212a")


class _Loosen:
    """A recursive-descent rewrite of a Python regex into an RE2 regex that
    matches at least wherever the original does (see :func:`loosen`)."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.groups: dict[str, str] = {}
        self.bar = False

    def run(self) -> str:
        out = self.seq()
        if self.i != len(self.p):
            raise ValueError("unbalanced parenthesis")
        return out

    def seq(self) -> str:
        """Rewrite up to the ``)`` closing the current group; ``bar`` tells
        whether it had a top-level ``|``."""
        p = self.p
        out: list[str] = []
        bar = False
        while self.i < len(p):
            c = p[self.i]
            if c == ")":
                break
            if c == "|":
                bar = True
            if c == "\\":
                nxt = p[self.i + 1]
                self.i += 2
                if nxt in "bB":  # a word boundary: Unicode-dependent, dropped
                    continue
                if nxt == "Z":
                    out.append(r"\z")
                elif nxt == "w":
                    out.append(r"[\w?]")
                elif nxt == "s":
                    out.append(f"[{_SPACES}]")
                elif nxt == "d":
                    out.append(r"[\d?]")
                else:
                    out.append("\\" + nxt)
                    self._quantifier(out)
                    continue
                self._quantifier(out)
            elif c == "[":
                out.append(self._class())
                self._quantifier(out)
            elif c == "(":
                piece = self._group()
                if piece:
                    out.append(piece)
                    self._quantifier(out)
                else:
                    self._skip_quantifier()
            elif c == "$":
                # Python's "$" also matches before a final line break
                self.i += 1
                out.append(r"(?:$|\n)")
            else:
                self.i += 1
                out.append(c)
                if c not in "|^":
                    self._quantifier(out)
        self.bar = bar
        return "".join(out)

    def _class(self) -> str:
        p = self.p
        start = self.i
        self.i += 1
        negated = p.startswith("^", self.i)
        if negated:
            self.i += 1
        if p.startswith("]", self.i):
            self.i += 1
        while p[self.i] != "]":
            self.i += 2 if p[self.i] == "\\" else 1
        self.i += 1
        body = p[start + 1 : self.i - 1]
        if negated:
            # "?" stands for any non-ASCII character: it must stay matched.
            body = body.replace(r"\?", "").replace("?", "")
            return f"[{body}]" if body != "^" else r"[\s\S]"
        if "\\s" in body:  # Python's \s also has \v and \x1c-\x1f
            body += _SPACES
        return f"[{body}?]" if "\\w" in body else f"[{body}]"

    def _group(self) -> str:
        p = self.p
        self.i += 1
        if p.startswith("?!)", self.i):  # never matches: stays so
            self.i += 3
            return _NEVER
        if p.startswith(("?=", "?!"), self.i):
            self.i += 2
            self._inner()
            return ""
        if p.startswith(("?<=", "?<!"), self.i):
            self.i += 3
            self._inner()
            return ""
        if p.startswith("?P<", self.i):
            end = p.index(">", self.i)
            name = p[self.i + 3 : end]
            self.i = end + 1
            inner = self._inner()
            self.groups[name] = inner
            return f"(?:{inner})"
        if p.startswith("?P=", self.i):
            end = p.index(")", self.i)
            name = p[self.i + 3 : end]
            self.i = end + 1
            return f"(?:{self.groups[name]})"
        if p.startswith("?(", self.i):
            self.i = p.index(")", self.i) + 1
            inner = self._inner()
            # either branch; a missing "no" branch matches the empty string
            return f"(?:{inner})" if self.bar else f"(?:{inner}|)"
        if p.startswith(("?:", "?>"), self.i):
            self.i += 2
            return f"(?:{self._inner()})"
        flags = re.match(r"\?([aiLmsux]+)([:)])", p[self.i :])
        if flags is not None:
            self.i += flags.end()
            if flags.group(2) == ")":
                return f"(?{flags.group(1)})"
            return f"(?{flags.group(1)}:{self._inner()})"
        if p.startswith("?", self.i):
            raise ValueError("unsupported group")
        return f"(?:{self._inner()})"

    def _inner(self) -> str:
        inner = self.seq()
        if not self.p.startswith(")", self.i):
            raise ValueError("unbalanced parenthesis")
        self.i += 1
        return inner

    def _quantifier(self, out: list[str]) -> None:
        p = self.p
        if self.i >= len(p):
            return
        c = p[self.i]
        if c in "*+?":
            self.i += 1
            out.append(c)
        else:
            counted = _QUANT.match(p, self.i)
            if counted is None:
                return
            self.i = counted.end()
            low = int(counted.group(1) or 0)
            high: int | None
            if counted.group(2) is None:
                high = low
            else:
                high = int(counted.group(3)) if counted.group(3) else None
            if high is None or high > _MAX_COUNT:
                out.append(f"{{{min(low, _MAX_LOW)},}}")
            else:
                out.append(counted.group())
        if self.i < len(p) and p[self.i] == "+":  # possessive: plain greedy
            self.i += 1
        elif self.i < len(p) and p[self.i] == "?":  # lazy: kept
            self.i += 1
            out.append("?")

    def _skip_quantifier(self) -> None:
        scratch: list[str] = []
        self._quantifier(scratch)


def loosen(pattern: str) -> str:
    """An RE2 regex matching wherever the Python regex ``pattern`` matches.

    Lookarounds and word boundaries are dropped, a back-reference becomes
    what its group matches, a conditional both of its branches, an atomic
    group or possessive repeat a plain one, a repeat counted above 16 an
    open-ended one, and every capture a plain group (many anchors share
    group names). Each step only widens what matches.

    Raises:
        ValueError: a construct this rewrite does not know.
    """
    return _Loosen(pattern).run()


def ascii_bytes(text: str) -> bytes | None:
    """``text`` as the native engines read it: ASCII bytes, each non-ASCII
    character a ``?`` (offsets kept); None when the text holds a character
    that case-folds to an ASCII letter (it must take the pure-Python path)."""
    if text.isascii():
        return text.encode("ascii")
    if any(c in text for c in _CASE_FOLDS_TO_ASCII):
        return None
    return text.encode("ascii", "replace")


class Prescan:
    """One RE2 pass that finds the windows where rules may fire."""

    __slots__ = ("_match", "_unanchored", "reach")

    def __init__(self, regex: Any, unanchored: Any, reach: int) -> None:
        self._match: Callable[..., Any] = regex.Match
        self._unanchored = unanchored
        self.reach = reach

    def __deepcopy__(self, memo: dict[int, Any]) -> Prescan:
        # compiled and read-only: a deep copy of a filter shares it (an RE2
        # object cannot be copied)
        return self

    def windows(self, text: str) -> Iterator[tuple[int, int]] | None:
        """The spans of ``text`` around every anchor match, or None when the
        text holds a character that must take the pure-Python path."""
        data = ascii_bytes(text)
        return None if data is None else self._spans(data)

    def _spans(self, data: bytes) -> Iterator[tuple[int, int]]:
        match, anchor, reach = self._match, self._unanchored, self.reach
        size = len(data)
        pos = 0
        start = end = -1
        while pos < size:
            (hit_start, hit_end), *_ = match(anchor, data, pos, size)
            if hit_start == -1:
                break
            if start != -1 and hit_start > end:
                yield start, end
                start = -1
            if start == -1:
                start = hit_start
            end = max(end, hit_end + reach)
            pos = hit_end if hit_end > hit_start else hit_start + 1
        if start != -1:
            yield start, min(end, size)


def _loosen_lookahead(shape: str) -> str:
    """:func:`loosen` of a shape that is one lookahead, ``(?=X)``: ``X``
    loosened (what must follow the keyword), not the nothing a dropped
    lookahead leaves; any other shape is loosened as it is."""
    if shape.startswith("(?=") and shape.endswith(")"):
        try:  # balanced only when the lookahead spans the whole shape
            return loosen(shape[3:-1])
        except (ValueError, KeyError, IndexError):
            pass
    return loosen(shape)


def anchors_of(
    rules: tuple[Any, ...],
    token: dict[str, list[int]],
    plan: Plan,
    cased: CasedPlan,
) -> list[str]:
    """One anchor per token rule, one per context keyword and one per
    upper-case keyword of a cased shape (see the module docstring); a rule
    whose regex cannot be loosened is anchored at its keywords alone."""
    return list(dict.fromkeys(a for a, _ in anchor_pairs(rules, token, plan, cased)))


def anchor_pairs(
    rules: tuple[Any, ...],
    token: dict[str, list[int]],
    plan: Plan,
    cased: CasedPlan,
) -> list[tuple[str, str]]:
    """Each anchor of :func:`anchors_of` with its *keywords*: an alternation
    of the literal keywords one of which every match of the anchor holds
    (at its start; for a token rule with ``back``, up to ``back`` characters
    in), where the pure path tries the rule: a wider anchor, for an engine
    that cannot compile the anchor itself."""
    from aiinvariants.filters._assignment_syntax import (
        ASSIGN_SHAPE,
        ASSIGN_SHAPE_PRESCAN,
        ASSIGN_SHAPE_UPPER,
        ASSIGN_SHAPE_UPPER_PRESCAN,
    )

    anchors: list[tuple[str, str]] = []
    for indexes in token.values():
        for index in indexes:
            rule = rules[index]
            words = "|".join(f"(?i:{re.escape(k)})" for k in rule.keywords)
            try:
                anchors.append((loosen(rule.pattern.pattern), words))
            except (ValueError, KeyError, IndexError):
                anchors.extend(
                    (f"(?i:{re.escape(k)})", f"(?i:{re.escape(k)})")
                    for k in rule.keywords
                )
    for keyword, _shape, indexes in plan:
        shapes = [rules[i].shape for i in indexes]
        word = f"(?i:{re.escape(keyword)})"
        if any(not shape for shape in shapes):
            anchors.append((word, word))
            continue
        try:
            body = "|".join(
                loosen(ASSIGN_SHAPE_PRESCAN if shape == ASSIGN_SHAPE else shape)
                for shape in dict.fromkeys(shapes)
            )
        except (ValueError, KeyError, IndexError):
            anchors.append((word, word))
        else:
            anchors.append((f"{word}(?i:{body})", word))
    for keyword, _pattern, indexes in cased:
        word = re.escape(keyword)  # as written: the cased regex is case-sensitive
        shapes = [rules[i].cased_shape for i in indexes]
        try:
            body = "|".join(
                _loosen_lookahead(
                    ASSIGN_SHAPE_UPPER_PRESCAN if shape == ASSIGN_SHAPE_UPPER else shape
                )
                for shape in dict.fromkeys(shapes)
            )
        except (ValueError, KeyError, IndexError):
            anchors.append((word, word))
        else:
            anchors.append((f"{word}(?:{body})", word))
    return list(dict.fromkeys(anchors))


def native_prescan(anchors: list[str], reach: int) -> Prescan | None:
    """The compiled pre-scan over ``anchors``, or None without ``re2``.

    ``re2`` is imported here, on first use, so ``import aiinvariants`` does
    not pay for it.
    """
    try:
        import re2  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    options = re2.Options()
    options.max_mem = 64 << 20
    options.log_errors = False
    body = "|".join(f"(?:{a})" for a in anchors)
    if (
        not anchors or not body.isascii()
    ):  # a rule with a non-ASCII literal: RE2 sees "?"
        return None
    compiled = re2._re2.RE2(body.encode("ascii"), options)
    if not compiled.ok():
        return None
    return Prescan(compiled, re2._re2.RE2.Anchor.UNANCHORED, reach)


_RUN_STRING: Final = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=."
)
_RUN_RIGHT: Final = re.compile(r"[A-Za-z0-9_\-+/=.]*")
_VARIED: Final = re.compile(r"[A-Z0-9]").search
_MIN_RUN: Final = 16
SHAPE_REACH: Final = 1024
"""Characters a shape may read after its keyword (the assignment shape's
"not code" test reads at most about 700): the lower-cased slice a shape is
matched in reaches this far past the window."""
_LEFT: Final = 16  # a shape's lookbehinds read at most one character before it

Pair = tuple[int, list[int]]
Plan = list[tuple[str, re.Pattern[str] | None, list[int]]]
CasedPlan = list[tuple[str, re.Pattern[str], list[int]]]


def _keyword_search(words: list[str]) -> Callable[..., re.Match[str] | None]:
    """The search for the first of ``words`` in ``text[pos:endpos]``."""
    from aiinvariants.filters._holds import trie_pattern

    return re.compile(trie_pattern(words)).search


def _keyword_finder(words: list[str]) -> Callable[[str, int, int], Iterator[int]]:
    """Every position in ``text[pos:endpos]`` where one of ``words`` starts
    (also where two overlap: each search resumes one character on)."""
    # imported here: the ruleset imports holds, which this module must not
    from aiinvariants.filters._holds import trie_pattern

    search = re.compile(trie_pattern(words)).search

    def find(text: str, pos: int, endpos: int) -> Iterator[int]:
        hit = search(text, pos, endpos)
        while hit is not None:
            at = hit.start()
            yield at
            hit = search(text, at + 1, endpos)

    return find


class Candidates:
    """The pure-Python candidate tests, run only inside the pre-scan's windows.

    Args:
        token: token keyword -> indexes of its rules.
        plan: the context plan, ``(keyword, shape or None, indexes)``.
        cased: the cased plan, ``(upper-case keyword, its cased regex,
            indexes)``, tried over the text as written.
    """

    __slots__ = (
        "_cased",
        "_cased_find",
        "_context",
        "_context_find",
        "_longest",
        "_token",
        "_token_chain",
        "_token_search",
    )

    def __init__(
        self,
        token: dict[str, list[int]],
        plan: Plan,
        cased: CasedPlan,
    ) -> None:
        # A token keyword with a character outside the token alphabet never
        # lies inside a token run: the pure path never tries it either.
        runs = frozenset(_RUN_STRING.lower())
        self._token: dict[str, list[tuple[str, list[int]]]] = {}
        for word, indexes in token.items():
            if all(c in runs for c in word):
                self._token.setdefault(word[0], []).append((word, indexes))
        self._context: dict[str, list[tuple[str, re.Pattern[str] | None, list[int]]]]
        self._context = {}
        for word, shape, indexes in plan:
            self._context.setdefault(word[0], []).append((word, shape, indexes))
        token_words = [w for group in self._token.values() for w, _ in group]
        self._token_search = _keyword_search(token_words)
        self._token_chain = {
            word: [(w, ix) for w, ix in self._token[word[0]] if word.startswith(w)]
            for word in token_words
        }
        self._context_find = _keyword_finder([w for w, _, _ in plan])
        self._cased: dict[str, list[tuple[int, re.Pattern[str], list[int]]]] = {}
        for slot, (word, regex, indexes) in enumerate(cased):
            self._cased.setdefault(word[0], []).append((slot, regex, indexes))
        self._cased_find = _keyword_finder([w for w, _, _ in cased])
        self._longest = max(
            [len(w) for w in token]
            + [len(w) for w, _, _ in plan]
            + [len(w) for w, _, _ in cased],
            default=0,
        )

    def pairs(
        self, text: str, windows: list[tuple[int, int]], lower: Callable[[str], str]
    ) -> tuple[list[Pair], list[Pair]]:
        """The (position, rule indexes) the pure path would try in the windows:
        token keywords first (their findings decide the context rules'
        ``covered`` test), then context keywords, then the upper-case
        keywords whose cased regex matches the text as written."""
        tokens: list[Pair] = []
        context: list[Pair] = []
        cased_end: dict[int, int] = {}
        run = (-1, -1, False)
        check_runs = len(text) >= _MIN_RUN
        # Each window reads SHAPE_REACH characters past its end: many small
        # windows (a key every few dozen characters) would lower-case the
        # text dozens of times over; then it is lower-cased once, whole.
        whole = lower(text) if len(windows) * SHAPE_REACH > len(text) else None
        for start, end in windows:
            if whole is None:
                base = max(0, start - _LEFT)
                low = lower(text[base : end + SHAPE_REACH])
            else:
                base, low = 0, whole
            stop = end - base
            # a keyword starting before the window's end is read whole
            reach = stop + self._longest
            if check_runs:
                search = self._token_search
                hit = search(low, start - base, reach)
                while hit is not None:
                    at = hit.start()
                    if at >= stop:
                        break
                    pos = base + at
                    if not run[0] <= pos < run[1]:
                        run = _token_run(text, pos)
                    if not run[2]:
                        # a run the pure path does not look inside (short,
                        # or no digit nor capital): no keyword in it is
                        # tried, so skip it whole, not keyword by keyword
                        # (``aaaa…``: one try per character otherwise)
                        hit = search(low, max(at + 1, run[1] - base), reach)
                        continue
                    # the trie finds the longest keyword at ``at``: the
                    # keywords there are it and those that begin it
                    for word, indexes in self._token_chain[hit.group()]:
                        if pos + len(word) <= run[1]:
                            tokens.append((pos, indexes))
                    hit = search(low, at + 1, reach)
            for at in self._context_find(low, start - base, reach):
                if at >= stop:
                    break
                for word, shape, indexes in self._context.get(low[at], ()):
                    if low.startswith(word, at) and (
                        shape is None or shape.match(low, at) is not None
                    ):
                        context.append((base + at, indexes))
            if self._cased:
                # Over the whole text as written, as the pure path's finditer
                # reads it; a match overlapping the one before it (a keyword
                # that overlaps itself) is skipped, as finditer skips it.
                for at in self._cased_find(text, start, end + self._longest):
                    if at >= end:
                        break
                    for slot, regex, indexes in self._cased.get(text[at], ()):
                        if at < cased_end.get(slot, 0):
                            continue
                        hit = regex.match(text, at)
                        if hit is not None:
                            cased_end[slot] = hit.end()
                            context.append((at, indexes))
        return tokens, context


def _run_end(text: str, pos: int) -> int:
    found = _RUN_RIGHT.match(text, pos)
    return pos if found is None else found.end()  # the pattern matches empty


def _token_run(text: str, pos: int) -> tuple[int, int, bool]:
    """The run of token characters around ``pos``, and whether the pure path
    looks inside it (at least 16 characters, one a digit or a capital)."""
    end = _run_end(text, pos)
    start = pos
    size = 256
    while start > 0:
        chunk = text[max(0, start - size) : start]
        kept = len(chunk.rstrip(_RUN_STRING))
        start -= len(chunk) - kept
        if kept:
            break
        size *= 2
    return start, end, end - start >= _MIN_RUN and _VARIED(text, start, end) is not None
