"""Judging one candidate site of :class:`~aiinvariants.filters.SecretsFilter`.

Split from :mod:`aiinvariants.filters._secrets` (size): what happens where a
rule may fire. The rule's regex runs there, then its checks (validate,
judge, checksum, the token boundaries of a prefix match).

Bounded work per site and per text. A rule and its checks read at most a
fixed window around the site (``back`` characters and the glued or key-name
characters before it, the rule's longest match and the glued characters
after it), so two sites whose windows hold the same characters end the
same way: the outcome is computed once per distinct window and reused,
shifted. And a scan judges at most ``256 + len(text) // 32`` sites where a
rule's regex matches: a text that has more (``password=`` repeated, one
candidate every few characters) is blocked as a whole by one
``secrets-scan-limit`` finding over the whole text (fail closed: no
candidate is left unjudged in a text that is let through; a stream blocks
at it wherever it lies). Every regex is
bounded (at most ``MAX_MATCH`` characters), so the work is linear in the
text, and judging is bounded by the count. A scan of the end of a longer
text (a stream's window, :func:`judged_after`) has the budget of that text.
The sites where a regex matches are the same for both candidate searches, so
both decide alike.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from aiinvariants.filters._assignment_syntax import (
    DECODED,
    FENCE_REACH,
    fence_signature,
)
from aiinvariants.filters._base import Action, Finding, Severity, fingerprint
from aiinvariants.filters._secret_rules import MAX_MATCH, SecretRule
from aiinvariants.filters._secret_values import doc_marker, entropy, is_placeholder

__all__ = [
    "GLUE_CAP",
    "LIMIT_RULE",
    "SITE_CONTEXT",
    "SITE_MARGIN",
    "Exhausted",
    "ScanState",
    "budget_for",
    "judged_after",
    "try_site",
]

LIMIT_RULE: Final = "secrets-scan-limit"
"""The finding that blocks the rest of a text past the judging budget."""
_BUDGET_BASE: Final = 256
_BUDGET_PER: Final = 32  # one more regex try per this many characters
_MIN_TOKEN_ENTROPY: Final = 2.5
_VARIED: Final = re.compile(r"[A-Z0-9]").search
# Rules that judge a value by its strength alone: not reported for a value a
# provider rule already found (one finding per credential, and less work).
_GENERIC: Final = frozenset(
    ("generic-credential-assignment", "credential-comparison", "authorization-header")
)


def budget_for(size: int) -> int:
    """Sites (a rule at a position) a scan of ``size`` characters may try."""
    return _BUDGET_BASE + size // _BUDGET_PER


class _Before(threading.local):
    """How many canonical characters came before the text being scanned.

    Per thread, not a ``ContextVar``: the block around it is synchronous (no
    task can switch inside a scan), and setting a ``ContextVar`` there
    crashed CPython 3.11 (a segmentation fault in ``ContextVar.set`` under
    hypothesis, reproducible with ``--hypothesis-seed=1`` on
    ``tests/properties/test_bedrock_stream_props.py``)."""

    value = 0


_BEFORE: Final = _Before()


@contextmanager
def judged_after(before: int) -> Iterator[None]:
    """Scans in this block judge the end of a longer text, ``before``
    canonical characters of which came first: each gets the budget of that
    whole text, not of its own length (a stream's window is judged with the
    budget of the answer so far; the last one with the one-shot check's)."""
    old = _BEFORE.value
    _BEFORE.value = before
    try:
        yield
    finally:
        _BEFORE.value = old


_GLUE_CAP: Final = 64  # glued characters looked at (and masked) per side
_BLOB_EXTRA: Final = 48  # glued characters around a match that make a blob
_GLUE: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
)


_GLUE_STRING: Final = "".join(sorted(_GLUE))
_GLUE_RIGHT: Final = re.compile(f"[A-Za-z0-9+/]{{0,{_GLUE_CAP}}}")


