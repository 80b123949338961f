"""Where audit events go: the sink protocol and the in-process sinks.

A sink is anything with ``write(event)`` and ``close()``. ``write`` either
records the event or raises; the :class:`~aiinvariants.audit.AuditLog` turns
a raise into a denial (or, when the policy says ``fail_open``, into a logged
error). This module holds the sinks that need nothing outside the standard
library: :class:`MemorySink`, :class:`LoggingSink`, and :class:`BoundedSink`,
which puts a deadline on any other sink. The hash-chained file sink is in
``chain.py``, the OpenTelemetry one in ``otel.py``.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import json
import logging
import math
import queue
import threading
import warnings
from typing import Final, Protocol, runtime_checkable

from aiinvariants._errors import PolicyError
from aiinvariants._internal.closing import Closing
from aiinvariants._internal.deprecation import renamed_keyword
from aiinvariants.audit._events import AuditEvent

__all__ = [
    "AuditSink",
    "BoundedSink",
    "LoggingSink",
    "MemorySink",
    "sink_name",
]

_health = logging.getLogger("aiinvariants.audit.health")


@runtime_checkable
class AuditSink(Protocol):
    """Receives audit events.

    ``write`` must either record the event durably enough for the sink's
    purpose or raise; it must never swallow a failure. It may be called from
    several threads at once. ``close`` releases resources; it is idempotent.
    """

    def write(self, event: AuditEvent) -> None:
        """Record one event, or raise."""

    def close(self) -> None:
        """Flush and release resources."""


def sink_name(sink: object) -> str:
    """A short name for a sink in messages and stats: its class name.

    Never the sink's repr or configuration, which might hold a path or a
    credential.
    """
    if isinstance(sink, BoundedSink):
        return f"BoundedSink({sink_name(sink.inner)})"
    return type(sink).__name__


class MemorySink:
    """Keep events in memory, for tests and for in-process inspection.

    Bounded: when full, the oldest event is dropped and counted in
    :attr:`dropped`, so a long-running process cannot grow without limit.

    Args:
        capacity: the most events kept; ``None`` for no limit (tests only).
    """

    def __init__(self, *, capacity: int | None = 10_000) -> None:
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise PolicyError("MemorySink capacity must be a positive int or None")
        self._capacity = capacity
        self._events: collections.deque[AuditEvent] = collections.deque(maxlen=capacity)
        self._dropped = 0
        self._lock = threading.Lock()

    def write(self, event: AuditEvent) -> None:
        """Keep ``event``, dropping the oldest one when full."""
        with self._lock:
            if self._capacity is not None and len(self._events) == self._capacity:
                self._dropped += 1
            self._events.append(event)

    @property
    def events(self) -> list[AuditEvent]:
        """A copy of the kept events, oldest first."""
        with self._lock:
            return list(self._events)

    @property
    def capacity(self) -> int | None:
        """The most events kept."""
        return self._capacity

    @property
    def dropped(self) -> int:
        """How many events were dropped because the sink was full."""
        with self._lock:
            return self._dropped

    def clear(self) -> None:
        """Forget every kept event and reset the drop count."""
        with self._lock:
            self._events.clear()
            self._dropped = 0

    def close(self) -> None:
        """Nothing to release; the events stay readable."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __repr__(self) -> str:
        return f"MemorySink(capacity={self._capacity}, events={len(self)})"


def _field(value: str) -> str:
    # Values come from tokens (subject) and callers (resource): quote any
    # value that could forge a second field or line in a text log.
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return json.dumps(value)


