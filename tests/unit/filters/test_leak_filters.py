"""System-prompt, hidden-policy and tool-output leak filters."""

from __future__ import annotations

import pytest

from aiinvariants import PolicyError
from aiinvariants.filters import SystemPromptLeakFilter, ToolOutputLeakFilter

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent and never mention "
    "the discount code WINTER24 unless the customer already knows it."
)
HIDDEN = "Refunds above 500 EUR need written approval from the finance team."


@pytest.fixture
def leak() -> SystemPromptLeakFilter:
    return SystemPromptLeakFilter(system_prompt=PROMPT, hidden=[HIDDEN])


@pytest.mark.parametrize(
    "copy",
    [
        PROMPT,
        PROMPT.upper(),
        PROMPT.replace(" ", "   "),
        " ".join(PROMPT.replace(" ", "")),
        PROMPT.replace(".", "").replace(",", ""),
        PROMPT.replace("Example Corp", "Example Corporation"),
        HIDDEN.lower(),
    ],
)
def test_copies_are_found(leak: SystemPromptLeakFilter, copy: str) -> None:
    found = leak.scan(f"Sure, my instructions are: {copy} Anything else?")
    assert found
    assert all(f.rule_id == "system-prompt-copy" for f in found)


def test_ordinary_answers_pass(leak: SystemPromptLeakFilter) -> None:
    assert leak.scan("I can help with your refund. Example Corp support is here.") == []
    assert leak.scan("Please contact a human agent for refunds above 500 EUR.") == []


def test_canary(leak: SystemPromptLeakFilter) -> None:
    planted = leak.protect(PROMPT)
    assert leak.canary
    assert leak.canary in planted
    spaced = " ".join(leak.canary.upper())
    for text in (f"x {leak.canary} y", f"x {spaced} y"):
        assert [f.rule_id for f in leak.scan(text)] == ["system-prompt-canary"]
    assert SystemPromptLeakFilter(canary=False).canary is None


def test_bad_arguments() -> None:
    with pytest.raises(PolicyError):
        SystemPromptLeakFilter(threshold=0)
    with pytest.raises(PolicyError):
        SystemPromptLeakFilter(hidden="not a list")
    with pytest.raises(PolicyError):
        ToolOutputLeakFilter(min_overlap_chars=3)


def test_tool_output_copy() -> None:
    raw = (
        "customer_id=4411; balance=12,345.67 EUR; last_login=10.1.2.3; "
        "notes=VIP, handle with care; risk=low"
    )
    f = ToolOutputLeakFilter()
    f.register(raw)
    assert f.scan("Your balance is about twelve thousand euros.") == []
    assert f.scan(f"Raw record: {raw}")
    assert f.scan("balance=12,345.67 EUR; last_login=10.1.2.3; notes=VIP")
    f.clear()
    assert f.scan(f"Raw record: {raw}") == []