def _glue_run(
    text: str,
    at: int,
    step: int,
    right: re.Pattern[str] = _GLUE_RIGHT,
    chars: str = _GLUE_STRING,
) -> int:
    """How many base64/identifier characters (``right`` going right,
    ``chars`` going left) touch ``at`` going ``step`` (at most
    ``_GLUE_CAP``), counted at C speed."""
    if step > 0:
        found = right.match(text, at) if at < len(text) else None
        return 0 if found is None else found.end() - at
    if at < 0:
        return 0
    chunk = text[max(0, at + 1 - _GLUE_CAP) : at + 1]
    return len(chunk) - len(chunk.rstrip(chars))


def _token_span(
    text: str, match: re.Match[str], *, verified: bool = False
) -> tuple[int, int] | None:
    """The span to report for a prefix-rule match, or None for no finding.

    None: a documentation value (``sk_live_XXXX…``, low entropy, the
    ``…EXAMPLE`` keys of providers' docs), no digit and no capital at all (a
    random credential of 16 or more characters has one; a dotted name such
    as ``user.is_authenticated`` has none, which lets the pre-scan skip such
    runs), or a match inside a base64 blob or a longer identifier: glued on
    *both* sides to base64/identifier characters, with at least
    ``_BLOB_EXTRA`` of them around it (an image, a data URI,
    ``MyHelperAKIA…Factory``). Inside a URL (``scheme://`` before it), ``/``
    separates path segments and glues nothing: a key that is a segment of a
    long path is reported, its span is its segment. A ``verified`` match
    (its embedded checksum holds) is never dismissed: chance does not
    produce one, so it is a real credential however it is dressed up or
    glued into other characters.

    Otherwise the span grows over the characters glued to the match (at most
    ``_GLUE_CAP`` per side): ``xAKIA…`` masks the ``x`` too, and keys written
    back to back are masked as one run, so no key between two found ones
    survives redaction.
    """
    value = match.group()
    if not verified and (
        not _VARIED(value)
        or entropy(value) < _MIN_TOKEN_ENTROPY
        or (is_placeholder(value) and not _marker_appended(match))
    ):
        return None
    start, end = match.span()
    left = _glue_run(text, start - 1, -1)
    right = _glue_run(text, end, 1)
    # a URL's path: '/' separates segments there, it glues nothing
    slashed = (left or right) and "/" in text[start - left : end + right]
    if slashed and _in_url(text, start):
        left = _segment_run(text, start - 1, -1)
        right = _segment_run(text, end, 1)
    if not right and left >= _BLOB_EXTRA:
        # the match ran to a blob's end: its base64 padding is glued too
        right = _padding(text, end)
    if not verified and left and right and left + right >= _BLOB_EXTRA:
        return None
    return start - left, end + right


_PADDING: Final = re.compile(r"={1,2}(?![A-Za-z0-9+/=])")


def _padding(text: str, at: int) -> int:
    """The base64 padding (``=`` or ``==``, then no base64) at ``at``."""
    found = _PADDING.match(text, at)
    return 0 if found is None else found.end() - at


# A URL before a match, up to it with nothing that ends a URL between: its
# scheme and ``//`` (an image or a data URI has no ``://``; base64 has no
# ``:``). Read at most _URL_REACH characters back. (A stream keeps only
# SITE_CONTEXT characters of left context: a key deeper than that in a long
# path is judged there without the scheme, as a blob; see
# tests/attacks/test_redteam_secret_written.py, a strict xfail.)
_URL_REACH: Final = 2048
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}://\Z")
_URL_END: Final = re.compile(r"[\s\"'`<>(){}\[\]\\^|]")
_SEGMENT_RIGHT: Final = re.compile(f"[A-Za-z0-9+]{{0,{_GLUE_CAP}}}")
_SEGMENT_STRING: Final = _GLUE_STRING.replace("/", "")


