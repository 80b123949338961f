"""Credentials in output (invariant I8): the ruleset and the app's own secrets.

:class:`SecretsFilter` finds provider credentials (see
:mod:`aiinvariants.filters._secret_rules`, written from the providers' own
format documentation, not copied from another scanner) and *registered*
secrets: values the application knows (its own API keys, database
passwords) matched exactly, in base64 (any alignment), hex and
URL-encoding, and after normalization (case, zero-width characters and up to
three separator characters inserted between characters).

How it stays fast: a literal pre-scan decides which regexes run and where.
Token rules only run at an occurrence of one of their keywords inside a run
of at least 16 token characters that has a digit or a capital; those runs
are found with ``str.translate`` and ``str.find`` (C speed). Context rules
share one pass per keyword over the lower-cased text: a regex that starts
with the keyword (``re`` finds it at C speed) and requires the shape its
rules need next, so occurrences that cannot match cost no Python work.
Every regex has bounded quantifiers only.

Token boundaries: a prefix match glued on both sides to 48 or more
base64/identifier characters is part of a blob (an image, a data URI) and
not reported; otherwise the finding's span grows over the glued characters
(at most 64 per side), so junk glued to a key, or keys written back to
back, are masked with it.
"""

from __future__ import annotations

import os
import re
import threading
from bisect import bisect_right
from collections.abc import Iterable
from typing import Final

from aiinvariants._errors import PolicyError
from aiinvariants._internal.canonical import Canonical
from aiinvariants.filters._assignment_syntax import (
    DECODED,
    FENCE_REACH,
    canonical_fences,
)
from aiinvariants.filters._base import (
    Action,
    Finding,
    ascii_lower,
    canonical_of,
    check_action,
    fingerprint,
    in_original,
)
from aiinvariants.filters._holds import (
    LOOKAROUND,
    NEAR,
    glued_start,
    pattern_width,
    suffix_start,
    trie_pattern,
)
from aiinvariants.filters._leaks import decoded_runs, open_run
from aiinvariants.filters._prescan import Candidates, Prescan
from aiinvariants.filters._prescan_engines import engine_choice, native_engine
from aiinvariants.filters._secret_registered import (
    ALNUM_ONLY,
    MIN_REGISTERED,
    Registered,
    nth_alnum_from_end,
    scan_registered,
)
from aiinvariants.filters._secret_rules import (
    MAX_MATCH,
    MIN_RUN,
    RULES,
    RUN_CHARS,
    SecretRule,
)
from aiinvariants.filters._secret_sites import (
    GLUE_CAP,
    SITE_CONTEXT,
    SITE_MARGIN,
    Exhausted,
    ScanState,
    try_site,
)
from aiinvariants.filters._secret_written import written_windows

__all__ = ["SecretsFilter"]

# How far around a decoded splitter its window reaches: a match covering it
# starts at most MAX_MATCH before it (plus a rule's back and the glued
# characters), and a judge reads the fence line up to FENCE_REACH before
# the site; after it, the longest match and what is read past it.
_WRITTEN_LEFT: Final = MAX_MATCH + FENCE_REACH + 2 * GLUE_CAP + 64
_WRITTEN_RIGHT: Final = MAX_MATCH + 2 * GLUE_CAP + 64

_RUN_TABLE: Final = str.maketrans(
    {
        chr(c): ("a" if chr(c).isalnum() or chr(c) in "_-+/=." else " ")
        for c in range(128)
    }
)
_NEEDLE: Final = "a" * MIN_RUN
_NOT_RUN: Final = re.compile("[^a]")
_VARIED: Final = re.compile(r"[A-Z0-9]").search
# Every byte but the ASCII capitals: deleted, it leaves the capitals of a
# text in order (see _capitals).
_NOT_CAPITAL: Final = bytes(c for c in range(256) if not 0x41 <= c <= 0x5A)
# The native pre-scan per engine and ruleset (None: not installed).
_NATIVE: dict[
    tuple[str, tuple[SecretRule, ...], tuple[tuple[str, str], ...]],
    tuple[Prescan, Candidates] | None,
] = {}
# One build at a time: threads scanning at once with a ruleset not built
# yet wait for the one build (a vectorscan build is seconds of CPU), and
# no lookup races an eviction. A forked child gets a fresh lock: one held
# by another thread of the parent at the fork would never be released.
_NATIVE_LOCK = threading.Lock()


