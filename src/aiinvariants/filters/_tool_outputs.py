"""Raw confidential tool outputs copied into the answer (invariant I8).

The application registers the raw output of each tool marked
``confidential_output`` for the current run (:meth:`ToolOutputLeakFilter.register`);
any copy of at least ``min_overlap_chars`` characters of it in the answer
(compared in the canonical text form: case, white space, punctuation,
zero-width characters, fullwidth and lookalike letters, entities and escapes
ignored) is a finding. Summaries are fine;
verbatim dumps are not.
"""

from __future__ import annotations

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

__all__ = ["ToolOutputLeakFilter"]


class ToolOutputLeakFilter:
    """Find long verbatim copies of registered confidential tool outputs.

    Args:
        action: ``"block"`` (default), ``"redact"`` or ``"flag"``.
        min_overlap_chars: the shortest copy that counts (default 40, at
            least 8). Any copy of this many normalized characters is found.

    Raises:
        PolicyError: invalid action or length.
    """

    invariant = "I8"

    def __init__(
        self, *, action: Action = "block", min_overlap_chars: int = 40
    ) -> None:
        self.action: Action = check_action(action, where="ToolOutputLeakFilter")
        if not isinstance(min_overlap_chars, int) or min_overlap_chars < 8:
            raise PolicyError("ToolOutputLeakFilter min_overlap_chars must be >= 8")
        self.min_overlap_chars = min_overlap_chars
        k = (min_overlap_chars + 1) // 2
        self._probes = Probes(k=k, stride=min_overlap_chars - k + 1, window=0)
        self.max_finding = 4 * k
        self.context = self._probes.context

    def __repr__(self) -> str:
        return (
            f"ToolOutputLeakFilter(action={self.action!r}, "
            f"min_overlap_chars={self.min_overlap_chars})"
        )

    def register(self, output: str) -> None:
        """Protect the raw output of a confidential tool for this run."""
        if not isinstance(output, str):
            raise PolicyError("ToolOutputLeakFilter.register takes a string")
        self._probes.add(output, threshold=1e-9)

    def clear(self) -> None:
        """Forget the registered outputs (at the end of a run)."""
        self._probes.clear()

    def scan(self, text: str) -> list[Finding]:
        """Every copied stretch of a registered output, sorted by start."""
        return self.scan_canonical(canonical_of(text))

    def hold(self, canon: Canonical) -> int:
        """Canonical index from which more text could still change a finding."""
        return self._probes.hold(canon)

    def scan_canonical(self, canon: Canonical) -> list[Finding]:
        """Every copied stretch in the text ``canon`` is the canonical form of."""
        text = canon.original
        return sorted(
            (
                Finding(
                    "tool-output-copy", s, e, "high", fingerprint(text[s:e]),
                    self.action,
                )
                for s, e, _ in self._probes.findings(canon)
            ),
            key=lambda f: (f.start, f.end),
        )  # fmt: skip