def _in_url(text: str, at: int) -> bool:
    """Whether ``at`` is inside a URL (``scheme://`` before it, within
    ``_URL_REACH`` characters, with no white space, quote or bracket
    between)."""
    low = max(0, at - _URL_REACH)
    end = at
    while (sep := text.rfind("://", low, end)) >= 0:
        # the last "://" found at C speed (a site of a URL-dense text pays
        # no regex try at each of the characters before it), then its scheme
        if _SCHEME.search(text, max(low, sep - 31), sep + 3) is not None:
            return _URL_END.search(text, sep + 3, at) is None
        end = sep + 2  # no scheme before it: an earlier one
    return False


def _segment_run(text: str, at: int, step: int) -> int:
    """Like :func:`_glue_run`, but a ``/`` ends the run (a URL path)."""
    return _glue_run(text, at, step, _SEGMENT_RIGHT, _SEGMENT_STRING)


def _marker_appended(match: re.Match[str]) -> bool:
    """A documentation marker glued onto a complete credential.

    ``AKIAIOSFODNN7EXAMPLE`` is a docs key: without ``EXAMPLE`` it is too
    short to be one. ``sk_live_<24 random>EXAMPLE`` is a whole real key with
    the word appended: the rule still matches it without the marker.
    """
    value = match.group()
    at = doc_marker(value)
    return at != -1 and match.re.fullmatch(value[:at]) is not None


def _value_span(match: re.Match[str]) -> tuple[int, int]:
    """The span of the value a judged rule matched (its ``qv``/``v`` group)."""
    for group in ("qv", "v"):
        if group in match.re.groupindex and match.group(group) is not None:
            return match.span(group)
    return match.span()


# What a rule and its checks read around a site: before it, a rule's
# ``back``, then a lookbehind at the match start, the key name the
# assignment judge reads (34) or the glued characters (_GLUE_CAP); after
# it, the longest match, the glued characters masked with it and those
# looked at past them, and the rules' boundary lookaheads.
_LEFT_READ: Final = _GLUE_CAP + 8
_RIGHT_READ: Final = MAX_MATCH + 2 * _GLUE_CAP + 32
# Windows the memo keeps (each holds its ~600 characters): a text whose
# candidates all differ (a base64-ish run with a keyword every few
# characters) would otherwise keep a copy of every window, hundreds of bytes
# per candidate. Repeated text has a few distinct windows per period.
_MEMO_CAP: Final = 4096


class Exhausted(Exception):
    """The judging budget of a scan ran out at ``pos`` (a signal, not an
    error)."""

    def __init__(self, pos: int) -> None:
        super().__init__("judging budget exhausted")
        self.pos = pos


