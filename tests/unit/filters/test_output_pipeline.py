"""OutputPipeline: redaction, blocking, audit, policy wiring."""

from __future__ import annotations

import pytest

from aiinvariants import OutputBlocked, Policy, PolicyError
from aiinvariants.audit import AuditLog, capture
from aiinvariants.filters import (
    REDACTED,
    Finding,
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    SystemPromptLeakFilter,
    ToolOutputLeakFilter,
)

GHP = "ghp_" + "aZ3kQ9" * 6
AWS = "AKIA" + "QZ7RT2MX4K5W6Y3J"


class Fixed:
    """A filter returning fixed spans (for redaction arithmetic)."""

    action = "redact"
    max_finding = 100
    context = 1

    def __init__(self, *spans: tuple[int, int]) -> None:
        self.spans = spans

    def scan(self, text: str) -> list[Finding]:
        return [Finding("fixed", s, e, "low", "-", "redact") for s, e in self.spans]


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(2, 4)], f"01{REDACTED}456789"),
        ([(2, 4), (3, 6)], f"01{REDACTED}6789"),
        ([(2, 4), (4, 6)], f"01{REDACTED}6789"),  # adjacent: one mask
        ([(2, 4), (5, 6)], f"01{REDACTED}4{REDACTED}6789"),
        ([(0, 10), (3, 4)], REDACTED),
    ],
)
def test_redaction_of_overlapping_and_adjacent_spans(
    spans: list[tuple[int, int]], expected: str
) -> None:
    assert OutputPipeline([Fixed(*spans)]).check("0123456789").text == expected


def test_two_secrets_in_one_text_are_both_redacted() -> None:
    p = OutputPipeline([SecretsFilter(action="redact")])
    result = p.check(f"first {GHP} then {AWS} and {GHP}{AWS}")
    assert GHP not in result.text
    assert AWS not in result.text
    assert not result.blocked
    assert len(result.findings) == 4


def test_enforce_blocks_naming_rules_only() -> None:
    p = OutputPipeline([SecretsFilter()])
    with pytest.raises(OutputBlocked) as info:
        p.enforce(f"token {GHP}")
    assert "github-pat" in str(info.value)
    assert GHP not in str(info.value)
    assert GHP not in repr(info.value)
    assert p.enforce("nothing here") == "nothing here"


def test_flag_changes_nothing() -> None:
    result = OutputPipeline([SecretsFilter(action="flag")]).check(f"t {GHP}")
    assert result.text == f"t {GHP}"
    assert not result.blocked
    assert result.findings


def test_failing_filter_blocks() -> None:
    class Broken:
        action = "redact"
        max_finding = 1
        context = 1

        def scan(self, text: str) -> list[Finding]:
            raise RuntimeError("boom")

    assert OutputPipeline([Broken()]).check("hello").blocked


def test_audit_records_decisions_without_values() -> None:
    log = AuditLog()
    p = OutputPipeline([SecretsFilter(), PIIFilter(action="redact")], audit=log)
    with capture() as events:
        p.check(f"mail a.b@example.com token {GHP}")
    assert {(e.reason, e.decision) for e in events} == {
        ("pii-email", "redact"),
        ("github-pat", "deny"),
    }
    for event in events:
        assert event.invariant == "I8"
        assert event.details["findings"] == 1
        assert event.details["filter"] in {"SecretsFilter", "PIIFilter"}
        assert GHP not in str(event.to_dict())
        assert "a.b@" not in str(event.to_dict())


def test_from_policy_defaults_and_env() -> None:
    p = OutputPipeline.from_policy(Policy(), environ={})
    kinds = [type(f).__name__ for f in p.filters]
    assert kinds == [
        "SecretsFilter",
        "SystemPromptLeakFilter",
        "ToolOutputLeakFilter",
        "PIIFilter",
    ]
    assert p.get(PIIFilter).action == "redact"
    assert p.get(SecretsFilter).action == "block"
    assert isinstance(p.get(ToolOutputLeakFilter), ToolOutputLeakFilter)
    assert isinstance(p.get(SystemPromptLeakFilter), SystemPromptLeakFilter)

    policy = Policy.model_validate(
        {
            "outputs": {
                "secrets": {"registered_env": ["APP_KEY"]},
                "competitors": {"names": ["Globex"], "protect": ["Example Corp"]},
            }
        }
    )
    with pytest.raises(PolicyError, match="APP_KEY") as info:
        OutputPipeline.from_policy(policy, environ={"APP_KEY": ""})
    value = "s3cr3t-Value-9931"
    assert value not in str(info.value)
    p = OutputPipeline.from_policy(policy, environ={"APP_KEY": value})
    assert p.check(f"key {value}").blocked
    assert p.check("Globex is a scam").blocked
