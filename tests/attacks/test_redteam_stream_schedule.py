"""Red team of the StreamGuard schedule (issue #13): head doubling, body
step a quarter of the next read (``BODY_STEP``), clock rechecks, the
plain-ASCII canonical-length shortcut.

Each attack asserts the secure outcome: the stream's output is the one-shot
check's (or it is refused with ``output_blocked`` before the finding), and
the characters a stream reads per character fed stay bounded.
"""

from __future__ import annotations

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
PROSE = "The team reviewed the report and agreed to ship it next week. "


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


def _stream(
    pipeline: OutputPipeline, text: str, size: int, share: float = 1.0
) -> tuple[str, str | None]:
    guard = StreamGuard(pipeline, scan_share=share)
    out: list[str] = []
    try:
        for at in range(0, len(text), size):
            out.append(guard.feed(text[at : at + size]))
        out.append(guard.close())
    except OutputBlocked as exc:
        return "".join(out), exc.code
    return "".join(out), None


@pytest.mark.parametrize("mark", ["\u200b", "\u0301"])
def test_a_stretched_left_context_does_not_make_every_step_reread_it(
    mark: str,
) -> None:
    """Prose with 100 zero-width characters (or combining marks) after
    every letter: the left context (C canonical characters) spans ~28,000
    characters, and the body step was capped at L + 2C = 1104, so each
    scan reread the whole stretched window every 1104 characters: ~20-27
    reads per character fed on the character schedule (which no clock
    relaxes under ``scan_share=1``). The step must grow with the read."""
    stuffed = "".join(c + mark * 100 for c in PROSE)
    text = (stuffed * 20)[:80_000] + " " + f"token ghp_{'aZ3kQ9' * 6} done"
    pipeline = _pipeline()
    out, code = _stream(pipeline, text, 64)
    assert code is None
    assert out == _pipeline().check(text).text
    assert "aZ3kQ9" * 6 not in out
    assert pipeline.read <= 8 * len(text), pipeline.read / len(text)


def _hex_dump(filler: int, payload: bytes, sep: str) -> str:
    """``payload`` hex-encoded after ``filler`` bytes of printable filler,
    in one dump, followed by prose."""
    blob = bytes(32 + (i * 37) % 95 for i in range(filler)) + payload + b"\x00" * 8
    dump = blob.hex(sep) if sep else blob.hex()
    return "Here is the dump: " + dump + " end of the dump. " + PROSE * 3


@pytest.mark.parametrize("sep", ["", " "])
@pytest.mark.parametrize("filler", [5000, 9000, 12000])
@pytest.mark.parametrize(
    "payload",
    [PROMPT.encode(), "".join(chr(ord(c) + 0xFEE0) for c in REGISTERED).encode()],
    ids=["system prompt", "registered secret, fullwidth"],
)
def test_a_copy_hex_encoded_deep_in_a_long_dump_is_judged_as_the_check_judges_it(
    payload: bytes, filler: int, sep: str
) -> None:
    """The one-shot check cut a hex stretch longer than 16 KB into regex
    matches of 8192 bytes counted from the stretch's start and decoded each;
    a stream holds an open run only up to 16 KB, then lets it out. A system
    prompt (or a registered secret written in fullwidth, whose bytes only
    the decoded run shows) hex-encoded after 8 KB of hex filler was blocked
    by the check and streamed out whole. Whatever the check decides, the
    stream decides the same; within the cap both block."""
    text = _hex_dump(filler, payload, sep)
    pipeline = OutputPipeline(
        [
            SecretsFilter(action="block", registered=[REGISTERED]),
            SystemPromptLeakFilter(system_prompt=PROMPT, action="block"),
        ]
    )
    expected = pipeline.check(text)
    encoded = payload.hex(sep) if sep else payload.hex()
    if len(encoded) + 2 * filler * (1 + len(sep)) < 16000:
        assert expected.blocked  # within the decoding cap: found
    for size in (1, 64, 4096):
        out, code = _stream(pipeline, text, size)
        if expected.blocked:
            first = min(f.start for f in expected.findings if f.action == "block")
            assert code == "output_blocked", size
            assert len(out) <= first, size
            assert encoded not in out
        else:
            assert code is None
            assert out == expected.text


@pytest.mark.xfail(
    strict=True,
    reason="a judging budget carried across a stream's windows is not "
    "implemented: each window is judged with the budget of the answer so far "
    "but counts only its own candidates (documented divergence, "
    "docs/output-filters.md, 'A budget carried across a stream's windows')",
)
def test_an_answer_the_check_blocks_past_its_budget_is_blocked_by_a_stream() -> None:
    """``password=`` with a weak value, 1000 times: the one-shot check runs
    out of its judging budget and blocks the answer (``secrets-scan-limit``);
    a stream judges it window by window, each within the budget, and
    releases all of it (every value masked)."""
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    text = "password=abcdefg1 " * 1000
    assert pipeline.check(text).blocked
    out, code = _stream(pipeline, text, 16)
    assert code == "output_blocked"
    assert out == ""
