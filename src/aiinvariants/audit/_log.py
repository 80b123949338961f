"""The audit log: every decision becomes an event written to every sink (I13).

:class:`AuditLog` is what enforcement code calls. It fills in who the
decision was made for and which request it belongs to, keeps the principal's
token out of the event, hands the event to :func:`capture` listeners and
writes it to each sink. A decision that cannot be recorded is a denial unless
the policy names ``fail_open``. The sinks a policy declares are built in
``_policy_sinks`` (``policy_sinks`` and ``close_sinks`` stay importable here).
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, TypeVar, overload

from aiinvariants._errors import (
    AuditUnavailable,
    InsecureUsageWarning,
    InvariantViolation,
    PolicyError,
)
from aiinvariants._internal.closing import Closing
from aiinvariants._principal import Principal, current_correlation_id, current_principal
from aiinvariants.audit._events import (
    _EMPTY,
    AuditEvent,
    Decision,
    DetailValue,
    new_id,
    utc_now,
)
from aiinvariants.audit._policy_sinks import close_sinks as close_sinks
from aiinvariants.audit._policy_sinks import config_value
from aiinvariants.audit._policy_sinks import policy_sinks as policy_sinks
from aiinvariants.audit._sinks import AuditSink, sink_name

__all__ = ["AuditLog", "AuditStats", "SinkStats", "capture"]

_health = logging.getLogger("aiinvariants.audit.health")

REDACTED: Final = "[redacted]"
_SLOW_WARNING_INTERVAL: Final = 60.0

_CAPTURE: Final[contextvars.ContextVar[tuple[list[AuditEvent], ...]]] = (
    contextvars.ContextVar("aiinvariants.audit.capture", default=())
)


_Events = TypeVar("_Events", bound=list[AuditEvent])


@overload
def capture() -> AbstractContextManager[list[AuditEvent]]: ...


@overload
def capture(into: _Events) -> AbstractContextManager[_Events]: ...


@contextmanager
def capture(into: list[AuditEvent] | None = None) -> Iterator[Any]:
    """Collect every event recorded in the current context while active.

    Like structlog's ``capture_logs``: the yielded list receives each event
    any :class:`AuditLog` records in this context (and in asyncio tasks it
    starts), whether or not that log has sinks. Captures nest; each active
    one receives every event. Threads do not inherit the context: wrap work
    handed to a pool with :func:`aiinvariants._principal.carry_principal`.

    Example::

        with capture() as events:
            guarded_call()
        assert [e.reason for e in events] == ["scope_missing"]

    Pass ``into`` to collect into a list of your own (a subclass with
    helper methods, say); it is yielded back.
    """
    events: list[AuditEvent] = [] if into is None else into
    token = _CAPTURE.set((*_CAPTURE.get(), events))
    try:
        yield events
    finally:
        _CAPTURE.reset(token)


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Counts for one sink of an :class:`AuditLog`.

    Attributes:
        name: the sink's class name.
        written: events the sink accepted.
        failed: writes that raised.
        slow: writes slower than the log's ``slow_sink_threshold``.
    """

    name: str
    written: int
    failed: int
    slow: int


@dataclass(frozen=True, slots=True)
class AuditStats:
    """Counts for an :class:`AuditLog`, from :attr:`AuditLog.stats`.

    Attributes:
        recorded: events recorded (built and handed to the sinks).
        written: events every sink accepted.
        failed: events at least one sink failed to write.
        slow: sink writes slower than the threshold, over all sinks.
        sinks: per-sink counts, in the order of :attr:`AuditLog.sinks`.
    """

    recorded: int
    written: int
    failed: int
    slow: int
    sinks: tuple[SinkStats, ...]


def _scrub_text(value: str, tokens: tuple[str, ...]) -> str:
    for token in tokens:
        if token in value:
            return REDACTED
    return value


def _scrub_details(
    details: Mapping[str, DetailValue], tokens: tuple[str, ...]
) -> tuple[Mapping[str, DetailValue], list[str]]:
    fields: list[str] = []
    scrubbed: dict[str, DetailValue] = {}
    for key, value in details.items():
        if isinstance(key, str) and _scrub_text(key, tokens) is REDACTED:
            # A token used as a key: keep neither the key nor its value.
            fields.append("details (a key)")
            scrubbed[f"{REDACTED}#{len(fields)}"] = REDACTED
        elif isinstance(value, str) and _scrub_text(value, tokens) is REDACTED:
            fields.append(f"details.{key}")
            scrubbed[key] = REDACTED
        else:
            scrubbed[key] = value
    return (scrubbed if fields else details), fields


