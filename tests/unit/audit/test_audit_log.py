from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from aiinvariants._errors import AuditUnavailable, InsecureUsageWarning, PolicyError
from aiinvariants._principal import ANONYMOUS, Principal, acting_as
from aiinvariants.audit import (
    AuditEvent,
    AuditLog,
    BoundedSink,
    JSONLSink,
    LoggingSink,
    MemorySink,
    OTelSink,
    capture,
    verify_chain,
)
from aiinvariants.policy import Policy

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
ALICE = Principal(subject="alice", authenticated=True, scopes="crm:read", token=TOKEN)


class FailingSink:
    def write(self, event: AuditEvent) -> None:
        raise OSError("disk full writing /var/secret/path for alice")

    def close(self) -> None:
        pass


class SlowSink:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.events: list[AuditEvent] = []

    def write(self, event: AuditEvent) -> None:
        time.sleep(self.seconds)
        self.events.append(event)

    def close(self) -> None:
        pass


class HungSink:
    def __init__(self) -> None:
        self.release = threading.Event()

    def write(self, event: AuditEvent) -> None:
        self.release.wait(10)

    def close(self) -> None:
        pass


def deny(log: AuditLog, **extra: Any) -> AuditEvent:
    return log.record(
        invariant="I1",
        decision="deny",
        reason="scope_missing",
        resource="crm.read",
        **extra,
    )


# -- recording --------------------------------------------------------------


def test_record_fills_subject_correlation_and_policy_hash() -> None:
    sink = MemorySink()
    log = AuditLog([sink], policy_hash="sha256:" + "0" * 64)
    with acting_as(ALICE, correlation_id="req-1"):
        event = deny(log, details={"missing": "crm:write"})
    assert sink.events == [event]
    assert event.subject == "alice"
    assert event.correlation_id == "req-1"
    assert event.policy_hash == "sha256:" + "0" * 64
    assert event.invariant == "I1"
    assert event.decision == "deny"
    assert event.reason == "scope_missing"
    assert event.resource == "crm.read"
    assert event.details == {"missing": "crm:write"}


def test_record_outside_a_request_uses_anonymous_and_a_fresh_correlation() -> None:
    log = AuditLog([MemorySink()])
    first, second = deny(log), deny(log)
    assert first.subject == ANONYMOUS.subject
    assert len(first.correlation_id) == 32
    assert first.correlation_id != second.correlation_id


def test_explicit_principal_wins() -> None:
    log = AuditLog()
    with acting_as(ALICE):
        event = deny(log, principal=Principal(subject="bob"))
    assert event.subject == "bob"


def test_record_without_sinks_returns_the_event() -> None:
    # Its cost is measured by `make bench`, not asserted here.
    log = AuditLog()
    event = deny(log)
    assert isinstance(event, AuditEvent)
    assert log.stats.recorded == 1
    assert not log.active


def test_every_sink_receives_the_event() -> None:
    sinks = [MemorySink(), MemorySink()]
    with AuditLog(sinks) as log:
        event = deny(log)
    assert all(sink.events == [event] for sink in sinks)
    assert log.sinks == tuple(sinks)


def test_bad_details_raise_before_any_sink_sees_them() -> None:
    sink = MemorySink()
    log = AuditLog([sink])
    with pytest.raises(TypeError):
        deny(log, details={"payload": {"nested": True}})
    with pytest.raises(PolicyError):
        log.record(invariant="I99", decision="deny", reason="x")
    assert sink.events == []


# -- token scrubbing --------------------------------------------------------


def test_the_principals_token_never_reaches_a_sink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    memory = MemorySink()
    path = tmp_path / "audit.jsonl"
    with (
        AuditLog([memory, JSONLSink(path)]) as log,
        acting_as(ALICE),
        caplog.at_level(logging.WARNING, logger="aiinvariants.audit.health"),
    ):
        event = log.record(
            invariant="I4",
            decision="deny",
            reason=f"passthrough of {TOKEN}",
            resource=f"https://api.example.com/?access_token={TOKEN}",
            details={"header": f"Bearer {TOKEN}", "count": 1, TOKEN: "as key"},
        )
    assert event.reason == "[redacted]"
    assert event.resource == "[redacted]"
    assert event.details["header"] == "[redacted]"
    assert event.details["count"] == 1
    assert TOKEN not in repr(event)
    assert TOKEN not in repr(memory.events)
    assert TOKEN.encode() not in path.read_bytes()
    assert "bearer token reached an audit event" in caplog.text
    assert TOKEN not in caplog.text


def test_strings_without_the_token_are_kept() -> None:
    with acting_as(ALICE):
        event = deny(AuditLog(), details={"scope": "crm:read"})
    assert event.resource == "crm.read"
    assert event.details == {"scope": "crm:read"}


# -- capture ----------------------------------------------------------------


def test_capture_collects_events_from_any_log() -> None:
    with capture() as events:
        first = deny(AuditLog())
        second = deny(AuditLog([MemorySink()]))
    assert events == [first, second]
    deny(AuditLog())
    assert len(events) == 2


