"""Helpers for the filters' ``hold`` methods (what streaming may not emit yet)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "LOOKAROUND",
    "NEAR",
    "glued_start",
    "lead_words",
    "pattern_width",
    "suffix_start",
    "trie_pattern",
]

LOOKAROUND: Final = 16
"""Characters a rule may look at past its match (boundary lookaheads)."""
NEAR: Final = 128


def trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, nested by common prefixes."""
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    if not tree:
        return "(?!)"

    def build(node: dict[str, Any]) -> str:
        branches = [
            re.escape(c) + build(child) for c, child in sorted(node.items()) if c
        ]
        if "" in node:
            return f"(?:{'|'.join(branches)})?" if branches else ""
        if len(branches) == 1:
            return branches[0]
        return f"(?:{'|'.join(branches)})"

    return build(tree)


def lead_words(*words: str) -> str:
    """A regex for the end of a text that may still become one of ``words``
    followed by white space: a word's beginning (``doc``, ``helm reg``), or
    the whole word and up to three white space characters. A space inside a
    word stands for one to three of them. White space is any, line breaks
    included, and a word may be glued to what comes before it
    (``xdocker``): the rules that use it match there too, so the lead must
    not be narrower than they are. Every quantifier is bounded.
    """

    def prefixes(word: str) -> str:
        units = [r"\s{1,3}" if c == " " else re.escape(c) for c in word]
        out = ""
        for unit in reversed(units):
            out = f"{unit}(?:{out})?" if out else unit
        return out

    body = "|".join(prefixes(w) for w in words)
    return rf"(?:{body})\s{{0,3}}\Z"


@lru_cache(maxsize=1024)
def pattern_width(pattern: re.Pattern[str]) -> int:
    """The most characters ``pattern`` can match (MAX_MATCH if unbounded)."""
    # imported here: the ruleset imports this module's lead_words
    from aiinvariants.filters._secret_rules import MAX_MATCH

    parser: Any = importlib.import_module("re._parser")
    try:
        _least, most = parser.parse(pattern.pattern, pattern.flags).getwidth()
    except Exception:  # an engine detail changed: the documented bound holds
        return MAX_MATCH
    return int(min(most, MAX_MATCH))


def glued_start(text: str, at: int, most: int) -> int:
    """``at`` moved left over the characters glued to it (no white space
    between), at most ``most`` of them."""
    stop = max(0, at - most)
    while at > stop and not text[at - 1].isspace():
        at -= 1
    return at


def suffix_start(text: str, prefixes: frozenset[str], longest: int) -> int:
    """Where the longest suffix of ``text`` that is in ``prefixes`` starts."""
    for size in range(min(len(text), longest), 0, -1):
        if text[-size:] in prefixes:
            return len(text) - size
    return len(text)
