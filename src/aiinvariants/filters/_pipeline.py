"""Run output filters together: one check, one redaction, one audit trail.

The built-in filters match in the canonical form of the text
(:mod:`aiinvariants._internal.canonical`), computed once per check and
shared by them (:func:`~aiinvariants.filters._base.canonical_of`).

:class:`OutputPipeline` runs its filters over a text and merges their
findings. Redaction replaces each maximal run of characters covered by
``block`` or ``redact`` findings, overlapping *or adjacent*, by a single
``[REDACTED]``, so no part of any finding, and no boundary between two
secrets, survives. ``flag`` findings are recorded and change nothing.

Auditing is one event per filter per answer, not one per finding (a leaked
system prompt matches many windows): invariant ``I8`` (``I9`` for
disparagement, ``I10`` for content classifiers), decision the strongest
action among that filter's findings (``deny`` > ``redact`` > ``flag``),
reason the sorted rule ids, and details with the counts per action, per rule
and the findings' spans and fingerprints (capped); never the matched text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiinvariants._errors import OutputBlocked, PolicyError
from aiinvariants.audit._log import AuditLog
from aiinvariants.filters._base import Filter, Finding, canonical_of
from aiinvariants.filters._competitors import CompetitorFilter
from aiinvariants.filters._pii import PIIFilter
from aiinvariants.filters._secrets import SecretsFilter
from aiinvariants.filters._system_prompt import SystemPromptLeakFilter
from aiinvariants.filters._tool_outputs import ToolOutputLeakFilter

__all__ = [
    "REDACTED",
    "OutputCheck",
    "OutputPipeline",
    "merge_intervals",
    "merge_spans",
    "redact",
]

REDACTED: Final = "[REDACTED]"
# The end of a text where its canonical form may still change: an entity
# (also one escaped again, ``&amp;`` then ``#x41;``),
# escape or percent-escaped character not finished yet, a run of variation
# selectors (smuggled bytes) that may grow, or white space.
_OPEN_CANONICAL: Final = re.compile(
    r"(?:&(?:amp;){0,4}(?:#?[A-Za-z0-9]{0,31})?|\\(?:[uUx][0-9a-fA-F]{0,7})?|(?:%[0-9A-Fa-f]{0,2})+"
    "|[\ufe00-\ufe0f\U000e0100-\U000e01ef]+"
    r"|\s+)\Z"
)
_DECISION: Final = {"block": "deny", "redact": "redact", "flag": "flag"}


@dataclass(frozen=True)
class OutputCheck:
    """The result of :meth:`OutputPipeline.check`.

    Attributes:
        text: the text with every ``block``/``redact`` finding masked.
        findings: every finding, sorted by start.
        blocked: True when a finding's action is ``block``.
    """

    text: str
    findings: tuple[Finding, ...]
    blocked: bool

    def __repr__(self) -> str:
        rules = sorted({f.rule_id for f in self.findings})
        return (
            f"OutputCheck(blocked={self.blocked}, "
            f"findings={len(self.findings)}, rules={rules})"
        )


def merge_spans(findings: Iterable[Finding]) -> list[tuple[int, int]]:
    """Merge the spans of masking findings that overlap or touch."""
    return merge_intervals(
        f.span for f in findings if f.action != "flag" and f.end > f.start
    )


def merge_intervals(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge ``(start, end)`` intervals that overlap or touch, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def redact(text: str, spans: Sequence[tuple[int, int]], *, offset: int = 0) -> str:
    """``text`` with each span (absolute, minus ``offset``) replaced by REDACTED."""
    parts: list[str] = []
    at = 0
    for start, end in spans:
        parts.append(text[at : start - offset])
        parts.append(REDACTED)
        at = end - offset
    parts.append(text[at:])
    return "".join(parts)


def blocked_message(findings: Iterable[Finding]) -> OutputBlocked:
    """The exception for blocking findings: rule ids and spans, never text."""
    blocking = [f for f in findings if f.action == "block"]
    rules = ", ".join(sorted({f.rule_id for f in blocking}))
    found = {f.invariant for f in blocking}
    # Leaks first (I8), then banned content (I10), then disparagement (I9).
    invariant = next((i for i in ("I8", "I10", "I9") if i in found), "I8")
    return OutputBlocked(
        f"output blocked by {rules}",
        code="output_blocked",
        invariant=invariant,
        findings=blocking,
    )


_RANK: Final = {"flag": 0, "redact": 1, "block": 2}
_MAX_LISTED: Final = 32  # spans and fingerprints listed per event


def _event(owner: str, group: Sequence[Finding]) -> dict[str, Any]:
    """One audit event's fields for one filter's findings on one answer."""
    counts = {a: sum(f.action == a for f in group) for a in ("block", "redact", "flag")}
    per_rule: dict[str, int] = {}
    for f in group:
        per_rule[f.rule_id] = per_rule.get(f.rule_id, 0) + 1
    strongest = max((f.action for f in group), key=_RANK.__getitem__)
    found = {f.invariant for f in group}
    listed = group[:_MAX_LISTED]
    return {
        "invariant": next(i for i in ("I8", "I10", "I9", *sorted(found)) if i in found),
        "decision": _DECISION[strongest],
        "reason": ",".join(sorted(per_rule)),
        "details": {
            "filter": owner,
            "findings": len(group),
            "blocked": counts["block"],
            "redacted": counts["redact"],
            "flagged": counts["flag"],
            "rules": ",".join(f"{r}={n}" for r, n in sorted(per_rule.items())),
            "spans": ",".join(f"{f.start}-{f.end}" for f in listed),
            "fingerprints": ",".join(f.fingerprint for f in listed),
            "truncated": len(group) > _MAX_LISTED,
        },
    }


class OutputPipeline:
    """Run output filters over model output.

    Args:
        filters: the filters, e.g. ``[SecretsFilter(), PIIFilter()]``.
        audit: where each finding's decision is recorded (optional).

    Raises:
        PolicyError: an object that is not a filter.
    """

    def __init__(
        self, filters: Iterable[Filter], *, audit: AuditLog | None = None
    ) -> None:
        self.filters: tuple[Filter, ...] = tuple(filters)
        for f in self.filters:
            if not callable(getattr(f, "scan", None)) or not isinstance(
                getattr(f, "max_finding", None), int
            ):
                raise PolicyError(f"{type(f).__name__} is not an output filter")
        self.audit = audit
        # rule id -> the filter class that produced it (learned while
        # scanning), so findings handed to record() can be grouped per filter.
        self._owner: dict[str, str] = {"filter-error": "OutputPipeline"}

    def __repr__(self) -> str:
        names = ", ".join(type(f).__name__ for f in self.filters)
        return f"OutputPipeline([{names}])"

    @property
    def max_finding(self) -> int:
        """The longest finding any filter can produce."""
        return max((f.max_finding for f in self.filters), default=1)

    @property
    def context(self) -> int:
        """The widest context any filter's decisions depend on."""
        return max((f.context for f in self.filters), default=1)

    def scan(self, text: str) -> list[Finding]:
        """Every finding of every filter, sorted; a failing filter blocks.

        A filter that raises is fail-closed: the whole text becomes one
        blocking ``filter-error`` finding.
        """
        out: list[Finding] = []
        for f in self.filters:
            try:
                found = f.scan(text)
                name = type(f).__name__
                for finding in found:
                    if finding.rule_id not in self._owner:
                        self._owner[finding.rule_id] = name
                out.extend(found)
            except Exception:
                out.append(Finding("filter-error", 0, len(text), "high", "-", "block"))
        out.sort(key=lambda f: (f.start, f.end, f.rule_id))
        return out

    def check(self, text: str) -> OutputCheck:
        """Scan ``text``; return the masked text, the findings and the verdict."""
        if not isinstance(text, str):
            raise TypeError("OutputPipeline.check takes a str")
        findings = self.scan(text)
        self.record(findings)
        return OutputCheck(
            text=redact(text, merge_spans(findings)) if findings else text,
            findings=tuple(findings),
            blocked=any(f.action == "block" for f in findings),
        )

    def enforce(self, text: str) -> str:
        """The safe text, or :class:`~aiinvariants.OutputBlocked`."""
        result = self.check(text)
        if result.blocked:
            raise blocked_message(result.findings)
        return result.text

    def record(
        self, findings: Iterable[Finding], *, done: set[str] | None = None
    ) -> None:
        """Audit the findings of one answer: one event per filter, with counts.

        No-op without an audit log. Events carry rule ids, counts, spans and
        fingerprints, never the matched text. ``done``: the filters whose
        event is written already (skipped); each one written is added, so a
        call that failed part-way can be repeated without writing twice.
        """
        if self.audit is None:
            return
        groups: dict[str, list[Finding]] = {}
        for f in findings:
            owner = self._owner.get(f.rule_id, "OutputPipeline")
            groups.setdefault(owner, []).append(f)
        for owner, group in groups.items():
            if done is not None and owner in done:
                continue
            self.audit.record(**_event(owner, group))
            if done is not None:
                done.add(owner)

    @classmethod
    def from_policy(
        cls,
        policy: Any,
        *,
        audit: AuditLog | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> OutputPipeline:
        """The filters a policy's ``outputs`` section turns on.

        Registered secrets are read from the environment variables named in
        ``outputs.secrets.registered_env``. The system-prompt and tool-output
        filters start empty: register texts on them
        (:meth:`SystemPromptLeakFilter.protect`,
        :meth:`ToolOutputLeakFilter.register`), found via :meth:`get`.

        Raises:
            PolicyError: a named variable is unset or empty (the message
                names the variable, never a value).
        """
        outputs = policy.outputs
        filters: list[Filter] = []
        sec = outputs.secrets
        if sec.enabled:
            values = []
            for name in sec.registered_env:
                value = environ.get(name)
                if not value:
                    raise PolicyError(
                        f"outputs.secrets.registered_env: environment variable "
                        f"{name} is unset or empty"
                    )
                values.append(value)
            filters.append(SecretsFilter(action=sec.action, registered=values))
        sp = outputs.system_prompt
        if sp.enabled:
            filters.append(
                SystemPromptLeakFilter(
                    action=sp.action, threshold=sp.threshold, canary=sp.canary
                )
            )
        to = outputs.tool_outputs
        if to.enabled:
            filters.append(
                ToolOutputLeakFilter(
                    action=to.action, min_overlap_chars=to.min_overlap_chars
                )
            )
        comp = outputs.competitors
        if comp.enabled and (comp.names or comp.protect):
            filters.append(
                CompetitorFilter(
                    names=comp.names,
                    aliases={k: tuple(v) for k, v in comp.aliases.items()},
                    protect=comp.protect,
                    action=comp.action,
                )
            )
        pii = outputs.pii
        if pii.enabled:
            filters.append(PIIFilter(action=pii.action, kinds=pii.kinds))
        return cls(filters, audit=audit)

    def get(self, kind: type[Any]) -> Any:
        """The first filter of class ``kind`` (e.g. to register texts on it)."""
        for f in self.filters:
            if isinstance(f, kind):
                return f
        raise LookupError(f"no {kind.__name__} in this pipeline")

    def scan_and_hold(self, text: str) -> tuple[list[Finding], int]:
        """The findings in ``text``, and where undecided text begins.

        The second value is an index into ``text``: findings that start
        before it are the same whatever text is appended later (each filter
        says so through its ``hold`` method; a filter without one is assumed
        to need ``max_finding + context`` characters). Used by
        :class:`~aiinvariants.filters.StreamGuard`.
        """
        findings = self.scan(text)
        tail = _OPEN_CANONICAL.search(text, max(0, len(text) - 64))
        hold = tail.start() if tail else len(text)
        try:
            # An unfinished entity or escape: the filters judge the text
            # before it, which is what they will see once it is decoded.
            cut = hold < len(text) and not text[hold].isspace()
            canon = canonical_of(text[:hold] if cut else text)
            for f in self.filters:
                method = getattr(f, "hold", None)
                if method is None:
                    hold = min(hold, len(text) - f.max_finding - f.context)
                    continue
                index = method(canon)
                if index < len(canon.text):
                    hold = min(hold, canon.position(index))
                elif hold > len(canon.original):
                    hold = min(hold, len(canon.original))
        except Exception:  # fail closed: decide nothing yet
            return findings, 0
        return findings, max(0, hold)