class AuditLog(Closing):
    """Record every decision to a set of sinks.

    Args:
        sinks: where events go. Every sink is written on every decision,
            even when an earlier one failed.
        policy_hash: the hash of the policy in force, carried by each event.
        on_write_failure: ``"deny"`` (the default) makes a decision that
            could not be recorded a denial: :meth:`record` raises
            :class:`~aiinvariants._errors.AuditUnavailable`. ``"fail_open"``
            logs the failure on ``aiinvariants.audit.health`` and goes on;
            it lets an attacker who can break the sink (fill the disk, cut
            the network) act without a trace, so it emits
            :class:`~aiinvariants._errors.InsecureUsageWarning` and records an
            ``I13``/``flag`` event saying so.
        slow_sink_threshold: seconds; a sink write slower than this is
            counted and reported (at most once a minute per sink). Wrap such
            sinks in :class:`BoundedSink`.

    Raises:
        PolicyError: an argument is invalid.
    """

    def __init__(
        self,
        sinks: Iterable[AuditSink] = (),
        *,
        policy_hash: str = "",
        on_write_failure: Literal["deny", "fail_open"] = "deny",
        slow_sink_threshold: float = 0.05,
    ) -> None:
        if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
            raise PolicyError("AuditLog sinks must be an iterable of sinks")
        sinks = tuple(sinks)
        for sink in sinks:
            if not callable(getattr(sink, "write", None)) or not callable(
                getattr(sink, "close", None)
            ):
                raise PolicyError(
                    f"{type(sink).__name__} is not an audit sink: it needs "
                    "write(event) and close()"
                )
        if on_write_failure not in ("deny", "fail_open"):
            raise PolicyError(
                f"on_write_failure must be 'deny' or 'fail_open', not "
                f"{on_write_failure!r}"
            )
        if not isinstance(policy_hash, str):
            raise PolicyError("policy_hash must be a str")
        if (
            isinstance(slow_sink_threshold, bool)
            or not isinstance(slow_sink_threshold, (int, float))
            or not math.isfinite(slow_sink_threshold)
            or slow_sink_threshold < 0
        ):
            raise PolicyError("slow_sink_threshold must be a number >= 0")
        self._sinks: tuple[AuditSink, ...] = sinks
        self._names = tuple(sink_name(sink) for sink in sinks)
        self._policy_hash = policy_hash
        self._fail_open = on_write_failure == "fail_open"
        self._threshold = float(slow_sink_threshold)
        self._lock = threading.Lock()
        self._closed = False
        self._recorded = 0
        self._written = 0
        self._failed = 0
        self._sink_written = [0] * len(sinks)
        self._sink_failed = [0] * len(sinks)
        self._sink_slow = [0] * len(sinks)
        self._slow_warned = [-math.inf] * len(sinks)
        if self._fail_open:
            warnings.warn(
                "audit on_write_failure='fail_open': decisions that cannot be "
                "recorded will go through without an audit trail",
                InsecureUsageWarning,
                stacklevel=2,
            )
            self.record(
                invariant="I13",
                decision="flag",
                reason="audit_fail_open",
                details={"sinks": len(sinks)},
            )

    @classmethod
    def from_policy(
        cls, policy: Any, *, extra_sinks: Iterable[AuditSink] = ()
    ) -> AuditLog:
        """Build the audit log a policy's ``audit`` section describes.

        Each entry of ``policy.audit.sinks`` has a ``kind``: ``memory``
        (``capacity``), ``logging`` (``logger``, ``level``), ``jsonl``
        (``path``, ``sign_key_env``, ``fsync``) or ``otel``; any entry with
        ``timeout_s`` is wrapped in a :class:`BoundedSink`. ``sign_key_env``
        names the environment variable holding the signing key (see
        :func:`load_signing_key`); the key itself never appears in a policy.

        Args:
            policy: a :class:`~aiinvariants.policy.Policy` (or any object of
                the same shape).
            extra_sinks: sinks added after the policy's, e.g. a
                :class:`MemorySink` in tests.

        Raises:
            PolicyError: a sink cannot be set up (unknown kind, unset key
                variable, unwritable or locked file…). Sinks already opened
                are closed again.
        """
        audit = getattr(policy, "audit", None)
        policy_hash = getattr(policy, "hash", "")
        if callable(policy_hash):
            policy_hash = policy_hash()
        on_failure: Literal["deny", "fail_open"] = (
            config_value(audit, "on_write_failure", "deny") or "deny"
        )
        sinks: list[AuditSink] = []
        try:
            sinks.extend(policy_sinks(policy))
            sinks.extend(extra_sinks)
            return cls(
                sinks,
                policy_hash=str(policy_hash or ""),
                on_write_failure=on_failure,
            )
        except BaseException:
            for sink in sinks:
                try:
                    sink.close()
                except Exception:  # the original error wins
                    _health.exception("closing %s failed", sink_name(sink))
            raise

    # -- recording ---------------------------------------------------------

    @property
    def sinks(self) -> tuple[AuditSink, ...]:
        """The sinks every event is written to."""
        return self._sinks

    @property
    def policy_hash(self) -> str:
        """The policy hash each event carries."""
        return self._policy_hash

    @property
    def active(self) -> bool:
        """True when a recorded event would reach a sink or a :func:`capture`.

        Hot paths may skip building an event for an *allowed* decision when
        this is False; denials are always recorded.
        """
        return bool(self._sinks) or bool(_CAPTURE.get())

    @property
    def fail_open(self) -> bool:
        """True when a failed write does not deny the decision."""
        return self._fail_open

    def record(
        self,
        *,
        invariant: str,
        decision: Decision,
        reason: str,
        resource: str | None = None,
        details: Mapping[str, DetailValue] | None = None,
        principal: Principal | None = None,
    ) -> AuditEvent:
        """Record one decision and return its event.

        The subject is ``principal``'s (default: the current principal), the
        correlation id that of the current ``acting_as`` block (else the
        event's own id). If the principal's raw token occurs in ``reason``,
        ``resource`` or a string detail, that string is replaced by
        ``"[redacted]"`` before any listener or sink sees it.

        Raises:
            AuditUnavailable: a sink failed (or the log is closed) and
                ``on_write_failure`` is ``"deny"``. Its message names the
                failing sink classes only; the sink's exception is the cause.
            TypeError: a detail is not a scalar.
            PolicyError: ``invariant`` or ``decision`` is unknown.
        """
        who = current_principal() if principal is None else principal
        token = who.raw_token()
        if token:
            reason, resource, details = self._scrub(who, reason, resource, details)
        event_id = new_id()
        event = AuditEvent(
            id=event_id,
            time=utc_now(),
            invariant=invariant,
            decision=decision,
            reason=reason,
            subject=who.subject,
            resource=resource,
            policy_hash=self._policy_hash,
            correlation_id=current_correlation_id() or event_id,
            details=_EMPTY if details is None else details,
        )
        for listener in _CAPTURE.get():
            listener.append(event)
        if not self._sinks:
            with self._lock:
                self._recorded += 1
                self._written += 1
            return event
        if self._closed:
            return self._failed_write(event, [], "the audit log is closed")
        return self._write(event)

    def deny(
        self,
        denial: InvariantViolation,
        *,
        principal: Principal | None = None,
        resource: str | None = None,
        details: Mapping[str, DetailValue] | None = None,
        invariant: str | None = None,
    ) -> NoReturn:
        """Record ``denial`` as a ``deny`` decision, then raise it.

        The event takes its invariant, reason code and resource from the
        exception unless given here. A denial stays a denial when it cannot
        be recorded: the :class:`AuditUnavailable` rides along as its cause.
        """
        try:
            self.record(
                invariant=invariant or denial.invariant,
                decision="deny",
                reason=denial.code,
                resource=denial.resource if resource is None else resource,
                details=details,
                principal=principal,
            )
        except AuditUnavailable as exc:
            raise denial from exc
        raise denial

    def _scrub(
        self,
        who: Principal,
        reason: str,
        resource: str | None,
        details: Mapping[str, DetailValue] | None,
    ) -> tuple[str, str | None, Mapping[str, DetailValue] | None]:
        token = who.raw_token()
        tokens = (token,) if token else ()
        fields: list[str] = []
        if isinstance(reason, str) and _scrub_text(reason, tokens) is REDACTED:
            reason = REDACTED
            fields.append("reason")
        if isinstance(resource, str) and _scrub_text(resource, tokens) is REDACTED:
            resource = REDACTED
            fields.append("resource")
        if details:
            details, detail_fields = _scrub_details(details, tokens)
            fields.extend(detail_fields)
        if fields:
            _health.warning(
                "a bearer token reached an audit event (%s); replaced by %s",
                ", ".join(fields),
                REDACTED,
            )
        return reason, resource, details

    def _write(self, event: AuditEvent) -> AuditEvent:
        failures: list[tuple[int, Exception]] = []
        slow: list[tuple[int, float]] = []
        threshold = self._threshold
        # One read: _reconfigure may swap the sinks while this write runs.
        sinks, names = self._sinks, self._names
        for index, sink in enumerate(sinks):
            start = time.perf_counter()
            try:
                sink.write(event)
            except Exception as exc:  # every sink is tried
                failures.append((index, exc))
            elapsed = time.perf_counter() - start
            if elapsed > threshold:
                slow.append((index, elapsed))
        with self._lock:
            self._recorded += 1
            if failures:
                self._failed += 1
            else:
                self._written += 1
            failed = {index for index, _ in failures}
            if self._sinks is not sinks:
                slow, failed = [], set()
            for index in range(len(self._sinks) if self._sinks is sinks else 0):
                if index in failed:
                    self._sink_failed[index] += 1
                else:
                    self._sink_written[index] += 1
            report: list[tuple[int, float]] = []
            now = time.monotonic()
            for index, elapsed in slow:
                self._sink_slow[index] += 1
                if now - self._slow_warned[index] >= _SLOW_WARNING_INTERVAL:
                    self._slow_warned[index] = now
                    report.append((index, elapsed))
        for index, elapsed in report:
            _health.warning(
                "audit sink %s took %.1f ms to write an event (threshold "
                "%.1f ms); wrap it in BoundedSink(timeout_s=...) so a slow sink "
                "cannot stall decisions",
                names[index],
                elapsed * 1000,
                threshold * 1000,
            )
        if failures:
            return self._failed_write(event, failures, None, names)
        return event

    def _failed_write(
        self,
        event: AuditEvent,
        failures: list[tuple[int, Exception]],
        why: str | None,
        names: tuple[str, ...] = (),
    ) -> AuditEvent:
        if why is None:
            failing = ", ".join(dict.fromkeys(names[i] for i, _ in failures))
            why = f"audit sink {failing} failed to record the decision"
            for index, exc in failures:
                # The exception's type only: its text could quote data.
                _health.error(
                    "audit sink %s failed to write an event (%s)",
                    names[index],
                    type(exc).__name__,
                )
        else:
            _health.error("audit event not recorded: %s", why)
        if self._fail_open:
            return event
        cause = failures[0][1] if failures else None
        raise AuditUnavailable(
            why, subject=event.subject, resource=event.resource
        ) from cause

    def _reconfigure(
        self,
        sinks: Iterable[AuditSink],
        *,
        policy_hash: str,
        on_write_failure: Literal["deny", "fail_open"],
    ) -> tuple[AuditSink, ...]:
        """Swap in ``sinks`` and ``policy_hash`` at once; return the old sinks.

        Writes already under way finish on the old sinks; the caller closes
        those it no longer needs. Per-sink counts restart.
        """
        sinks = tuple(sinks)
        with self._lock:
            if self._closed:
                raise PolicyError("the audit log is closed")
            old = self._sinks
            self._sinks = sinks
            self._names = tuple(sink_name(sink) for sink in sinks)
            self._sink_written = [0] * len(sinks)
            self._sink_failed = [0] * len(sinks)
            self._sink_slow = [0] * len(sinks)
            self._slow_warned = [-math.inf] * len(sinks)
            self._policy_hash = policy_hash
            self._fail_open = on_write_failure == "fail_open"
        return old

    # -- state -------------------------------------------------------------

    @property
    def stats(self) -> AuditStats:
        """Counts of recorded, written, failed and slow writes, per sink too."""
        with self._lock:
            return AuditStats(
                recorded=self._recorded,
                written=self._written,
                failed=self._failed,
                slow=sum(self._sink_slow),
                sinks=tuple(
                    SinkStats(
                        name=name,
                        written=self._sink_written[i],
                        failed=self._sink_failed[i],
                        slow=self._sink_slow[i],
                    )
                    for i, name in enumerate(self._names)
                ),
            )

    def close(self) -> None:
        """Close every sink; later records fail. Idempotent.

        Raises:
            Exception: the first error a sink raised while closing, after
                every sink was given the chance to close.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        first: Exception | None = None
        for name, sink in zip(self._names, self._sinks, strict=True):
            try:
                sink.close()
            except Exception as exc:  # close the others first
                _health.error(
                    "audit sink %s failed to close (%s)", name, type(exc).__name__
                )
                first = first or exc
        if first is not None:
            raise first

    def __repr__(self) -> str:
        mode = "fail_open" if self._fail_open else "deny"
        return f"AuditLog(sinks=[{', '.join(self._names)}], on_write_failure={mode!r})"
