"""Attacks on the audit trail (I13): someone edits the JSONL file after the fact.

Each test plays one way of covering tracks and checks that ``verify_chain``
notices, at the line that was touched (or, for an edit that also rebuilds the
following links, as early as the available evidence allows). The last tests
pin down what the hash chain alone cannot prove, and how signatures and an
external anchor close those gaps.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants.audit import (
    GENESIS_HASH,
    AuditEvent,
    JSONLSink,
    verify_chain,
)

LINES = 5
MIDDLE = 3  # 1-based


def event(i: int) -> AuditEvent:
    return AuditEvent(
        invariant="I1",
        decision="deny" if i % 2 else "allow",
        reason="scope_missing" if i % 2 else "scopes_held",
        subject=f"user{i}",
        resource="crm.export",
        policy_hash="sha256:" + "ef" * 32,
        details={"missing": "crm:export", "count": i, "ratio": 0.5, "ok": False},
    )


def write(path: Path, key: Ed25519PrivateKey | None = None) -> list[bytes]:
    with JSONLSink(path, signing_key=key) as sink:
        for i in range(LINES):
            sink.write(event(i))
    return path.read_bytes().splitlines(keepends=True)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def rebuild(record: dict[str, Any]) -> bytes:
    """Re-serialise a record the way the writer does, without fixing its hash."""
    body = canonical({k: record[k] for k in ("event", "prev", "seq")})
    tail = b',"hash":"%s"' % record["hash"].encode()
    if "sig" in record:
        tail += b',"sig":"%s"' % record["sig"].encode()
    return body[:-1] + tail + b"}\n"


def rehash(record: dict[str, Any]) -> dict[str, Any]:
    """What an attacker without the signing key can do: recompute the hash."""
    body = canonical({k: record[k] for k in ("event", "prev", "seq")})
    return {**record, "hash": hashlib.sha256(body).hexdigest()}


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, list[bytes]]:
    path = tmp_path / "audit.jsonl"
    return path, write(path)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signed_chain(tmp_path: Path, key: Ed25519PrivateKey) -> tuple[Path, list[bytes]]:
    path = tmp_path / "signed.jsonl"
    return path, write(path, key)


# -- editing one line ----------------------------------------------------------

EVENT_EDITS: list[tuple[str, Any]] = [
    ("id", "0" * 32),
    ("time", "2020-01-01T00:00:00.000000Z"),
    ("invariant", "I2"),
    ("decision", "redact"),
    ("reason", "nothing_to_see"),
    ("subject", "someone_else"),
    ("resource", "crm.read"),
    ("policy_hash", "sha256:" + "00" * 32),
    ("correlation_id", "f" * 32),
    ("details", {}),
]


@pytest.mark.parametrize(("field", "value"), EVENT_EDITS)
def test_editing_an_event_field_is_detected_at_that_line(
    chain: tuple[Path, list[bytes]], field: str, value: Any
) -> None:
    path, lines = chain
    record = json.loads(lines[MIDDLE - 1])
    assert record["event"][field] != value
    record["event"][field] = value
    lines[MIDDLE - 1] = rebuild(record)
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert not report.ok
    assert report.first_bad_line == MIDDLE
    assert report.reason == "bad_hash"
    assert report.lines == MIDDLE - 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 99), ("prev", GENESIS_HASH), ("hash", "a" * 64)],
)
def test_editing_a_chain_field_is_detected_at_that_line(
    chain: tuple[Path, list[bytes]], field: str, value: Any
) -> None:
    path, lines = chain
    record = json.loads(lines[MIDDLE - 1])
    record[field] = value
    lines[MIDDLE - 1] = rebuild(record)
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == MIDDLE
    assert report.reason == "bad_hash"


def test_editing_a_detail_value_is_detected(chain: tuple[Path, list[bytes]]) -> None:
    path, lines = chain
    lines[MIDDLE - 1] = lines[MIDDLE - 1].replace(b'"count":2', b'"count":0')
    path.write_bytes(b"".join(lines))
    assert verify_chain(path).first_bad_line == MIDDLE


def test_rewriting_deny_to_allow_and_rehashing_breaks_the_next_link(
    chain: tuple[Path, list[bytes]],
) -> None:
    path, lines = chain
    index = 1  # line 2 is a denial
    record = json.loads(lines[index])
    assert record["event"]["decision"] == "deny"
    record["event"]["decision"] = "allow"
    lines[index] = rebuild(rehash(record))
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == index + 2
    assert report.reason == "broken_link"


def test_a_signature_catches_the_rehashed_line_itself(
    signed_chain: tuple[Path, list[bytes]], key: Ed25519PrivateKey
) -> None:
    path, lines = signed_chain
    record = json.loads(lines[1])
    record["event"]["decision"] = "allow"
    lines[1] = rebuild(rehash(record))
    path.write_bytes(b"".join(lines))
    report = verify_chain(path, public_key=key.public_key())
    assert report.first_bad_line == 2
    assert report.reason == "bad_signature"


def test_editing_a_signature_is_detected(
    signed_chain: tuple[Path, list[bytes]], key: Ed25519PrivateKey
) -> None:
    path, lines = signed_chain
    record = json.loads(lines[MIDDLE - 1])
    other = json.loads(lines[0])
    record["sig"] = other["sig"]  # a valid signature, of another line
    lines[MIDDLE - 1] = rebuild(record)
    path.write_bytes(b"".join(lines))
    report = verify_chain(path, public_key=key.public_key())
    assert report.first_bad_line == MIDDLE
    assert report.reason == "bad_signature"


# -- deleting, reordering, inserting -----------------------------------------


def test_deleting_a_middle_line_is_detected(chain: tuple[Path, list[bytes]]) -> None:
    path, lines = chain
    del lines[MIDDLE - 1]
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == MIDDLE
    assert report.reason == "broken_link"


def test_deleting_the_first_line_is_detected(chain: tuple[Path, list[bytes]]) -> None:
    path, lines = chain
    path.write_bytes(b"".join(lines[1:]))
    report = verify_chain(path)
    assert report.first_bad_line == 1
    assert report.reason == "broken_link"


def test_reordering_lines_is_detected(chain: tuple[Path, list[bytes]]) -> None:
    path, lines = chain
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == 2
    assert report.reason == "broken_link"


def test_inserting_a_copied_line_is_detected(chain: tuple[Path, list[bytes]]) -> None:
    path, lines = chain
    lines.insert(MIDDLE, lines[0])
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == MIDDLE + 1
    assert report.reason == "broken_link"


def test_inserting_a_forged_line_is_detected(
    signed_chain: tuple[Path, list[bytes]], key: Ed25519PrivateKey
) -> None:
    path, lines = signed_chain
    previous = json.loads(lines[MIDDLE - 2])
    forged = rehash(
        {
            "event": event(7).to_dict(),
            "prev": previous["hash"],
            "seq": MIDDLE,
            "hash": "",
            "sig": previous["sig"],
        }
    )
    lines.insert(MIDDLE - 1, rebuild(forged))
    path.write_bytes(b"".join(lines))
    # Unsigned view: the forged line is consistent; the next one is not.
    assert verify_chain(path).first_bad_line == MIDDLE + 1
    # With the key, the forged line itself fails.
    report = verify_chain(path, public_key=key.public_key())
    assert report.first_bad_line == MIDDLE
    assert report.reason == "bad_signature"


def test_renumbering_is_detected(chain: tuple[Path, list[bytes]]) -> None:
    path, lines = chain
    first = json.loads(lines[0])
    first["seq"] = 2
    path.write_bytes(rebuild(rehash(first)))
    report = verify_chain(path)
    assert report.first_bad_line == 1
    assert report.reason == "bad_sequence"


# -- keys -----------------------------------------------------------------------


def test_wrong_public_key_is_bad_signature(
    signed_chain: tuple[Path, list[bytes]],
) -> None:
    path, _ = signed_chain
    report = verify_chain(path, public_key=Ed25519PrivateKey.generate().public_key())
    assert not report.ok
    assert report.first_bad_line == 1
    assert report.reason == "bad_signature"


def test_unsigned_chain_fails_when_signatures_are_required(
    chain: tuple[Path, list[bytes]], key: Ed25519PrivateKey
) -> None:
    path, _ = chain
    report = verify_chain(path, public_key=key.public_key())
    assert report.first_bad_line == 1
    assert report.reason == "missing_signature"


def test_stripping_signatures_is_detected(
    signed_chain: tuple[Path, list[bytes]], key: Ed25519PrivateKey
) -> None:
    path, lines = signed_chain
    record = json.loads(lines[MIDDLE - 1])
    del record["sig"]
    lines[MIDDLE - 1] = rebuild(record)
    path.write_bytes(b"".join(lines))
    report = verify_chain(path, public_key=key.public_key())
    assert report.first_bad_line == MIDDLE
    assert report.reason == "missing_signature"
    assert verify_chain(path).ok  # without the key, unsigned lines are allowed
    assert not verify_chain(path).signed


# -- encodings that keep the JSON meaning --------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"ratio":0.5', b'"ratio":5e-1'),
        (b'"ratio":0.5', b'"ratio":0.50'),
        (b'"ok":false', b'"ok" : false'),
        (b'"subject":"user2"', b'"subject":"user\\u0032"'),
        (b'"seq":3,', b'"seq":3,"seq":3,'),
    ],
)
def test_non_canonical_bytes_are_refused(
    chain: tuple[Path, list[bytes]], old: bytes, new: bytes
) -> None:
    path, lines = chain
    assert old in lines[MIDDLE - 1]
    lines[MIDDLE - 1] = lines[MIDDLE - 1].replace(old, new, 1)
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == MIDDLE
    assert report.reason == "bad_json"


@pytest.mark.parametrize(
    "line",
    [b"\n", b"[]\n", b"null\n", b'{"seq":1}\n', b"\xff\xfe\n", b'{"a":NaN}\n'],
)
def test_garbage_lines_are_bad_json(
    chain: tuple[Path, list[bytes]], line: bytes
) -> None:
    path, lines = chain
    lines[MIDDLE - 1] = line
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == MIDDLE
    assert report.reason == "bad_json"


def test_an_extra_field_is_refused(chain: tuple[Path, list[bytes]]) -> None:
    # Fields outside the hash could carry anything unnoticed.
    path, lines = chain
    lines[MIDDLE - 1] = lines[MIDDLE - 1][:-2] + b',"note":"hi"}\n'
    path.write_bytes(b"".join(lines))
    assert verify_chain(path).reason == "bad_json"


# -- any byte -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pristine")
    key = Ed25519PrivateKey.generate()
    return {
        "folder": folder,
        "key": key,
        "unsigned": b"".join(write(folder / "u.jsonl")),
        "signed": b"".join(write(folder / "s.jsonl", key)),
    }


@settings(max_examples=300, deadline=None)
@given(data=st.data(), signed=st.booleans())
def test_flipping_any_byte_is_detected_at_or_before_its_line(
    pristine: dict[str, Any], data: st.DataObject, signed: bool
) -> None:
    original: bytes = pristine["signed" if signed else "unsigned"]
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor mask")
    tampered = bytearray(original)
    tampered[position] ^= mask
    line = original.count(b"\n", 0, position) + 1
    path: Path = pristine["folder"] / "tampered.jsonl"
    path.write_bytes(bytes(tampered))
    public_key = pristine["key"].public_key() if signed else None
    report = verify_chain(path, public_key=public_key)
    assert not report.ok
    assert report.first_bad_line is not None
    assert report.first_bad_line <= line


# -- what the chain alone cannot prove, and what closes the gap ---------------


def test_truncating_the_tail_needs_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JSONLSink(path) as sink:
        for i in range(LINES):
            sink.write(event(i))
        anchor = sink.head  # copied somewhere the writer cannot change
    assert anchor[0] == LINES
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-2]))  # the last two decisions vanish

    assert verify_chain(path).ok  # a shorter chain is still a valid chain
    report = verify_chain(path, anchor=anchor)
    assert not report.ok
    assert report.reason == "truncated"
    assert report.first_bad_line == LINES - 1


def test_rebuilding_an_unsigned_chain_needs_an_anchor_or_a_key(
    chain: tuple[Path, list[bytes]],
) -> None:
    path, lines = chain
    anchor = (LINES, json.loads(lines[-1])["hash"])
    # An attacker with write access rewrites a denial and rebuilds every
    # link after it: the chain is internally consistent again.
    prev = GENESIS_HASH
    rebuilt = []
    for raw in lines:
        record = json.loads(raw)
        if record["seq"] == 2:
            record["event"]["decision"] = "allow"
        record["prev"] = prev
        record = rehash(record)
        prev = record["hash"]
        rebuilt.append(rebuild(record))
    path.write_bytes(b"".join(rebuilt))
    assert verify_chain(path).ok
    report = verify_chain(path, anchor=anchor)
    assert report.reason == "anchor_mismatch"
    assert report.first_bad_line == LINES


def test_the_anchor_still_matches_after_more_writes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JSONLSink(path) as sink:
        sink.write(event(0))
        anchor = sink.head
        sink.write(event(1))
    assert verify_chain(path, anchor=anchor).ok
