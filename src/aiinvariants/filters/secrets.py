"""Credentials in output (invariant I8): the ruleset and the app's own secrets.

:class:`SecretsFilter` finds provider credentials (see
:mod:`aiinvariants.filters.secret_rules`, written from the providers' own
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

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

from aiinvariants._internal.canonical import Canonical, canonical
from aiinvariants._internal.holds import (
    LOOKAROUND,
    NEAR,
    glued_start,
    pattern_width,
    suffix_start,
    trie_pattern,
)
from aiinvariants.errors import PolicyError
from aiinvariants.filters._leaks import decoded_runs, open_run
from aiinvariants.filters._prescan import (
    Candidates,
    Prescan,
    anchors_of,
    native_prescan,
)
from aiinvariants.filters._secret_values import doc_marker, entropy, is_placeholder
from aiinvariants.filters.base import (
    Action,
    Finding,
    ascii_lower,
    canonical_of,
    check_action,
    fingerprint,
)
from aiinvariants.filters.secret_rules import (
    MAX_MATCH,
    MIN_RUN,
    RULES,
    RUN_CHARS,
    SecretRule,
)

__all__ = ["SecretsFilter"]

_RUN_TABLE: Final = str.maketrans(
    {
        chr(c): ("a" if chr(c).isalnum() or chr(c) in "_-+/=." else " ")
        for c in range(128)
    }
)
_NEEDLE: Final = "a" * MIN_RUN
_NOT_RUN: Final = re.compile("[^a]")
_MIN_REGISTERED: Final = 8
_MIN_TOKEN_ENTROPY: Final = 2.5
_VARIED: Final = re.compile(r"[A-Z0-9]").search
# Rules that judge a value by its strength alone: not reported for a value a
# provider rule already found (one finding per credential, and less work).
# The RE2 pre-scan per ruleset (None: ``re2`` is not installed).
_NATIVE: dict[
    tuple[tuple[SecretRule, ...], tuple[tuple[str, str], ...]],
    tuple[Prescan, Candidates] | None,
] = {}
_GENERIC: Final = frozenset(
    ("generic-credential-assignment", "credential-comparison", "authorization-header")
)


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


_GLUE_CAP: Final = 64  # glued characters looked at (and masked) per side
_BLOB_EXTRA: Final = 48  # glued characters around a match that make a blob
_GLUE: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
)


_GLUE_STRING: Final = "".join(sorted(_GLUE))
_GLUE_RIGHT: Final = re.compile(f"[A-Za-z0-9+/]{{0,{_GLUE_CAP}}}")


def _glue_run(text: str, at: int, step: int) -> int:
    """How many base64/identifier characters touch ``at`` going ``step``
    (at most ``_GLUE_CAP``), counted at C speed."""
    if step > 0:
        found = _GLUE_RIGHT.match(text, at) if at < len(text) else None
        return 0 if found is None else found.end() - at
    if at < 0:
        return 0
    chunk = text[max(0, at + 1 - _GLUE_CAP) : at + 1]
    return len(chunk) - len(chunk.rstrip(_GLUE_STRING))


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
    ``MyHelperAKIA…Factory``). A ``verified`` match (its embedded checksum
    holds) is never dismissed: chance does not produce one, so it is a real
    credential however it is dressed up or glued into other characters.

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
    if not verified and left and right and left + right >= _BLOB_EXTRA:
        return None
    return start - left, end + right


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


class _Scan:
    """The state of one :meth:`SecretsFilter.scan` call."""

    __slots__ = ("found", "text", "token_ends", "token_starts", "tried")

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: dict[tuple[int, int, str], Finding] = {}
        self.tried: set[tuple[int, int]] = set()
        self.token_starts: list[int] = []
        self.token_ends: list[int] = []

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


class _Registered:
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
            :data:`~aiinvariants.filters.secret_rules.RULES`).

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
        self._reg_prefixes: frozenset[str] | None = None
        self._longest_skeleton = 0
        if isinstance(registered, (str, bytes)):
            raise PolicyError("SecretsFilter registered= must be a list of strings")
        self._registered: list[_Registered] = []
        for value in registered:
            if not isinstance(value, str):
                raise PolicyError("SecretsFilter registered= must hold strings")
            if sum(c.isalnum() for c in value) < _MIN_REGISTERED:
                raise PolicyError(
                    "a registered secret needs at least 8 letters or digits "
                    "(shorter values would match ordinary text)"
                )
            self._registered.append(_Registered(value))
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
        # Find candidates with one RE2 pass when the ``re2`` extra is
        # installed (same findings; tests compare the two engines).
        self._use_native = True
        self._prescan: tuple[Prescan, Candidates] | None = None
        self._prescan_built = False
        reach = max([MAX_MATCH + 2 * _GLUE_CAP] + [r.reach for r in self._registered])
        self.max_finding: int = reach
        # A decision looks at most this far outside its span: the glued
        # characters around a prefix match, the key name before "= value".
        self.context: int = _GLUE_CAP + 8

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
        entry = _Registered(value)
        self._registered.append(entry)
        self._reg_prefixes = None
        self.max_finding = max(self.max_finding, entry.reach)

    def scan(self, text: str) -> list[Finding]:
        """Every credential in ``text``, sorted by start."""
        return self.scan_canonical(canonical_of(text))

    def scan_canonical(self, canon: Canonical) -> list[Finding]:
        """Every credential in the text ``canon`` is the canonical form of.

        The rules and the registered secrets run over the canonical text
        (case kept); each finding's span is mapped back to the original.
        """
        found = self._scan_cased(canon.cased)
        if self._registered:
            found += self._scan_encoded(canon)
            found.sort(key=lambda f: (f.start, f.end, f.rule_id))
        if canon.identity:
            return found
        out: list[Finding] = []
        for f in found:
            start, end = canon.span(f.start, f.end)
            out.append(
                Finding(f.rule_id, start, end, f.severity, f.fingerprint, f.action)
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

    def _scan_cased(self, text: str) -> list[Finding]:
        """Every credential in ``text``, sorted by start."""
        state = _Scan(text)
        native = self._native() if self._use_native else None
        windows = native[0].windows(text) if native is not None else None
        if native is not None and windows is not None:
            tokens, context = native[1].pairs(text, list(windows), ascii_lower)
            for pos, indexes in tokens:
                self._try(state, pos, indexes)
            self._note_tokens(state)
            for pos, indexes in context:
                self._try(state, pos, indexes)
            if self._registered:
                lowered = ascii_lower(text)
                for entry in self._registered:
                    self._scan_registered(text, lowered, entry, state.found)
            return sorted(
                state.found.values(), key=lambda f: (f.start, f.end, f.rule_id)
            )
        if len(text) >= MIN_RUN and self._token:
            self._scan_tokens(state)
        self._note_tokens(state)
        if self._context or self._registered:
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
            for _, cased, indexes in self._cased_plan:
                for hit in cased.finditer(text):
                    self._try(state, hit.start(), indexes)
            for entry in self._registered:
                self._scan_registered(text, lowered, entry, state.found)
        found = state.found.values()
        return sorted(found, key=lambda f: (f.start, f.end, f.rule_id))

    @staticmethod
    def _note_tokens(state: _Scan) -> None:
        spans = sorted(f.span for f in state.found.values())
        state.token_starts = [start for start, _ in spans]
        state.token_ends = [end for _, end in spans]

    def _native(self) -> tuple[Prescan, Candidates] | None:
        """The RE2 pre-scan for these rules (built once per ruleset), or None
        without the ``re2`` extra."""
        if self._prescan_built:
            return self._prescan
        key = (
            self.rules,
            tuple((k, s.pattern if s else "") for k, s, _ in self._context_plan),
        )
        if key not in _NATIVE:
            reach = max((r.back for r in self.rules if r.kind == "token"), default=0)
            reach += max((len(k) for r in self.rules for k in r.keywords), default=0)
            prescan: Prescan | None = None
            if self._token or self._context_plan:  # rules=(): nothing to find
                anchors = anchors_of(
                    self.rules, self._token, self._context_plan, self._cased_plan
                )
                prescan = native_prescan(anchors, reach + 1)
            if len(_NATIVE) >= 8:
                _NATIVE.clear()
            _NATIVE[key] = (
                None
                if prescan is None
                else (
                    prescan,
                    Candidates(self._token, self._context_plan, self._cased_plan),
                )
            )
        self._prescan = _NATIVE[key]
        self._prescan_built = True
        return self._prescan

    def _scan_tokens(self, state: _Scan) -> None:
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
            piece = text[pos:end]
            if _VARIED(piece):  # see _token_verdict: nothing to find otherwise
                starts.append(pos)
                joined_at.append(size)
                pieces.append(piece)
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

    def _try(self, state: _Scan, pos: int, indexes: list[int]) -> None:
        text = state.text
        for index in indexes:
            if (index, pos) in state.tried:
                continue
            state.tried.add((index, pos))
            rule = self.rules[index]
            if rule.back:
                match = rule.pattern.search(
                    text, max(0, pos - rule.back), pos + MAX_MATCH
                )
                if match is None or not match.start() <= pos < match.end():
                    continue
            else:
                match = rule.pattern.match(text, pos)
            if match is None:
                continue
            value = match.group()
            if rule.validate is not None and not rule.validate(value):
                continue
            if rule.id in _GENERIC and state.covered(*_value_span(match)):
                continue  # the provider rule already names (and masks) the value
            if rule.judge is not None and not rule.judge(match, text):
                continue
            span = match.span()
            verified = rule.checksum is not None and rule.checksum(value)
            runs_on = any(
                name.startswith("more") and part is not None
                for name, part in match.groupdict().items()
            )
            if rule.kind == "token":
                grown = _token_span(text, match, verified=verified)
                if grown is None:
                    continue
                span = grown
                # glued characters beyond what the span may cover: the key
                # (or what is glued to it) goes on and cannot be fully masked
                end = span[1]
                runs_on = runs_on or (
                    end - match.end() == _GLUE_CAP and _glue_run(text, end, 1) > 0
                )
            severity = "critical" if verified else rule.severity
            action = self.action
            if (rule.always_block or runs_on) and action == "redact":
                action = "block"
            # keyed by the match too: back-to-back keys grow to one span
            key = (span[0], span[1], f"{rule.id}@{match.start()}")
            state.found[key] = Finding(
                rule.id, span[0], span[1], severity, fingerprint(value), action
            )

    def _scan_registered(
        self,
        text: str,
        lowered: str,
        entry: _Registered,
        found: dict[tuple[int, int, str], Finding],
    ) -> None:
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
                    self.action,
                )

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
        margin = self.context
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
            skeleton = _ALNUM_ONLY.sub("", tail)  # text is lower-cased
            prefixes = self._registered_prefixes()
            for size in range(min(len(skeleton), self._longest_skeleton), 0, -1):
                if skeleton[-size:] in prefixes:
                    at = len(text) - len(tail) + _nth_alnum_from_end(tail, size)
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
            widths: dict[str, int] = {}
            for table in (self._token, self._context):
                for keyword, indexes in table.items():
                    width = max(pattern_width(self.rules[i].pattern) for i in indexes)
                    widths[keyword] = max(widths.get(keyword, 0), width + LOOKAROUND)
            self._widths = widths
            self._keyword_prefixes = frozenset(
                k[:i] for k in widths for i in range(1, len(k) + 1)
            )
            self._kw_max = max((len(k) for k in widths), default=0)
            self._width_max = max(widths.values(), default=0)
            for rule in self.rules:
                for keyword in rule.keywords:
                    self._back[keyword] = max(self._back.get(keyword, 0), rule.back)
                if rule.lead:
                    lead = re.compile(rule.lead)
                    self._leads.append((lead, pattern_width(lead)))
            self._prefix_back = {}
            for keyword, back in self._back.items():
                for i in range(1, len(keyword) + 1):
                    key = keyword[:i]
                    self._prefix_back[key] = max(self._prefix_back.get(key, 0), back)
            for keyword, width in widths.items():
                self._by_first.setdefault(keyword[0], []).append((keyword, width))
            # Two alternations built as tries (the regex engine tries one
            # branch per first character): keywords whose rules reach far,
            # searched over that reach, and all others over a short tail.
            near = [k for k, w in widths.items() if w <= NEAR]
            far = [k for k, w in widths.items() if w > NEAR]
            self._kw_any = [
                (re.compile(trie_pattern(near)), NEAR),
                (re.compile(trie_pattern(far)), self._width_max),
            ]
        return self._widths

    def _registered_prefixes(self) -> frozenset[str]:
        if self._reg_prefixes is None:
            skeletons = {k for r in self._registered for k in r.skeletons}
            self._longest_skeleton = max(len(k) for k in skeletons)
            self._reg_prefixes = frozenset(
                k[:i] for k in skeletons for i in range(1, len(k) + 1)
            )
        return self._reg_prefixes


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
