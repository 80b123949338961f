"""A streamed answer is audited like the same answer checked at once.

One event per filter per answer, with the same counts, rule ids, spans and
fingerprints as one-shot ``check()``, whatever the chunking; a blocked
stream audits exactly what it decided before the raise, once.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_streaming_props import BLOCK, REDACT, SETTINGS, chunked, texts

from aiinvariants import OutputBlocked
from aiinvariants.audit import AuditLog
from aiinvariants.audit._sinks import MemorySink
from aiinvariants.filters import OutputPipeline, StreamGuard
from aiinvariants.filters._base import Finding

Event = tuple[str, str, str, tuple[tuple[str, Any], ...]]


def audited(p: OutputPipeline) -> tuple[OutputPipeline, MemorySink]:
    sink = MemorySink(capacity=None)
    return OutputPipeline(p.filters, audit=AuditLog([sink])), sink


def events(sink: MemorySink) -> list[Event]:
    """The events, modulo ids and times."""
    return [
        (e.invariant, e.decision, e.reason, tuple(sorted(e.details.items())))
        for e in sink.events
    ]


def one_shot_events(
    p: OutputPipeline, text: str, findings: list[Finding]
) -> list[Event]:
    """The events one-shot auditing writes for ``findings`` of ``text``."""
    q, sink = audited(p)
    q.scan(text)  # the pipeline learns which filter owns which rule
    q.record(findings)
    return events(sink)


def run(
    p: OutputPipeline, chunks: list[str], batch: int | None
) -> tuple[StreamGuard, MemorySink, OutputBlocked | None]:
    q, sink = audited(p)
    guard = StreamGuard(q, batch=batch)
    try:
        for chunk in chunks:
            guard.feed(chunk)
        guard.close()
    except OutputBlocked as exc:
        return guard, sink, exc
    return guard, sink, None


@SETTINGS
@given(text=texts, cuts=st.lists(st.integers(0, 10_000), max_size=40),
       batch=st.sampled_from([1, 7, 64, None]))  # fmt: skip
def test_redacted_stream_audits_like_one_shot(
    text: str, cuts: list[int], batch: int | None
) -> None:
    q, expected = audited(REDACT)
    check = q.check(text)
    guard, sink, blocked = run(REDACT, chunked(text, cuts), batch)
    assert (blocked is not None) == check.blocked
    if blocked is None:
        assert events(sink) == events(expected)
        # Nothing more is written later (close again, garbage collection).
        guard.close()
        del guard
        assert events(sink) == events(expected)


@SETTINGS
@given(text=texts, batch=st.sampled_from([1, 16, None]))
def test_one_character_chunks_audit_like_one_shot(text: str, batch: int | None) -> None:
    q, expected = audited(REDACT)
    check = q.check(text)
    _, sink, blocked = run(REDACT, list(text), batch)
    if not check.blocked:
        assert blocked is None
        assert events(sink) == events(expected)


@SETTINGS
@given(text=texts, cuts=st.lists(st.integers(0, 10_000), max_size=40),
       batch=st.sampled_from([1, 5, None]))  # fmt: skip
def test_blocked_stream_audits_what_it_decided_once(
    text: str, cuts: list[int], batch: int | None
) -> None:
    """At the raise: the events of the one-shot findings that start before
    the point the stream had decided, the same findings the stream holds;
    the exception carries the blocking ones, like one-shot ``enforce``."""
    check = BLOCK.check(text)
    guard, sink, blocked = run(BLOCK, chunked(text, cuts), batch)
    assert (blocked is not None) == check.blocked
    if blocked is None:
        assert events(sink) == one_shot_events(BLOCK, text, list(check.findings))
        return
    decided = sorted(guard.findings, key=lambda f: (f.start, f.end, f.rule_id))
    assert events(sink) == one_shot_events(BLOCK, text, decided)
    first = min(f.start for f in check.findings if f.action == "block")
    assert min(f.start for f in decided if f.action == "block") == first
    assert blocked.findings == tuple(f for f in decided if f.action == "block")
    assert blocked.rule_ids == tuple(sorted({f.rule_id for f in blocked.findings}))
    assert blocked.findings[0] in check.findings
    with_exc = len(sink.events)
    with contextlib.suppress(OutputBlocked):
        guard.close()
    guard.abort()
    del guard
    assert len(sink.events) == with_exc


@SETTINGS
@given(text=texts, cut=st.integers(0, 10_000), size=st.integers(1, 9),
       how=st.sampled_from(["collected", "abort", "with"]))  # fmt: skip
def test_abandoned_stream_audits_like_one_shot_of_what_arrived(
    text: str, cut: int, size: int, how: str
) -> None:
    """Stopped mid-answer: judged as if the answer ended there, audited once,
    whether the guard is aborted, left in a ``with`` block or collected."""
    prefix = text[: cut % (len(text) + 1)]
    q, expected = audited(REDACT)
    if q.check(prefix).blocked:
        return
    _, sink = audited(REDACT)
    guard = StreamGuard(OutputPipeline(REDACT.filters, audit=AuditLog([sink])))
    with guard if how == "with" else contextlib.nullcontext(guard):
        for i in range(0, len(prefix), size):
            guard.feed(prefix[i : i + size])
        assert sink.events == []  # not audited before the answer ends
    if how == "abort":
        guard.abort()
    del guard  # collected: its finalizer settles (a no-op if already done)
    assert events(sink) == events(expected)