def _fresh_native_lock() -> None:
    global _NATIVE_LOCK
    _NATIVE_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_native_lock)


def _covers(outer: Finding, inner: Finding) -> bool:
    return (
        outer.rule_id == inner.rule_id
        and outer.start <= inner.start
        and inner.end <= outer.end
    )


def _plan(
    rules: tuple[SecretRule, ...], context: dict[str, list[int]]
) -> list[tuple[str, re.Pattern[str] | None, list[int]]]:
    """One pass per context keyword: a literal find, or one regex that starts
    with the keyword (so ``re`` scans for it at C speed) and also requires
    the shape its rules need after it (``password`` then an operator), so
    occurrences that cannot match cost no Python work."""
    plan: list[tuple[str, re.Pattern[str] | None, list[int]]] = []
    for keyword, indexes in context.items():
        shapes = [rules[i].shape for i in indexes]
        if any(not shape for shape in shapes):
            plan.append((keyword, None, indexes))
            continue
        body = "|".join(f"(?:{shape})" for shape in dict.fromkeys(shapes))
        plan.append((keyword, re.compile(f"{re.escape(keyword)}(?={body})"), indexes))
    return plan


def _capitals(text: str) -> bytes:
    """The ASCII capitals of ``text``, in order, everything else deleted (one
    C-speed pass). An upper-case keyword that occurs in ``text`` has its
    capitals side by side here, so one missing here is missing there too."""
    data = (
        text.encode("ascii")
        if text.isascii()
        else text.encode("utf-8", "surrogatepass")  # non-ASCII: bytes >= 0x80
    )
    return data.translate(None, _NOT_CAPITAL)


def _capitals_gate(keyword: str) -> bytes | None:
    """What :func:`_capitals` of a text must contain for ``keyword`` (written
    as is) to occur in it, or None when that says nothing (no capital)."""
    gate = "".join(c for c in keyword if "A" <= c <= "Z")
    return gate.encode("ascii") if gate else None


