"""Red team: StreamGuard audit evasion.

A stream's audit is written once, when the answer is decided. Whatever
shares that decision (a ``copy.copy`` of the guard, which frameworks make of
callbacks and handlers) must not keep emitting text afterwards: findings
in it would be judged but never recorded, a block included.
"""

from __future__ import annotations

import copy

import pytest

from aiinvariants import PolicyError
from aiinvariants._errors import AuditUnavailable
from aiinvariants.audit import AuditLog
from aiinvariants.audit._events import AuditEvent
from aiinvariants.audit._sinks import MemorySink
from aiinvariants.filters import OutputPipeline, PIIFilter, SecretsFilter, StreamGuard

GHP = "ghp_" + "aZ3kQ9" * 6


def _pipeline() -> tuple[OutputPipeline, MemorySink]:
    sink = MemorySink(capacity=None)
    return (
        OutputPipeline(
            [SecretsFilter(), PIIFilter(action="redact")], audit=AuditLog([sink])
        ),
        sink,
    )


@pytest.mark.parametrize("end", ["close", "abort"])
def test_copy_of_a_decided_guard_emits_nothing_unaudited(end: str) -> None:
    """The twin of a closed (or aborted) guard shares its record, written
    already: it refuses input instead of emitting text never audited."""
    pipeline, sink = _pipeline()
    guard = StreamGuard(pipeline)
    twin = copy.copy(guard)
    getattr(guard, end)()
    written = len(sink.events)
    with pytest.raises(PolicyError):
        twin.feed("mail a.b@example.com " + "filler " * 20)
    assert twin.close() == ""
    assert len(sink.events) == written


class _FlakySink(MemorySink):
    """A sink whose first write fails (a full disk freed a moment later)."""

    def __init__(self) -> None:
        super().__init__(capacity=None)
        self.failures = 1

    def write(self, event: AuditEvent) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        super().write(event)


@pytest.mark.parametrize("retry", ["close", "abort"])
def test_failed_audit_write_is_retried_not_dropped(retry: str) -> None:
    """close() could not record (AuditUnavailable): the redacted email and the
    flagged text were already released, so the record is still owed. The
    next settle (abort, the with-block, garbage collection) writes it, once."""
    sink = _FlakySink()
    pipeline = OutputPipeline(
        [SecretsFilter(), PIIFilter(action="redact")], audit=AuditLog([sink])
    )
    guard = StreamGuard(pipeline)
    emitted = guard.feed("mail a.b@example.com " + "filler " * 40)
    assert "[REDACTED]" in emitted  # released with its finding
    with pytest.raises(AuditUnavailable):
        guard.close()
    if retry == "close":
        assert guard.close() == ""  # the rest stays withheld
    guard.abort()
    guard.abort()
    pii = [e for e in sink.events if e.details.get("filter") == "PIIFilter"]
    assert len(pii) == 1, "a released finding was never recorded"
