from __future__ import annotations

from pathlib import Path

import pytest

from aiinvariants import (
    ANONYMOUS,
    AuditUnavailable,
    AuthenticationRequired,
    Guard,
    InsecureUsageWarning,
    Policy,
    PolicyError,
    Principal,
    ScopeDenied,
    acting_as,
    all_of,
    current_correlation_id,
)
from aiinvariants.audit import AuditEvent, MemorySink, verify_chain

TOKEN = "tok-very-secret-0123456789abcdef"


def user(*scopes: str) -> Principal:
    return Principal(
        subject="alice", authenticated=True, scopes=frozenset(scopes), token=TOKEN
    )


class BrokenSink:
    def __init__(self) -> None:
        self.calls = 0

    def write(self, event: AuditEvent) -> None:
        self.calls += 1
        raise OSError(f"disk full while writing {TOKEN}")

    def close(self) -> None:
        return None


def test_guard_defaults_to_the_strict_policy() -> None:
    guard = Guard()
    assert guard.policy == Policy()
    assert "sha256:" in repr(guard)


def test_guard_refuses_a_non_policy() -> None:
    with pytest.raises(PolicyError, match="load_policy"):
        Guard("policy.yaml")  # type: ignore[arg-type]


def test_every_decision_is_recorded_with_context() -> None:
    memory = MemorySink()
    guard = Guard(Policy(app="crm-bot"), sinks=[memory])
    with acting_as(user("crm:read"), correlation_id="req-1"):
        guard.check_scopes(all_of("crm:read"), resource="crm.read")
        with pytest.raises(ScopeDenied):
            guard.check_scopes(all_of("crm:read", "crm:write"), resource="crm.write")
        assert current_correlation_id() == "req-1"
    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired):
        guard.check_scopes(None, resource="kb.search")

    allow, deny, anon = memory.events
    assert (allow.decision, allow.reason, allow.invariant) == (
        "allow",
        "scopes_held",
        "I1",
    )
    assert (deny.decision, deny.reason) == ("deny", "scope_missing")
    assert deny.details["missing"] == "crm:write"
    assert deny.details["required"] == "crm:read crm:write"
    assert (anon.reason, anon.subject) == ("authentication_required", "anonymous")
    assert {allow.correlation_id, deny.correlation_id} == {"req-1"}
    assert all(e.policy_hash == guard.policy.hash for e in memory.events)
    assert all(TOKEN not in repr(e.to_dict()) for e in memory.events)


def test_an_allowed_call_that_cannot_be_audited_does_not_run() -> None:
    sink = BrokenSink()
    guard = Guard(sinks=[sink])
    ran = []

    @guard.enforce_user_scope("crm:read")
    def read() -> None:
        ran.append(True)

    with acting_as(user("crm:read")), pytest.raises(AuditUnavailable) as info:
        read()
    assert ran == []
    assert info.value.invariant == "I13"
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)


def test_a_denial_that_cannot_be_audited_is_still_a_denial() -> None:
    guard = Guard(sinks=[BrokenSink()])

    @guard.enforce_user_scope("crm:write")
    def write() -> None:
        return None

    with acting_as(user("crm:read")), pytest.raises(ScopeDenied) as info:
        write()
    assert isinstance(info.value.__cause__, AuditUnavailable)


def test_policy_declared_signed_jsonl_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    monkeypatch.setenv("TEST_AUDIT_KEY", pem.decode())
    log = tmp_path / "audit.jsonl"
    policy = Policy.from_dict(
        {
            "audit": {
                "sinks": [
                    {
                        "kind": "jsonl",
                        "path": str(log),
                        "sign_key_env": "TEST_AUDIT_KEY",
                    }
                ]
            }
        }
    )
    with Guard(policy) as guard, acting_as(user("crm:read")):
        guard.check_scopes(all_of("crm:read"), resource="crm.read")
        with pytest.raises(ScopeDenied):
            guard.check_scopes(all_of("crm:admin"), resource="crm.admin")
    report = verify_chain(log, public_key=key.public_key())
    assert report.ok
    assert report.events == 2
    text = log.read_text()
    assert TOKEN not in text
    assert pem.decode() not in text
    assert policy.hash in text


