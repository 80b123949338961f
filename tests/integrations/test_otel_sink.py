"""OTelSink against the real OpenTelemetry SDK (local providers, no globals)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from aiinvariants._errors import MissingIntegrationError
from aiinvariants._principal import Principal, acting_as
from aiinvariants.audit import AuditEvent, AuditLog, BoundedSink, OTelSink
from aiinvariants.audit.otel import find_gaps


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter

    def sink(self) -> OTelSink:
        return OTelSink(
            tracer_provider=self.tracer_provider,
            logger_provider=self.logger_provider,
        )


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield Telemetry(tracer_provider, logger_provider, spans, logs)
    tracer_provider.shutdown()
    logger_provider.shutdown()


def decision(kind: str, **extra: object) -> AuditEvent:
    fields: dict[str, object] = {
        "invariant": "I1",
        "decision": kind,
        "reason": "scope_missing" if kind == "deny" else "scopes_held",
        "subject": "alice",
        "resource": "crm.read",
        "policy_hash": "sha256:" + "ab" * 32,
        "correlation_id": "req-1",
        "details": {"missing": "crm:write", "count": 2, "none": None},
    }
    fields.update(extra)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_events_become_span_events_and_log_records(otel: Telemetry) -> None:
    sink = otel.sink()
    tracer = otel.tracer_provider.get_tracer("test")
    allow, deny = decision("allow"), decision("deny")
    with tracer.start_as_current_span("request") as span:
        sink.write(allow)
        sink.write(deny)
        span_context = span.get_span_context()

    [finished] = otel.spans.get_finished_spans()
    assert [e.name for e in finished.events] == ["aiinvariants.decision"] * 2
    attributes = dict(finished.events[1].attributes or {})
    assert attributes == {
        "aiinvariants.id": deny.id,
        "aiinvariants.time": deny.time,
        "aiinvariants.invariant": "I1",
        "aiinvariants.decision": "deny",
        "aiinvariants.reason": "scope_missing",
        "aiinvariants.subject": "alice",
        "aiinvariants.resource": "crm.read",
        "aiinvariants.policy_hash": "sha256:" + "ab" * 32,
        "aiinvariants.correlation_id": "req-1",
        "aiinvariants.details.missing": "crm:write",
        "aiinvariants.details.count": 2,
    }

    records = [item.log_record for item in otel.logs.get_finished_logs()]
    assert len(records) == 2
    info, warn = records
    assert info.severity_number == SeverityNumber.INFO
    assert info.severity_text == "INFO"
    assert warn.severity_number == SeverityNumber.WARN
    assert warn.severity_text == "WARN"
    assert dict(warn.attributes or {}) == {
        **attributes,
        "aiinvariants.chain": sink.chain_id,
        "aiinvariants.seq": 2,
    }
    assert dict(info.attributes or {})["aiinvariants.seq"] == 1
    assert warn.event_name == "aiinvariants.decision"
    assert warn.body == (
        "decision=deny invariant=I1 reason=scope_missing subject=alice "
        "resource=crm.read"
    )
    # The log record is correlated with the span it was emitted in.
    assert warn.trace_id == span_context.trace_id
    assert warn.span_id == span_context.span_id
    assert warn.timestamp is not None
    assert warn.timestamp // 1000 % 1_000_000 == int(deny.time[20:26])


def test_redact_and_flag_are_warnings(otel: Telemetry) -> None:
    sink = otel.sink()
    sink.write(decision("redact", invariant="I8", reason="pii"))
    sink.write(decision("flag", invariant="I13", reason="audit_fail_open"))
    severities = [r.log_record.severity_text for r in otel.logs.get_finished_logs()]
    assert severities == ["WARN", "WARN"]


def test_without_a_recording_span_only_the_log_is_emitted(otel: Telemetry) -> None:
    otel.sink().write(decision("deny"))
    assert otel.spans.get_finished_spans() == ()
    [record] = otel.logs.get_finished_logs()
    assert record.log_record.trace_id in (0, None)


def test_through_the_audit_log_and_a_bounded_sink(otel: Telemetry) -> None:
    # BoundedSink runs the write on its worker thread in the caller's
    # context, so the span event still lands on the request's span.
    log = AuditLog([BoundedSink(otel.sink(), timeout_s=2.0)])
    tracer = otel.tracer_provider.get_tracer("test")
    alice = Principal(subject="alice", authenticated=True, token="secret-token-123")
    try:
        with (
            tracer.start_as_current_span("request"),
            acting_as(alice, correlation_id="req-9"),
        ):
            log.record(
                invariant="I1",
                decision="deny",
                reason="scope_missing",
                resource="crm.read?token=secret-token-123",
            )
    finally:
        log.close()
    [span] = otel.spans.get_finished_spans()
    [span_event] = span.events
    attributes = dict(span_event.attributes or {})
    assert attributes["aiinvariants.correlation_id"] == "req-9"
    assert attributes["aiinvariants.resource"] == "[redacted]"
    assert all("secret-token-123" not in str(value) for value in attributes.values())


def test_missing_opentelemetry_raises_missing_integration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingIntegrationError) as info:
        OTelSink()
    assert info.value.extra == "otel"
    assert info.value.package == "opentelemetry-api"
    assert 'pip install "aiinvariants[otel]"' in str(info.value)
    assert isinstance(info.value, ImportError)


def test_collector_sees_gaps_by_chain_and_seq(otel: Telemetry) -> None:
    first, second = otel.sink(), otel.sink()
    for i in range(5):
        first.write(decision("allow" if i % 2 else "deny"))
    second.write(decision("allow"))
    records = [
        dict(item.log_record.attributes or {}) for item in otel.logs.get_finished_logs()
    ]
    assert len({r["aiinvariants.chain"] for r in records}) == 2
    assert find_gaps(records) == {}
    # The collector lost records 2 and 4 of the first stream on the way.
    lost = [
        r
        for r in records
        if not (
            r["aiinvariants.chain"] == first.chain_id
            and r["aiinvariants.seq"] in (2, 4)
        )
    ]
    assert find_gaps(lost) == {first.chain_id: [(2, 2), (4, 4)]}
    # Duplicates (an exporter retry) are not gaps.
    assert find_gaps(records + records[:2]) == {}
