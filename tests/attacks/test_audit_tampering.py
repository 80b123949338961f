"""Attacks on the audit trail (I13): someone changes the segment files afterwards.

Each test plays one way of covering tracks and checks that the library's
verifier reports it with a stable reason, and that the independent verifier
written from docs/audit-format.md (tests/audit_spec_verifier.py) also finds a
problem, so the format, not only the code, carries the evidence. The last
tests pin down what needs signatures, ``require_closed`` or an anchor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.audit_spec_verifier import spec_verify

from aiinvariants.audit import (
    AuditEvent,
    JSONLSink,
    canonical_json,
    key_id,
    verify_chain,
    verify_trail,
)

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()


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


def write(path: Path, n: int = 6, key: Ed25519PrivateKey | None = KEY) -> None:
    with JSONLSink(path, signing_key=key, checkpoint_every=3) as sink:
        for i in range(n):
            sink.write(event(i))


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def reasons(target: Path, **kwargs: Any) -> list[str]:
    kwargs.setdefault("public_key", PUB)
    return [p.reason for p in verify_trail(target, **kwargs).problems]


def spec_problems(folder: Path, keys: list[Any] | None = None) -> list[str]:
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else [folder]
    return spec_verify(files, [PUB] if keys is None else keys).problems


def rebuild(record: dict[str, Any], sign: Ed25519PrivateKey | None = None) -> bytes:
    """Recompute a record's hash (and signature) as a forger would."""
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    record["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    if "sig" in record and sign is not None:
        note = b"aiinvariants-audit/v2 checkpoint\n" + record["hash"].encode() + b"\n"
        record["sig"] = base64.b64encode(sign.sign(note)).decode()
    return canonical_json(record) + b"\n"


def relink(raw: list[bytes], start: int, sign: Ed25519PrivateKey | None = None) -> None:
    """Rebuild every link from line ``start`` on (0-based), in place."""
    prev = json.loads(raw[start - 1])["hash"] if start else "0" * 64
    for i in range(start, len(raw)):
        record = json.loads(raw[i])
        if record["type"] != "start":
            record["prev"] = prev
            record["seq"] = json.loads(raw[i - 1])["seq"] + 1 if i else 1
        raw[i] = rebuild(record, sign)
        prev = record["hash"]


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """One closed, signed segment: start, 6 events, 2 checkpoints, final."""
    path = tmp_path / "trail" / "a.jsonl"
    path.parent.mkdir()
    write(path)
    assert verify_trail(path.parent, public_key=PUB, require_closed=True).ok
    return path


# -- one segment: edits, deletions, order ------------------------------------


def _edit(raw: list[bytes]) -> None:
    raw[2] = raw[2].replace(b'"deny"', b'"allow"')


def _edit_rehash(raw: list[bytes]) -> None:
    record = json.loads(raw[2])
    record["event"]["decision"] = "allow"
    raw[2] = rebuild(record)


def _edit_relink_all(raw: list[bytes]) -> None:
    record = json.loads(raw[2])
    record["event"]["decision"] = "allow"
    raw[2] = canonical_json(record) + b"\n"
    relink(raw, 2)  # without the key: signatures no longer match


def _delete(raw: list[bytes]) -> None:
    del raw[3]


def _delete_start(raw: list[bytes]) -> None:
    del raw[0]


def _swap(raw: list[bytes]) -> None:
    raw[2], raw[3] = raw[3], raw[2]


def _duplicate(raw: list[bytes]) -> None:
    raw.insert(3, raw[2])


def _renumber(raw: list[bytes]) -> None:
    record = json.loads(raw[2])
    record["seq"] = 9
    raw[2] = rebuild(record)


def _append_after_final(raw: list[bytes]) -> None:
    record = json.loads(raw[2])
    record["seq"] = len(raw) + 1
    record["prev"] = json.loads(raw[-1])["hash"]
    raw.append(rebuild(record))


def _non_canonical(raw: list[bytes]) -> None:
    raw[2] = raw[2].replace(b'"ratio":0.5', b'"ratio":5e-1')


def _duplicate_member(raw: list[bytes]) -> None:
    raw[2] = raw[2].replace(b'{"chain"', b'{"v":2,"chain"', 1)


def _old_format(raw: list[bytes]) -> None:
    raw[2] = raw[2].replace(b'"v":2', b'"v":1')


def _garbage(raw: list[bytes]) -> None:
    raw[2] = b"this is not json\n"


def _strip_signature(raw: list[bytes]) -> None:
    record = json.loads(raw[4])  # the first checkpoint
    record["sig"] = None
    record["key_id"] = None
    raw[4] = rebuild(record)


def _edit_signature(raw: list[bytes]) -> None:
    record = json.loads(raw[4])
    sig = bytearray(base64.b64decode(record["sig"]))
    sig[0] ^= 1
    record["sig"] = base64.b64encode(bytes(sig)).decode()
    raw[4] = canonical_json(record) + b"\n"


def _forge_checkpoint_other_key(raw: list[bytes]) -> None:
    forger = Ed25519PrivateKey.generate()
    _edit_rehash(raw)
    relink(raw, 3, sign=forger)  # keeps the key id, signs with another key


def _forge_checkpoint_claiming_own_key(raw: list[bytes]) -> None:
    forger = Ed25519PrivateKey.generate()
    for i, line in enumerate(raw):
        record = json.loads(line)
        if record["type"] != "event":
            record["key_id"] = key_id(forger)
        raw[i] = canonical_json(record) + b"\n"
    relink(raw, 0, sign=forger)


SINGLE: dict[str, tuple[Callable[[list[bytes]], None], str]] = {
    "edit a field": (_edit, "bad_hash"),
    "edit and rehash the line": (_edit_rehash, "broken_link"),
    "edit and relink every line after it": (_edit_relink_all, "bad_signature"),
    "delete a line": (_delete, "broken_link"),
    "delete the start record": (_delete_start, "missing_start"),
    "swap two lines": (_swap, "broken_link"),
    "insert a copied line": (_duplicate, "broken_link"),
    "renumber a line": (_renumber, "bad_sequence"),
    "append after the final checkpoint": (_append_after_final, "after_final"),
    "same meaning, other bytes": (_non_canonical, "bad_json"),
    "duplicate member": (_duplicate_member, "bad_json"),
    "version 1 line": (_old_format, "unsupported_version"),
    "garbage line": (_garbage, "bad_json"),
    "strip a checkpoint's signature": (_strip_signature, "key_mismatch"),
    "edit a signature": (_edit_signature, "bad_signature"),
    "forge checkpoints with another key, same key id": (
        _forge_checkpoint_other_key,
        "bad_signature",
    ),
    "re-sign everything with the forger's own key": (
        _forge_checkpoint_claiming_own_key,
        "unknown_key",
    ),
}


@pytest.mark.parametrize("name", list(SINGLE))
def test_tampering_with_one_segment_is_detected(trail: Path, name: str) -> None:
    tamper, expected = SINGLE[name]
    raw = lines(trail)
    tamper(raw)
    trail.write_bytes(b"".join(raw))
    assert reasons(trail.parent)[:1] == [expected]
    assert not verify_chain(trail, public_key=PUB).ok
    assert spec_problems(trail.parent) != []


# -- truncation --------------------------------------------------------------


def test_truncating_a_closed_segment_needs_require_closed(trail: Path) -> None:
    raw = lines(trail)
    for cut in (len(raw) - 1, 5, 4):  # before the final, after / before a checkpoint
        trail.write_bytes(b"".join(raw[:cut]))
        # Still a valid prefix: only "every writer has stopped" tells.
        assert reasons(trail.parent) == []
        assert reasons(trail.parent, require_closed=True) == ["not_closed"]


def test_truncating_a_continued_segment_is_caught_by_its_successor(trail: Path) -> None:
    write(trail.parent / "b.jsonl", 2)  # continues a.jsonl
    raw = lines(trail)
    for cut in (len(raw) - 1, 5, 4):
        trail.write_bytes(b"".join(raw[:cut]))
        assert reasons(trail.parent) == ["truncated"]
        assert spec_problems(trail.parent) != []


def test_truncation_after_an_anchor_is_caught(trail: Path) -> None:
    record = json.loads(lines(trail)[5])
    anchor = (record["chain"], record["seq"], record["hash"])
    assert reasons(trail.parent, anchors=[anchor]) == []
    trail.write_bytes(b"".join(lines(trail)[:5]))
    assert reasons(trail.parent, anchors=[anchor]) == ["truncated"]
    assert not verify_chain(trail, anchor=anchor[1:])


def test_a_rebuilt_tail_mismatches_its_anchor(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write(path, key=None)
    record = json.loads(lines(path)[3])
    raw = lines(path)
    _edit_relink_all(raw)  # unsigned: a consistent forgery
    path.write_bytes(b"".join(raw))
    assert verify_trail(path).ok
    anchor = (record["chain"], record["seq"], record["hash"])
    assert reasons(path, public_key=None, anchors=[anchor]) == ["anchor_mismatch"]


# -- many segments ------------------------------------------------------------


@pytest.fixture
def two(trail: Path) -> tuple[Path, Path]:
    second = trail.parent / "b.jsonl"
    write(second, 4)
    assert verify_trail(trail.parent, public_key=PUB, require_closed=True).ok
    return trail, second


def test_splicing_lines_between_segments_is_detected(two: tuple[Path, Path]) -> None:
    first, second = two
    a, b = lines(first), lines(second)
    a[2] = b[2]
    first.write_bytes(b"".join(a))
    assert reasons(first.parent)[:1] == ["wrong_chain"]
    assert spec_problems(first.parent) != []


def test_replaying_a_copied_segment_is_detected(two: tuple[Path, Path]) -> None:
    first, _ = two
    shutil.copy(first, first.parent / "replay.jsonl")
    assert "duplicate_chain" in reasons(first.parent)
    assert spec_problems(first.parent) != []


def test_replaying_an_older_copy_of_a_segment_is_detected(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    path = folder / "a.jsonl"
    sink = JSONLSink(path, signing_key=KEY, checkpoint_every=2)
    for i in range(4):
        sink.write(event(i))
    snapshot = path.read_bytes()
    sink.write(event(5))
    sink.close()
    write(folder / "b.jsonl", 1)
    path.write_bytes(snapshot)  # roll the segment back to an earlier state
    assert reasons(folder) == ["truncated"]


def test_a_removed_segment_is_detected(two: tuple[Path, Path]) -> None:
    first, _ = two
    first.unlink()
    assert reasons(first.parent) == ["missing_segment"]
    assert spec_problems(first.parent) != []


def test_a_start_record_pointing_to_a_missing_segment(trail: Path) -> None:
    raw = lines(trail)
    start = json.loads(raw[0])
    start["prev_segment"] = {"chain": "ab" * 16, "size": 3, "head": "cd" * 32}
    raw[0] = rebuild(start, KEY)  # even the key holder cannot invent one
    relink(raw, 1, KEY)
    trail.write_bytes(b"".join(raw))
    assert reasons(trail.parent) == ["missing_segment"]
    assert spec_problems(trail.parent) != []


def test_two_segments_continuing_one_is_a_fork(two: tuple[Path, Path]) -> None:
    first, second = two
    raw = lines(second)
    start = json.loads(raw[0])
    start["chain"] = "ee" * 16
    for i, line in enumerate(raw):
        record = json.loads(line)
        record["chain"] = start["chain"]
        raw[i] = canonical_json(record) + b"\n"
    relink(raw, 0, KEY)
    (first.parent / "fork.jsonl").write_bytes(b"".join(raw))
    assert reasons(first.parent) == ["forked"]
    assert spec_problems(first.parent) != []


# -- keys ---------------------------------------------------------------------


def test_wrong_key_is_unknown_key(trail: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    assert reasons(trail.parent, public_key=other) == ["unknown_key"]
    assert spec_problems(trail.parent, [other]) != []


def test_unsigned_segments_fail_when_keys_are_given(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", key=None)
    assert reasons(tmp_path / "a.jsonl") == ["unsigned"]


def test_rotated_keys_verify_with_both_public_keys(trail: Path) -> None:
    new = Ed25519PrivateKey.generate()
    write(trail.parent / "b.jsonl", 2, key=new)  # after the rotation
    both = [PUB, new.public_key()]
    assert reasons(trail.parent, public_key=both, require_closed=True) == []
    assert spec_problems(trail.parent, both) == []
    # With one key only, the other key's segment is untrusted (and what
    # depends on it cannot be checked).
    assert reasons(trail.parent, public_key=new.public_key())[0] == "unknown_key"
    assert reasons(trail.parent, public_key=PUB) == ["unknown_key"]


def test_a_checkpoint_signed_with_the_rotated_key_inside_an_old_segment(
    trail: Path,
) -> None:
    new = Ed25519PrivateKey.generate()  # trusted, but not this segment's key
    raw = lines(trail)
    _edit_rehash(raw)
    for i in range(3, len(raw)):
        record = json.loads(raw[i])
        if record["type"] == "checkpoint":
            record["key_id"] = key_id(new)
        raw[i] = canonical_json(record) + b"\n"
    relink(raw, 3, new)
    trail.write_bytes(b"".join(raw))
    assert reasons(trail.parent, public_key=[PUB, new.public_key()]) == ["key_mismatch"]


# -- what remains: the hypothesis property -----------------------------------


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_single_line_edit_delete_or_swap_is_detected(
    trail: Path, data: st.DataObject
) -> None:
    raw = lines(trail)
    original = b"".join(raw)
    action = data.draw(st.sampled_from(["edit", "delete", "swap"]))
    index = data.draw(st.integers(0, len(raw) - 1))
    if action == "edit":
        line = bytearray(raw[index])
        at = data.draw(st.integers(0, len(line) - 2))
        line[at] = data.draw(st.integers(0, 255).filter(lambda b: b != line[at]))
        raw[index] = bytes(line)
    elif action == "delete":
        del raw[index]
    else:
        other = data.draw(st.integers(0, len(raw) - 1).filter(lambda j: j != index))
        raw[index], raw[other] = raw[other], raw[index]
    try:
        trail.write_bytes(b"".join(raw))
        report = verify_trail(trail.parent, public_key=PUB, require_closed=True)
        assert not report.ok, (action, index)
    finally:
        trail.write_bytes(original)
