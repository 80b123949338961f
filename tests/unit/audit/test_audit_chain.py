"""The audit trail writer (format version 2): segments, checkpoints, sharing."""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.audit_spec_verifier import spec_verify

from aiinvariants import Guard, Policy
from aiinvariants._errors import PolicyError
from aiinvariants.audit import (
    GENESIS_HASH,
    AuditEvent,
    JSONLSink,
    canonical_json,
    key_id,
    load_signing_key,
    verify_chain,
    verify_trail,
)
from aiinvariants.audit._chain import resolve_segment_path
from aiinvariants.audit._records import event_json, event_line


def make(i: int = 0, **overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "invariant": "I1",
        "decision": "deny" if i % 2 else "allow",
        "reason": f"reason_{i}",
        "subject": "alice",
        "resource": "crm.read",
        "policy_hash": "sha256:" + "ab" * 32,
        "details": {"n": i, "score": 0.25, "flag": True, "none": None},
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def write_chain(
    path: Path, n: int, *, key: Ed25519PrivateKey | None = None, every: int = 1000
) -> list[AuditEvent]:
    events = [make(i) for i in range(n)]
    with JSONLSink(path, signing_key=key, checkpoint_every=every) as sink:
        for event in events:
            sink.write(event)
    return events


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


# -- format -----------------------------------------------------------------


def test_segment_layout_and_hash_definition(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    events = write_chain(path, 3)
    found = records(path)
    assert [r["type"] for r in found] == [
        "start",
        "event",
        "event",
        "event",
        "checkpoint",
    ]
    assert [r["seq"] for r in found] == [1, 2, 3, 4, 5]
    assert {r["v"] for r in found} == {2}
    assert len({r["chain"] for r in found}) == 1
    assert found[0]["prev"] == GENESIS_HASH
    assert found[0]["prev_segment"] is None
    assert found[-1]["final"] is True
    assert found[-1]["sig"] is None
    for raw, record in zip(
        path.read_bytes().splitlines(keepends=True), found, strict=True
    ):
        assert raw == canonical_json(record) + b"\n"
        body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
        assert record["hash"] == hashlib.sha256(canonical_json(body)).hexdigest()
    for i, event in enumerate(events):
        assert found[i + 1]["prev"] == found[i]["hash"]
        assert found[i + 1]["event"] == json.loads(json.dumps(event.to_dict()))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subject=st.text(st.characters(blacklist_categories=["Cs"]), max_size=20),
    details=st.dictionaries(
        st.text(st.characters(blacklist_categories=["Cs"]), max_size=8),
        st.none()
        | st.booleans()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10).filter(
            lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)
        ),
        max_size=5,
    ),
)
def test_fast_event_encoding_equals_canonical_json(
    subject: str, details: dict[str, object]
) -> None:
    event = make(1, subject=subject, details=details)
    data = event_json(event)
    assert data == canonical_json(event.to_dict())
    line, digest = event_line("ab" * 16, data, "cd" * 32, 7)
    record = json.loads(line)
    assert line == canonical_json(record) + b"\n"
    body = {k: v for k, v in record.items() if k != "hash"}
    assert digest == hashlib.sha256(canonical_json(body)).hexdigest()


