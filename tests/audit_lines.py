"""Audit segments written byte for byte from plain event dicts (tests only).

Attack tests need valid segments holding events the writer would never
produce (odd times, huge ids); these are built from the format's own pieces.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from aiinvariants.audit._canonical import canonical_json
from aiinvariants.audit._chain import FORMAT_VERSION, GENESIS_HASH
from aiinvariants.audit._records import event_line, signed_line

#: What a recorded event holds besides what a test sets (docs/audit-format.md).
EVENT_DEFAULTS: dict[str, Any] = {
    "correlation_id": "",
    "decision": "deny",
    "details": {},
    "id": "",
    "invariant": "I1",
    "policy_hash": "sha256:00",
    "reason": "r",
    "resource": None,
    "subject": "s",
    "time": "2026-11-30T12:00:00Z",
}


def segment_bytes(events: list[Mapping[str, Any]]) -> bytes:
    """A valid, unsigned segment of ``events`` (missing members defaulted)."""
    chain = uuid.uuid4().hex
    start = {
        "v": FORMAT_VERSION,
        "type": "start",
        "chain": chain,
        "seq": 1,
        "prev": GENESIS_HASH,
        "time": "2026-11-30T12:00:00Z",
        "key_id": None,
        "writer": {"host": "test", "name": "test", "pid": 1},
        "prev_segment": None,
        "torn": None,
    }
    line, prev = signed_line(start)
    out = [line]
    for seq, event in enumerate(events, start=2):
        record = {**EVENT_DEFAULTS, "id": uuid.uuid4().hex, **event}
        line, prev = event_line(chain, canonical_json(record), prev, seq)
        out.append(line)
    return b"".join(out)