def test_nested_captures_both_receive() -> None:
    log = AuditLog()
    with capture() as outer:
        a = deny(log)
        with capture() as inner:
            b = deny(log)
        c = deny(log)
    assert outer == [a, b, c]
    assert inner == [b]


def test_capture_sees_events_even_when_the_sink_fails() -> None:
    log = AuditLog([FailingSink()])
    with capture() as events, pytest.raises(AuditUnavailable):
        deny(log)
    assert len(events) == 1


def test_capture_is_per_context() -> None:
    log = AuditLog()

    async def other_request() -> None:
        await asyncio.sleep(0)
        deny(log)  # another request's decision: not ours to capture

    async def main() -> list[AuditEvent]:
        background = asyncio.create_task(other_request())  # made before capture
        with capture() as events:
            deny(log)
            await background
        return events

    assert len(asyncio.run(main())) == 1

    seen: list[AuditEvent] = []
    with capture() as events:
        thread = threading.Thread(target=lambda: seen.append(deny(log)))
        thread.start()
        thread.join()
    assert events == []  # threads do not inherit the context
    assert len(seen) == 1


# -- failures ---------------------------------------------------------------


def test_failed_write_denies_by_default() -> None:
    after = MemorySink()
    log = AuditLog([FailingSink(), after])
    with pytest.raises(AuditUnavailable) as info:
        deny(log)
    error = info.value
    assert error.invariant == "I13"
    assert error.code == "audit_unavailable"
    assert "FailingSink" in str(error)
    assert "disk full" not in str(error)
    assert "/var/secret" not in repr(error)
    assert isinstance(error.__cause__, OSError)
    assert len(after.events) == 1  # every sink is still tried
    stats = log.stats
    assert (stats.recorded, stats.written, stats.failed) == (1, 0, 1)
    assert [(s.name, s.written, s.failed) for s in stats.sinks] == [
        ("FailingSink", 0, 1),
        ("MemorySink", 1, 0),
    ]


def test_fail_open_warns_logs_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    memory = MemorySink()
    with pytest.warns(InsecureUsageWarning, match="fail_open"):
        log = AuditLog([memory, FailingSink()], on_write_failure="fail_open")
    assert log.fail_open
    # The opt-out itself is on the record.
    [flag] = memory.events
    assert (flag.invariant, flag.decision, flag.reason) == (
        "I13",
        "flag",
        "audit_fail_open",
    )
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="aiinvariants.audit.health"):
        event = deny(log)
    assert memory.events[-1] == event
    [record] = [r for r in caplog.records if r.name == "aiinvariants.audit.health"]
    assert record.levelno == logging.ERROR
    assert "FailingSink" in record.getMessage()
    assert "disk full" not in record.getMessage()


def test_closed_log_denies() -> None:
    log = AuditLog([MemorySink()])
    log.close()
    log.close()
    with pytest.raises(AuditUnavailable, match="closed"):
        deny(log)


def test_hung_sink_behind_bounded_sink_cannot_stall_a_decision() -> None:
    hung = HungSink()
    log = AuditLog([BoundedSink(hung, timeout_s=0.05)])
    try:
        start = time.monotonic()
        with pytest.raises(AuditUnavailable, match=r"BoundedSink\(HungSink\)"):
            deny(log)
        assert time.monotonic() - start < 0.5
    finally:
        hung.release.set()
        log.close()


def test_hung_sink_fail_open_returns_in_time() -> None:
    hung = HungSink()
    with pytest.warns(InsecureUsageWarning):
        log = AuditLog(
            [BoundedSink(hung, timeout_s=0.05)], on_write_failure="fail_open"
        )
    try:
        start = time.monotonic()
        deny(log)
        assert time.monotonic() - start < 0.5
    finally:
        hung.release.set()
        log.close()


def test_slow_sink_is_counted_and_reported_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = SlowSink(0.02)
    log = AuditLog([slow, MemorySink()], slow_sink_threshold=0.01)
    with caplog.at_level(logging.WARNING, logger="aiinvariants.audit.health"):
        deny(log)
        deny(log)
    stats = log.stats
    assert stats.slow == 2
    assert stats.sinks[0].slow == 2
    assert stats.sinks[1].slow == 0
    warnings = [r for r in caplog.records if "SlowSink" in r.getMessage()]
    assert len(warnings) == 1
    assert "BoundedSink" in warnings[0].getMessage()


def test_close_closes_every_sink_and_reports_the_first_error() -> None:
    closed: list[str] = []

    class BadClose(MemorySink):
        def close(self) -> None:
            raise RuntimeError("boom")

    class GoodClose(MemorySink):
        def close(self) -> None:
            closed.append("good")

    log = AuditLog([BadClose(), GoodClose()])
    with pytest.raises(RuntimeError, match="boom"):
        log.close()
    assert closed == ["good"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"on_write_failure": "ignore"},
        {"slow_sink_threshold": -1},
        {"slow_sink_threshold": float("nan")},
        {"policy_hash": 3},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        AuditLog(**kwargs)