class SecretsFilter:
    """Find credentials: provider formats and the application's own secrets.

    Args:
        action: ``"block"`` (default), ``"redact"`` or ``"flag"``. A PEM
            private key always blocks unless the action is ``"flag"``: its
            body is longer than the streaming window, so masking its start
            would leave key material in the output.
        registered: secret values the application knows (e.g. read from its
            environment). They are matched even when the model re-encodes or
            spaces them out, which stops a prompt-injected "print the key
            base64-encoded / letter by letter" exfiltration. Each must have
            at least 8 letters or digits. The values are never stored in
            findings, reprs or audit events.
        rules: the ruleset to use (default: all of
            :data:`~aiinvariants.filters._secret_rules.RULES`).

    Raises:
        PolicyError: an invalid action, or a registered secret too short to
            match without flagging ordinary words.
    """

    invariant = "I8"

    def __init__(
        self,
        *,
        action: Action = "block",
        registered: Iterable[str] = (),
        rules: Iterable[SecretRule] | None = None,
    ) -> None:
        self.action: Action = check_action(action, where="SecretsFilter")
        # What streaming holds back (see hold()), built on first use.
        self._widths: dict[str, int] | None = None
        self._keyword_prefixes: frozenset[str] = frozenset()
        self._kw_max = 0
        self._width_max = 0
        self._back: dict[str, int] = {}
        self._prefix_back: dict[str, int] = {}
        self._leads: list[tuple[re.Pattern[str], int]] = []
        self._by_first: dict[str, list[tuple[str, int]]] = {}
        self._kw_any: list[tuple[re.Pattern[str], int]] = []
        # (how many secrets it was built from, the longest skeleton, the
        # prefixes): a secret registered while another thread builds it
        # makes the build stale, never reused (secrets are only appended).
        self._reg_prefixes: tuple[int, int, frozenset[str]] | None = None
        if isinstance(registered, (str, bytes)):
            raise PolicyError("SecretsFilter registered= must be a list of strings")
        self._registered: list[Registered] = []
        for value in registered:
            if not isinstance(value, str):
                raise PolicyError("SecretsFilter registered= must hold strings")
            if sum(c.isalnum() for c in value) < MIN_REGISTERED:
                raise PolicyError(
                    "a registered secret needs at least 8 letters or digits "
                    "(shorter values would match ordinary text)"
                )
            self._registered.append(Registered(value))
        self.rules: tuple[SecretRule, ...] = RULES if rules is None else tuple(rules)
        self._token: dict[str, list[int]] = {}
        self._context: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            table = self._token if rule.kind == "token" else self._context
            for keyword in rule.keywords:
                table.setdefault(keyword, []).append(index)
        self._context_plan = _plan(self.rules, self._context)
        self._cased_plan = [  # one per keyword: a literal re finds at C speed
            (
                keyword.upper(),
                re.compile(re.escape(keyword.upper()) + rule.cased_shape),
                [index],
            )
            for index, rule in enumerate(self.rules)
            if rule.kind == "context" and rule.cased_shape
            for keyword in rule.keywords
        ]
        # The cased passes behind one gate: an upper-case keyword absent
        # from the text's capitals (found in one pass) costs no pass of its own.
        self._cased_gated = [
            (_capitals_gate(keyword), cased, indexes)
            for keyword, cased, indexes in self._cased_plan
        ]
        # Find candidates with one native pass when the ``hyperscan`` or
        # ``re2`` extra is installed (same findings; tests compare the
        # engines). _engine: "pure", "re2", "hyperscan" or None (the
        # AIINVARIANTS_SECRETS_ENGINE variable, else the fastest installed).
        self._use_native = True
        self._engine: str | None = None
        # Regex tries per scan (None: the default, ``budget_for(len(text))``).
        self._budget: int | None = None
        # One judgement per distinct window (off: every site judged anew).
        self._memo = True
        self._prescan: tuple[Prescan, Candidates] | None = None
        self._prescan_built = False
        reach = max([MAX_MATCH + 2 * GLUE_CAP] + [r.reach for r in self._registered])
        self.max_finding: int = reach
        # A decision looks at most this far outside its span: the glued
        # characters around a prefix match, the key name before "= value",
        # the fence line naming a code block's language.
        self.context: int = SITE_CONTEXT

    def __repr__(self) -> str:
        return (
            f"SecretsFilter(action={self.action!r}, rules={len(self.rules)}, "
            f"registered={len(self._registered)})"
        )

    def add_registered(self, value: str) -> None:
        """Register one more secret value (same rules as ``registered=``)."""
        if not isinstance(value, str) or sum(c.isalnum() for c in value) < 8:
            raise PolicyError(
                "a registered secret must be a string with at least 8 letters or digits"
            )
        entry = Registered(value)
        self._registered.append(entry)
        self.max_finding = max(self.max_finding, entry.reach)

    def scan(self, text: str) -> list[Finding]:
        """Every credential in ``text``, sorted by start."""
        return self.scan_canonical(canonical_of(text))

    def scan_canonical(self, canon: Canonical) -> list[Finding]:
        """Every credential in the text ``canon`` is the canonical form of.

        The rules and the registered secrets run over the canonical text
        (case kept); each finding's span is mapped back to the original.
        """
        # a fence only the canonical form has is none; a quote it decoded
        # is none either (_assignment_syntax.DECODED)
        text: str = canon.cased
        lowered: str | None = canon.text
        decoded: tuple[int, ...] = ()
        if text != canon.original:
            fenced, decoded = canonical_fences(text, canon.changed)
            if fenced != text:  # fence lines blanked: lower-case it anew
                text, lowered = fenced, None
        previous = DECODED.value
        DECODED.value = decoded
        try:
            found = self._scan_cased(text, lowered)
        finally:
            DECODED.value = previous
        written = self._scan_written(canon, text, decoded)
        if written:  # a finding the value as written covers is that one
            kept = [f for f in found if not any(_covers(w, f) for w in written)]
            found = sorted(
                set(kept).union(written), key=lambda f: (f.start, f.end, f.rule_id)
            )
        if self._registered:
            found += self._scan_encoded(canon)
            found.sort(key=lambda f: (f.start, f.end, f.rule_id))
        return in_original(canon, found)

    def _scan_written(
        self, canon: Canonical, text: str, decoded: tuple[int, ...]
    ) -> list[Finding]:
        """What the rules find where a decoded ``%3B``/``%20``/``&#9;`` is
        written back as one character of its escape (the value as the
        answer shows it, see :mod:`._secret_written`): only findings over
        such a character, not found over the canonical form already."""
        out: list[Finding] = []
        for window in written_windows(canon, text, _WRITTEN_LEFT, _WRITTEN_RIGHT):
            start, written = window.start, window.written
            previous = DECODED.value
            DECODED.value = tuple(
                p - start for p in decoded if start <= p < start + len(window.text)
            )
            try:
                found = self._scan_cased(window.text)
            finally:
                DECODED.value = previous
            for f in found:
                lo, hi = f.start + start, f.end + start
                if any(lo <= p < hi for p in written):
                    out.append(
                        Finding(f.rule_id, lo, hi, f.severity, f.fingerprint, f.action)
                    )
        return out

    def _scan_encoded(self, canon: Canonical) -> list[Finding]:
        """Base64 runs whose decoded text holds a registered secret in any
        spelling the canonical form folds (base64 of a fullwidth or
        lookalike copy); the whole run is the finding (canonical span)."""
        out: list[Finding] = []
        text = canon.cased
        for start, end, texts in decoded_runs(canon):
            for decoded in texts:
                folded = decoded.cased
                if any(r.normalized.search(folded) for r in self._registered):
                    out.append(
                        Finding(
                            "registered-secret", start, end, "critical",
                            fingerprint(text[start:end]), self.action,
                        )
                    )  # fmt: skip
                    break
        return out

    # -- scanning -----------------------------------------------------------

    def _scan_cased(self, text: str, lowered: str | None = None) -> list[Finding]:
        """Every credential in ``text``, sorted by start (``lowered``: its
        :func:`ascii_lower`, when the caller has it already)."""
        state = ScanState(text, self._budget, memo=self._memo)
        try:
            self._candidates(state, lowered)
        except Exhausted as stop:
            # fail closed: candidates were left unjudged, anywhere in the
            # text. One blocking finding over the whole text (a flag where
            # the budget ran out), and no other (what was found first
            # depends on the order the candidate search went in; the limit
            # does not).
            state.found.clear()
            state.limit_finding(stop.pos, self.action)
        if self._registered:
            if lowered is None:
                lowered = ascii_lower(text)
            for entry in self._registered:
                scan_registered(text, lowered, entry, state.found, self.action)
        found = state.found.values()
        return sorted(found, key=lambda f: (f.start, f.end, f.rule_id))

    def _candidates(self, state: ScanState, lowered: str | None = None) -> None:
        """Try every rule where it may fire (raises Exhausted past the
        budget); ``lowered``: :func:`ascii_lower` of the text, if known."""
        text = state.text
        native = self._native() if self._use_native else None
        windows = native[0].windows(text) if native is not None else None
        if native is not None and windows is not None:
            tokens, context = native[1].pairs(text, list(windows), ascii_lower)
            for pos, indexes in tokens:
                self._try(state, pos, indexes)
            state.note_tokens()
            for pos, indexes in context:
                self._try(state, pos, indexes)
            return
        if len(text) >= MIN_RUN and self._token:
            self._scan_tokens(state)
        state.note_tokens()
        if not self._context:
            return
        if lowered is None:
            lowered = ascii_lower(text)
        for keyword, shape, indexes in self._context_plan:
            if shape is None:
                pos = lowered.find(keyword)
                while pos != -1:
                    self._try(state, pos, indexes)
                    pos = lowered.find(keyword, pos + 1)
            else:
                for hit in shape.finditer(lowered):
                    self._try(state, hit.start(), indexes)
        if not self._cased_gated:
            return
        capitals = _capitals(text)
        for gate, cased, indexes in self._cased_gated:
            if gate is not None and gate not in capitals:
                continue  # the keyword is not in the text: its pass finds nothing
            for hit in cased.finditer(text):
                self._try(state, hit.start(), indexes)

    def _native(self) -> tuple[Prescan, Candidates] | None:
        """The native pre-scan for these rules, or None: the pure-Python
        search (see :mod:`aiinvariants.filters._prescan_engines`)."""
        if not self._prescan_built:
            self._prescan = self._native_for(engine_choice(self._engine))
            self._prescan_built = True
        return self._prescan

    def _native_for(self, engine: str) -> tuple[Prescan, Candidates] | None:
        """The pre-scan of ``engine`` for these rules, built once per engine
        and ruleset (None for ``pure`` or an engine not installed)."""
        key = (
            engine,
            self.rules,
            tuple((k, s.pattern if s else "") for k, s, _ in self._context_plan),
        )
        with _NATIVE_LOCK:
            return self._build_native(key)

    def _build_native(
        self, key: tuple[str, tuple[SecretRule, ...], tuple[tuple[str, str], ...]]
    ) -> tuple[Prescan, Candidates] | None:
        """:meth:`_native_for` under the lock: the cached pre-scan, or a new one."""
        engine = key[0]
        if key not in _NATIVE:
            reach = max((r.back for r in self.rules if r.kind == "token"), default=0)
            reach += max((len(k) for r in self.rules for k in r.keywords), default=0)
            prescan: Prescan | None = None
            if engine != "pure" and (self._token or self._context_plan):
                prescan = native_engine(
                    engine,
                    (self.rules, self._token, self._context_plan, self._cased_plan),
                    reach + 1,
                )
            for oldest in list(_NATIVE)[: max(0, len(_NATIVE) - 15)]:
                _NATIVE.pop(oldest, None)  # not all: a vectorscan build takes 1-3 s
            _NATIVE[key] = (
                None
                if prescan is None
                else (
                    prescan,
                    Candidates(self._token, self._context_plan, self._cased_plan),
                )
            )
        return _NATIVE[key]

    def _scan_tokens(self, state: ScanState) -> None:
        text = state.text
        mapped = text.translate(_RUN_TABLE)
        starts: list[int] = []
        pieces: list[str] = []
        joined_at: list[int] = []
        size = 0
        ascii_only = text.isascii()  # then mapped is only "a" and " "
        pos = mapped.find(_NEEDLE)
        while pos != -1:
            if ascii_only:
                end = mapped.find(" ", pos + MIN_RUN)
                end = len(mapped) if end == -1 else end
            else:
                stop = _NOT_RUN.search(mapped, pos + MIN_RUN)
                end = stop.start() if stop else len(mapped)
            # see _token_verdict: nothing to find otherwise (tested in place:
            # most runs are names such as user.is_authenticated, not sliced)
            if _VARIED(text, pos, end):
                starts.append(pos)
                joined_at.append(size)
                pieces.append(text[pos:end])
                size += end - pos + 1
            pos = mapped.find(_NEEDLE, end)
        if not pieces:
            return
        joined = ascii_lower("\x00".join(pieces))
        for keyword, indexes in self._token.items():
            at = joined.find(keyword)
            while at != -1:
                which = bisect_right(joined_at, at) - 1
                self._try(state, starts[which] + at - joined_at[which], indexes)
                at = joined.find(keyword, at + 1)

    def _try(self, state: ScanState, pos: int, indexes: list[int]) -> None:
        try_site(self.rules, self.action, state, pos, indexes)

    # -- streaming ----------------------------------------------------------

    def hold(self, canon: Canonical) -> int:
        """Canonical index from which more text could still change a finding.

        A rule's match starts at one of its keywords and spans at most the
        width of its pattern (computed from the pattern itself), and its
        decision looks at most ``context`` characters outside it; so only a
        keyword occurrence closer to the end than that, or a suffix that
        begins a keyword, is undecided, together with the characters glued
        to it on the left (at most ``context``). A registered secret is
        undecided from the longest suffix whose letters and digits begin one
        of its encodings.
        """
        text = canon.text
        hold = len(text)
        # what a decision reads after a keyword (``context`` also covers the
        # fence line before a site, which text to come cannot change)
        margin = SITE_MARGIN
        widths = self._keyword_widths()
        if widths:
            for pattern, reach in self._kw_any:
                match = pattern.search(text, max(0, len(text) - reach - margin))
                while match is not None:
                    at = match.start()
                    if self._could_match(text, at, margin):
                        # A rule with ``back`` starts before its keyword,
                        # across white space ("docker login -p"): holding
                        # only the glued characters let its start out.
                        back = max(
                            self._back.get(k, 0)
                            for k, _ in self._by_first[text[at]]
                            if text.startswith(k, at)
                        )
                        start = glued_start(text, at, margin)
                        hold = min(hold, start, max(0, at - back))
                        break
                    match = pattern.search(text, at + 1)
            at = suffix_start(text, self._keyword_prefixes, self._kw_max)
            hold = min(hold, glued_start(text, at, margin))
            if at < len(text):
                hold = min(hold, max(0, at - self._prefix_back.get(text[at:], 0)))
            # What may still become the start of a rule that begins before
            # its keyword ("docker " before "login" has arrived).
            for lead, width in self._leads:
                found = lead.search(text, max(0, len(text) - width))
                if found is not None:
                    hold = min(hold, found.start())
        if self._registered:
            reach = max(r.reach for r in self._registered)
            tail = text[-reach:]
            skeleton = ALNUM_ONLY.sub("", tail)  # text is lower-cased
            longest, prefixes = self._registered_prefixes()
            for size in range(min(len(skeleton), longest), 0, -1):
                if skeleton[-size:] in prefixes:
                    at = len(text) - len(tail) + nth_alnum_from_end(tail, size)
                    # A match may begin with a few symbols the skeleton
                    # skips (``%`` or ``0x`` before hex, ``+`` in base64).
                    hold = min(hold, glued_start(text, at, max(4, margin)))
                    break
            # A match may also begin with symbols before its first letter or
            # digit has arrived (``%`` or ``0x`` of hex, ``+`` of base64).
            hold = min(hold, glued_start(text, len(text), max(4, margin)))
            run = open_run(canon)  # may still decode to a spelled-out secret
            if run is not None:
                hold = min(hold, run)
        return hold

    def _could_match(self, text: str, at: int, margin: int) -> bool:
        """Whether more text could still change what happens at the keyword
        occurrence ``at``: a rule may still reach past the end of ``text``.

        Token rules only fire inside a run of at least ``MIN_RUN`` token
        characters, so a keyword in a shorter run that has ended (the "sk"
        of "asked") is decided.
        """
        size = len(text)
        for keyword, width in self._by_first[text[at]]:
            if not text.startswith(keyword, at) or at + width + margin <= size:
                continue
            if keyword in self._context:
                return True
            end, limit = at, min(size, at + MIN_RUN + 1)
            while end < limit and text[end] in RUN_CHARS:
                end += 1
            if end in (size, limit):
                return True
            start, low = at, max(0, at - MIN_RUN)
            while start > low and text[start - 1] in RUN_CHARS:
                start -= 1
            if end - start >= MIN_RUN:
                return True
        return False

    def _keyword_widths(self) -> dict[str, int]:
        if self._widths is None:
            # Built into locals and published with ``_widths`` last: a
            # filter is shared by concurrent streams, and one that saw
            # ``_widths`` set before the tries below held nothing back.
            widths: dict[str, int] = {}
            for table in (self._token, self._context):
                for keyword, indexes in table.items():
                    width = max(pattern_width(self.rules[i].pattern) for i in indexes)
                    widths[keyword] = max(widths.get(keyword, 0), width + LOOKAROUND)
            width_max = max(widths.values(), default=0)
            back: dict[str, int] = {}
            leads: list[tuple[re.Pattern[str], int]] = []
            for rule in self.rules:
                for keyword in rule.keywords:
                    back[keyword] = max(back.get(keyword, 0), rule.back)
                if rule.lead:
                    lead = re.compile(rule.lead)
                    leads.append((lead, pattern_width(lead)))
            prefix_back: dict[str, int] = {}
            for keyword, most in back.items():
                for i in range(1, len(keyword) + 1):
                    key = keyword[:i]
                    prefix_back[key] = max(prefix_back.get(key, 0), most)
            by_first: dict[str, list[tuple[str, int]]] = {}
            for keyword, width in widths.items():
                by_first.setdefault(keyword[0], []).append((keyword, width))
            # Two alternations built as tries (the regex engine tries one
            # branch per first character): keywords whose rules reach far,
            # searched over that reach, and all others over a short tail.
            near = [k for k, w in widths.items() if w <= NEAR]
            far = [k for k, w in widths.items() if w > NEAR]
            self._kw_any = [
                (re.compile(trie_pattern(near)), NEAR),
                (re.compile(trie_pattern(far)), width_max),
            ]
            self._keyword_prefixes = frozenset(
                k[:i] for k in widths for i in range(1, len(k) + 1)
            )
            self._kw_max = max((len(k) for k in widths), default=0)
            self._width_max = width_max
            self._back = back
            self._leads = leads
            self._prefix_back = prefix_back
            self._by_first = by_first
            self._widths = widths
        return self._widths

    def _registered_prefixes(self) -> tuple[int, frozenset[str]]:
        """The longest skeleton of the registered secrets and the prefixes
        of every skeleton, built once per set of registered secrets."""
        built = self._reg_prefixes
        if built is None or built[0] != len(self._registered):
            entries = list(self._registered)  # one snapshot (list() at once)
            skeletons = {k for r in entries for k in r.skeletons}
            built = (
                len(entries),
                max(len(k) for k in skeletons),
                frozenset(k[:i] for k in skeletons for i in range(1, len(k) + 1)),
            )
            self._reg_prefixes = built
        return built[1], built[2]
