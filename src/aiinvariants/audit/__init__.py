"""The audit trail: every decision recorded, tamper-evidently (invariant I13).

:class:`AuditLog` turns each decision into an :class:`AuditEvent` and writes
it to sinks: :class:`MemorySink`, :class:`LoggingSink`, the hash-chained and
optionally Ed25519-signed :class:`JSONLSink` (checked by
:func:`verify_chain`) and :class:`OTelSink`; :class:`BoundedSink` gives a
slow sink a deadline. :func:`capture` collects events in tests.

See ``docs/audit.md`` for the file format and what tamper-evidence proves.
"""

from __future__ import annotations

from aiinvariants.audit._canonical import canonical_json
from aiinvariants.audit._chain import GENESIS_HASH, JSONLSink
from aiinvariants.audit._events import AuditEvent, Decision, DetailValue
from aiinvariants.audit._keys import key_id, load_public_key, load_signing_key
from aiinvariants.audit._log import AuditLog, AuditStats, SinkStats, capture
from aiinvariants.audit._sinks import AuditSink, BoundedSink, LoggingSink, MemorySink
from aiinvariants.audit._verify import (
    ChainReport,
    Problem,
    SegmentReport,
    TrailReport,
    verify_chain,
    verify_trail,
)
from aiinvariants.audit.otel import OTelSink

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditLog",
    "AuditSink",
    "AuditStats",
    "BoundedSink",
    "ChainReport",
    "Decision",
    "DetailValue",
    "JSONLSink",
    "LoggingSink",
    "MemorySink",
    "OTelSink",
    "Problem",
    "SegmentReport",
    "SinkStats",
    "TrailReport",
    "canonical_json",
    "capture",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "verify_chain",
    "verify_trail",
]
