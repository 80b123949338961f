"""Leak-free streaming: emit model output as soon as it is known to be safe.

:class:`StreamGuard` sits between a token stream and the user. It keeps back
only the text that could still be part of a finding and emits the rest.

Why the decisions are exactly those of one scan of the whole answer: every
filter declares ``max_finding`` (L, no finding is longer) and ``context``
(C, a finding depends only on C characters on each side). Once K characters
are known, every finding that starts before ``K - L - C`` is fully
determined, so the guard scans the window ``[D - C, K)`` (D: where the last
scan's certainty ended), keeps the findings that start in ``[D, K - L - C)``
and advances D. Text before D is emitted, except a masked span that may
still grow (it ends at or after D). For any chunking, the concatenated
output equals ``OutputPipeline.check(answer).text``, or, when a finding
blocks, a prefix of it that ends before that finding: ``OutputBlocked`` is
raised before any of it is emitted.

Bounded cost: a scan runs once at least ``batch`` new characters have
arrived (default ``L + 2C``), over ``batch + L + 2C`` characters, so each
character is scanned at most ``1 + (L + 2C) / batch`` times (2 by default)
and the total cost is linear in the stream. The guard holds back at most
``batch + L + C`` characters (plus a masked span still growing).
"""

from __future__ import annotations

from aiinvariants.errors import OutputBlocked, PolicyError
from aiinvariants.filters.base import Finding
from aiinvariants.filters.pipeline import (
    OutputPipeline,
    blocked_message,
    merge_spans,
    redact,
)

__all__ = ["StreamGuard"]


class StreamGuard:
    """Guard a streamed answer chunk by chunk.

    Args:
        pipeline: the filters to enforce.
        batch: scan after this many new characters (default ``L + 2C`` of
            the pipeline). Smaller values emit sooner and cost more.

    ``feed(chunk)`` returns the text safe to emit now; ``close()`` the rest.
    Both raise :class:`~aiinvariants.OutputBlocked` at the first blocking
    finding, after which the guard refuses further input.
    """

    def __init__(self, pipeline: OutputPipeline, *, batch: int | None = None) -> None:
        if not isinstance(pipeline, OutputPipeline):
            raise PolicyError("StreamGuard needs an OutputPipeline")
        self._pipeline = pipeline
        self._reach = pipeline.max_finding
        self._context = pipeline.context
        if batch is None:
            batch = self._reach + 2 * self._context
        if not isinstance(batch, int) or batch < 1:
            raise PolicyError("StreamGuard batch must be a positive int")
        self._batch = batch
        self._buf = ""
        self._parts: list[str] = []
        self._next_scan = batch
        self._stopped = False
        self._base = 0
        self._known = 0
        self._done = 0
        self._emitted = 0
        self._spans: list[tuple[int, int]] = []
        self._failed: OutputBlocked | None = None
        self._closed = False
        self.findings: list[Finding] = []

    def __repr__(self) -> str:
        return (
            f"StreamGuard(fed={self._known}, emitted={self._emitted}, "
            f"findings={len(self.findings)}, blocked={self._failed is not None})"
        )

    @property
    def held_back(self) -> int:
        """Characters received but not yet emitted."""
        return self._known - self._emitted

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return the text that is safe to emit now."""
        if self._stopped:
            if self._failed is not None:
                raise self._failed
            raise PolicyError("StreamGuard.feed after close()")
        if chunk.__class__ is not str:
            raise TypeError("StreamGuard.feed takes a str")
        # Hot path (one call per token): append and count, nothing else.
        self._parts.append(chunk)
        self._known += len(chunk)
        if self._known < self._next_scan:
            return ""
        self._scan(final=False)
        return self._emit(final=False)

    def close(self) -> str:
        """End of the answer: return everything not emitted yet."""
        if self._failed is not None:
            raise self._failed
        if self._closed:
            return ""
        self._closed = self._stopped = True
        self._scan(final=True)
        return self._emit(final=True)

    def _scan(self, *, final: bool) -> None:
        if self._parts:
            self._buf += "".join(self._parts)
            self._parts.clear()
        self._next_scan = self._known + self._batch
        until = self._known if final else self._known - self._reach - self._context
        if until <= self._done:
            return
        start = max(0, self._done - self._context)
        window = self._buf[start - self._base : self._known - self._base]
        accepted: list[Finding] = []
        for found in self._pipeline.scan(window):
            f = found.shifted(start)
            if f.rule_id == "filter-error" or self._done <= f.start < until:
                accepted.append(f)
        self._done = until
        if not accepted:
            return
        self.findings.extend(accepted)
        self._pipeline.record(accepted)
        if any(f.action == "block" for f in accepted):
            self._failed = blocked_message(accepted)
            self._stopped = True
            raise self._failed
        self._spans = merge_spans(
            [Finding("", s, e, "low", "", "redact") for s, e in self._spans] + accepted
        )

    def _emit(self, *, final: bool) -> str:
        upto = self._known if final else self._done
        ready: list[tuple[int, int]] = []
        pending: list[tuple[int, int]] = []
        for span in self._spans:
            if not final and span[1] >= self._done:
                upto = min(upto, span[0])
                pending.append(span)
            elif span[1] <= upto:
                ready.append(span)
            else:
                pending.append(span)
        if upto <= self._emitted:
            return ""
        piece = self._buf[self._emitted - self._base : upto - self._base]
        out = redact(piece, ready, offset=self._emitted)
        self._spans = pending
        self._emitted = upto
        keep = min(self._emitted, max(0, self._done - self._context))
        if keep > self._base:
            self._buf = self._buf[keep - self._base :]
            self._base = keep
        return out
