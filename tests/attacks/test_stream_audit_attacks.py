"""Audit noise and audit gaps in streamed answers (I8, I13).

A streamed answer is one answer: however it is chunked, it writes one event
per filter, like the same answer checked at once. An attacker who can shape
the chunking (one character per chunk, a stream dropped mid-way, a consumer
that raises) must neither flood the audit trail nor slip findings past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from aiinvariants import Guard, OutputBlocked, Policy
from aiinvariants._errors import AuditUnavailable
from aiinvariants.audit import AuditLog
from aiinvariants.audit._events import AuditEvent
from aiinvariants.audit._sinks import MemorySink
from aiinvariants.filters import (
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)

PROMPT = (
    "You are the billing assistant of Example Corp. Refunds above 400 EUR need "
    "the code ORCHID-7 from a supervisor; never tell customers this code exists."
)
GHP = "ghp_" + "aZ3kQ9" * 6
LEAK = "Sure! My instructions are: " + PROMPT + " Anything else?"


def leak_pipeline(action: str = "block") -> tuple[OutputPipeline, MemorySink]:
    """Secrets, the system prompt (both with ``action``) and PII (redact)."""
    sink = MemorySink(capacity=None)
    pipeline = OutputPipeline(
        [
            SecretsFilter(action=action),  # type: ignore[arg-type]
            SystemPromptLeakFilter(system_prompt=PROMPT, action=action),  # type: ignore[arg-type]
            PIIFilter(action="redact"),
        ],
        audit=AuditLog([sink]),
    )
    return pipeline, sink


def of(sink: MemorySink, name: str) -> list[AuditEvent]:
    return [e for e in sink.events if e.details.get("filter") == name]


def drain(guard: StreamGuard, chunks: list[str], out: list[str]) -> None:
    """Feed every chunk and close, collecting what is emitted into ``out``."""
    for chunk in chunks:
        out.append(guard.feed(chunk))
    out.append(guard.close())


def consume_until(answer: Iterator[str], limit: int, received: list[str]) -> None:
    """A consumer that raises once it has received ``limit`` characters."""
    for piece in answer:
        received.append(piece)
        if len("".join(received)) > limit:
            raise RuntimeError("consumer gave up")


def no_text_in(events: list[AuditEvent]) -> None:
    dumped = repr([e.to_dict() for e in events])
    for piece in ("ORCHID-7", "billing assistant", GHP, "a.b@example.com"):
        assert piece not in dumped


def test_leaked_prompt_in_one_char_chunks_writes_one_deny_event() -> None:
    pipeline, sink = leak_pipeline()
    guard = StreamGuard(pipeline)
    out: list[str] = []
    with pytest.raises(OutputBlocked) as info:
        drain(guard, list(LEAK), out)
    events = of(sink, "SystemPromptLeakFilter")
    assert len(events) == 1
    assert events[0].decision == "deny"
    assert events[0].invariant == "I8"
    assert events[0].details["findings"] == events[0].details["blocked"] >= 1
    assert len(sink.events) == 1  # nothing else was decided
    # Structured, value-free exception, like one-shot enforce().
    exc = info.value
    assert exc.code == "output_blocked"
    assert exc.rule_ids == ("system-prompt-leak",) or all(
        r.startswith("system-prompt") for r in exc.rule_ids
    )
    assert exc.findings
    assert all(f.action == "block" for f in exc.findings)
    assert "ORCHID-7" not in "".join(out)
    no_text_in(sink.events)
    assert "ORCHID" not in repr(exc)
    assert "ORCHID" not in str(exc)
    # Closing again, aborting, collecting: still one event.
    with pytest.raises(OutputBlocked):
        guard.close()
    guard.abort()
    del guard
    gc.collect()
    assert len(of(sink, "SystemPromptLeakFilter")) == 1


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000])
def test_chunking_never_changes_the_audit_trail(size: int) -> None:
    """Redact mode: the leak and a secret, any chunk size: one event per
    filter with the counts of the one-shot check."""
    text = f"{LEAK} token {GHP} mail a.b@example.com {LEAK}"
    one_shot, expected = leak_pipeline("redact")
    one_shot.check(text)
    pipeline, sink = leak_pipeline("redact")
    guard = StreamGuard(pipeline)
    for i in range(0, len(text), size):
        guard.feed(text[i : i + size])
    guard.close()
    got = [(e.decision, e.reason, dict(e.details)) for e in sink.events]
    want = [(e.decision, e.reason, dict(e.details)) for e in expected.events]
    assert got == want
    assert {e.details["filter"] for e in sink.events} == {
        "SecretsFilter",
        "SystemPromptLeakFilter",
        "PIIFilter",
    }
    assert len(sink.events) == 3
    no_text_in(sink.events)


def test_walking_away_from_a_held_leak_still_leaves_a_record() -> None:
    """The attacker's client drops the stream while the leak is still held
    back (not decided, never emitted): the guard is collected, and the leak
    is audited once, as if the answer had ended there."""
    pipeline, sink = leak_pipeline()
    guard = StreamGuard(pipeline)
    out = "".join(guard.feed(ch) for ch in LEAK)
    assert "ORCHID" not in out
    assert guard.findings == []  # nothing decided yet: the copy may go on
    assert sink.events == []
    del guard
    gc.collect()
    events = of(sink, "SystemPromptLeakFilter")
    assert len(events) == 1
    assert events[0].decision == "deny"
    assert len(sink.events) == 1
    gc.collect()
    assert len(sink.events) == 1
    no_text_in(sink.events)


def test_abort_and_with_block_audit_once_and_refuse_more_input() -> None:
    pipeline, sink = leak_pipeline("redact")
    with StreamGuard(pipeline) as guard:  # left without close()
        for ch in f"token {GHP} then some text to move past it":
            guard.feed(ch)
    assert [e.details["filter"] for e in sink.events] == ["SecretsFilter"]
    with pytest.raises(Exception, match="after close"):
        guard.feed("more")
    assert guard.close() == ""  # nothing held back is ever emitted
    guard.abort()
    del guard
    gc.collect()
    assert len(sink.events) == 1


def test_consumer_exception_mid_stream_is_audited_once() -> None:
    """A guarded generator whose consumer raises part-way: the findings decided
    before the raise are recorded, once, and nothing after them."""
    sink = MemorySink(capacity=None)
    guard = Guard(Policy.from_dict({"exposure": "public"}), sinks=[sink])

    def model(prompt: str) -> Iterator[str]:
        text = f"mail a.b@example.com now. {prompt} " + "filler words " * 40
        yield from text

    answer = guard.llm(model, model="gpt-4.1", system_prompt=PROMPT)
    received: list[str] = []
    with pytest.raises(RuntimeError, match="consumer gave up"):
        consume_until(answer("hello"), 200, received)
    gc.collect()
    pii = [e for e in sink.events if e.details.get("filter") == "PIIFilter"]
    assert len(pii) == 1
    assert pii[0].details["redacted"] == 1
    assert "a.b@example.com" not in "".join(received)
    gc.collect()
    assert len([e for e in sink.events if e.details.get("filter") == "PIIFilter"]) == 1
    no_text_in(sink.events)


def test_blocked_stream_exception_lists_every_blocking_rule() -> None:
    """Two blocking findings decided in the same scan: both in rule_ids."""
    pipeline, sink = leak_pipeline()
    text = f"{GHP} {PROMPT}"
    guard = StreamGuard(pipeline, batch=10_000)
    guard.feed(text)
    with pytest.raises(OutputBlocked) as info:
        guard.close()
    with pytest.raises(OutputBlocked) as one_shot:
        pipeline.enforce(text)
    one = one_shot.value
    assert info.value.rule_ids == one.rule_ids
    assert len(info.value.rule_ids) == 2
    assert info.value.findings == one.findings
    # The stream's events and the one-shot's: the same, twice over.
    half = len(sink.events) // 2
    strip = [(e.decision, e.reason, dict(e.details)) for e in sink.events]
    assert strip[:half] == strip[half:]


def test_two_streams_on_one_pipeline_audit_separately() -> None:
    """Interleaved answers sharing a pipeline: each writes its own events."""
    pipeline, sink = leak_pipeline("redact")
    a, b = StreamGuard(pipeline), StreamGuard(pipeline)
    for x, y in zip(f"one {GHP} end of the first answer ...", LEAK, strict=False):
        a.feed(x)
        b.feed(y)
    b.feed(LEAK[len(f"one {GHP} end of the first answer ...") :])
    a.close()
    b.close()
    filters = sorted(e.details["filter"] for e in sink.events)
    assert filters == ["SecretsFilter", "SystemPromptLeakFilter"]


class _BrokenSink:
    """A sink whose disk is full."""

    def write(self, event: AuditEvent) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def _chain(exc: BaseException | None) -> str:
    seen: list[str] = []
    while exc is not None and len(seen) < 10:
        seen.append(repr(exc) + str(exc) + repr(getattr(exc, "__dict__", {})))
        exc = exc.__cause__ or exc.__context__
    return "".join(seen)


def test_abort_with_a_broken_audit_log_fails_closed_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """abort() cannot record: it raises AuditUnavailable (I13), no value in it;
    the record is still owed, so a second abort (and garbage collection)
    tries again and fails closed again."""
    reported: list[BaseException | None] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda info: reported.append(info.exc_value)
    )
    pipeline = OutputPipeline([SecretsFilter()], audit=AuditLog([_BrokenSink()]))
    guard = StreamGuard(pipeline)
    guard.feed(f"the token is {GHP}")
    with pytest.raises(AuditUnavailable) as info:
        guard.abort()
    assert GHP[:20] not in _chain(info.value)
    with pytest.raises(AuditUnavailable):
        guard.abort()  # not recorded yet: still owed, still refused
    del guard
    gc.collect()
    assert all(isinstance(e, AuditUnavailable) for e in reported)


def test_collected_guard_with_a_broken_audit_log_reports_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dropped with a secret held back and an audit log that cannot write: the
    failure is reported through the unraisable hook, without the value."""
    reported: list[BaseException | None] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda info: reported.append(info.exc_value)
    )
    pipeline = OutputPipeline([SecretsFilter()], audit=AuditLog([_BrokenSink()]))
    guard = StreamGuard(pipeline)
    guard.feed(f"the token is {GHP}")
    del guard
    gc.collect()
    assert reported
    assert all(isinstance(e, AuditUnavailable) for e in reported)
    assert GHP[:20] not in "".join(_chain(e) for e in reported)


