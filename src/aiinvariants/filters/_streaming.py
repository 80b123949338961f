"""Leak-free streaming: emit model output as soon as it is known to be safe.

:class:`StreamGuard` sits between a token stream and the user. It keeps back
only the text that could still become part of a finding and emits the rest.

How it decides what is safe. Each scan looks at the window ``[D - C, K)``
(K: characters known so far; D: where the previous scan's certainty ended;
C: the widest context any filter needs on the left) and asks every filter
where its undecided suffix begins (``hold``): the start of a keyword or a
partial keyword near the end of the text (secrets), the longest suffix that
begins a protected text's probe (system prompt, tool outputs, canary), the
open e-mail address or number (PII), an unfinished entity, escape or run of
white space (the canonical form). Findings that start in ``[D, H)`` (H: the
smallest of those) are final; D advances to H and text before it is emitted,
with each masked span replaced by ``[REDACTED]``. Prose with nothing
suspicious is held back by a few characters only.

The left context C is counted in canonical characters (what the filters
compare): a window reaches back over zero-width characters, combining marks,
entities and escapes until it holds C of them, or the answer is refused
(rule ``stream-undecided``) when :data:`HOLD_CAP` characters do not.

A masked span that is still growing (it reaches D, so a later finding could
touch it) is announced at once: ``[REDACTED]`` is emitted when the text
before it is final, and the characters it covers are dropped as they arrive.
Memory and time stay linear however long the span grows, and the output is
still exactly one ``[REDACTED]`` per merged span.

For any chunking, the concatenated output equals
``OutputPipeline.check(answer).text``, or, when a finding blocks, a prefix of
it that ends before that finding: :class:`~aiinvariants.OutputBlocked` is
raised before any of it is emitted.

An undecided tail longer than :data:`HOLD_CAP` characters (invisible or
combining characters stuffed after text a filter holds) blocks the answer
with rule ``stream-undecided``: holding it would cost memory and rescans
without bound.

Bounded cost: scans run when enough new text has arrived. The step starts at
16 characters (the first text appears after about that many) and grows with
the answer: the first :data:`EXACT_HEAD` characters are scanned each time
they have doubled (at 16, 32, 64, 128, 256 and 512: 6 scans there), then
each time a quarter of what the next scan reads has arrived (its left
context and the undecided tail), at least :data:`BODY_STEP` characters and
at most ``L + 2C`` (L: the longest finding) unless a sixth of the read is
more (a left context stretched by invisible characters): prose is scanned
about every 80 characters and held back by a few tens, and a scan that
must read a long undecided tail or a stretched context waits for
proportionally more text, so each character is read a bounded number of
times (about 5, at most about 7) and the total cost is linear in the
stream. ``batch=`` fixes the step. A
filter without a ``hold`` method is assumed undecided over its last
``max_finding + context`` characters, and makes the step ``L + 2C`` from the
start (a classifier of the whole answer is asked once, at the end).

Each scan costs a fixed part (every filter's entry, its ``hold``) besides
the characters it reads, so a stream scanned on that schedule costs several
one-shot checks of the same text. That only matters when text arrives faster
than it can be scanned (a replayed or cached answer, a very fast model): a
model at reading pace leaves the guard idle between chunks. So the guard
keeps a budget: it follows the character schedule while its scans have taken
at most ``scan_share`` (a quarter by default) of the stream's wall time since
the guard was made; past that, it scans once :data:`MAX_WAIT` characters
wait, looking at the clock again every eighth of the answer (at most
``L + 2C`` characters), so a burst's text is released soon after the stream
slows down. Text that arrives in bursts with pauses
between them keeps the character schedule, text that arrives faster than
it can be scanned is scanned in large pieces and costs little more than one
check. The first scan
is never postponed, and the first :data:`EXACT_HEAD` characters always
follow the character schedule, so a short answer comes out in the same
pieces however fast it arrives. What is emitted, and every decision, is the
same for any schedule: only when text appears changes. ``scan_share=1`` (or a fixed
``batch=``) keeps the character schedule alone.

The secrets filter's judging budget grows with the text a scan judges. A
window is judged with the budget of the answer so far, not of its own
length (the last one with the one-shot check's). A window past it decides
nothing (none of it is emitted) and is scanned again once it has doubled,
so the text that follows gives it the budget the one-shot check of the
whole answer has; at the end of the answer it blocks as the check does,
and past :data:`HOLD_CAP` undecided characters it blocks without waiting
for text that might still follow (the answer so far is denser in
candidates than its own budget allows over that stretch).

Auditing is the one-shot check's: one event per filter per answer, with the
same counts and value-free findings (spans relative to the whole answer),
written once the stream is decided: at the raise when a finding blocks,
otherwise at ``close()``. A stream that is abandoned (``abort()``, the end of
a ``with`` block without ``close()``, or the guard garbage-collected) is
judged as if the answer ended there, the text held back included, and
audited exactly once; nothing more is emitted.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from types import TracebackType
from typing import Final

from aiinvariants._errors import OutputBlocked, PolicyError
from aiinvariants._internal.canonical import canonical
from aiinvariants.filters._base import Finding, canonical_of
from aiinvariants.filters._pipeline import (
    REDACTED,
    OutputPipeline,
    blocked_message,
    merge_intervals,
)
from aiinvariants.filters._secret_sites import LIMIT_RULE, judged_after

__all__ = ["StreamGuard"]

_FIRST_STEP: Final = 16
BODY_STEP: Final = 64
"""Characters: past the head, scans on the character schedule run at least
this far apart (a quarter of what a scan reads, when that is more)."""
SCAN_SHARE: Final = 0.25
"""The share of a stream's wall time the guard may spend scanning on its
character schedule; past it, scans wait for :data:`MAX_WAIT` characters."""
MAX_WAIT: Final = 65536
"""Characters: however fast text arrives, a scan runs once this many wait."""
EXACT_HEAD: Final = 512
"""Characters: the head of every answer is scanned on the character schedule
whatever the clock, so a short answer is emitted in the same pieces however
fast it arrives (what an answer's framing on the wire depends on)."""
HOLD_CAP: Final = 32768
"""The most characters a stream may leave undecided. Filters measure what
they hold in canonical characters, and characters whose canonical form is
empty (zero-width, combining marks) or short (escapes) can stretch a hold
without bound; past this many the guard refuses the answer (rule
``stream-undecided``) rather than hold, and rescan, without bound. No filter
holds more than about half of it on its own (the longest is an open base64
run of 16384 characters)."""


def _fails_closed(f: Finding) -> bool:
    """A finding that blocks the stream wherever it lies in the window: a
    failing filter, or a scan that ran out of its judging budget (it drops
    every other finding of its filter, the ones in text about to be
    emitted included, and sits where the budget ran out, maybe in the
    held tail)."""
    return f.rule_id == "filter-error" or (
        f.rule_id == LIMIT_RULE and f.action == "block"
    )


def _out_of_budget(findings: list[Finding]) -> bool:
    """A scan that ran out of its judging budget (and nothing else failed)."""
    limit = False
    for f in findings:
        if f.rule_id == "filter-error":
            return False
        limit = limit or (f.rule_id == LIMIT_RULE and f.action == "block")
    return limit


_SHRINKS: Final = re.compile(
    "[&%\\\\" + "".join(map(chr, [*range(9), *range(14, 28), 127])) + "]"
)
"""ASCII characters that may begin an entity or escape, and the control
characters the canonical form drops (NUL, ESC…): ASCII text without them is
its own canonical form, character for character. A compiled class, searched
in C: the set test it replaces cost 0.4 ms per 64 KB window, a tenth of a
one-shot check of 100 KB per body scan."""


def _plain(text: str) -> bool:
    """Whether ``text`` is its own canonical form, character for character
    (ASCII without any character of :data:`_SHRINKS`)."""
    return text.isascii() and _SHRINKS.search(text) is None


def _canonical_length(window: str, size: int) -> int:
    """How many canonical characters ``window[:size]`` makes, as the filters
    judged ``window`` (its canonical form is the one just computed)."""
    if size <= 0:
        return 0
    if _plain(window[:size]):
        return size
    canon = canonical_of(window)
    low, high = 0, len(canon.cased)
    while low < high:  # the first canonical character at or past ``size``
        mid = (low + high) // 2
        if canon.position(mid) < size:
            low = mid + 1
        else:
            high = mid
    return low


def _context_start(text: str, end: int, want: int) -> int | None:
    """Where the left context of a scan that decides from ``end`` on begins:
    ``want`` *canonical* characters before ``end`` (filters measure their
    context in the canonical form, where zero-width characters, combining
    marks, entities and escapes shrink or vanish; counting it in characters
    as written let a copy's first half, stuffed away with invisible
    characters, drop out of the window that decides its second half). At
    least 0; ``None`` when :data:`HOLD_CAP` characters are not enough."""
    start = end - want
    seg = text[max(0, start) : end]
    if _plain(seg):
        return max(0, start)
    while start > 0:
        short = want - len(canonical(text[start:end]).text)
        if short <= 0:
            break
        if end - start >= HOLD_CAP:
            return None
        # doubling: a few passes at most
        start = max(end - HOLD_CAP, start - max(short, end - start))
    # An entity or escape cut at the start reads longer than it is.
    return max(0, start - 16)


class _Pending:
    """What one stream has decided and has still to decide, audited once.

    Kept apart from the guard so that a finalizer can settle it when the
    guard is garbage-collected, without keeping the guard alive. ``parts``
    is the guard's own list of chunks not joined yet; ``buf``, ``base`` and
    ``done`` are copied from the guard after each scan.
    """

    __slots__ = (
        "__weakref__",
        "audited",
        "base",
        "before",
        "buf",
        "context",
        "done",
        "findings",
        "parts",
        "pipeline",
        "recorded",
        "start",
    )

    def __init__(self, pipeline: OutputPipeline, parts: list[str]) -> None:
        self.pipeline = pipeline
        self.context = pipeline.context
        self.parts = parts
        self.buf = ""
        self.base = 0
        self.done = 0
        self.start = 0  # where the left context of ``done`` begins
        self.before = 0  # canonical characters before ``start``
        self.findings: list[Finding] = []
        self.recorded: set[str] = set()  # filters whose event is written
        self.audited = False

    def settle(self) -> None:
        """The answer ends here: judge what arrived, then audit it all."""
        if self.audited:
            return
        text = self.buf + "".join(self.parts)
        start = self.start
        if self.base + len(text) > self.done:
            with judged_after(self.before):  # the whole answer's budget
                found_all = self.pipeline.scan(text[start - self.base :])
            for found in found_all:
                f = found.shifted(start)
                if _fails_closed(f) or f.start >= self.done:
                    self.findings.append(f)
        self.flush()

    def flush(self) -> None:
        if self.audited:
            return
        # The one-shot check's order: the events and their listed spans
        # come out the same as for the whole answer checked at once. A write
        # that fails leaves the rest owed: text already released carries
        # these findings, so the next settle (abort, with, GC) writes it.
        self.pipeline.record(
            sorted(self.findings, key=lambda f: (f.start, f.end, f.rule_id)),
            done=self.recorded,
        )
        self.audited = True


class StreamGuard:
    """Guard a streamed answer chunk by chunk.

    Args:
        pipeline: the filters to enforce.
        batch: scan after this many new characters. By default the step
            starts at 16 characters and grows with the answer (see the
            module docstring). Smaller values emit sooner and cost more.
        scan_share: the share of the stream's wall time the guard may spend
            scanning on that schedule before it waits for :data:`MAX_WAIT`
            characters (text arriving faster than it can be scanned); in
            ``(0, 1]``, ``1`` keeps the character schedule alone. It never
            changes what is emitted, only when.

    ``feed(chunk)`` returns the text safe to emit now; ``close()`` the rest.
    Both raise :class:`~aiinvariants.OutputBlocked` at the first blocking
    finding, after which the guard refuses further input. ``abort()`` ends a
    stream the consumer gave up on; as a context manager, leaving the block
    without ``close()`` aborts. One guard serves one stream, fed by one
    thread at a time: a feed that finds another thread scanning raises
    :class:`~aiinvariants.PolicyError` (its chunk is not taken).

    Attributes:
        findings: the decided findings so far, spans relative to the answer.
    """

    def __init__(
        self,
        pipeline: OutputPipeline,
        *,
        batch: int | None = None,
        scan_share: float = SCAN_SHARE,
    ) -> None:
        if not isinstance(pipeline, OutputPipeline):
            raise PolicyError("StreamGuard needs an OutputPipeline")
        if (
            isinstance(scan_share, bool)
            or not isinstance(scan_share, (int, float))
            or not 0 < scan_share <= 1  # NaN fails this too
        ):
            raise PolicyError(
                "StreamGuard scan_share must be a number in (0, 1] "
                "(1: scan on the character schedule alone)"
            )
        self._pipeline = pipeline
        self._context = pipeline.context
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise PolicyError("StreamGuard batch must be a positive int")
        self._max_step = max(_FIRST_STEP, pipeline.max_finding + 2 * self._context)
        if batch is None and not all(
            callable(getattr(f, "hold", None)) for f in pipeline.filters
        ):
            # A filter that cannot say what is undecided (a classifier of the
            # whole answer) gains nothing from early scans: scan every L + 2C.
            batch = self._max_step
        self._fixed = batch
        # A fixed batch is a fixed cadence: no clock.
        self._share = float(scan_share) if batch is None else 1.0
        self._budgeted = self._share < 1
        self._started = time.monotonic() if self._budgeted else 0.0
        self._spent = 0.0  # wall time spent in scans
        self._scanned_known = 0
        self._buf = ""
        self._parts: list[str] = []
        self._next_scan = batch if batch is not None else _FIRST_STEP
        self._retry = 0  # a window past its judging budget: scan again here
        self._stopped = False
        self._base = 0
        self._known = 0
        self._done = 0
        self._ctx = 0  # where the left context of _done begins
        self._before = 0  # canonical characters before _ctx (judging budget)
        self._emitted = 0
        self._announced = -1
        self._spans: list[tuple[int, int]] = []
        self._failed: OutputBlocked | None = None
        self._closed = False
        self._busy = threading.Lock()  # one scan at a time
        self._pending = _Pending(pipeline, self._parts)
        self.findings: list[Finding] = self._pending.findings
        if pipeline.audit is not None:
            weakref.finalize(self, self._pending.settle)

    def __repr__(self) -> str:
        return (
            f"StreamGuard(fed={self._known}, emitted={self._emitted}, "
            f"findings={len(self.findings)}, blocked={self._failed is not None})"
        )

    @property
    def held_back(self) -> int:
        """Characters received but not emitted (nor dropped under a mask) yet."""
        return self._known - self._emitted

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return the text that is safe to emit now."""
        # Hot path (one call per token): count and keep, nothing else. A
        # stopped guard has _next_scan = -1, so every call takes the slow
        # path, which also checks the chunk's type.
        known = self._known + len(chunk)
        if known < self._next_scan and chunk.__class__ is str:
            self._parts.append(chunk)
            self._known = known
            return ""
        return self._feed_slow(chunk)

    def _feed_slow(self, chunk: str) -> str:
        if not self._busy.acquire(blocking=False):
            # Fail closed: two threads feeding one stream at once would
            # interleave its text and its offsets.
            raise PolicyError("StreamGuard.feed called from two threads at once")
        try:
            return self._feed_locked(chunk)
        finally:
            self._busy.release()

    def _feed_locked(self, chunk: str) -> str:
        if self._stopped or self._pending.audited:
            # audited: the answer was decided (here or by a copy sharing this
            # one's record); text emitted now would never be on record
            self._stopped = True
            self._next_scan = -1
            if self._failed is not None:
                raise self._failed
            raise PolicyError("StreamGuard.feed after close() or abort()")
        if chunk.__class__ is not str:
            raise TypeError("StreamGuard.feed takes a str")
        self._parts.append(chunk)
        self._known += len(chunk)
        if self._known < self._next_scan or (self._budgeted and not self._due()):
            return ""
        began = time.monotonic() if self._budgeted else 0.0
        self._scanned_known = self._known
        try:
            self._scan(final=False)
            return self._emit(final=False)
        finally:
            if self._budgeted:
                self._spent += time.monotonic() - began

    def _due(self) -> bool:
        """Whether a scan may run now on the character schedule: scans so far
        took at most ``scan_share`` of the stream's wall time, or
        :data:`MAX_WAIT` characters wait. Text that arrives at reading pace
        (or in bursts with pauses between them) is scanned as soon as the
        step allows; text that arrives faster than it can be scanned is
        scanned in large pieces, so the whole stream costs little more than
        one check of it."""
        waiting = self._known - self._scanned_known
        if waiting >= MAX_WAIT or self._known <= EXACT_HEAD:
            return True
        if self._spent <= self._share * (time.monotonic() - self._started):
            return True
        # Postponed: look at the clock again an eighth of the answer later
        # (at most L + 2C). (Waiting for as many characters again as already
        # wait kept a burst's text held long after the stream slowed down or
        # paused: tens of thousands of characters for minutes at reading
        # pace.) One clock read per recheck costs far less than the scan it
        # postpones; one per small body step cost as much as it saved.
        self._next_scan = min(
            self._scanned_known + MAX_WAIT, self._known + self._recheck()
        )
        return False

    def close(self) -> str:
        """End of the answer: return everything not emitted yet.

        Writes the answer's audit events (one per filter with findings).
        """
        with self._busy:
            return self._close_locked()

    def _close_locked(self) -> str:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            self._pending.flush()  # a record a failed write still owes
            return ""
        self._closed = self._stopped = True
        if self._pending.audited:  # aborted: nothing more is decided
            self._next_scan = -1
            return ""
        self._scan(final=True)
        self._next_scan = -1
        self._pending.flush()
        return self._emit(final=True)

    def abort(self) -> None:
        """The consumer gave up: the answer ends here, nothing more is emitted.

        What arrived is judged as the whole answer (the text held back too,
        so a leak the consumer walked away from is still on record) and
        audited like ``close()``; nothing is emitted and nothing raised.
        Further input is refused. Idempotent; a no-op after ``close()`` or a
        block, which have audited already. A guard garbage-collected before
        it was closed does the same.
        """
        self._stopped = True
        self._next_scan = -1
        self._pending.settle()

    def __enter__(self) -> StreamGuard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()

    def _step(self) -> int:
        if self._fixed is not None:
            return self._fixed
        known = self._known
        if known < EXACT_HEAD:
            # The head is scanned on this schedule however fast it arrives
            # (see EXACT_HEAD), so its scans are never budgeted: each time
            # it has doubled (16, 32, 64 … 512: 6 scans, not 9 at every half
            # nor 19 at every eighth).
            return max(_FIRST_STEP, known)
        # Past it: a quarter of what the next scan reads (the left context
        # and the undecided tail), at least BODY_STEP. Prose, decided up to
        # its last few characters, is scanned about every 80 characters
        # (one eighth of the answer, up to L + 2C, held back 500 characters
        # of a long clean answer at the median); a long undecided tail
        # (stuffed, or a growing span) is rescanned no more often than
        # before, at most every L + 2C characters. That cap gives way to a
        # sixth of the read: a left context stretched over thousands of
        # characters (a zero-width character or combining mark after every
        # letter: C canonical characters can span up to HOLD_CAP), or a long
        # held tail behind it, made every L + 2C characters read the whole
        # window again (about 27 reads per character fed, unbounded by the
        # clock under scan_share=1).
        reads = known - self._ctx
        return max(BODY_STEP, min(self._max_step, reads // 4), reads // 6)

    def _recheck(self) -> int:
        """Characters until a postponed scan looks at the clock again: one
        eighth of the answer, up to ``L + 2C`` (not the step: a clock read
        at every small step cost as much as a scan saved)."""
        if self._fixed is not None:
            return self._fixed
        return min(self._max_step, max(_FIRST_STEP, self._known // 8))

    def _scan(self, *, final: bool) -> None:
        parts = self._parts
        if parts:
            n = len(parts)
            self._buf += "".join(parts[:n])
            # Not clear(): a chunk another thread appends meanwhile stays.
            del parts[:n]
            self._pending.buf = self._buf
        # What is scanned is what was joined (a racing feed may have
        # miscounted _known): every offset below is one of the buffer.
        known = self._known = self._base + len(self._buf)
        self._next_scan = known + self._step()
        if known <= self._done:
            return
        if not final and known < self._retry:
            self._next_scan = max(self._next_scan, self._retry)
            return
        start = self._ctx
        window = self._buf[start - self._base :]
        # The window is judged with the budget of the answer so far (at the
        # end, the one-shot check's), never with the smaller one of its own
        # length: the last window of an answer ending on a dense stretch
        # blocked where the check, judging the same candidates, did not.
        with judged_after(self._before):
            if final:  # the end of the answer: nothing is held, no hold to ask
                findings, hold = self._pipeline.scan(window), len(window)
            else:
                findings, hold = self._pipeline.scan_and_hold(window)
        if not final and known - self._done <= HOLD_CAP and _out_of_budget(findings):
            # The window ran out of its judging budget, which grows with the
            # text judged: the whole answer may well stay within its own
            # (the one-shot check's). Decide nothing yet; scan again once
            # the window has doubled (a bounded number of rescans), and
            # past HOLD_CAP undecided characters block as the check would.
            self._retry = min(known + len(window), self._done + HOLD_CAP + 1)
            self._next_scan = max(self._next_scan, self._retry)
            return
        until = known if final else max(self._done, start + hold)
        accepted: list[Finding] = []
        for found in findings:
            f = found.shifted(start)
            if _fails_closed(f) or self._done <= f.start < until:
                accepted.append(f)
        if known - until > HOLD_CAP:  # fail closed, never hold unbounded
            accepted.append(
                Finding("stream-undecided", until, known, "high", "-", "block")
            )
        # Everything that may fail is computed before the state moves: a
        # scan that raised after D had advanced would let the text before
        # D out unjudged at the next emission.
        ctx = _context_start(self._buf, until - self._base, self._context)
        if ctx is None:  # fail closed: the context is stuffed past the cap
            accepted.append(
                Finding("stream-undecided", self._ctx, until, "high", "-", "block")
            )
            ctx = start
        else:
            ctx = max(start, ctx + self._base)
        before = self._before + _canonical_length(window, ctx - start)
        self._done = self._pending.done = until
        self._ctx = self._pending.start = ctx
        self._before = self._pending.before = before
        self._next_scan = known + self._step()  # from the new left context
        if not accepted:
            return
        self.findings.extend(accepted)
        if any(f.action == "block" for f in accepted):
            # Decided: every blocking finding of the answer so far (earlier
            # scans had none), and the audit of everything decided.
            self._failed = blocked_message(self.findings)
            self._stopped = True
            self._next_scan = -1
            self._pending.flush()
            raise self._failed
        masks = [f.span for f in accepted if f.action != "flag" and f.end > f.start]
        if masks:
            self._spans = merge_intervals(self._spans + masks)

    def _emit(self, *, final: bool) -> str:
        limit = self._base + len(self._buf) if final else self._done
        text, base = self._buf, self._base
        pos = self._emitted
        out: list[str] = []
        spans = self._spans
        still_open = False
        while spans:
            start, end = spans[0]
            if start >= limit:
                break
            if start > pos:
                out.append(text[pos - base : start - base])
            if self._announced != start:
                out.append(REDACTED)
                self._announced = start
            pos = max(pos, end)
            if not final and end >= self._done:
                still_open = True  # a later finding may still touch it
                break
            spans.pop(0)
        if not still_open and limit > pos:
            out.append(text[pos - base : limit - base])
            pos = limit
        self._emitted = pos
        keep = min(self._emitted, self._ctx)
        if keep > self._base:
            self._buf = self._buf[keep - self._base :]
            self._base = keep
            self._pending.buf, self._pending.base = self._buf, keep
        return "".join(out)
