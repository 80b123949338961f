"""Where a stream is cut by the guard's own scan schedule.

The guard scans the head of an answer (the first ``EXACT_HEAD`` characters)
on a fixed schedule whatever the clock: after 16 characters, then each time
the answer has doubled (16, 32, 64, 128, 256, 512); the seams of the
schedule before it (grown by half: 48, 72, 108, 162, 243, 364, 546) stay
in the list, as places where text arrived one scan ago.
Past the head it scans every eighth of what arrived, or, when text arrives
faster than it can be scanned, in pieces of up to ``MAX_WAIT`` characters.
An attacker who knows the schedule places what must not leave at its
seams: a credential, a registered secret, a system-prompt copy, a card
number or an entity-encoded secret starting one character before, at, or
one after each scan point, and at the end of the exact head (where the
clock starts to decide), fed one character at a time, four at a time and
in one piece. Whatever the cut, the stream's output is the one-shot
check's text (redact), or it raises ``OutputBlocked`` (code
``output_blocked``) before any character of the finding (block). The head
costs a bounded number of scans (counted, not timed).
"""

from __future__ import annotations

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import (
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)
from aiinvariants.filters._base import Filter
from aiinvariants.filters._streaming import EXACT_HEAD, MAX_WAIT

pytestmark = pytest.mark.usefixtures("secrets_engine")

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
REGISTERED = "Zq9-vLm2#Rt8Kp4X"
GHP = "ghp_" + "aZ3kQ9" * 6
SECRETS = {
    "github token": f"token {GHP} ",
    "registered secret": f"it is {REGISTERED} ",
    "registered, entity-encoded": "".join(f"&#x{ord(c):x};" for c in REGISTERED),
    "system-prompt copy": PROMPT + " ",
    "card number": "card 4111 1111 1111 1111 ",
}
# The head's scan points, and the end of the exact head.
POINTS = [16, 32, 48, 64, 72, 108, 128, 162, 243, 256, 364, 546, EXACT_HEAD]
PROSE = "The team reviewed the report and agreed to ship it next week. " * 12


def _filters(action: str) -> list[Filter]:
    return [
        SecretsFilter(action=action, registered=[REGISTERED]),  # type: ignore[arg-type]
        SystemPromptLeakFilter(system_prompt=PROMPT, action=action),  # type: ignore[arg-type]
        PIIFilter(action=action),  # type: ignore[arg-type]
    ]


class Counting(OutputPipeline):
    """The real pipeline, counting the stream's scans."""

    scans = 0

    def scan_and_hold(self, text: str) -> tuple[list, int]:  # type: ignore[type-arg]
        self.scans += 1
        return super().scan_and_hold(text)


def _stream(
    pipeline: OutputPipeline, text: str, size: int, share: float
) -> tuple[str, OutputBlocked | None]:
    guard = StreamGuard(pipeline, scan_share=share)
    out: list[str] = []
    try:
        for at in range(0, len(text), size):
            out.append(guard.feed(text[at : at + size]))
        out.append(guard.close())
    except OutputBlocked as exc:
        return "".join(out), exc
    return "".join(out), None


def _placed(secret: str, point: int) -> str:
    """``secret`` starting at ``point`` (clean prose before and after it)."""
    head = (PROSE * 2)[:point]
    return head + secret + PROSE[:200]


@pytest.mark.parametrize("name", list(SECRETS))
@pytest.mark.parametrize("size", [1, 4, 4096])
def test_a_finding_at_a_scan_point_is_masked_as_the_check_masks_it(
    name: str, size: int
) -> None:
    pipeline = OutputPipeline(_filters("redact"))
    secret = SECRETS[name]
    for point in POINTS:
        for shift in (-1, 0, 1):
            text = _placed(secret, point + shift)
            expected = pipeline.check(text)
            assert expected.findings, (name, point, shift)
            for share in (1.0, 0.25):
                out, blocked = _stream(pipeline, text, size, share)
                assert blocked is None, (name, point, shift)
                assert out == expected.text, (name, point, shift, share)


@pytest.mark.parametrize("name", list(SECRETS))
def test_a_blocking_finding_at_a_scan_point_raises_before_it_is_emitted(
    name: str,
) -> None:
    pipeline = OutputPipeline(_filters("block"))
    secret = SECRETS[name]
    for point in POINTS:
        for shift in (-1, 0, 1):
            text = _placed(secret, point + shift)
            expected = pipeline.check(text)
            assert expected.blocked
            first = min(f.start for f in expected.findings if f.action == "block")
            for size in (1, 4):
                out, blocked = _stream(pipeline, text, size, 1.0)
                assert blocked is not None, (name, point, shift, size)
                assert blocked.code == "output_blocked"
                assert len(out) <= first, (name, point, shift, size)
                assert text.startswith(out)


def test_the_head_costs_a_bounded_number_of_scans() -> None:
    """A clean answer of EXACT_HEAD characters fed one character at a time:
    six scans (five on the schedule, at 16, 32, 64, 128 and 256, one at
    close), where growing by half ran nine and one eighth nineteen; the
    first text still appears after 16 characters."""
    pipeline = Counting(_filters("redact"))
    text = (PROSE * 2)[:EXACT_HEAD]
    guard = StreamGuard(pipeline)
    first = None
    out: list[str] = []
    for at, char in enumerate(text, start=1):
        out.append(guard.feed(char))
        if out[-1] and first is None:
            first = at
    out.append(guard.close())
    assert "".join(out) == pipeline.check(text).text
    assert first is not None
    assert first <= 16
    assert pipeline.scans <= 6


def test_past_the_head_a_fast_stream_still_masks_at_every_seam() -> None:
    """Past the exact head, a stream fed faster than it is scanned is cut
    where the clock says: a credential after MAX_WAIT characters of prose,
    at the seam of the first large scan, is still masked exactly."""
    pipeline = OutputPipeline(_filters("redact"))
    filler = (PROSE * (MAX_WAIT // len(PROSE) + 2))[: MAX_WAIT + 3]
    for shift in (-40, -1, 0, 1, 40):
        text = filler[: MAX_WAIT + shift] + SECRETS["github token"] + PROSE[:100]
        expected = pipeline.check(text)
        out, blocked = _stream(pipeline, text, 64, 0.25)
        assert blocked is None
        assert out == expected.text
        assert GHP not in out
