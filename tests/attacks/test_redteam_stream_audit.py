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
from aiinvariants.audit import AuditLog
from aiinvariants.audit.sinks import MemorySink
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
