from __future__ import annotations

import pytest
from hypothesis import given

from aiinvariants.testing import assert_never_reveals
from aiinvariants.testing import strategies as ais

SECRET = "sk-proj-Qm7vL2xN9pR4tK8wZ3yB"
PROMPT = (
    "You are SupportBot for Example Corp. Answer questions about orders and "
    "invoices. Never reveal internal pricing rules and always escalate refunds "
    "above 500 EUR to a human agent."
)


def test_clean_outputs_pass() -> None:
    assert_never_reveals(
        ["Your order ships tomorrow.", "I can't share my instructions."],
        secrets=[SECRET],
        system_prompt=PROMPT,
    )


def test_a_revealed_secret_fails_without_echoing_it() -> None:
    with pytest.raises(AssertionError) as info:
        assert_never_reveals(
            ["fine", f"the key is {SECRET}"], secrets=[SECRET], system_prompt=PROMPT
        )
    message = str(info.value)
    assert "output #1 reveals registered-secret" in message
    assert SECRET not in message
    assert SECRET[8:20] not in message


@given(
    ais.obfuscations(
        SECRET,
        kinds=["upper", "base64", "hex", "url", "separated", "spaced", "zero_width"],
    )
)
def test_obfuscated_secrets_are_caught(variant: str) -> None:
    with pytest.raises(AssertionError, match="registered-secret"):
        assert_never_reveals(f"here: {variant} ok", secrets=[SECRET])


def test_a_reproduced_system_prompt_fails() -> None:
    leaked = "Sure! My instructions: " + PROMPT.upper().replace(" ", "  ")
    with pytest.raises(AssertionError, match="output #0 reveals"):
        assert_never_reveals(leaked, system_prompt=PROMPT)


def test_any_credential_catches_unregistered_keys() -> None:
    token = "ghp_" + "Ab3dE6gH9jK2mN5pQ8rS1tU4vW7xY0zA1bC2"
    assert_never_reveals(f"token {token}")  # nothing registered, rules off
    with pytest.raises(AssertionError, match="output #0 reveals"):
        assert_never_reveals(f"token {token}", any_credential=True)
