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
from aiinvariants._cli import main
from aiinvariants._errors import AuditUnavailable
from aiinvariants.audit import AuditEvent, JSONLSink, canonical_json, verify_trail

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


# -- canonical form: a second byte form of a signature -----------------------


def test_a_signature_with_other_padding_bits_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with JSONLSink(path, signing_key=KEY, checkpoint_every=2) as sink:
        for i in range(3):
            sink.write(event(i))
    raw = path.read_bytes().splitlines(keepends=True)
    record = json.loads(raw[3])
    assert record["type"] == "checkpoint"
    assert record["sig"].endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(record["sig"][-3])
    # The 4 low bits of the last character are padding: flipping one keeps
    # the decoded signature, so the line's bytes change and it still verified.
    record["sig"] = record["sig"][:-3] + alphabet[last ^ 1] + "=="
    raw[3] = canonical_json(record) + b"\n"
    path.write_bytes(b"".join(raw))
    report = verify_trail(path, public_key=KEY.public_key())
    assert [(p.line, p.reason) for p in report.problems] == [(4, "bad_signature")]


# -- a checkpoint that fails after its event was written ---------------------

_FSIZE_SCRIPT = r"""
import json, resource, signal, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from aiinvariants import Principal, acting_as
from aiinvariants.audit import AuditLog, JSONLSink
from aiinvariants.audit._records import event_json, event_line
from aiinvariants._errors import AuditUnavailable

path = sys.argv[1]
sink = JSONLSink(path, signing_key=Ed25519PrivateKey.generate(), checkpoint_every=1)
log = AuditLog([sink], policy_hash="sha256:" + "ab" * 32, on_write_failure="deny")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
with acting_as(Principal(subject="alice", authenticated=True)):
    # The file may grow by exactly one event line, not by its checkpoint
    # (the probe's line has the same length as the next one).
    import os
    probe = log.record(
        invariant="I1", decision="allow", reason="scopes_held", resource="r-1"
    )
    line = len(event_line(sink.chain_id, event_json(probe), "0" * 64, 1)[0])
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + line, -1))
    try:
        log.record(
            invariant="I1", decision="allow", reason="scopes_held", resource="r-2"
        )
        outcome = "allowed"
    except AuditUnavailable as exc:
        outcome = "denied:" + exc.code
    resource.setrlimit(resource.RLIMIT_FSIZE, (-1, -1))
text = open(path).read()
print(json.dumps({
    "outcome": outcome,
    "in_file": '"resource":"r-2"' in text,
}))
"""


def test_a_failed_checkpoint_does_not_deny_a_recorded_decision(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    path = tmp_path / "a.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", _FSIZE_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # What the caller got and what the trail says must agree: before, the
    # event said "allow" while the caller was denied (audit_unavailable).
    assert result == {"outcome": "allowed", "in_file": True}


# -- replace_policy racing a decision ------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="an event takes the AuditLog's current policy hash at record time, "
    "not the hash of the policy snapshot the enforcement point decided with; "
    "fixing it means passing that snapshot's hash through every record() site",
)
def test_a_decision_is_recorded_under_the_policy_that_made_it() -> None:
    from aiinvariants.audit import MemorySink

    old = Policy.model_validate({"tools": {"export": {"data": "public"}}})
    new = Policy.model_validate(
        {"tools": {"export": {"data": "public", "capabilities": ["life_safety"]}}}
    )
    memory = MemorySink()
    guard = Guard(old, sinks=[memory])
    swapped: list[bool] = []

    class Racing(Principal):
        # Models another thread's reload landing between this call's check
        # (made with the old policy) and its audit record.
        def raw_token(self) -> str | None:
            if not swapped:
                swapped.append(True)
                guard.replace_policy(new)
            return None

    @guard.tool(name="export")
    def export() -> str:
        return "rows"

    with acting_as(Racing(subject="alice", authenticated=True)):
        export()
    allowed = [e for e in memory.events if e.reason == "tool_allowed"]
    assert len(allowed) == 1
    # The trail must not claim that the new policy (which forbids the tool's
    # capability) allowed it.
    assert allowed[0].policy_hash == old.hash


# -- the trail's directory: planted FIFOs and links ----------------------------


