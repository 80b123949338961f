"""Red team of the multi-process audit trail (issue #16): bypasses found, pinned.

Each test plays one attack on the segment writer or the verifier and asserts
the secure outcome with its stable reason code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants.audit import AuditEvent, JSONLSink, canonical_json, verify_trail
from aiinvariants.cli import main
from aiinvariants.errors import AuditUnavailable

KEY = Ed25519PrivateKey.generate()


def event(i: int) -> AuditEvent:
    return AuditEvent(
        invariant="I1",
        decision="allow",
        reason="scopes_held",
        subject=f"user{i}",
        resource="crm.export",
        policy_hash="sha256:" + "ab" * 32,
        details={"count": i},
    )


def strip_signatures(path: Path) -> None:
    """Null every key_id/sig and recompute every hash: needs no key at all."""
    prev = "0" * 64
    out = []
    for raw in path.read_bytes().splitlines():
        record: dict[str, Any] = json.loads(raw)
        if "sig" in record:
            record["sig"] = record["key_id"] = None
        if record["type"] != "start":
            record["prev"] = prev
        body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
        record["hash"] = prev = hashlib.sha256(canonical_json(body)).hexdigest()
        out.append(canonical_json(record) + b"\n")
    path.write_bytes(b"".join(out))


# -- downgrade: a signed trail with every signature stripped -----------------


def test_stripped_signatures_are_not_ok_when_the_policy_signs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit"
    with JSONLSink(f"{trail}/", signing_key=KEY, checkpoint_every=2) as sink:
        for i in range(5):
            sink.write(event(i))
    (segment,) = trail.glob("*.jsonl")
    strip_signatures(segment)
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "audit": {
                    "sinks": [
                        {"kind": "jsonl", "path": f"{trail}/", "sign_key_env": "K"}
                    ]
                }
            }
        )
    )
    # The policy says its writers sign: an unsigned segment is a downgrade,
    # also when the auditor has no public key at hand.
    assert main(["audit", "verify", "--policy", str(policy)]) == 1
    assert "unsigned" in capsys.readouterr().out
    report = verify_trail(trail, require_signed=True)
    assert [p.reason for p in report.problems] == ["unsigned"]


# -- events lost: the segment file deleted under a live writer ---------------


def test_a_deleted_segment_file_fails_closed(tmp_path: Path) -> None:
    policy = Policy.model_validate(
        {"audit": {"sinks": [{"kind": "jsonl", "path": f"{tmp_path}/audit/"}]}}
    )
    guard = Guard(policy)
    (segment,) = (tmp_path / "audit").glob("*.jsonl")
    segment.unlink()
    alice = Principal(subject="alice", authenticated=True)
    with acting_as(alice), pytest.raises(AuditUnavailable) as caught:
        # Before: recorded "successfully" into an unlinked inode, i.e. nowhere.
        guard.audit.record(invariant="I1", decision="allow", reason="scopes_held")
    assert caught.value.code == "audit_unavailable"
    with contextlib.suppress(OSError):
        guard.close()


# -- the verifier: a FIFO planted under a segment's name ---------------------


def test_a_fifo_in_a_template_trail_is_reported_not_hung(tmp_path: Path) -> None:
    trail = tmp_path / "audit"
    trail.mkdir()
    with JSONLSink(f"{trail}/{{host}}-{{pid}}.jsonl") as sink:
        sink.write(event(1))
    fifo = trail / "evil-1.jsonl"
    os.mkfifo(fifo)
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(verify_trail(f"{trail}/{{host}}-{{pid}}.jsonl")),
        daemon=True,
    )
    worker.start()
    worker.join(5)
    hung = worker.is_alive()
    if hung:  # unblock the reader so the test run can go on
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
    assert not hung, "verify_trail blocked on a FIFO"
    (report,) = result
    assert not report.ok
    assert [(Path(p.file).name, p.reason) for p in report.problems] == [
        ("evil-1.jsonl", "unreadable")
    ]
