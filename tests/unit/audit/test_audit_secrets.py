"""Secrets never travel: signing keys and bearer tokens stay out of the trail."""

from __future__ import annotations

import base64
import logging
import traceback
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from aiinvariants._errors import PolicyError
from aiinvariants._principal import Principal, acting_as
from aiinvariants.audit import (
    AuditLog,
    JSONLSink,
    LoggingSink,
    MemorySink,
    load_signing_key,
)
from aiinvariants.policy import Policy

SEED = bytes(range(1, 33))
SEED_B64 = base64.b64encode(SEED).decode()


def exception_text(exc: BaseException) -> str:
    """Everything an exception could show: str, repr, traceback, cause chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), *map(str, current.args)]
        parts += traceback.format_exception(current)
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def fragments(secret: str) -> list[str]:
    # Any 12-character window of the secret counts as a leak.
    return [secret[i : i + 12] for i in range(0, max(1, len(secret) - 11), 4)]


@pytest.mark.parametrize(
    "value",
    [
        SEED_B64[:-4] + "!!!=",  # not base64
        base64.b64encode(SEED + b"extra").decode(),  # wrong length
        "-----BEGIN PRIVATE KEY-----\n" + SEED_B64 * 2 + "\n-----END PRIVATE KEY-----",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + SEED_B64 * 2
        + "\n-----END ENCRYPTED PRIVATE KEY-----",
    ],
)
def test_bad_key_errors_never_carry_key_material(value: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_signing_key(value)
    text = exception_text(info.value)
    for fragment in fragments(SEED_B64) + fragments(max(value.split("\n"), key=len)):
        assert fragment not in text
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_key_from_environment_never_appears_in_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = base64.b64encode(SEED + b"x").decode()
    monkeypatch.setenv("AUDIT_SIGNING_KEY", bad)
    sink = {
        "kind": "jsonl",
        "path": str(tmp_path / "a.jsonl"),
        "sign_key_env": "AUDIT_SIGNING_KEY",
    }
    policy = Policy.from_dict({"audit": {"sinks": [sink]}})
    with pytest.raises(PolicyError, match="AUDIT_SIGNING_KEY") as info:
        AuditLog.from_policy(policy)
    text = exception_text(info.value)
    for fragment in fragments(bad):
        assert fragment not in text


def test_signing_key_never_in_reprs(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    with JSONLSink(tmp_path / "a.jsonl", signing_key=key) as sink:
        log = AuditLog([sink])
        log.record(invariant="I1", decision="allow", reason="ok")
        text = repr(sink) + repr(log) + repr(vars(sink)) + repr(log.stats)
    for fragment in fragments(SEED_B64) + fragments(pem.splitlines()[1]):
        assert fragment not in text
    assert SEED.hex() not in text


def test_principal_token_never_in_a_jsonl_line_or_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok_" + "Zm9vYmFyYmF6cXV4" * 3
    alice = Principal(subject="alice", authenticated=True, token=token)
    path = tmp_path / "audit.jsonl"
    memory = MemorySink()
    with (
        caplog.at_level(logging.DEBUG),
        AuditLog([JSONLSink(path), memory, LoggingSink()]) as log,
        acting_as(alice),
    ):
        log.record(invariant="I1", decision="allow", reason="scopes_held")
        log.record(
            invariant="I4",
            decision="deny",
            reason="token_passthrough",
            resource=f"https://tool.example.com/call?token={token}",
            details={"authorization": f"Bearer {token}"},
        )
    raw = path.read_text()
    assert raw.count('"type":"event"') == 2
    assert token not in raw
    assert token not in caplog.text
    assert all(token not in repr(event) for event in memory.events)
    assert "alice" in raw  # the subject is recorded, only the token is not