def test_a_fifo_in_the_directory_does_not_hang_a_starting_writer(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "other-1.jsonl"
    os.mkfifo(fifo)
    sinks: list[JSONLSink] = []
    worker = threading.Thread(
        target=lambda: sinks.append(JSONLSink(f"{tmp_path}/")), daemon=True
    )
    worker.start()
    worker.join(5)
    hung = worker.is_alive()
    if hung:  # unblock the writer so the test run can go on
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
    for sink in sinks:
        sink.close()
    assert not hung, "starting a segment blocked on a FIFO (directory lock held)"


def test_a_link_to_dev_null_at_the_segment_name_is_refused(tmp_path: Path) -> None:
    from aiinvariants._errors import PolicyError
    from aiinvariants.audit._chain import resolve_segment_path

    # Whoever can write the directory plants links at the names pids will
    # take; the writer followed them, and every record went to /dev/null
    # while decisions were allowed and the verifier skipped the link.
    resolve_segment_path(f"{tmp_path}/").symlink_to(os.devnull)
    policy = Policy.model_validate(
        {"audit": {"sinks": [{"kind": "jsonl", "path": f"{tmp_path}/"}]}}
    )
    with pytest.raises(PolicyError, match="cannot open the audit file"):
        Guard(policy)
    # A fixed path (links allowed there) must still be a regular file.
    fixed = tmp_path / "fixed.jsonl"
    fixed.symlink_to(os.devnull)
    with pytest.raises(PolicyError, match="not a regular file"):
        JSONLSink(fixed)


# -- truncation to nothing -------------------------------------------------------


@pytest.mark.parametrize("left", [b"", b'{"v":2,"type":"st'])
def test_a_segment_file_cut_to_nothing_is_not_ok(tmp_path: Path, left: bytes) -> None:
    with JSONLSink(f"{tmp_path}/", signing_key=KEY) as sink:
        sink.write(event(1))
    (segment,) = tmp_path.glob("*.jsonl")
    # Cut to nothing, or to a fragment that reads as a torn line: the signed
    # start record, the event and the final checkpoint are gone, and the
    # trail verified as ok (0 segments), even with keys and require_closed.
    segment.write_bytes(left)
    report = verify_trail(tmp_path, public_key=KEY.public_key(), require_closed=True)
    assert not report.ok
    assert [p.reason for p in report.problems] == ["missing_start"]


def test_a_link_to_dev_null_in_a_directory_trail_is_reported(tmp_path: Path) -> None:
    with JSONLSink(f"{tmp_path}/", signing_key=KEY) as sink:
        sink.write(event(1))
    (tmp_path / "worker-7.jsonl").symlink_to(os.devnull)
    report = verify_trail(tmp_path, public_key=KEY.public_key())
    assert [(Path(p.file).name, p.reason) for p in report.problems] == [
        ("worker-7.jsonl", "unreadable")
    ]


# -- replace_policy: the reload that drops the trail -------------------------------


def test_a_reload_that_drops_the_trail_is_recorded_in_that_trail(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "audit"
    old = Policy.model_validate(
        {"audit": {"sinks": [{"kind": "jsonl", "path": f"{trail}/"}]}}
    )
    guard = Guard(old)
    no_trail = Policy.model_validate({"audit": {"sinks": []}})
    guard.replace_policy(no_trail)
    guard.close()
    # The tamper-evident trail ended "closed" and clean: the reload that
    # switched it off was written only to the new (here: no) sinks.
    assert verify_trail(trail).ok
    text = "".join(p.read_text() for p in trail.glob("*.jsonl"))
    assert '"reason":"policy_replacing"' in text
    assert no_trail.hash in text


# -- OpenTelemetry streams across fork -----------------------------------------------


def test_forked_workers_get_their_own_otel_stream() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        InMemoryLogRecordExporter,
        SimpleLogRecordProcessor,
    )
    from opentelemetry.sdk.trace import TracerProvider

    from aiinvariants.audit import OTelSink

    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    # Built before the fork (gunicorn --preload), as a Guard in the master is.
    sink = OTelSink(tracer_provider=TracerProvider(), logger_provider=provider)
    sink.write(event(0))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            sink.write(event(1))
            (item,) = logs.get_finished_logs()[-1:]
            attrs = dict(item.log_record.attributes or {})
            os.write(write, json.dumps(attrs).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        child = json.loads(stream.read())
    os.waitpid(pid, 0)
    sink.write(event(2))
    parent = dict(logs.get_finished_logs()[-1].log_record.attributes or {})
    # Before: both processes numbered records 2, 3, … of ONE chain id, so a
    # collector saw each stream's losses filled in by the other's records.
    assert (child["aiinvariants.chain"], child["aiinvariants.seq"]) != (
        parent["aiinvariants.chain"],
        parent["aiinvariants.seq"],
    )
    assert child["aiinvariants.chain"] != parent["aiinvariants.chain"]
    assert child["aiinvariants.seq"] == 1
    provider.shutdown()


# -- process exit: a multiprocessing child ------------------------------------------


def _child_writes(sink: JSONLSink) -> None:  # pragma: no cover - in the child
    for i in range(5):
        sink.write(event(i))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_multiprocessing_child_closes_its_segment(tmp_path: Path) -> None:
    import multiprocessing

    sink = JSONLSink(f"{tmp_path}/{{host}}-{{pid}}.jsonl", signing_key=KEY)
    child = multiprocessing.get_context("fork").Process(
        target=_child_writes, args=(sink,)
    )
    child.start()
    child.join(30)
    sink.close()
    # The child leaves through os._exit (no atexit): its 5 events were left
    # after the last signed record, its segment open.
    report = verify_trail(tmp_path, public_key=KEY.public_key(), require_closed=True)
    assert report.ok, [str(p) for p in report.problems]
    assert sorted((s.events, s.closed, s.unsigned_tail) for s in report.segments) == [
        (0, True, 0),
        (5, True, 0),
    ]


def test_a_reload_whose_trail_is_dropped_by_replace_policy_sinks_warns(
    tmp_path: Path,
) -> None:
    import warnings

    from aiinvariants._errors import InsecureUsageWarning
    from aiinvariants.audit import MemorySink

    memory = MemorySink()
    guard = Guard(Policy(), sinks=[memory], replace_policy_sinks=True)
    with_trail = Policy.model_validate(
        {"audit": {"sinks": [{"kind": "jsonl", "path": f"{tmp_path}/"}]}}
    )
    # The policy built with had no trail to drop; the reloaded one has, and
    # replace_policy_sinks dropped it silently.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guard.replace_policy(with_trail)
    assert any(issubclass(w.category, InsecureUsageWarning) for w in caught)
    assert "policy_sinks_replaced" in [e.reason for e in memory.events]
    guard.close()


# -- the format: an event record that is not an event --------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"approved_by": "ceo"},  # a member the format does not have
        {"details": {"nested": {"a": 1}}},  # details are scalars
        {"decision": 1},
    ],
)
def test_an_event_record_with_other_members_is_bad_json(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    path = tmp_path / "a.jsonl"
    with JSONLSink(path) as sink:
        sink.write(event(1))
    raw = path.read_bytes().splitlines(keepends=True)
    record = json.loads(raw[1])
    record["event"].update(change)
    body = {k: v for k, v in record.items() if k != "hash"}
    record["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    raw[1] = canonical_json(record) + b"\n"
    path.write_bytes(b"".join(raw[:2]))  # the unsigned tail of an open segment
    report = verify_trail(path)
    assert [(p.line, p.reason) for p in report.problems] == [(2, "bad_json")]


# -- fail-open defaults: an empty key list --------------------------------------------


def test_an_empty_key_list_is_not_no_signature_check(tmp_path: Path) -> None:
    from aiinvariants._errors import PolicyError
    from aiinvariants.audit import verify_chain

    path = tmp_path / "a.jsonl"
    with JSONLSink(path, signing_key=KEY) as sink:
        sink.write(event(1))
    strip_signatures(path)
    # Keys loaded from a folder that came out empty: before, "ok" with every
    # signature stripped, as if no check had been asked for.
    with pytest.raises(PolicyError, match="none was found"):
        verify_trail(path, public_key=[])
    with pytest.raises(PolicyError, match="none was found"):
        verify_chain(path, public_key=())


def test_a_link_to_a_regular_file_at_the_segment_name_is_refused(
    tmp_path: Path,
) -> None:
    from aiinvariants._errors import PolicyError
    from aiinvariants.audit._chain import resolve_segment_path

    trail = tmp_path / "audit"
    trail.mkdir()
    # A file the attacker reads and rewrites at will, outside the trail.
    elsewhere = tmp_path / "attacker.jsonl"
    resolve_segment_path(f"{trail}/").symlink_to(elsewhere)
    with pytest.raises(PolicyError, match="cannot open the audit file"):
        JSONLSink(f"{trail}/")
    assert not elsewhere.exists()
