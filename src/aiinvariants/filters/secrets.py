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

from aiinvariants.errors import PolicyError
from aiinvariants.filters._secret_values import doc_marker, entropy, is_placeholder
from aiinvariants.filters.base import (
    Action,
    Finding,
    ascii_lower,
    check_action,
    fingerprint,
)
from aiinvariants.filters.secret_rules import (
    MAX_MATCH,
    MIN_RUN,
    RULES,
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


def _glue_run(text: str, at: int, step: int) -> int:
    """How many base64/identifier characters touch ``at`` going ``step``."""
    count = 0
    while count < _GLUE_CAP and 0 <= at < len(text) and text[at] in _GLUE:
        count += 1
        at += step
    return count


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

    __slots__ = ("literals", "lowered", "normalized", "reach")

    def __init__(self, value: str) -> None:
        raw = value.encode("utf-8")
        literals = {value, quote(value, safe="")} | _b64_variants(raw)
        self.literals = tuple(sorted(v for v in literals if len(v) >= 8))
        self.lowered = (binascii.hexlify(raw).decode("ascii"),)
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
        self.reach = max(8 * len(value), 2 * len(raw) + 8, 4 * len(raw) // 3 + 8)


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
        self.max_finding = max(self.max_finding, entry.reach)

    # -- scanning -----------------------------------------------------------

    def scan(self, text: str) -> list[Finding]:
        """Every credential in ``text``, sorted by start."""
        state = _Scan(text)
        if len(text) >= MIN_RUN and self._token:
            self._scan_tokens(state)
        spans = sorted(f.span for f in state.found.values())
        state.token_starts = [start for start, _ in spans]
        state.token_ends = [end for _, end in spans]
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
            for entry in self._registered:
                self._scan_registered(text, lowered, entry, state.found)
        found = state.found.values()
        return sorted(found, key=lambda f: (f.start, f.end, f.rule_id))

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
        search = entry.normalized.search
        match = search(text)
        while match is not None:
            hits.append(match.span())
            match = search(text, match.start() + 1)
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
