"""System prompt and hidden-policy leaks (invariant I8).

:class:`SystemPromptLeakFilter` protects the system prompt and any hidden
policies. It finds (1) its *canary*, a random token the application plants in
the system prompt (:meth:`SystemPromptLeakFilter.protect`): any output that
contains it, even re-spaced or re-cased, is a leak; (2) verbatim or
near-verbatim copies, found by normalized probes (see
:mod:`aiinvariants.filters._leaks`) in the canonical text form, insensitive
to case, white space of any kind, punctuation, zero-width characters,
fullwidth and lookalike letters, HTML entities and escapes. ``threshold`` (the policy's
``outputs.system_prompt.threshold``) is the share of a window of the
protected text that must reappear for the copy to count.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from aiinvariants._errors import PolicyError
from aiinvariants._internal.canonical import Canonical
from aiinvariants.filters._base import (
    Action,
    Finding,
    canonical_of,
    check_action,
    fingerprint,
)
from aiinvariants.filters._leaks import Probes

__all__ = ["SystemPromptLeakFilter"]


class SystemPromptLeakFilter:
    """Block output that reveals the system prompt or hidden policies.

    Args:
        system_prompt: the system prompt to protect.
        hidden: hidden policies or other instructions never to reveal.
        action: ``"block"`` (default), ``"redact"`` or ``"flag"``.
        threshold: in (0, 1]; the density of copied text from which output
            counts as a leak (default 0.6). Lower catches looser paraphrase
            of wording, at the cost of false positives on common phrases.
        canary: plant and detect a random canary token (default True). It
            catches a leak even when the model copies only a few words.

    Raises:
        PolicyError: invalid action or threshold.
    """

    invariant = "I8"

    def __init__(
        self,
        *,
        system_prompt: str = "",
        hidden: Iterable[str] = (),
        action: Action = "block",
        threshold: float = 0.6,
        canary: bool = True,
    ) -> None:
        self.action: Action = check_action(action, where="SystemPromptLeakFilter")
        if isinstance(hidden, str):
            raise PolicyError("SystemPromptLeakFilter hidden= must be a list")
        if not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise PolicyError("SystemPromptLeakFilter threshold must be in (0, 1]")
        self.threshold = float(threshold)
        self._probes = Probes(k=20, stride=10, window=200)
        self._canary: str | None = None
        self._canary_probes = Probes(k=32, stride=32, window=0)
        if canary:
            self._canary = "aiinv-canary-" + secrets.token_hex(8)
            self._canary_probes.add(self._canary, threshold=1.0)
        texts = [system_prompt, *hidden]
        for text in texts:
            if not isinstance(text, str):
                raise PolicyError("SystemPromptLeakFilter texts must be strings")
            if text:
                self._probes.add(text, threshold=self.threshold)
        self.max_finding = 4 * 32
        self.context = self._probes.context

    def __repr__(self) -> str:
        return (
            f"SystemPromptLeakFilter(action={self.action!r}, "
            f"threshold={self.threshold}, canary={self._canary is not None})"
        )

    @property
    def canary(self) -> str | None:
        """The canary token to plant in the system prompt (None if disabled)."""
        return self._canary

    def protect(self, system_prompt: str) -> str:
        """Register ``system_prompt`` and return it with the canary planted."""
        if system_prompt:
            self._probes.add(system_prompt, threshold=self.threshold)
        if self._canary is None:
            return system_prompt
        return f"{system_prompt}\n\n[internal marker: {self._canary}]"

    def add_hidden(self, text: str) -> None:
        """Protect one more hidden policy."""
        self._probes.add(text, threshold=self.threshold)

    def scan(self, text: str) -> list[Finding]:
        """Every leak in ``text``, sorted by start."""
        return self.scan_canonical(canonical_of(text))

    def hold(self, canon: Canonical) -> int:
        """Canonical index from which more text could still change a finding."""
        return min(self._probes.hold(canon), self._canary_probes.hold(canon))

    def scan_canonical(self, canon: Canonical) -> list[Finding]:
        """Every leak in the text ``canon`` is the canonical form of."""
        text = canon.original
        out = [
            Finding(
                "system-prompt-canary", s, e, "critical", fingerprint(text[s:e]),
                self.action,
            )
            for s, e, _ in self._canary_probes.findings(canon)
        ]  # fmt: skip
        out += [
            Finding(
                "system-prompt-copy", s, e, "high", fingerprint(text[s:e]), self.action
            )
            for s, e, _ in self._probes.findings(canon)
        ]
        out.sort(key=lambda f: (f.start, f.end, f.rule_id))
        return out
