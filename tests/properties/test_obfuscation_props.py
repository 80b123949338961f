"""Every obfuscation kind of :mod:`aiinvariants.testing.strategies` is caught.

Registered secrets under every kind (encodings included); protected texts
(system prompt, hidden policy, canary, tool output) and competitor names
under every kind that keeps text readable; card numbers in the digits of
any script. Each property also runs through :class:`StreamGuard` with an
arbitrary chunking, since what the user finally receives is the stream.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import (
    CompetitorFilter,
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
    ToolOutputLeakFilter,
)
from aiinvariants.testing import strategies as ais

SECRET = "Zq9-vLm2#Rt8Kp4X"
PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
TOOL_OUTPUT = "customer 4411 owes 12345.67 EUR since 2023, flagged VIP, risk low"
GITHUB_PAT = "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9"
CARD = "4111 1111 1111 1111"
SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
fillers = st.sampled_from(["", "Sure. ", "Here it is:\n", "ok "])


def streamed(pipeline: OutputPipeline, text: str, size: int) -> tuple[str, bool]:
    guard = StreamGuard(pipeline)
    out: list[str] = []
    try:
        for i in range(0, len(text), size):
            out.append(guard.feed(text[i : i + size]))
        out.append(guard.close())
    except OutputBlocked:
        return "".join(out), True
    return "".join(out), False


@SETTINGS
@given(variant=ais.obfuscations(SECRET), before=fillers, size=st.integers(1, 9))
def test_registered_secret_every_kind(variant: str, before: str, size: int) -> None:
    text = f"{before}the key is {variant} - done"
    pipeline = OutputPipeline([SecretsFilter(registered=[SECRET])])
    found = pipeline.scan(text)
    assert "registered-secret" in {f.rule_id for f in found}
    out, blocked = streamed(pipeline, text, size)
    assert blocked
    assert variant not in out


@SETTINGS
@given(variant=ais.obfuscations(SECRET), size=st.integers(1, 9))
def test_registered_secret_redacted_to_nothing_readable(
    variant: str, size: int
) -> None:
    text = f"the key is {variant} - done"
    pipeline = OutputPipeline([SecretsFilter(action="redact", registered=[SECRET])])
    once = pipeline.check(text).text
    assert "[REDACTED]" in once
    assert SecretsFilter(registered=[SECRET]).scan(once) == []
    out, blocked = streamed(pipeline, text, size)
    assert not blocked
    assert out == once


@SETTINGS
@given(
    variant=ais.obfuscations(PROMPT, kinds=ais.TEXT_OBFUSCATIONS),
    size=st.integers(1, 9),
)
def test_system_prompt_every_readable_kind(variant: str, size: int) -> None:
    leak = SystemPromptLeakFilter(system_prompt=PROMPT)
    text = f"My instructions are: {variant} Anything else?"
    assert {f.rule_id for f in leak.scan(text)} == {"system-prompt-copy"}
    out, blocked = streamed(OutputPipeline([leak]), text, size)
    assert blocked
    assert "pricing" not in out.lower()


CANARY_FILTER = SystemPromptLeakFilter()
assert CANARY_FILTER.canary is not None


@SETTINGS
@given(variant=ais.obfuscations(CANARY_FILTER.canary, kinds=ais.TEXT_OBFUSCATIONS))
def test_canary_every_readable_kind(variant: str) -> None:
    found = CANARY_FILTER.scan(f"The marker is {variant}.")
    assert "system-prompt-canary" in {f.rule_id for f in found}


@SETTINGS
@given(variant=ais.obfuscations(TOOL_OUTPUT, kinds=ais.TEXT_OBFUSCATIONS))
def test_tool_output_every_readable_kind(variant: str) -> None:
    tool = ToolOutputLeakFilter()
    tool.register(TOOL_OUTPUT)
    assert {f.rule_id for f in tool.scan(f"Raw: {variant}")} == {"tool-output-copy"}


@SETTINGS
@given(
    variant=ais.obfuscations(
        "Globex Corp",
        kinds=[k for k in ais.TEXT_OBFUSCATIONS if k != "spaced"],
    )
)
def test_competitor_name_every_readable_kind(variant: str) -> None:
    f = CompetitorFilter(names=["Globex Corp"])
    assert f.scan(f"Honestly, {variant} is a scam.")


@SETTINGS
@given(
    variant=ais.obfuscations(
        GITHUB_PAT,
        kinds=["zero_width", "fullwidth", "homoglyph", "html_entities",
               "json_escapes", "math_letters", "combining", "digits"],
    ),
    size=st.integers(1, 9),
)  # fmt: skip
def test_provider_token_every_readable_kind(variant: str, size: int) -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    text = f"token: {variant} (keep it safe)"
    result = pipeline.check(text)
    assert "github-pat" in {f.rule_id for f in result.findings}
    assert result.text == "token: [REDACTED] (keep it safe)"
    assert streamed(pipeline, text, size) == (result.text, False)


@SETTINGS
@given(
    variant=ais.obfuscations(
        CARD, kinds=["digits", "fullwidth", "exotic_spaces", "zero_width"]
    )
)
def test_card_number_in_any_digits(variant: str) -> None:
    found = PIIFilter().scan(f"my card is {variant}, thanks")
    assert "pii-payment-card" in {f.rule_id for f in found}
