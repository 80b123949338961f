"""Disparaging named competitors, the company or its people (invariant I9).

Names and aliases are found in one pass per name over the canonical text
(:mod:`aiinvariants._internal.canonical`: lower case, lookalike and
fullwidth letters, zero-width joiners and exotic spaces folded; ``str.find``,
C speed), at word boundaries. A mention is a finding when a
negative or disparaging word occurs within ``window`` characters of it (a
small built-in lexicon, or your own), or, when a ``classifier`` is given,
when the classifier says the surrounding text disparages the name. The
finding spans the name and the negative words around it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from aiinvariants._errors import PolicyError
from aiinvariants._internal.canonical import Canonical, fold
from aiinvariants.filters._base import (
    Action,
    Finding,
    canonical_of,
    check_action,
    fingerprint,
)

__all__ = ["NEGATIVE_WORDS", "CompetitorFilter"]

NEGATIVE_WORDS: Final[frozenset[str]] = frozenset(
    [
        "awful",
        "bad",
        "broken",
        "cheat",
        "cheats",
        "cheating",
        "clueless",
        "corrupt",
        "crap",
        "crappy",
        "criminal",
        "criminals",
        "dangerous",
        "deceitful",
        "dishonest",
        "disaster",
        "disgusting",
        "dreadful",
        "dumb",
        "fraud",
        "frauds",
        "fraudulent",
        "garbage",
        "hate",
        "horrible",
        "idiot",
        "idiots",
        "idiotic",
        "incompetent",
        "inferior",
        "joke",
        "junk",
        "liar",
        "liars",
        "lie",
        "lies",
        "lousy",
        "mediocre",
        "pathetic",
        "poor",
        "rip-off",
        "ripoff",
        "rotten",
        "scam",
        "scammer",
        "scammers",
        "scams",
        "shady",
        "shameful",
        "shoddy",
        "stupid",
        "sucks",
        "terrible",
        "trash",
        "unreliable",
        "untrustworthy",
        "useless",
        "worst",
        "worthless",
        "avoid",
        "overpriced",
        "incompetence",
        "crooks",
        "crook",
    ]
)
"""The default lexicon of disparaging words (lower case)."""

_WORD: Final = re.compile(r"[a-z][a-z'-]{1,30}")
Classifier = Callable[[str, str], bool]


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class CompetitorFilter:
    """Find disparaging statements about competitors, the company or its people.

    Args:
        names: competitor names.
        aliases: competitor name -> other spellings.
        protect: the company's own names and its people.
        action: ``"block"`` (default), ``"redact"`` or ``"flag"``.
        window: characters on each side of a name searched for negative
            words (default 60).
        lexicon: the negative words (default :data:`NEGATIVE_WORDS`).
        classifier: ``classifier(passage, name) -> bool``, True when
            ``passage`` disparages ``name``; replaces the lexicon. It must be
            deterministic; an exception from it is a finding (fail closed).

    Raises:
        PolicyError: invalid action, empty names or window.
    """

    invariant = "I9"

    def __init__(
        self,
        *,
        names: Iterable[str] = (),
        aliases: Mapping[str, Iterable[str]] | None = None,
        protect: Iterable[str] = (),
        action: Action = "block",
        window: int = 60,
        lexicon: Iterable[str] = NEGATIVE_WORDS,
        classifier: Classifier | None = None,
    ) -> None:
        self.action: Action = check_action(action, where="CompetitorFilter")
        if not isinstance(window, int) or not 1 <= window <= 2000:
            raise PolicyError("CompetitorFilter window must be in 1..2000")
        self.window = window
        self._names: dict[str, str] = {}
        for group in (names, protect):
            if isinstance(group, str):
                raise PolicyError("CompetitorFilter names must be a list")
            for name in group:
                self._add(name, name)
        for name, spellings in (aliases or {}).items():
            for alias in spellings:
                self._add(alias, name)
        self._lexicon = frozenset(fold(w) for w in lexicon)
        self._classifier = classifier
        longest = max((len(n) for n in self._names), default=0)
        self.max_finding = longest + 2 * window + 32
        self.context = window + 32

    def _add(self, spelling: str, name: str) -> None:
        if not isinstance(spelling, str) or not spelling.strip():
            raise PolicyError("CompetitorFilter names must be non-empty strings")
        self._names[fold(spelling)] = name

    def __repr__(self) -> str:
        return f"CompetitorFilter(action={self.action!r}, names={len(self._names)})"

    def scan(self, text: str) -> list[Finding]:
        """Every disparaging mention in ``text``, sorted by start."""
        return self.scan_canonical(canonical_of(text))

    def hold(self, canon: Canonical) -> int:
        """Canonical index from which more text could still change a finding.

        A finding stays within one sentence and within ``window`` characters
        of a name that is at most the longest name away from the end.
        """
        lowered = canon.text
        if not self._names:
            return len(lowered)
        stop = max(lowered.rfind(c) for c in ".!?\n")
        return max(stop + 1, len(lowered) - self.max_finding - 2)

    def scan_canonical(self, canon: Canonical) -> list[Finding]:
        """Every disparaging mention in the text ``canon`` is the form of."""
        if not self._names:
            return []
        lowered = canon.text
        out: list[Finding] = []
        for spelling, name in self._names.items():
            at = lowered.find(spelling)
            while at != -1:
                end = at + len(spelling)
                bounded = (at == 0 or not _is_word_char(lowered[at - 1])) and (
                    end == len(lowered) or not _is_word_char(lowered[end])
                )
                if bounded:
                    span = self._judge(canon, at, end, name)
                    if span is not None:
                        start, stop = canon.span(*span)
                        out.append(
                            Finding(
                                "competitor-disparagement",
                                start,
                                stop,
                                "medium",
                                fingerprint(name),
                                self.action,
                                "I9",
                            )
                        )
                at = lowered.find(spelling, at + 1)
        out.sort(key=lambda f: (f.start, f.end))
        return out

    def _judge(
        self, canon: Canonical, start: int, end: int, name: str
    ) -> tuple[int, int] | None:
        lowered = canon.text
        lo, hi = max(0, start - self.window), min(len(lowered), end + self.window)
        # Stay within the sentence: praise of one name next to criticism of
        # another is not about it.
        for stop in ".!?\n":
            cut = lowered.rfind(stop, lo, start)
            if cut != -1:
                lo = max(lo, cut + 1)
            cut = lowered.find(stop, end, hi)
            if cut != -1:
                hi = min(hi, cut)
        if self._classifier is not None:
            try:
                a, b = canon.span(lo, hi)
                bad = bool(self._classifier(canon.original[a:b], name))
            except Exception:  # fail closed: an unjudged mention is a finding
                bad = True
            return (lo, hi) if bad else None
        first, last = start, end
        hit = False
        for match in _WORD.finditer(lowered, lo, hi):
            word = match.group()
            if match.start() == lo and lo > 0 and lowered[lo - 1].isalpha():
                continue  # a word cut by the window edge
            if match.end() == hi and hi < len(lowered) and lowered[hi].isalpha():
                continue
            if word in self._lexicon or word.rstrip("'s") in self._lexicon:
                hit = True
                first, last = min(first, match.start()), max(last, match.end())
        return (first, last) if hit else None
