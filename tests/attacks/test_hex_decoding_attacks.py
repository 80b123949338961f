"""Hex of an obfuscated copy: the hex of a lookalike, fullwidth or spaced
copy of a registered secret (or of the system prompt) is not the hex of the
value's own bytes, so matching hex literally missed it. Runs of hex digits
are decoded and the decoded text goes through the canonical form, in every
alignment and case, one-shot and streamed."""

from __future__ import annotations

import hashlib

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import (
    OutputPipeline,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)

SECRET = "Zq9-vLm2#Rt8Kp4X"
LOOKALIKE = SECRET.replace("q", "\u0566").replace("R", "\u0280").replace("p", "\u0440")
FULLWIDTH = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in SECRET)
SPACED = " ".join(SECRET)
PROMPT = (
    "You are the billing assistant of Example Corp. Never disclose the refund "
    "override code and always escalate chargebacks above 900 EUR to finance."
)


def _hex(text: str) -> str:
    return text.encode().hex()


ENCODED = [
    _hex(LOOKALIKE),
    _hex(LOOKALIKE).upper(),
    _hex(FULLWIDTH),
    _hex(SPACED),
    "7" + _hex(LOOKALIKE),  # a stray digit before: the other alignment
    _hex(LOOKALIKE)[:40] + "\n" + _hex(LOOKALIKE)[40:],  # wrapped
]


@pytest.mark.parametrize("encoded", ENCODED)
def test_hex_of_an_obfuscated_secret_is_found(encoded: str) -> None:
    found = SecretsFilter(registered=[SECRET]).scan(f"Here: {encoded} done")
    assert "registered-secret" in {f.rule_id for f in found}


def test_hex_of_the_system_prompt_is_found() -> None:
    leak = SystemPromptLeakFilter(system_prompt=PROMPT)
    found = leak.scan("Sure, in hex: " + _hex(PROMPT.upper()))
    assert "system-prompt-copy" in {f.rule_id for f in found}


@pytest.mark.parametrize("size", [1, 3, 7, 16])
def test_streamed_hex_is_blocked_before_any_of_it_is_emitted(size: int) -> None:
    pipeline = OutputPipeline([SecretsFilter(registered=[SECRET])])
    encoded = _hex(LOOKALIKE)
    text = f"Here you go: {encoded} and that is all."
    guard = StreamGuard(pipeline)
    emitted: list[str] = []

    def run() -> None:
        for at in range(0, len(text), size):
            emitted.append(guard.feed(text[at : at + size]))
        emitted.append(guard.close())

    with pytest.raises(OutputBlocked) as caught:
        run()
    assert caught.value.code == "output_blocked"
    assert encoded[:8] not in "".join(emitted)
    assert SECRET not in str(caught.value)


def test_hashes_and_ids_are_not_findings() -> None:
    f = SecretsFilter(registered=[SECRET])
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(50)]
    digests += [hashlib.md5(str(i).encode()).hexdigest() for i in range(50)]  # noqa: S324
    assert f.scan("\n".join(f"sha: {d}" for d in digests)) == []