def test_a_lone_surrogate_is_refused_not_written(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with JSONLSink(path) as sink:
        with pytest.raises(UnicodeEncodeError):
            sink.write(make(0, subject="a\ud800b"))
        sink.write(make(1))
    assert verify_chain(path).ok
    assert verify_chain(path).events == 1


def test_big_integers_are_refused_at_the_event() -> None:
    with pytest.raises(PolicyError, match="2\\*\\*53"):
        make(0, details={"n": 2**53})


def test_round_trips_signed_and_unsigned(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "u").mkdir()
    write_chain(tmp_path / "u" / "u.jsonl", 5)
    write_chain(tmp_path / "s.jsonl", 5, key=key, every=2)
    plain = verify_chain(tmp_path / "u" / "u.jsonl")
    assert plain.ok
    assert plain.events == 5
    assert not plain.signed
    signed = verify_chain(tmp_path / "s.jsonl", public_key=key.public_key())
    assert signed.ok
    assert signed.signed
    assert signed.signatures_verified
    found = records(tmp_path / "s.jsonl")
    checkpoints = [r for r in found if r["type"] == "checkpoint"]
    # every 2 events, and the final one at close
    assert [c["final"] for c in checkpoints] == [False, False, True]
    assert {c["key_id"] for c in checkpoints} == {key_id(key)}
    assert spec_verify([tmp_path / "s.jsonl"], [key.public_key()]).problems == []


def test_missing_or_empty_files(tmp_path: Path) -> None:
    report = verify_chain(tmp_path / "nothere.jsonl")
    assert not report.ok
    assert report.reason == "unreadable"
    with pytest.raises(PolicyError, match="no audit trail"):
        verify_trail(tmp_path / "nothere.jsonl")
    (tmp_path / "empty").mkdir()
    assert verify_trail(tmp_path / "empty").problems[0].reason == "no_segments"


def test_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    JSONLSink(path).close()
    assert (path.stat().st_mode & 0o777) == 0o600


# -- segments -----------------------------------------------------------------


def test_reopening_a_file_starts_a_linked_segment(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_chain(path, 2)
    write_chain(path, 1)
    found = records(path)
    starts = [r for r in found if r["type"] == "start"]
    assert len(starts) == 2
    assert starts[1]["prev_segment"] == {
        "chain": starts[0]["chain"],
        "size": 4,
        "head": found[3]["hash"],
    }
    report = verify_trail(path)
    assert report.ok
    assert len(report.segments) == 2
    assert report.events == 3


def test_templates_and_directories_name_one_file_per_process(tmp_path: Path) -> None:
    pid = str(os.getpid())
    templ = resolve_segment_path(str(tmp_path / "audit-{host}-{pid}.jsonl"))
    assert templ.name.endswith(f"-{pid}.jsonl")
    assert "{" not in templ.name
    folder = resolve_segment_path(str(tmp_path / "trail") + "/")
    assert folder.parent == tmp_path / "trail"
    assert folder.name.endswith(f"-{pid}.jsonl")
    with pytest.raises(PolicyError, match="host"):
        resolve_segment_path(str(tmp_path / "{user}.jsonl"))


def test_a_new_process_continues_the_dead_writers_segment(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    write_chain(trail / "old.jsonl", 2, every=1)
    write_chain(trail / "new.jsonl", 1)  # another file: links to the free tail
    first = records(trail / "old.jsonl")
    start = records(trail / "new.jsonl")[0]
    assert start["prev_segment"] == {
        "chain": first[0]["chain"],
        "size": len(first),
        "head": first[-1]["hash"],
    }
    # A third writer does not continue an already continued segment.
    write_chain(trail / "third.jsonl", 1)
    third = records(trail / "third.jsonl")[0]
    assert third["prev_segment"]["chain"] == start["chain"]
    report = verify_trail(trail, require_closed=True)
    assert report.ok, report.problems
    assert spec_verify(sorted(trail.glob("*.jsonl"))).problems == []


def test_a_live_writer_is_not_continued(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    # Another writer name: never a candidate. Same name but held: not either.
    live = JSONLSink(trail / "live.jsonl")
    try:
        other = JSONLSink(trail / "other.jsonl")
        other.close()
        assert records(trail / "other.jsonl")[0]["prev_segment"] is None
    finally:
        live.close()


def test_sinks_on_one_path_share_one_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    first, second = JSONLSink(path), JSONLSink(path)
    assert first.chain_id == second.chain_id
    first.write(make(0))
    first.close()
    second.write(make(1))  # still open: the last user ends the segment
    second.close()
    report = verify_trail(path, require_closed=True)
    assert report.ok
    assert len(report.segments) == 1
    assert report.events == 2
    with JSONLSink(path) as sink, pytest.raises(PolicyError, match="other settings"):
        JSONLSink(path, signing_key=Ed25519PrivateKey.generate())
    assert sink.path == path


def test_two_guards_in_one_process_share_the_policy_file(tmp_path: Path) -> None:
    policy = Policy.from_dict(
        {"audit": {"sinks": [{"kind": "jsonl", "path": str(tmp_path / "t") + "/"}]}}
    )
    with Guard(policy) as one, Guard(policy) as two:
        one.audit.record(invariant="I1", decision="allow", reason="one")
        two.audit.record(invariant="I1", decision="allow", reason="two")
    report = verify_trail(tmp_path / "t", require_closed=True)
    assert report.ok
    assert report.events == 2
    assert len(report.segments) == 1


def _child_records(guard: Guard, queue: Any) -> None:
    try:
        for i in range(3):
            guard.audit.record(invariant="I1", decision="allow", reason=f"child{i}")
        guard.close()
        queue.put("ok")
    except Exception as exc:
        queue.put(type(exc).__name__)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_segment(tmp_path: Path) -> None:
    policy = Policy.from_dict(
        {"audit": {"sinks": [{"kind": "jsonl", "path": str(tmp_path / "t") + "/"}]}}
    )
    guard = Guard(policy)  # built before the fork, as gunicorn --preload does
    guard.audit.record(invariant="I1", decision="allow", reason="parent0")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_records, args=(guard, queue))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == "ok"
    guard.audit.record(invariant="I1", decision="allow", reason="parent1")
    guard.close()
    report = verify_trail(tmp_path / "t", require_closed=True)
    assert report.ok, report.problems
    assert sorted(s.events for s in report.segments) == [2, 3]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_on_a_fixed_path_is_refused(tmp_path: Path) -> None:
    policy = Policy.from_dict(
        {"audit": {"sinks": [{"kind": "jsonl", "path": str(tmp_path / "a.jsonl")}]}}
    )
    guard = Guard(policy)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_records, args=(guard, queue))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == "AuditUnavailable"  # a denial, not a fork
    guard.close()
    assert verify_trail(tmp_path / "a.jsonl", require_closed=True).ok


def test_another_process_on_a_fixed_path_is_told_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    code = (
        "import sys\n"
        "from aiinvariants.audit import JSONLSink\n"
        "from aiinvariants._errors import PolicyError\n"
        "try:\n"
        f"    JSONLSink({str(path)!r})\n"
        "except PolicyError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    with JSONLSink(path):
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3, result.stderr
    assert "another process writes the audit file" in result.stdout
    assert "{host} and {pid}" in result.stdout


def test_write_after_close_raises(tmp_path: Path) -> None:
    sink = JSONLSink(tmp_path / "a.jsonl")
    sink.close()
    sink.close()
    with pytest.raises(PolicyError, match="closed"):
        sink.write(make(0))


def test_oversized_event_is_refused_and_chain_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with JSONLSink(path) as sink:
        with pytest.raises(PolicyError, match="bytes"):
            sink.write(make(0, resource="x" * (1 << 20)))
        sink.write(make(1))
    assert verify_chain(path).ok


def test_fsync_mode_writes_a_valid_chain(tmp_path: Path) -> None:
    with JSONLSink(tmp_path / "a.jsonl", fsync=True) as sink:
        sink.write(make(0))
    assert verify_chain(tmp_path / "a.jsonl").ok


def test_a_torn_line_is_reported_as_torn_then_recorded(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_chain(path, 2)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"chain":"ab')  # a crash mid-write
    report = verify_trail(path)
    assert report.ok
    assert [t.reason for t in report.torn] == ["torn_line"]
    assert verify_chain(path).ok
    assert verify_chain(path).recoveries == 1
    write_chain(path, 1)  # the restart cuts the torn bytes and records them
    start = [r for r in records(path) if r["type"] == "start"][-1]
    assert start["torn"] == {
        "bytes": 12,
        "sha256": hashlib.sha256(b'{"chain":"ab').hexdigest()[:16],
    }
    after = verify_trail(path)
    assert after.ok
    assert after.torn == ()
    assert verify_chain(path).recoveries == 1


def test_a_corrupt_tail_is_not_extended(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"not": "a record"}\n')
    with pytest.raises(PolicyError, match="not a valid version 2 record"):
        JSONLSink(path)


def test_concurrent_writers_keep_the_chain_valid(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    key = Ed25519PrivateKey.generate()
    sinks = [JSONLSink(path, signing_key=key, checkpoint_every=7) for _ in range(2)]

    def work(sink: JSONLSink, base: int) -> None:
        for i in range(100):
            sink.write(make(base + i))

    threads = [
        threading.Thread(target=work, args=(s, 1000 * n)) for n, s in enumerate(sinks)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sink in sinks:
        sink.close()
    report = verify_trail(path, public_key=key.public_key(), require_closed=True)
    assert report.ok
    assert report.events == 200
    assert len(spec_verify([path], [key.public_key()]).events) == 200


def test_a_forgotten_sink_releases_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    sink = JSONLSink(path)
    del sink
    gc.collect()
    report = verify_trail(path, require_closed=True)
    assert report.ok  # the last user went away: the segment was closed
    JSONLSink(path).close()


def test_checkpoint_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="checkpoint_every"):
        JSONLSink(tmp_path / "a.jsonl", checkpoint_every=0)
    with pytest.raises(PolicyError, match="checkpoint_every_s"):
        JSONLSink(tmp_path / "a.jsonl", checkpoint_every_s=0)


def test_an_idle_tail_is_checkpointed_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    key = Ed25519PrivateKey.generate()
    with JSONLSink(path, signing_key=key, checkpoint_every_s=0.05) as sink:
        sink.write(make(0))
        deadline = time.monotonic() + 5
        while records(path)[-1]["type"] != "checkpoint" and time.monotonic() < deadline:
            time.sleep(0.01)
        last = records(path)[-1]
        assert last["type"] == "checkpoint"
        assert last["final"] is False
        count = len(records(path))
        time.sleep(0.15)  # nothing new to sign: no further checkpoint
        assert len(records(path)) == count
        tickers = [
            t for t in threading.enumerate() if t.name.startswith("aiinvariants-audit")
        ]
        assert tickers
    assert not any(t.is_alive() for t in tickers)  # the ticker ends with the sink
    report = verify_trail(path, public_key=key.public_key(), require_closed=True)
    assert report.ok
    assert report.segments[0].unsigned_tail == 0


def test_checkpoint_after_seconds(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    key = Ed25519PrivateKey.generate()
    with JSONLSink(path, signing_key=key, checkpoint_every_s=1e-9) as sink:
        sink.write(make(0))
        sink.write(make(1))
        sink.checkpoint()
    kinds = [r["type"] for r in records(path)]
    assert kinds.count("checkpoint") == 4  # two timed, one asked for, one final


# -- keys -----------------------------------------------------------------------


def seed_of(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def test_load_signing_key_from_pem_and_base64_forms() -> None:
    key = Ed25519PrivateKey.generate()
    seed = seed_of(key)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    forms: list[str | bytes] = [
        pem,
        pem.decode(),
        base64.b64encode(seed).decode(),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
        base64.b64encode(seed),
        "  " + base64.b64encode(seed).decode() + "\n",
    ]
    for form in forms:
        assert seed_of(load_signing_key(form)) == seed


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "not base64 at all!",
        base64.b64encode(b"x" * 31).decode(),
        base64.b64encode(b"x" * 64).decode(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_load_signing_key_rejects_bad_values(value: str) -> None:
    with pytest.raises(PolicyError):
        load_signing_key(value)


def test_load_signing_key_rejects_other_key_types_and_encryption() -> None:
    ec = generate_private_key(SECP256R1())
    ec_pem = ec.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with pytest.raises(PolicyError, match="not an Ed25519 key"):
        load_signing_key(ec_pem)
    encrypted = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")
    )
    with pytest.raises(PolicyError, match="encrypted"):
        load_signing_key(encrypted)
    with pytest.raises(PolicyError):
        load_signing_key(42)  # type: ignore[arg-type]


def test_sink_rejects_a_non_ed25519_key(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="Ed25519PrivateKey"):
        JSONLSink(tmp_path / "a.jsonl", signing_key="secret")  # type: ignore[arg-type]
    write_chain(tmp_path / "a.jsonl", 1)
    with pytest.raises(PolicyError, match="Ed25519PublicKey"):
        verify_chain(tmp_path / "a.jsonl", public_key="secret")  # type: ignore[arg-type]


def test_anchor_arguments_are_checked(tmp_path: Path) -> None:
    write_chain(tmp_path / "a.jsonl", 1)
    with pytest.raises(PolicyError):
        verify_chain(tmp_path / "a.jsonl", anchor=(0, GENESIS_HASH))
    with pytest.raises(PolicyError):
        verify_chain(tmp_path / "a.jsonl", anchor=(1, "xyz"))


def test_a_signed_segment_followed_by_an_unsigned_one_fails_with_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    key = Ed25519PrivateKey.generate()
    write_chain(path, 2, key=key)
    write_chain(path, 1)  # a downgrade
    report = verify_trail(path, public_key=key.public_key())
    assert [p.reason for p in report.problems] == ["unsigned"]


@pytest.mark.parametrize(
    ("path", "message"),
    [("a/{user}.jsonl", "unknown field {user}"), ("a/{.jsonl", "unbalanced")],
)
def test_the_policy_checks_path_templates_at_load(path: str, message: str) -> None:
    with pytest.raises(PolicyError, match=r"audit\.sinks\.0\.path") as info:
        Policy.from_dict({"audit": {"sinks": [{"kind": "jsonl", "path": path}]}})
    assert message in str(info.value)


_safe_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=16)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    subjects=st.lists(_safe_text, min_size=1, max_size=6),
    details=st.dictionaries(
        _safe_text,
        st.none()
        | st.booleans()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | _safe_text,
        max_size=4,
    ),
)
def test_the_spec_verifier_reads_back_what_the_writer_wrote(
    tmp_path_factory: pytest.TempPathFactory,
    subjects: list[str],
    details: dict[str, object],
) -> None:
    folder = tmp_path_factory.mktemp("spec")
    key = Ed25519PrivateKey.generate()
    events = [make(i, subject=s, details=details) for i, s in enumerate(subjects)]
    with JSONLSink(folder / "a.jsonl", signing_key=key, checkpoint_every=2) as sink:
        for event in events:
            sink.write(event)
    result = spec_verify([folder / "a.jsonl"], [key.public_key()])
    assert result.problems == []
    assert result.events == [json.loads(json.dumps(e.to_dict())) for e in events]


def test_a_dead_siblings_torn_line_is_recorded_by_its_successor(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    write_chain(trail / "dead.jsonl", 2)
    with (trail / "dead.jsonl").open("ab") as stream:
        stream.write(b'{"chain":"torn')  # the crash
    write_chain(trail / "next.jsonl", 1)
    start = records(trail / "next.jsonl")[0]
    assert start["torn"] == {
        "bytes": 14,
        "sha256": hashlib.sha256(b'{"chain":"torn').hexdigest()[:16],
    }
    report = verify_trail(trail, require_closed=True)
    assert report.ok, report.problems
    assert [t.reason for t in report.torn] == ["torn_line"]
    assert (trail / "dead.jsonl").read_bytes().endswith(b"torn")  # left as found