def test_a_weakened_policy_warns_and_is_audited() -> None:
    memory = MemorySink()
    policy = Policy.from_dict(
        {
            "capabilities": {"forbidden": []},
            "outputs": {"secrets": {"action": "flag"}},
        }
    )
    with pytest.warns(InsecureUsageWarning, match="capabilities.forbidden"):
        Guard(policy, sinks=[memory])
    flagged = {(e.invariant, e.resource) for e in memory.events}
    assert flagged == {
        ("I3", "policy.capabilities.forbidden"),
        ("I8", "policy.outputs.secrets.action"),
    }
    assert {e.decision for e in memory.events} == {"flag"}


def test_the_strict_default_policy_is_silent() -> None:
    memory = MemorySink()
    Guard(sinks=[memory])  # filterwarnings=error: any warning fails this test
    assert memory.events == []


def test_output_pipeline_follows_the_policy_and_audits_to_the_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiinvariants import OutputBlocked

    secret = "db-pass-Zq8vL2mN4xR7tK1w"
    monkeypatch.setenv("TEST_DB_PASSWORD", secret)
    memory = MemorySink()
    policy = Policy.from_dict(
        {"outputs": {"secrets": {"registered_env": ["TEST_DB_PASSWORD"]}}}
    )
    pipeline = Guard(policy, sinks=[memory]).output_pipeline()
    with pytest.raises(OutputBlocked) as info:
        pipeline.enforce(f"the password is {secret}")
    assert secret not in str(info.value)
    assert pipeline.enforce("mail me at ann@example.com") == (
        pipeline.check("mail me at ann@example.com").text
    )
    assert "ann@example.com" not in pipeline.enforce("mail me at ann@example.com")
    assert {e.invariant for e in memory.events} == {"I8"}
    assert {e.decision for e in memory.events} == {"deny", "redact"}
    assert all(secret not in repr(e.to_dict()) for e in memory.events)


def test_guard_llm_wraps_a_plain_callable() -> None:
    from aiinvariants import ModelDenied, OutputBlocked

    key = "ghp_" + "Ab3dE6gH9jK2mN5pQ8rS1tU4vW7xY0zA1bC2"
    memory = MemorySink()
    guard = Guard(
        Policy.from_dict({"exposure": "public", "models": {"deny": ["*deepseek*"]}}),
        sinks=[memory],
    )

    def model_call(prompt: str) -> str:
        return f"echo: {prompt}"

    allowed = guard.llm(model_call, model="gpt-4.1")
    assert allowed("hello") == "echo: hello"
    with pytest.raises(OutputBlocked):
        allowed(f"the token is {key}")
    denied = guard.llm(model_call, model="deepseek-ai/DeepSeek-R1")
    with pytest.raises(ModelDenied):
        denied("hello")
    assert key not in repr([e.to_dict() for e in memory.events])
    assert {"I5", "I8"} <= {e.invariant for e in memory.events}


def test_guard_retriever_filters_a_langchain_store() -> None:
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(
        [
            Document("opening hours", metadata={"classification": "public"}),
            Document("salary bands", metadata={"classification": "confidential"}),
            Document("no label at all", metadata={}),
        ]
    )
    memory = MemorySink()
    retriever = Guard(sinks=[memory]).retriever(store, k=3)
    # Policy() is internal: an anonymous caller is refused, not served.
    with pytest.raises(AuthenticationRequired):
        retriever.invoke("anything")
    bob = Principal(subject="bob", authenticated=True)  # policy: public clearance
    with acting_as(bob):
        texts = {d.page_content for d in retriever.invoke("anything")}
    assert texts == {"opening hours"}  # public only, unlabelled never
    alice = Principal(subject="alice", authenticated=True, clearance="confidential")
    with acting_as(alice):
        texts = {d.page_content for d in retriever.invoke("anything")}
    assert texts == {"opening hours", "salary bands"}
    assert [e.reason for e in memory.events] == [
        "authentication_required",
        "retrieval",
        "retrieval",
    ]
    assert all("salary" not in repr(e.to_dict()) for e in memory.events)