def test_non_sinks_are_refused() -> None:
    with pytest.raises(PolicyError, match="not an audit sink"):
        AuditLog([object()])  # type: ignore[list-item]
    with pytest.raises(PolicyError):
        AuditLog("memory")  # type: ignore[arg-type]


# -- from_policy ------------------------------------------------------------


def sink_config(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, **fields}


def policy(*sinks: dict[str, Any], on_write_failure: str = "deny") -> Policy:
    return Policy.from_dict(
        {"audit": {"sinks": list(sinks), "on_write_failure": on_write_failure}}
    )


def test_from_policy_builds_each_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    monkeypatch.setenv("AUDIT_KEY", pem.decode())
    extra = MemorySink()
    real = policy(
        sink_config("memory", capacity=5),
        sink_config("logging", logger="app.audit", level="WARNING"),
        sink_config("jsonl", path=str(tmp_path / "a.jsonl"), sign_key_env="AUDIT_KEY"),
        sink_config("otel"),
        sink_config("memory", timeout_s=0.25),
    )
    log = AuditLog.from_policy(real, extra_sinks=[extra])
    with log:
        memory, logging_sink, jsonl, otel, bounded, last = log.sinks
        assert isinstance(memory, MemorySink)
        assert memory.capacity == 5
        assert isinstance(logging_sink, LoggingSink)
        assert logging_sink.logger.name == "app.audit"
        assert logging_sink.level == logging.WARNING
        assert isinstance(jsonl, JSONLSink)
        assert jsonl.signed
        assert isinstance(otel, OTelSink)
        assert isinstance(bounded, BoundedSink)
        assert bounded.timeout_s == 0.25
        assert last is extra
        assert log.policy_hash == real.hash
        event = deny(log)
        assert event.policy_hash == log.policy_hash
    assert verify_chain(tmp_path / "a.jsonl", public_key=key.public_key()).ok


def test_from_policy_without_sinks() -> None:
    real = policy()
    log = AuditLog.from_policy(real)
    assert log.sinks == ()
    assert deny(log).policy_hash == real.hash


def test_from_policy_fail_open_warns() -> None:
    with pytest.warns(InsecureUsageWarning):
        log = AuditLog.from_policy(
            policy(sink_config("memory"), on_write_failure="fail_open")
        )
    assert log.fail_open


@pytest.mark.parametrize("value", [None, "", "   "])
def test_from_policy_missing_key_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("AUDIT_KEY_MISSING", raising=False)
    else:
        monkeypatch.setenv("AUDIT_KEY_MISSING", value)
    with pytest.raises(PolicyError, match="AUDIT_KEY_MISSING") as info:
        AuditLog.from_policy(
            policy(
                sink_config(
                    "jsonl",
                    path=str(tmp_path / "a.jsonl"),
                    sign_key_env="AUDIT_KEY_MISSING",
                )
            )
        )
    assert info.value.errors[0][0] == "audit.sinks.0.sign_key_env"


def test_from_policy_closes_opened_sinks_when_a_later_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.jsonl"
    monkeypatch.delenv("AUDIT_KEY_MISSING", raising=False)
    later = sink_config(
        "jsonl", path=str(tmp_path / "b.jsonl"), sign_key_env="AUDIT_KEY_MISSING"
    )
    with pytest.raises(PolicyError, match="AUDIT_KEY_MISSING"):
        AuditLog.from_policy(policy(sink_config("jsonl", path=str(path)), later))
    JSONLSink(path).close()  # the lock was released


def test_from_policy_with_the_real_policy_model(tmp_path: Path) -> None:
    real = Policy.model_validate(
        {
            "audit": {
                "sinks": [
                    {"kind": "memory", "capacity": 3},
                    {"kind": "jsonl", "path": str(tmp_path / "a.jsonl")},
                ],
                "on_write_failure": "deny",
            }
        }
    )
    with AuditLog.from_policy(real) as log:
        event = deny(log)
        assert event.policy_hash == real.hash
    assert verify_chain(tmp_path / "a.jsonl").events == 1


# -- import hygiene ---------------------------------------------------------


def test_importing_audit_loads_no_optional_dependency() -> None:
    code = (
        "import sys, aiinvariants.audit\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'opentelemetry', 'yaml', 'pytest', 'hypothesis'}]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path])}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deny_records_then_raises_and_survives_a_failed_write() -> None:
    from aiinvariants._errors import ScopeDenied

    memory = MemorySink()
    log = AuditLog([memory])
    denial = ScopeDenied(
        "needs crm:write", required=["crm:write"], missing=["crm:write"], resource="r"
    )
    with pytest.raises(ScopeDenied) as info:
        log.deny(denial, details={"missing": "crm:write"})
    assert info.value is denial
    (event,) = memory.events
    assert (event.decision, event.reason, event.invariant, event.resource) == (
        "deny",
        "scope_missing",
        "I1",
        "r",
    )
    assert event.details["missing"] == "crm:write"

    class Broken:
        def write(self, event: AuditEvent) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            return None

    with pytest.raises(ScopeDenied) as again:
        AuditLog([Broken()]).deny(denial, invariant="I4", resource="downstream")
    assert isinstance(again.value.__cause__, AuditUnavailable)
