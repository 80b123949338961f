"""An audit sink that reports decisions to OpenTelemetry.

Needs the ``otel`` extra (``pip install "aiinvariants[otel]"``). The module
itself imports nothing from OpenTelemetry: the import happens when an
:class:`OTelSink` is built, so ``import aiinvariants.audit`` stays free of it.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import MissingIntegrationError, PolicyError
from aiinvariants.audit._events import AuditEvent

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["SPAN_EVENT_NAME", "OTelSink", "find_gaps", "otel_attributes"]

SPAN_EVENT_NAME = "aiinvariants.decision"
"""Name of the span event (and log event) each decision becomes."""


def otel_attributes(event: AuditEvent) -> dict[str, str | int | float | bool]:
    """The event as OpenTelemetry attributes, each key prefixed ``aiinvariants.``.

    Details become ``aiinvariants.details.<key>``. ``None`` values are left
    out: OpenTelemetry attributes cannot hold them.
    """
    attributes: dict[str, str | int | float | bool] = {
        "aiinvariants.id": event.id,
        "aiinvariants.time": event.time,
        "aiinvariants.invariant": event.invariant,
        "aiinvariants.decision": event.decision,
        "aiinvariants.reason": event.reason,
        "aiinvariants.subject": event.subject,
        "aiinvariants.policy_hash": event.policy_hash,
        "aiinvariants.correlation_id": event.correlation_id,
    }
    if event.resource is not None:
        attributes["aiinvariants.resource"] = event.resource
    for key, value in event.details.items():
        if value is not None:
            attributes[f"aiinvariants.details.{key}"] = value
    return attributes


def _time_ns(value: str) -> int | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def find_gaps(records: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[int, int]]]:
    """Collector-side check: the missing sequence numbers of each stream.

    ``records`` are log-record attribute mappings as an :class:`OTelSink`
    emits them (any order, duplicates allowed). Returns, per
    ``aiinvariants.chain``, the inclusive ranges of ``aiinvariants.seq``
    never seen between 1 and the highest one seen (records lost on the way
    or dropped by an exporter). A stream's tail cannot be checked this way:
    compare the highest seq with the process's last report.
    """
    seen: dict[str, set[int]] = {}
    for attributes in records:
        chain = attributes.get("aiinvariants.chain")
        seq = attributes.get("aiinvariants.seq")
        if isinstance(chain, str) and type(seq) is int:
            seen.setdefault(chain, set()).add(seq)
    gaps: dict[str, list[tuple[int, int]]] = {}
    for chain, numbers in seen.items():
        missing: list[tuple[int, int]] = []
        expected = 1
        for seq in sorted(numbers):
            if seq > expected:
                missing.append((expected, seq - 1))
            expected = seq + 1
        if missing:
            gaps[chain] = missing
    return gaps


class OTelSink:
    """Report each decision as a span event and a log record.

    On every event it adds a span event ``aiinvariants.decision`` to the
    current span (when that span is recording) and emits a log record through
    the OpenTelemetry logs API, both carrying the event's fields as
    ``aiinvariants.*`` attributes. Log severity is INFO for ``allow`` and
    WARN for ``deny``, ``redact`` and ``flag``.

    Each log record also carries ``aiinvariants.chain`` (a random id of this
    sink, i.e. of this process's stream) and ``aiinvariants.seq`` (1, 2, …
    in the order written), so a collector can see records lost on the way
    (:func:`find_gaps`); the event ``id`` ties a record to the same event in
    the ``jsonl`` trail.

    OpenTelemetry exporters batch and drop under load; this sink is for
    central collection and gap detection, not the tamper-evident record
    (use :class:`JSONLSink`).

    Args:
        tracer_name: instrumentation scope of the sink's tracer (the sink
            adds events to the caller's current span; it starts none).
        logger_name: instrumentation scope of the OpenTelemetry logger.
        tracer_provider: a provider to use instead of the global one.
        logger_provider: a provider to use instead of the global one.

    Raises:
        MissingIntegrationError: ``opentelemetry-api`` is not installed.
        PolicyError: the installed ``opentelemetry-api`` is too old to emit
            log records with keyword arguments.
    """

    def __init__(
        self,
        *,
        tracer_name: str = "aiinvariants",
        logger_name: str = "aiinvariants.audit",
        tracer_provider: TracerProvider | None = None,
        logger_provider: LoggerProvider | None = None,
    ) -> None:
        try:
            from opentelemetry import _logs, trace
        except ImportError:
            raise MissingIntegrationError(
                extra="otel", package="opentelemetry-api"
            ) from None
        emit_parameters = inspect.signature(_logs.Logger.emit).parameters
        wanted = {"body", "attributes", "severity_number", "event_name"}
        if not wanted <= emit_parameters.keys():
            raise PolicyError(
                "the installed opentelemetry-api is too old: Logger.emit takes no "
                'keyword arguments; upgrade it (pip install -U "aiinvariants[otel]")'
            )
        self._trace: Any = trace
        self._tracer = trace.get_tracer(tracer_name, tracer_provider=tracer_provider)
        self._logger = _logs.get_logger(logger_name, logger_provider=logger_provider)
        self._info = _logs.SeverityNumber.INFO
        self._warn = _logs.SeverityNumber.WARN
        self._names = (tracer_name, logger_name)
        self._chain = os.urandom(16).hex()
        self._seq = 0
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def chain_id(self) -> str:
        """The id of this sink's stream of log records (new in a forked child)."""
        return self._chain

    def write(self, event: AuditEvent) -> None:
        """Add the span event and emit the log record for ``event``."""
        attributes = otel_attributes(event)
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event(SPAN_EVENT_NAME, attributes=attributes)
        with self._lock:
            if self._pid != os.getpid():
                # A forked worker is another stream: sharing the parent's id
                # and numbers would let one process's records fill the
                # other's gaps at the collector.
                self._pid = os.getpid()
                self._chain = os.urandom(16).hex()
                self._seq = 0
            self._seq += 1
            seq, chain = self._seq, self._chain
        log_attributes = dict(attributes)
        log_attributes["aiinvariants.chain"] = chain
        log_attributes["aiinvariants.seq"] = seq
        allowed = event.decision == "allow"
        resource = f" resource={event.resource}" if event.resource is not None else ""
        self._logger.emit(
            timestamp=_time_ns(event.time),
            severity_number=self._info if allowed else self._warn,
            severity_text="INFO" if allowed else "WARN",
            body=(
                f"decision={event.decision} invariant={event.invariant} "
                f"reason={event.reason} subject={event.subject}{resource}"
            ),
            attributes=log_attributes,
            event_name=SPAN_EVENT_NAME,
        )

    def close(self) -> None:
        """Nothing to release; the providers belong to the application."""

    def __repr__(self) -> str:
        tracer, logger = self._names
        return f"OTelSink(tracer_name={tracer!r}, logger_name={logger!r})"
