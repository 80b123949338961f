"""An audit sink that reports decisions to OpenTelemetry.

Needs the ``otel`` extra (``pip install "aiinvariants[otel]"``). The module
itself imports nothing from OpenTelemetry: the import happens when an
:class:`OTelSink` is built, so ``import aiinvariants.audit`` stays free of it.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiinvariants.audit.events import AuditEvent
from aiinvariants.errors import MissingIntegrationError, PolicyError

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["SPAN_EVENT_NAME", "OTelSink", "otel_attributes"]

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


class OTelSink:
    """Report each decision as a span event and a log record.

    On every event it adds a span event ``aiinvariants.decision`` to the
    current span (when that span is recording) and emits a log record through
    the OpenTelemetry logs API, both carrying the event's fields as
    ``aiinvariants.*`` attributes. Log severity is INFO for ``allow`` and
    WARN for ``deny``, ``redact`` and ``flag``.

    OpenTelemetry exporters batch and drop under load; this sink is for
    observability, not the tamper-evident record (use :class:`JSONLSink`).

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

    def write(self, event: AuditEvent) -> None:
        """Add the span event and emit the log record for ``event``."""
        attributes = otel_attributes(event)
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event(SPAN_EVENT_NAME, attributes=attributes)
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
            attributes=attributes,
            event_name=SPAN_EVENT_NAME,
        )

    def close(self) -> None:
        """Nothing to release; the providers belong to the application."""

    def __repr__(self) -> str:
        tracer, logger = self._names
        return f"OTelSink(tracer_name={tracer!r}, logger_name={logger!r})"
