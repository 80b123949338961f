"""What every output filter shares: findings, actions, fingerprints, locality.

A filter looks at a text and returns :class:`Finding` objects. A finding
names the rule that fired, where (a half-open character span), how severe it
is, what the filter does about it (its :data:`Action`) and a *fingerprint*: a
short keyed hash of the matched text. The matched text itself is never kept,
so a finding can be logged, audited, raised or printed without carrying the
secret it found.

Locality is what makes streaming exact. Each filter declares two bounds:
``max_finding`` (no finding is longer, in characters) and ``context`` (whether
a finding exists, and its exact span, depends only on the ``context``
characters on each side of it). :class:`~aiinvariants.filters.StreamGuard`
relies on these bounds to scan each character a bounded number of times and
still reach the same decisions as one scan of the whole text.

Two optional methods make a filter cheaper and faster to stream. The built-in
filters have both:

* ``scan_canonical(canon)``: the findings in the text ``canon`` is the
  canonical form of (:mod:`aiinvariants._internal.canonical`), with spans in
  the original text; ``scan(text)`` is then
  ``scan_canonical(canonical_of(text))``. :func:`canonical_of` computes the
  form once for the string a pipeline check hands every filter.
* ``hold(canon) -> int``: the canonical index from which appending text could
  still add or change a finding. Findings that start before it are final, so
  the stream guard can emit the text before it at once. A filter without it
  is assumed undecided over its last ``max_finding + context`` characters.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

from aiinvariants._errors import PolicyError
from aiinvariants._internal.canonical import Canonical, canonical
from aiinvariants._internal.policy_types import Action

__all__ = [
    "ACTIONS",
    "Action",
    "Filter",
    "Finding",
    "Severity",
    "canonical_of",
    "fingerprint",
]

Severity = Literal["low", "medium", "high", "critical"]
"""How bad a finding is; ``critical`` is a credential whose checksum verified."""

ACTIONS: Final[frozenset[str]] = frozenset(("block", "redact", "flag"))

# A per-process random key: fingerprints correlate findings within one
# process (the same secret twice has the same fingerprint) but cannot be used
# as an oracle to confirm a guessed value offline from an audit trail.
_KEY: Final[bytes] = os.urandom(32)


def fingerprint(value: str) -> str:
    """A short keyed hash of ``value`` (16 hex digits, BLAKE2b, per-process key).

    Args:
        value: the matched text; it is hashed, never stored.

    Returns:
        The fingerprint carried by findings and audit events.
    """
    digest = hashlib.blake2b(
        value.encode("utf-8", "surrogatepass"), key=_KEY, digest_size=8
    )
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a filter found. It never holds the matched text.

    Attributes:
        rule_id: the rule that fired (``"github-pat"``, ``"pii-email"``…).
        start: index of the first character of the span.
        end: index one past the last character of the span.
        severity: how bad it is.
        fingerprint: keyed hash of the matched text (see :func:`fingerprint`).
        action: what the pipeline does with it.
        invariant: ``"I8"`` (leaks) or ``"I9"`` (disparagement).
    """

    rule_id: str
    start: int
    end: int
    severity: Severity
    fingerprint: str
    action: Action = "block"
    invariant: str = "I8"

    @property
    def span(self) -> tuple[int, int]:
        """``(start, end)``, half-open."""
        return (self.start, self.end)

    def shifted(self, offset: int) -> Finding:
        """The same finding with its span moved by ``offset`` characters."""
        return Finding(
            self.rule_id,
            self.start + offset,
            self.end + offset,
            self.severity,
            self.fingerprint,
            self.action,
            self.invariant,
        )


@runtime_checkable
class Filter(Protocol):
    """An output filter.

    Attributes:
        action: what the filter's findings do (``block``, ``redact``, ``flag``).
        max_finding: an upper bound on the length of any finding.
        context: findings depend only on this many characters on each side.
    """

    action: Action
    max_finding: int
    context: int

    def scan(self, text: str) -> list[Finding]:
        """Every finding in ``text``, sorted by start."""
        ...


_last: tuple[str, Canonical] | None = None


def canonical_of(text: str) -> Canonical:
    """The canonical form of ``text``, computed once for the same string.

    Every filter of a pipeline is handed the same ``str`` object; the first
    to ask computes its canonical form, the others reuse it (one entry,
    matched by identity, so a different text is never confused with it; a
    concurrent check at worst computes it again).
    """
    global _last
    last = _last
    if last is not None and last[0] is text:
        return last[1]
    canon = canonical(text)
    _last = (text, canon)
    return canon


def in_original(canon: Canonical, found: list[Finding]) -> list[Finding]:
    """``found`` (findings in ``canon``'s text) with their spans mapped back
    to the original text."""
    if canon.identity:
        return found
    out: list[Finding] = []
    for f in found:
        start, end = canon.span(f.start, f.end)
        out.append(Finding(f.rule_id, start, end, f.severity, f.fingerprint, f.action))
    return out


def check_action(action: object, *, where: str) -> Action:
    """Validate an ``action=`` argument early (a typo must not disable a filter)."""
    if action not in ACTIONS:
        raise PolicyError(
            f"{where}: action must be 'block', 'redact' or 'flag', not {action!r}"
        )
    return action  # type: ignore[return-value]


def ascii_lower(text: str) -> str:
    """``text.lower()``, guaranteed to keep every index where it was.

    ``str.lower`` turns U+0130 into two characters; every filter maps spans
    back to the original text, so lengths must not move.
    """
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
