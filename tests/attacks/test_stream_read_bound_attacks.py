"""How much text a stream reads per character it is fed, by class of input.

Past the head of an answer, ``StreamGuard`` scans each time a quarter of
what the next scan reads has arrived (at least ``BODY_STEP`` characters, at
most ``L + 2C``), so prose flows with a hold-back of tens of characters.
An attacker who can keep the tail undecided (invisible characters after a
keyword, an open base64 run, registered secrets back to back, a repeated
prefix of the system prompt) makes every scan read that whole tail; the
step grows with it, so the characters read per character fed stay bounded
(at most about 6 here, on the character schedule alone, which no clock
budget relaxes), and the output is still the one-shot check's.
"""

from __future__ import annotations

import base64
import random

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import (
    Finding,
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
REGISTERED = "Zq9-vLm2#Rt8Kp4X"
_RND = random.Random(13)
CASES = {
    "prose": "The team reviewed the report and agreed to ship it next week. " * 160,
    "zero-width after a keyword": "ok password = " + "\u200b" * 8000 + " end",
    "open base64 run": base64.b64encode(
        bytes(_RND.randrange(256) for _ in range(6000))
    ).decode()
    + " end",
    "registered secrets back to back": "start " + REGISTERED * 500 + " end",
    "system prompt prefix repeated": "You are SupportBot for Example " * 260,
}


class Reading(OutputPipeline):
    """The real pipeline, counting the characters its stream scans read."""

    read = 0

    def scan(self, text: str) -> list[Finding]:  # scan_and_hold calls it too
        self.read += len(text)
        return super().scan(text)


def _pipeline() -> Reading:
    return Reading(
        [
            SecretsFilter(action="redact", registered=[REGISTERED]),
            SystemPromptLeakFilter(system_prompt=PROMPT, action="redact"),
            PIIFilter(action="redact"),
        ]
    )


@pytest.mark.parametrize("size", [4, 64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_characters_read_per_character_fed_stay_bounded(name: str, size: int) -> None:
    text = CASES[name]
    pipeline = _pipeline()
    expected = _pipeline().check(text)
    guard = StreamGuard(pipeline, scan_share=1)
    out: list[str] = []
    code = None
    try:
        for at in range(0, len(text), size):
            out.append(guard.feed(text[at : at + size]))
        out.append(guard.close())
    except OutputBlocked as exc:  # a stuffed tail past the cap: refused
        code = exc.code
    if code is None:
        assert "".join(out) == expected.text
    else:
        assert code == "output_blocked"
        assert expected.text.startswith("".join(out))
    assert REGISTERED not in "".join(out)
    # The one-shot check read each character once: the stream at most ~6
    # times (the bound is 8, with room for the head's doublings).
    assert pipeline.read <= 8 * len(text), (name, pipeline.read / len(text))
