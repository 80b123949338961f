from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from aiinvariants import Policy
from aiinvariants._verify import (
    RULES,
    render_json,
    render_sarif,
    render_text,
    verify_file,
    verify_policy,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "policies"
TODAY = date(2026, 11, 23)


def rules(findings: list) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(f.rule, f.path) for f in findings}


def test_the_shipped_good_policy_has_no_findings() -> None:
    assert verify_file(EXAMPLES / "support-assistant.yaml", today=TODAY) == []


def test_the_deliberately_bad_policy_reports_every_problem() -> None:
    found = verify_file(EXAMPLES / "careless.yaml", today=TODAY)
    assert rules(found) == {
        ("AIV001", "tools.open_floodgate"),
        ("AIV002", "tools.read_ticket"),
        ("AIV002", "tools.export_crm"),
        ("AIV004", "tools.export_crm.data"),
        ("AIV005", "models.allow.1"),
        ("AIV006", "models.allow.0"),
        ("AIV007", "regions.allow.1"),
        ("AIV007", "regions.declared.https://myres.openai.azure.com"),
        ("AIV008", "use_cases.credit_scoring.approval"),
        ("AIV009", "use_cases.hiring.approval.expires"),
        ("AIV011", "data_use.require_opt_out"),
    }
    levels = [f.level for f in found]
    assert levels == sorted(levels, key=["error", "warning", "note"].index)


def test_private_tool_without_scopes_in_an_internal_app() -> None:
    policy = Policy.from_dict({"tools": {"read_crm": {"data": "confidential"}}})
    assert rules(verify_policy(policy, today=TODAY)) == {
        ("AIV003", "tools.read_crm.scopes")
    }


def test_a_disabled_forbidden_tool_is_not_an_error() -> None:
    policy = Policy.from_dict(
        {
            "tools": {
                "open_floodgate": {
                    "capabilities": ["life_safety"],
                    "scopes": ["scada:write"],
                    "data": "restricted",
                    "enabled": False,
                }
            }
        }
    )
    assert verify_policy(policy, today=TODAY) == []


def test_approval_expiring_soon_is_a_warning() -> None:
    policy = Policy.from_dict(
        {
            "use_cases": {
                "credit_scoring": {
                    "high_risk": "essential_services",
                    "approval": {
                        "by": "legal@example.com",
                        "reference": "LEG-1",
                        "expires": "2026-12-10",
                    },
                }
            }
        }
    )
    (finding,) = verify_policy(policy, today=TODAY)
    assert (finding.rule, finding.level) == ("AIV010", "warning")
    assert verify_policy(policy, today=date(2026, 10, 1)) == []
    assert verify_policy(policy, today=date(2026, 12, 11))[0].rule == "AIV009"


def test_a_file_that_does_not_load_is_reported_not_raised() -> None:
    found = verify_file(FIXTURES / "bad" / "wildcard_scope.yaml", today=TODAY)
    assert found
    assert {f.rule for f in found} == {"AIV000"}
    assert any("scopes" in f.path for f in found)
    missing = verify_file(FIXTURES / "nope.yaml", today=TODAY)
    assert [f.rule for f in missing] == ["AIV000"]


def test_renderings() -> None:
    found = verify_file(EXAMPLES / "careless.yaml", today=TODAY)
    text = render_text(found, source="careless.yaml")
    assert "5 error(s), 5 warning(s), 1 note(s)" in text
    data = json.loads(render_json(found, source="careless.yaml"))
    assert len(data["findings"]) == len(found)
    assert set(data["findings"][0]) == {"rule", "level", "path", "message"}
    assert render_text([], source="x.yaml") == "x.yaml: ok, no findings"


def test_sarif_structure() -> None:
    found = verify_file(EXAMPLES / "careless.yaml", today=TODAY)
    log = json.loads(render_sarif(found, source="careless.yaml"))
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "aiinvariants"
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == sorted({f.rule for f in found})
    for result in run["results"]:
        assert result["level"] in {"error", "warning", "note"}
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["message"]["text"]
        location = result["locations"][0]
        assert location["physicalLocation"]["artifactLocation"]["uri"]
    for rule in driver["rules"]:
        assert rule["defaultConfiguration"]["level"] == RULES[rule["id"]][0]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_is_documented(rule: str) -> None:
    import aiinvariants._verify as module

    assert module.__doc__ is not None
    assert rule in module.__doc__
