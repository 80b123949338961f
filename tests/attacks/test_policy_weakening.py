"""A policy never weakens a check quietly, and never by coercion.

Every setting that weakens a default check warns ``InsecureUsageWarning``
when a guard is built, is audited once (``insecure_setting``) and is
reported by ``aiinvariants verify`` (AIV011). Policy fields are strict:
``enabled: "yes"``, ``enabled: 0``, ``require_opt_out: "off"`` and
``threshold: "0.6"`` are refused, not coerced. Every error of a file is
reported at once, and messages speak of lists (YAML has no tuples).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from aiinvariants import Guard, InsecureUsageWarning, Policy, PolicyError, load_policy
from aiinvariants._verify import verify_policy
from aiinvariants.audit import MemorySink

WEAKENING: dict[str, dict[str, Any]] = {
    "capabilities.confirm": {"capabilities": {"confirm": []}},
    "capabilities.forbidden": {"capabilities": {"forbidden": []}},
    "capabilities.injected": {"capabilities": {"injected": "confirm"}},
    "clearance.default_authenticated": {
        "clearance": {"default_authenticated": "internal"}
    },
    "data_use.require_opt_out": {"data_use": {"require_opt_out": False}},
    "outputs.secrets.action": {"outputs": {"secrets": {"action": "flag"}}},
    "outputs.system_prompt.action": {"outputs": {"system_prompt": {"action": "flag"}}},
    "outputs.tool_outputs.action": {"outputs": {"tool_outputs": {"action": "flag"}}},
    "outputs.competitors.action": {"outputs": {"competitors": {"action": "flag"}}},
    "outputs.pii.action": {"outputs": {"pii": {"action": "flag"}}},
    "outputs.secrets.enabled": {"outputs": {"secrets": {"enabled": False}}},
    "outputs.pii.enabled": {"outputs": {"pii": {"enabled": False}}},
    "outputs.system_prompt.threshold": {
        "outputs": {"system_prompt": {"threshold": 0.99}}
    },
    "outputs.system_prompt.canary": {"outputs": {"system_prompt": {"canary": False}}},
    "outputs.tool_outputs.min_overlap_chars": {
        "outputs": {"tool_outputs": {"min_overlap_chars": 100_000}}
    },
    "outputs.classifiers.0.fail": {
        "outputs": {
            "classifiers": [
                {
                    "kind": "bedrock_guardrails",
                    "guardrail_id": "gr-1",
                    "region": "eu-central-1",
                    "fail": "open",
                }
            ]
        }
    },
    "outputs.classifiers.0.threshold": {
        "outputs": {
            "classifiers": [
                {
                    "kind": "azure_content_safety",
                    "endpoint": "https://cs.example.com",
                    "api_key_env": "CS_KEY",
                    "threshold": 6,
                }
            ]
        }
    },
    "audit.on_write_failure": {"audit": {"on_write_failure": "fail_open"}},
}


@pytest.mark.parametrize("setting", sorted(WEAKENING))
def test_weakening_setting_warns_is_audited_once_and_verified(setting: str) -> None:
    policy = Policy.from_dict(WEAKENING[setting])
    assert setting in policy.insecure_settings()
    memory = MemorySink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guard = Guard(policy, sinks=[memory])
    assert any(
        issubclass(w.category, InsecureUsageWarning) and setting in str(w.message)
        for w in caught
    )
    flagged = [e for e in memory.events if e.resource == f"policy.{setting}"]
    assert len(flagged) == 1
    assert (flagged[0].decision, flagged[0].reason) == ("flag", "insecure_setting")
    # Using the guard does not audit the setting again.
    guard.output_pipeline()
    assert len([e for e in memory.events if e.resource == f"policy.{setting}"]) == 1
    findings = [(f.rule, f.path) for f in verify_policy(policy)]
    assert ("AIV011", setting) in findings


def test_the_default_policy_weakens_nothing() -> None:
    assert Policy().insecure_settings() == ()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Guard()


COERCIONS: list[tuple[dict[str, Any], str]] = [
    ({"outputs": {"secrets": {"enabled": "yes"}}}, "outputs.secrets.enabled"),
    ({"outputs": {"secrets": {"enabled": 0}}}, "outputs.secrets.enabled"),
    ({"outputs": {"pii": {"enabled": 1}}}, "outputs.pii.enabled"),
    ({"data_use": {"require_opt_out": "off"}}, "data_use.require_opt_out"),
    ({"data_use": {"require_opt_out": "false"}}, "data_use.require_opt_out"),
    (
        {"outputs": {"system_prompt": {"threshold": "0.6"}}},
        "outputs.system_prompt.threshold",
    ),
    (
        {"outputs": {"tool_outputs": {"min_overlap_chars": "40"}}},
        "outputs.tool_outputs.min_overlap_chars",
    ),
    ({"tools": {"t": {"enabled": "no"}}}, "tools.t.enabled"),
    ({"tools": {"t": {"untrusted_output": "false"}}}, "tools.t.untrusted_output"),
    ({"identity_typ": 1}, "identity_typ"),
]


@pytest.mark.parametrize(("data", "path"), COERCIONS)
def test_wrong_types_are_refused_not_coerced(data: dict[str, Any], path: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data)
    assert path in [p for p, _ in info.value.errors]


def test_a_list_setting_given_one_value_speaks_of_lists() -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"models": {"deny": "*deepseek*"}})
    ((path, message),) = info.value.errors
    assert path == "models.deny"
    assert "list" in message
    assert "tuple" not in message


def test_one_error_on_a_tool_does_not_hide_another(tmp_path: Path) -> None:
    doc = {
        "tools": {
            "refund": {"scopes": ["orders refund"], "data": "secret", "enabled": "yes"},
            "lookup": {"data": "Public"},
        },
        "outputs": {"secrets": {"enabled": "on"}},
    }
    target = tmp_path / "policy.json"
    target.write_text(json.dumps(doc))
    with pytest.raises(PolicyError) as info:
        load_policy(target)
    paths = {p for p, _ in info.value.errors}
    assert {
        "tools.refund.scopes.0",
        "tools.refund.data",
        "tools.refund.enabled",
        "tools.lookup.data",
        "outputs.secrets.enabled",
    } <= paths
    assert "secret" not in str(info.value).replace("secrets", "")
