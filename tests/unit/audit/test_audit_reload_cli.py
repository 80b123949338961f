"""Guard.replace_policy, replace_policy_sinks, the audit CLI and key secrecy."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from aiinvariants import Guard, Policy
from aiinvariants._cli import main
from aiinvariants._errors import InsecureUsageWarning, PolicyError
from aiinvariants.audit import JSONLSink, MemorySink, verify_trail


def jsonl_policy(folder: Path, app: str = "a", **extra: object) -> Policy:
    sink = {"kind": "jsonl", "path": str(folder) + "/", **extra}
    return Policy.from_dict({"app": app, "audit": {"sinks": [sink]}})


def test_replace_policy_is_audited_and_keeps_the_segment(tmp_path: Path) -> None:
    memory = MemorySink()
    old = jsonl_policy(tmp_path / "t")
    guard = Guard(old, sinks=[memory])
    new = jsonl_policy(tmp_path / "t", app="b")
    guard.replace_policy(new)
    assert guard.policy is new
    event = memory.events[-1]
    assert (event.invariant, event.decision, event.reason) == (
        "I13",
        "flag",
        "policy_replaced",
    )
    assert event.details == {"from": old.hash, "to": new.hash}
    assert event.policy_hash == new.hash
    guard.close()
    report = verify_trail(tmp_path / "t", require_closed=True)
    assert report.ok
    assert len(report.segments) == 1
    assert report.events == 1


def test_replace_policy_with_new_sinks_closes_the_old_ones(tmp_path: Path) -> None:
    guard = Guard(jsonl_policy(tmp_path / "one"))
    guard.replace_policy(jsonl_policy(tmp_path / "two"))
    guard.audit.record(invariant="I1", decision="allow", reason="after")
    guard.close()
    one = verify_trail(tmp_path / "one", require_closed=True)
    two = verify_trail(tmp_path / "two", require_closed=True)
    assert one.ok
    # The old trail records the hand-over (policy_replacing), then closes.
    assert one.events == 1
    assert two.ok
    assert [s.events for s in two.segments] == [2]


def test_replace_policy_refuses_non_policies_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    guard = Guard()
    with pytest.raises(PolicyError, match="needs a Policy"):
        guard.replace_policy({"app": "x"})  # type: ignore[arg-type]
    bad = Policy.from_dict(
        {
            "audit": {
                "sinks": [
                    {"kind": "jsonl", "path": "x.jsonl", "sign_key_env": "NOPE_UNSET"}
                ]
            }
        }
    )
    with pytest.raises(PolicyError, match="NOPE_UNSET"):
        guard.replace_policy(bad)
    assert guard.policy == Policy()


def test_concurrent_replacements_and_decisions(tmp_path: Path) -> None:
    memory = MemorySink(capacity=None)
    policies = [Policy.from_dict({"app": f"app{i}"}) for i in range(4)]
    guard = Guard(policies[0], sinks=[memory])
    errors: list[BaseException] = []

    def reload(i: int) -> None:
        try:
            for n in range(25):
                guard.replace_policy(policies[(i + n) % 4])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def decide() -> None:
        for _ in range(200):
            guard.audit.record(invariant="I1", decision="allow", reason="x")

    threads = [threading.Thread(target=reload, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=decide))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reloads = [e for e in memory.events if e.reason == "policy_replaced"]
    assert len(reloads) == 75
    hashes = {p.hash for p in policies}
    assert all(e.policy_hash in hashes for e in memory.events)
    # the recorded from/to pairs form one sequence: no two swaps interleaved
    for before, after in itertools.pairwise(reloads):
        assert after.details["from"] == before.details["to"]


def test_replace_policy_sinks(tmp_path: Path) -> None:
    memory = MemorySink()
    policy = jsonl_policy(tmp_path / "t")
    with pytest.warns(InsecureUsageWarning, match="replace_policy_sinks"):
        guard = Guard(policy, sinks=[memory], replace_policy_sinks=True)
    assert guard.audit.sinks == (memory,)
    assert memory.events[-1].reason == "policy_sinks_replaced"
    assert not (tmp_path / "t").exists()
    guard.close()
    plain = Guard(Policy(), sinks=[MemorySink()], replace_policy_sinks=True)
    assert len(plain.audit.sinks) == 1  # nothing durable dropped: no warning
    plain.close()


# -- the CLI -----------------------------------------------------------------


def _pem(key: Ed25519PrivateKey, folder: Path) -> Path:
    path = folder / "pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = Ed25519PrivateKey.generate()
    folder = tmp_path / "t"
    with JSONLSink(folder / "a.jsonl", signing_key=key) as sink:
        from aiinvariants.audit import AuditEvent

        sink.write(
            AuditEvent(invariant="I1", decision="allow", reason="r", subject="s")
        )
        head = sink.head
        chain = sink.chain_id
    pub = str(_pem(key, tmp_path))
    assert main(["audit", "verify", str(folder), "--public-key", pub]) == 0
    anchor = f"{chain}:{head[0]}:{head[1]}"
    assert main(["audit", "verify", str(folder), "--anchor", anchor]) == 0
    assert main(["audit", "verify", str(tmp_path / "nothere.jsonl")]) == 2
    assert main(["audit", "verify"]) == 2
    assert main(["audit", "verify", str(folder), "--anchor", "nonsense"]) == 2
    assert main(["audit", "verify", str(folder), "--public-key", str(tmp_path)]) == 2
    other = str(_pem(Ed25519PrivateKey.generate(), tmp_path / ".."))
    assert main(["audit", "verify", str(folder), "--public-key", other]) == 1
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"audit": {"sinks": [{"kind": "jsonl", "path": str(folder) + "/"}]}})
    )
    assert main(["audit", "verify", "--policy", str(policy), "--require-closed"]) == 0
    out = capsys.readouterr().out
    assert "unknown_key" in out
    assert "ok:" in out


# -- the signing key never travels ---------------------------------------------


def test_the_signing_key_never_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    forms = [base64.b64encode(seed).decode(), pem, seed.hex()]
    monkeypatch.setenv("AUDIT_KEY", pem)
    policy = jsonl_policy(tmp_path / "t", sign_key_env="AUDIT_KEY")
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        guard = Guard(policy)
        texts += [repr(guard), repr(guard.audit), *map(repr, guard.audit.sinks)]
        with pytest.raises(PolicyError) as info:
            JSONLSink(
                tmp_path / "t" / next(iter((tmp_path / "t").glob("*.jsonl"))).name
            )
        texts.append(str(info.value))
        # torn line and reopen: the recovery is logged
        guard.close()
        segment = next((tmp_path / "t").glob("*.jsonl"))
        with segment.open("ab") as stream:
            stream.write(b"{torn")
        Guard(policy).close()
    texts.append(caplog.text)
    texts.append((tmp_path / "t").joinpath(segment.name).read_text())
    for text in texts:
        for form in forms:
            assert form not in text
    assert "torn" in caplog.text


def test_cli_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "t"
    JSONLSink(folder / "a.jsonl").close()
    (folder / "b.jsonl").write_bytes(b"not a record\n")
    assert main(["audit", "verify", str(folder), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [p["reason"] for p in report["problems"]] == ["bad_json"]
    assert report["problems"][0]["file"].endswith("b.jsonl")
    assert report["segments"][0]["closed"] is True


def test_cli_output_cannot_be_forged_by_file_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "t"
    JSONLSink(folder / "a.jsonl").close()
    evil = folder / "x\nok: 1 file(s), all fine\x1b[2K.jsonl"
    evil.write_bytes(b"garbage\n")
    assert main(["audit", "verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert not any(line.startswith("ok:") for line in out.splitlines())
    assert "BROKEN" in out.splitlines()[-1]


def test_a_reload_that_weakens_the_audit_is_warned_and_recorded() -> None:
    memory = MemorySink()
    guard = Guard(Policy(), sinks=[memory])
    assert not guard.audit.fail_open
    weaker = Policy.from_dict({"audit": {"on_write_failure": "fail_open"}})
    with pytest.warns(InsecureUsageWarning, match="on_write_failure"):
        guard.replace_policy(weaker)
    assert guard.audit.fail_open
    reasons = [(e.reason, e.resource) for e in memory.events]
    assert ("policy_replaced", f"policy.{weaker.app}") in reasons
    assert ("insecure_setting", "policy.audit.on_write_failure") in reasons
    guard.close()
