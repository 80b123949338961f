from __future__ import annotations

import base64
import gc
import hashlib
import json
import logging
import threading
from pathlib import Path

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

from aiinvariants.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditLog,
    ChainReport,
    JSONLSink,
    load_signing_key,
    verify_chain,
)
from aiinvariants.errors import PolicyError
from aiinvariants.principal import Principal, acting_as


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
    path: Path, n: int, *, key: Ed25519PrivateKey | None = None
) -> list[AuditEvent]:
    events = [make(i) for i in range(n)]
    with JSONLSink(path, signing_key=key) as sink:
        for event in events:
            sink.write(event)
    return events


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


# -- format -----------------------------------------------------------------


def test_line_format_and_hash_definition(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    events = write_chain(path, 3)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    assert raw.isascii()
    records = read_lines(path)
    prev = GENESIS_HASH
    for seq, (record, event) in enumerate(zip(records, events, strict=True), 1):
        assert set(record) == {"seq", "prev", "event", "hash"}
        assert record["seq"] == seq
        assert record["prev"] == prev
        assert record["event"] == event.to_dict()
        canonical = json.dumps(
            {"seq": seq, "prev": prev, "event": record["event"]},
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")
        assert record["hash"] == hashlib.sha256(canonical).hexdigest()
        prev = str(record["hash"])
    assert AuditEvent.from_dict(records[1]["event"]) == events[1]  # type: ignore[arg-type]


def test_unsigned_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_chain(path, 5)
    report = verify_chain(path)
    assert report == ChainReport(
        ok=True,
        lines=5,
        last_hash=str(read_lines(path)[-1]["hash"]),
        signed=False,
    )
    assert report
    assert report.first_bad_line is None
    assert report.reason is None


def test_signed_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key = Ed25519PrivateKey.generate()
    write_chain(path, 5, key=key)
    for record in read_lines(path):
        sig = base64.b64decode(str(record["sig"]), validate=True)
        key.public_key().verify(sig, str(record["hash"]).encode("ascii"))
    report = verify_chain(path, public_key=key.public_key())
    assert report.ok
    assert report.lines == 5
    assert report.signed
    assert report.signatures_verified
    unchecked = verify_chain(path)
    assert unchecked.ok
    assert unchecked.signed
    assert not unchecked.signatures_verified


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    report = verify_chain(empty)
    assert report.ok
    assert report.lines == 0
    assert report.last_hash is None
    missing = verify_chain(tmp_path / "nope.jsonl")
    assert not missing
    assert missing.reason == "unreadable"
    assert verify_chain(tmp_path).reason == "unreadable"


def test_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JSONLSink(path).close()
    assert path.stat().st_mode & 0o077 == 0


def test_sink_resumes_an_existing_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_chain(path, 3)
    with JSONLSink(path) as sink:
        assert sink.head == (3, read_lines(path)[-1]["hash"])
        sink.write(make(3))
        assert sink.head[0] == 4
    report = verify_chain(path)
    assert report.ok
    assert report.lines == 4


def test_sink_refuses_to_extend_a_corrupt_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_chain(path, 2)
    path.write_bytes(path.read_bytes() + b"not json\n")
    with pytest.raises(PolicyError, match="last line"):
        JSONLSink(path)


def test_write_after_close_raises(tmp_path: Path) -> None:
    sink = JSONLSink(tmp_path / "audit.jsonl")
    sink.close()
    sink.close()
    with pytest.raises(PolicyError, match="closed"):
        sink.write(make())


def test_oversized_event_is_refused_and_chain_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JSONLSink(path) as sink:
        sink.write(make(0))
        with pytest.raises(PolicyError, match="bytes"):
            sink.write(make(1, details={"blob": "x" * (1 << 20)}))
        sink.write(make(2))
    assert verify_chain(path).lines == 2


def test_fsync_mode_writes_a_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.jsonl"
    path.parent.mkdir()
    with JSONLSink(path, fsync=True) as sink:
        sink.write(make())
    assert verify_chain(path).ok


# -- crashes ----------------------------------------------------------------


def test_crash_mid_write_is_detected_then_recovered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    key = Ed25519PrivateKey.generate()
    write_chain(path, 3, key=key)
    # What a crash during the fourth os.write leaves: a line cut short.
    partial = b'{"event":{"correlation_id":"abc","decision":"deny","det'
    path.write_bytes(path.read_bytes() + partial)

    report = verify_chain(path, public_key=key.public_key())
    assert not report.ok
    assert report.reason == "partial_tail"
    assert report.first_bad_line == 4
    assert report.lines == 3

    with caplog.at_level(logging.WARNING, logger="aiinvariants.audit.health"):
        sink = JSONLSink(path, signing_key=key)
    assert "partial line" in caplog.text
    with sink:
        sink.write(make(9))

    report = verify_chain(path, public_key=key.public_key())
    assert report.ok
    assert report.lines == 5
    assert report.recoveries == 1
    recovery = read_lines(path)[3]
    event = recovery["event"]
    assert isinstance(event, dict)
    assert event["invariant"] == "I13"
    assert event["decision"] == "flag"
    assert event["reason"] == "partial_line_truncated"
    assert event["details"]["bytes"] == len(partial)
    assert event["details"]["sha256"] == hashlib.sha256(partial).hexdigest()[:16]


def test_crash_during_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"event":{"corr')
    assert verify_chain(path).reason == "partial_tail"
    assert verify_chain(path).first_bad_line == 1
    JSONLSink(path).close()
    report = verify_chain(path)
    assert report.ok
    assert report.lines == 1
    assert report.recoveries == 1


# -- writers ----------------------------------------------------------------


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JSONLSink(path), pytest.raises(PolicyError, match="another writer"):
        JSONLSink(path)
    JSONLSink(path).close()  # free again once the first one closed


def test_concurrent_writers_keep_the_chain_valid(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    threads, per_thread = 8, 150
    barrier = threading.Barrier(threads)
    with AuditLog([JSONLSink(path)]) as log:

        def work(n: int) -> None:
            principal = Principal(subject=f"user{n}", authenticated=True)
            barrier.wait()
            with acting_as(principal):
                for i in range(per_thread):
                    log.record(
                        invariant="I1",
                        decision="allow",
                        reason="scopes_held",
                        details={"i": i},
                    )

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert log.stats.written == threads * per_thread
    report = verify_chain(path)
    assert report.ok, report
    assert report.lines == threads * per_thread
    events = [record["event"] for record in read_lines(path)]
    assert len({e["id"] for e in events}) == threads * per_thread  # type: ignore[index]
    for n in range(threads):
        mine = [e for e in events if e["subject"] == f"user{n}"]  # type: ignore[index]
        assert [e["details"]["i"] for e in mine] == list(range(per_thread))  # type: ignore[index]


# -- serialisation ------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    subject=st.text(min_size=1),
    resource=st.none() | st.text(),
    reason=st.text(),
    details=st.dictionaries(st.text(max_size=8), scalars, max_size=6),
)
def test_any_event_round_trips_through_the_chain(
    tmp_path_factory: pytest.TempPathFactory,
    subject: str,
    resource: str | None,
    reason: str,
    details: dict[str, object],
) -> None:
    # The writer builds canonical JSON by hand for speed; the verifier uses
    # json.dumps. Any difference would show up as a bad line here.
    path = tmp_path_factory.mktemp("prop") / "audit.jsonl"
    event = make(subject=subject, resource=resource, reason=reason, details=details)
    with JSONLSink(path) as sink:
        sink.write(event)
        sink.write(make(1))
    assert verify_chain(path).ok
    assert AuditEvent.from_dict(read_lines(path)[0]["event"]) == event  # type: ignore[arg-type]


# -- keys -------------------------------------------------------------------


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
    with pytest.raises(PolicyError, match="Ed25519PublicKey"):
        verify_chain(tmp_path / "a.jsonl", public_key="secret")  # type: ignore[arg-type]


def test_anchor_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        verify_chain(tmp_path / "a.jsonl", anchor=(0, GENESIS_HASH))
    with pytest.raises(PolicyError):
        verify_chain(tmp_path / "a.jsonl", anchor=(1, "xyz"))


def test_a_signed_chain_is_not_continued_unsigned(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key = Ed25519PrivateKey.generate()
    write_chain(path, 2, key=key)
    with pytest.raises(PolicyError, match="is signed"):
        JSONLSink(path)
    with JSONLSink(path, signing_key=key) as sink:  # the lock was released
        sink.write(make(2))
    assert verify_chain(path, public_key=key.public_key()).lines == 3


def test_signing_an_unsigned_chain_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    write_chain(path, 2)
    key = Ed25519PrivateKey.generate()
    with caplog.at_level(logging.WARNING, logger="aiinvariants.audit.health"):
        JSONLSink(path, signing_key=key).close()
    assert "signatures start at seq 3" in caplog.text


def test_a_forgotten_sink_releases_its_lock(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JSONLSink(path)
    del sink
    gc.collect()
    JSONLSink(path).close()
