from __future__ import annotations

import contextvars
import logging
import threading
import time
from pathlib import Path

import pytest

from aiinvariants._errors import PolicyError
from aiinvariants.audit import (
    AuditEvent,
    AuditSink,
    BoundedSink,
    JSONLSink,
    LoggingSink,
    MemorySink,
)


def make(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "invariant": "I1",
        "decision": "deny",
        "reason": "scope_missing",
        "subject": "alice",
        "resource": "crm.read",
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


# -- MemorySink -------------------------------------------------------------


def test_memory_sink_keeps_events_in_order() -> None:
    sink = MemorySink()
    events = [make(reason=f"r{i}") for i in range(3)]
    for event in events:
        sink.write(event)
    assert sink.events == events
    assert len(sink) == 3
    sink.events.clear()  # a copy: the sink is unchanged
    assert len(sink) == 3


def test_memory_sink_is_bounded_and_counts_drops() -> None:
    sink = MemorySink(capacity=3)
    for i in range(5):
        sink.write(make(reason=f"r{i}"))
    assert [e.reason for e in sink.events] == ["r2", "r3", "r4"]
    assert sink.dropped == 2
    sink.clear()
    assert sink.events == []
    assert sink.dropped == 0


def test_memory_sink_default_capacity_and_unbounded() -> None:
    assert MemorySink().capacity == 10_000
    sink = MemorySink(capacity=None)
    for _ in range(50):
        sink.write(make())
    assert len(sink) == 50
    assert sink.dropped == 0


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "10"])
def test_memory_sink_rejects_bad_capacity(capacity: object) -> None:
    with pytest.raises(PolicyError):
        MemorySink(capacity=capacity)  # type: ignore[arg-type]


def test_sinks_satisfy_the_protocol() -> None:
    assert isinstance(MemorySink(), AuditSink)
    assert isinstance(LoggingSink(), AuditSink)


# -- LoggingSink ------------------------------------------------------------


def test_logging_sink_writes_one_record_per_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = LoggingSink()
    event = make(details={"missing": "crm:read"})
    with caplog.at_level(logging.INFO, logger="aiinvariants.audit"):
        sink.write(event)
    [record] = caplog.records
    assert record.name == "aiinvariants.audit"
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "decision=deny invariant=I1 reason=scope_missing subject=alice "
        "resource=crm.read"
    )
    assert record.aiinvariants_event == event.to_dict()  # type: ignore[attr-defined]


def test_logging_sink_omits_missing_resource(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="aiinvariants.audit"):
        LoggingSink().write(make(resource=None, decision="allow", reason="ok"))
    assert caplog.records[0].getMessage() == (
        "decision=allow invariant=I1 reason=ok subject=alice"
    )


def test_logging_sink_quotes_values_that_could_forge_a_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forged = "mallory\ndecision=allow invariant=I1 reason=ok subject=admin"
    with caplog.at_level(logging.INFO, logger="aiinvariants.audit"):
        LoggingSink().write(make(subject=forged, resource="a b"))
    message = caplog.records[0].getMessage()
    assert "\n" not in message
    assert 'subject="mallory\\ndecision=allow' in message
    assert 'resource="a b"' in message


def test_logging_sink_level_and_logger_object(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("app.audit")
    sink = LoggingSink(logger=logger, level="warning")
    assert sink.level == logging.WARNING
    with caplog.at_level(logging.WARNING, logger="app.audit"):
        sink.write(make())
    assert caplog.records[0].levelno == logging.WARNING
    assert caplog.records[0].name == "app.audit"


def test_logging_sink_rejects_unknown_level() -> None:
    with pytest.raises(PolicyError):
        LoggingSink(level="LOUD")


# -- BoundedSink ------------------------------------------------------------


class BlockingSink:
    """A sink whose writes wait until released, like a hung network sink."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.events: list[AuditEvent] = []
        self.closed = False

    def write(self, event: AuditEvent) -> None:
        self.release.wait(10)
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


class FailingSink:
    def write(self, event: AuditEvent) -> None:
        raise ConnectionError("collector unreachable")

    def close(self) -> None:
        pass


def test_bounded_sink_passes_writes_through() -> None:
    inner = MemorySink()
    with BoundedSink(inner, timeout_s=1.0) as sink:
        event = make()
        sink.write(event)
        assert inner.events == [event]
    assert sink.inner is inner


def test_bounded_sink_times_out_quickly() -> None:
    inner = BlockingSink()
    sink = BoundedSink(inner, timeout_s=0.05)
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="BlockingSink"):
            sink.write(make())
        assert time.monotonic() - start < 0.5
    finally:
        inner.release.set()
        sink.close()
    assert inner.closed


def test_bounded_sink_reraises_inner_errors() -> None:
    with (
        BoundedSink(FailingSink(), timeout_s=1.0) as sink,
        pytest.raises(ConnectionError),
    ):
        sink.write(make())


def test_bounded_sink_refuses_when_queue_is_full() -> None:
    inner = BlockingSink()
    sink = BoundedSink(inner, timeout_s=0.02, max_queue=1)
    try:
        with pytest.raises(TimeoutError):
            sink.write(make())  # taken by the worker, which then hangs
        with pytest.raises(TimeoutError):
            sink.write(make())  # waits in the queue
        with pytest.raises(TimeoutError, match="pending"):
            sink.write(make())  # queue full
    finally:
        inner.release.set()
        sink.close()
    # The write that timed out while still queued was skipped.
    assert len(inner.events) == 1


def test_bounded_sink_runs_writes_in_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    seen: list[str] = []

    class ContextSink:
        def write(self, event: AuditEvent) -> None:
            seen.append(var.get())

        def close(self) -> None:
            pass

    with BoundedSink(ContextSink(), timeout_s=1.0) as sink:
        token = var.set("request-42")
        try:
            sink.write(make())
        finally:
            var.reset(token)
    assert seen == ["request-42"]


def test_bounded_sink_close_stops_the_worker_and_refuses_writes() -> None:
    inner = MemorySink()
    sink = BoundedSink(inner, timeout_s=1.0)
    sink.close()
    sink.close()  # idempotent
    assert not sink._thread.is_alive()
    with pytest.raises(PolicyError):
        sink.write(make())


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), True])
def test_bounded_sink_rejects_bad_timeout(timeout: float) -> None:
    with pytest.raises(PolicyError):
        BoundedSink(MemorySink(), timeout_s=timeout)


def test_bounded_sink_wraps_a_jsonl_sink(tmp_path: Path) -> None:
    with BoundedSink(JSONLSink(tmp_path / "a.jsonl"), timeout_s=1.0) as sink:
        sink.write(make())
        assert repr(sink) == "BoundedSink(JSONLSink, timeout_s=1)"
    assert (tmp_path / "a.jsonl").read_bytes().count(b'"type":"event"') == 1