class ScanState:
    """The state of one :meth:`SecretsFilter.scan` call.

    ``sites`` counts the (rule, position) pairs where the rule's regex
    matches, at most ``budget``; ``tries`` the regex runs (a window seen
    before reuses its outcome from ``memo``; at most one judgement each).
    """

    __slots__ = (
        "budget",
        "found",
        "memo",
        "sites",
        "text",
        "token_ends",
        "token_starts",
        "tried",
        "tries",
    )

    def __init__(
        self, text: str, budget: int | None = None, *, memo: bool = True
    ) -> None:
        self.text = text
        self.found: dict[tuple[int, int, str], Finding] = {}
        self.tried: set[tuple[int, int]] = set()
        self.token_starts: list[int] = []
        self.token_ends: list[int] = []
        self.memo: dict[tuple[object, ...], _Site] | None = {} if memo else None
        self.tries = 0
        self.sites = 0
        if budget is None:
            budget = budget_for(_BEFORE.value + len(text))
        self.budget = budget

    def covered(self, start: int, end: int) -> bool:
        """Whether provider-format findings mask all of ``[start, end)``.

        A provider token that is only *part* of a value (a password written
        after a fake ``sk_live_…`` prefix) does not make the value's own
        finding redundant: its span would leave the rest of the value.
        """
        at = bisect_right(self.token_starts, start)
        reach = start
        for index in range(at - 1, -1, -1):  # findings starting at or before
            if self.token_starts[index] < start - 2 * MAX_MATCH:
                break
            reach = max(reach, self.token_ends[index])
        index = at
        while reach < end and index < len(self.token_starts):
            if self.token_starts[index] > reach:
                break
            reach = max(reach, self.token_ends[index])
            index += 1
        return reach >= end

    def note_tokens(self) -> None:
        """Remember the findings so far (the provider rules') for ``covered``."""
        spans = sorted(f.span for f in self.found.values())
        self.token_starts = [start for start, _ in spans]
        self.token_ends = [end for _, end in spans]

    def limit_finding(self, pos: int, action: Action) -> None:
        """Fail closed past the budget: one finding that blocks the text
        (flags it under ``action="flag"``).

        A blocking one spans the whole text, like a failing filter's
        ``filter-error`` (past ``max_finding``): it replaces every other
        finding of the scan, so a masked form of the text (``OutputPipeline.check``'s
        ``text``, what a log or a report prints) holds no credential a
        dropped finding covered. (A stream blocks at it wherever it lies.) A
        flag sits at the site where the budget ran out, no longer than a
        rule's match (the streaming bound)."""
        if action == "flag":
            start, end = pos, min(len(self.text), pos + MAX_MATCH)
        else:
            start, end = 0, len(self.text)
        self.found[(start, end, LIMIT_RULE)] = Finding(
            LIMIT_RULE,
            start,
            end,
            "high",
            fingerprint(LIMIT_RULE),
            "flag" if action == "flag" else "block",
        )


_Outcome = tuple[int, int, int, Severity, str, Action]


class _Site:
    """What a rule found at the first site of a window: its match (None:
    nothing), that site's position, and the finding it makes there (relative
    to that position; ``judged`` False until the judge has run)."""

    __slots__ = ("judged", "match", "origin", "outcome")

    def __init__(self, match: re.Match[str] | None, origin: int) -> None:
        self.match = match
        self.origin = origin
        self.judged = False
        self.outcome: _Outcome | None = None


_MORE: dict[re.Pattern[str], tuple[str, ...]] = {}


def _more_groups(rule: SecretRule) -> tuple[str, ...]:
    """The rule's groups named ``more…``: one took part when the value runs
    on past the rule's bound."""
    found = _MORE.get(rule.pattern)
    if found is None:
        found = tuple(n for n in rule.pattern.groupindex if n.startswith("more"))
        _MORE[rule.pattern] = found
    return found


def _match(rule: SecretRule, text: str, pos: int) -> re.Match[str] | None:
    if rule.back:
        # The match that covers ``pos``: the first one found from ``pos -
        # back`` may be an earlier one that ends before it (``"weak" ==
        # password or "Str0ng…" == db_password``); try the later starts.
        endpos = pos + MAX_MATCH
        match = rule.pattern.search(text, max(0, pos - rule.back), endpos)
        while match is not None and match.end() <= pos:
            match = rule.pattern.search(text, match.start() + 1, endpos)
        if match is None or not match.start() <= pos < match.end():
            return None
    else:
        match = rule.pattern.match(text, pos)
    if match is not None and rule.validate is not None:
        return match if rule.validate(match.group()) else None
    return match


def _outcome(
    rule: SecretRule, action: Action, text: str, match: re.Match[str], origin: int
) -> _Outcome | None:
    """The finding at a match (offsets relative to ``origin``), or None."""
    if rule.judge is not None and not rule.judge(match, text):
        return None
    value = match.group()
    span = match.span()
    verified = rule.checksum is not None and rule.checksum(value)
    runs_on = any(match.group(name) is not None for name in _more_groups(rule))
    if rule.kind == "token":
        grown = _token_span(text, match, verified=verified)
        if grown is None:
            return None
        span = grown
        # glued characters beyond what the span may cover: the key (or what
        # is glued to it) goes on and cannot be fully masked
        end = span[1]
        runs_on = runs_on or (
            end - match.end() == _GLUE_CAP and _glue_run(text, end, 1) > 0
        )
    severity = "critical" if verified else rule.severity
    if (rule.always_block or runs_on) and action == "redact":
        action = "block"
    return (
        match.start() - origin,
        span[0] - origin,
        span[1] - origin,
        severity,
        fingerprint(value),
        action,
    )