def _level(level: int | str) -> int:
    if isinstance(level, bool):
        raise PolicyError("a logging level must be an int or a level name")
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        number = logging.getLevelName(level.strip().upper())
        if isinstance(number, int):
            return number
    raise PolicyError(
        f"unknown logging level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )


class LoggingSink:
    """Write one standard-library log record per event.

    The message reads ``decision=deny invariant=I1 reason=scope_missing
    subject=alice resource=crm.read``; values with spaces, quotes, ``=`` or
    control characters are JSON-quoted, so a crafted subject cannot forge a
    log line. The whole event is attached as ``extra={"aiinvariants_event":
    {...}}`` for structured handlers.

    A logging handler that fails reports through ``logging``'s own error
    handling, not to the caller; use a :class:`JSONLSink` when the record
    itself must be guaranteed.

    Args:
        logger: a logger or logger name.
        level: the level of each record (an int or a name like ``"INFO"``).
    """

    def __init__(
        self,
        *,
        logger: str | logging.Logger = "aiinvariants.audit",
        level: int | str = logging.INFO,
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise PolicyError("logger must be a logging.Logger or a logger name")
        self._logger = logger
        self._level = _level(level)

    @property
    def logger(self) -> logging.Logger:
        """The logger records go to."""
        return self._logger

    @property
    def level(self) -> int:
        """The level of each record."""
        return self._level

    def write(self, event: AuditEvent) -> None:
        """Log ``event`` as one record."""
        if not self._logger.isEnabledFor(self._level):
            return
        extra = {"aiinvariants_event": event.to_dict()}
        if event.resource is None:
            self._logger.log(
                self._level,
                "decision=%s invariant=%s reason=%s subject=%s",
                event.decision,
                event.invariant,
                _field(event.reason),
                _field(event.subject),
                extra=extra,
            )
        else:
            self._logger.log(
                self._level,
                "decision=%s invariant=%s reason=%s subject=%s resource=%s",
                event.decision,
                event.invariant,
                _field(event.reason),
                _field(event.subject),
                _field(event.resource),
                extra=extra,
            )

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return (
            f"LoggingSink(logger={self._logger.name!r}, "
            f"level={logging.getLevelName(self._level)!r})"
        )


class _Job:
    __slots__ = ("cancelled", "context", "done", "error", "event")

    def __init__(self, event: AuditEvent, context: contextvars.Context) -> None:
        self.event = event
        self.context = context
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.cancelled = False


_STOP: Final = object()


class BoundedSink(Closing):
    """Give a slow sink a deadline.

    ``write`` hands the event to a dedicated worker thread, which calls
    ``inner.write``, and waits at most ``timeout_s`` seconds for it to finish.
    A timeout, a full queue or an exception from ``inner`` raises from
    ``write``, so the audit log treats it as a failed write: a hung network
    or NFS sink then costs each decision at most ``timeout_s`` instead of
    stalling every request. The worker runs each write in a copy of the
    caller's context (so e.g. the current OpenTelemetry span is kept).

    A write that timed out may still complete later, once the inner sink
    recovers; one still queued when it timed out is skipped.

    Args:
        inner: the sink to protect.
        timeout_s: seconds to wait for each write (> 0).
        max_queue: writes that may be pending at once; more are refused.
        timeout: the deprecated old name of ``timeout_s`` (warns).
    """

    def __init__(
        self,
        inner: AuditSink,
        *,
        timeout_s: float | None = None,
        max_queue: int = 1024,
        timeout: float | None = None,
    ) -> None:
        timeout = renamed_keyword(
            "BoundedSink", "timeout", timeout, "timeout_s", timeout_s
        )
        if not callable(getattr(inner, "write", None)) or not callable(
            getattr(inner, "close", None)
        ):
            raise PolicyError("BoundedSink needs a sink with write() and close()")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise PolicyError(
                "BoundedSink needs timeout_s=, a positive number of seconds"
            )
        if (
            isinstance(max_queue, bool)
            or not isinstance(max_queue, int)
            or (max_queue < 1)
        ):
            raise PolicyError("BoundedSink max_queue must be a positive int")
        self._inner = inner
        self._timeout = float(timeout)
        self._queue: queue.Queue[_Job | object] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._state = threading.Lock()
        self._thread = threading.Thread(
            target=self._run,
            name=f"aiinvariants-audit-{sink_name(inner)}",
            daemon=True,  # a hung sink must not keep the process alive
        )
        self._thread.start()

    @property
    def inner(self) -> AuditSink:
        """The protected sink."""
        return self._inner

    @property
    def timeout_s(self) -> float:
        """Seconds each write may take."""
        return self._timeout

    @property
    def timeout(self) -> float:
        """The deprecated old name of :attr:`timeout_s` (warns)."""
        warnings.warn(
            "BoundedSink.timeout is deprecated (removed in the next minor "
            "release); use timeout_s",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._timeout

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if not isinstance(job, _Job):
                return  # the stop marker
            if not job.cancelled:
                try:
                    job.context.run(self._inner.write, job.event)
                except BaseException as exc:  # handed to the caller
                    job.error = exc
                finally:
                    job.done.set()
            if self._closed and self._queue.empty():
                # close() could not enqueue the stop marker (queue full).
                return

    def write(self, event: AuditEvent) -> None:
        """Write through the worker, waiting at most ``timeout_s`` seconds.

        Raises:
            TimeoutError: the write did not finish in time, or too many
                writes are pending.
            PolicyError: the sink is closed.
            Exception: whatever ``inner.write`` raised.
        """
        if self._closed:
            raise PolicyError(f"{sink_name(self)} is closed")
        job = _Job(event, contextvars.copy_context())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise TimeoutError(
                f"{sink_name(self)}: {self._queue.maxsize} writes already pending"
            ) from None
        if not job.done.wait(self._timeout):
            job.cancelled = True
            raise TimeoutError(
                f"{sink_name(self)}: write not acknowledged within {self._timeout:g} s"
            )
        error = job.error
        if error is not None:
            job.error = None  # break the job <-> traceback cycle
            raise error

    def close(self) -> None:
        """Stop the worker (after pending writes) and close the inner sink."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        wait = max(self._timeout, 1.0)
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=wait)
        self._thread.join(wait)
        if self._thread.is_alive():
            _health.warning(
                "%s: the worker is still busy in a write after %g s; closing "
                "the inner sink anyway",
                sink_name(self),
                wait,
            )
        self._inner.close()

    def __repr__(self) -> str:
        return f"BoundedSink({sink_name(self._inner)}, timeout_s={self._timeout:g})"