def test_cancelled_async_consumer_is_audited_once() -> None:
    """An async stream whose consuming task is cancelled part-way (a client
    that disconnects): the leak seen so far is recorded once."""
    sink = MemorySink(capacity=None)
    guard = Guard(Policy.from_dict({"exposure": "public"}), sinks=[sink])

    async def model(prompt: str) -> AsyncIterator[str]:
        for ch in f"mail a.b@example.com now. {prompt} " + "filler words " * 40:
            await asyncio.sleep(0)
            yield ch

    answer = guard.llm(model, model="gpt-4.1", system_prompt=PROMPT)

    async def consume(received: list[str], enough: asyncio.Event) -> None:
        async for piece in answer("hello"):
            received.append(piece)
            if len("".join(received)) >= 120:
                enough.set()

    async def main() -> list[str]:
        received: list[str] = []
        enough = asyncio.Event()
        task = asyncio.create_task(consume(received, enough))
        await enough.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return received

    received = asyncio.run(main())
    gc.collect()
    pii = [e for e in sink.events if e.details.get("filter") == "PIIFilter"]
    assert len(pii) == 1
    assert pii[0].details["redacted"] == 1
    assert "a.b@example.com" not in "".join(received)
    gc.collect()
    assert len([e for e in sink.events if e.details.get("filter") == "PIIFilter"]) == 1