def try_site(
    rules: tuple[SecretRule, ...],
    action: Action,
    state: ScanState,
    pos: int,
    indexes: list[int],
) -> None:
    """Try the rules ``indexes`` at ``pos``; record what they find.

    Raises:
        Exhausted: the scan's budget of sites ran out.
    """
    text = state.text
    for index in indexes:
        if (index, pos) in state.tried:
            continue
        state.tried.add((index, pos))
        rule = rules[index]
        memo = state.memo
        entry = None
        if memo is not None:
            lo = max(0, pos - rule.back - _LEFT_READ)
            window = text[lo : pos + _RIGHT_READ]
            key: tuple[object, ...] = (index, pos - lo, window)
            if rule.kind == "token" and "/" in window:
                # a key glued by '/' is a URL's path segment or part of a
                # blob by a scheme up to _URL_REACH back, past the window
                key += (_in_url(text, pos),)
            if rule.reads_fence:
                # the judge also reads the fence lines before the site and
                # the block's text (a comment or a string still open): the
                # whole reach, and whether it starts the text
                fence = fence_signature(text, pos, FENCE_REACH + rule.back)
                if fence is not None:
                    reach = max(0, pos - FENCE_REACH - rule.back - 1)
                    key += (reach == 0, text[reach:lo])
                    decoded = DECODED.value
                    if decoded:  # and which of its characters were decoded
                        a = bisect_left(decoded, reach)
                        b = bisect_left(decoded, pos + _RIGHT_READ)
                        key += tuple(d - pos for d in decoded[a:b])
            entry = memo.get(key)
        if entry is None:
            state.tries += 1
            entry = _Site(_match(rule, text, pos), pos)
            if memo is not None:
                if len(memo) >= _MEMO_CAP:
                    memo.clear()  # bounded: text that repeats stays within it
                memo[key] = entry
        match = entry.match
        if match is None:
            continue
        # counted where the rule's regex matches: the same sites for both
        # candidate searches (each tries every place a rule matches)
        state.sites += 1
        if state.sites > state.budget:
            raise Exhausted(pos)
        shift = pos - entry.origin
        if rule.id in _GENERIC:
            start, end = _value_span(match)
            if state.covered(start + shift, end + shift):
                continue  # the provider rule already names (and masks) the value
        if not entry.judged:
            entry.outcome = _outcome(rule, action, text, match, entry.origin)
            entry.judged = True
        if entry.outcome is None:
            continue
        at, start, end, severity, fp, act = entry.outcome
        # keyed by the match too: back-to-back keys grow to one span
        key_found = (pos + start, pos + end, f"{rule.id}@{pos + at}")
        state.found[key_found] = Finding(
            rule.id,
            pos + start,
            pos + end,
            severity,
            fp,
            act,
        )


GLUE_CAP: Final = _GLUE_CAP

SITE_MARGIN: Final = _GLUE_CAP + 8
"""Characters after a rule's match (and glued before it) its decision
reads: the glued characters, the key name, the boundary look-aheads. What a
stream must still hold back after a keyword."""

SITE_CONTEXT: Final = max(SITE_MARGIN, FENCE_REACH + 1)
"""Characters on each side of a finding its decision may depend on: the
:data:`SITE_MARGIN`, and before it the fence line that gives the language
of a code block (:data:`FENCE_REACH`, and the character before it that tells
whether it starts a line). Only the left side reaches that far: text after
a site never changes its language. (Not the ``scheme://`` of a URL, read up
to ``_URL_REACH`` back: a context that long made a stream scan its prose
about every 550 characters instead of 64.)"""
