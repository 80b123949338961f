"""When the stream guard scans: never changes what comes out, only when.

The guard scans on a character schedule (16 characters first, then a step
that grows with the answer) and, by default, at most every ``interval``
seconds unless :data:`MAX_WAIT` characters wait: text that arrives faster
than anyone reads it is scanned in large pieces. The clock is replaced here
by one the test moves, so every schedule is exercised deterministically.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked, PolicyError
from aiinvariants.filters import (
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)
from aiinvariants.filters import streaming as streaming_module
from aiinvariants.filters.streaming import INTERVAL, MAX_WAIT

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
GHP = "ghp_" + "aZ3kQ9" * 6
REDACT = OutputPipeline(
    [
        SecretsFilter(action="redact"),
        SystemPromptLeakFilter(system_prompt=PROMPT, action="redact"),
        PIIFilter(action="redact"),
    ]
)
BLOCK = OutputPipeline(
    [SecretsFilter(), SystemPromptLeakFilter(system_prompt=PROMPT), PIIFilter()]
)
FRAGMENTS = [
    "Plain words for a while. ",
    f"token {GHP} ",
    PROMPT,
    "mail jane.doe@example.com ",
    "4111 1111 1111 1111 ",
    "\u200b",
    "&#x67;hp_",
    " ",
]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(
        streaming_module, "time", SimpleNamespace(monotonic=fake.monotonic)
    )
    return fake


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, math.inf, "0.1", True, None])
def test_interval_must_be_a_finite_number_of_seconds(bad: object) -> None:
    with pytest.raises(PolicyError, match="interval"):
        StreamGuard(REDACT, interval=bad)  # type: ignore[arg-type]


def test_fast_text_is_scanned_in_large_pieces(clock: Clock) -> None:
    """The clock stands still (text arrives faster than it can be read): the
    first text still appears after 16 characters, then nothing is scanned
    until MAX_WAIT characters wait, and the output is exact."""
    text = ("Plain words for a while. " * 1500) + f"then {GHP} end"
    guard = StreamGuard(REDACT)
    out: list[str] = []
    first = None
    worst = 0
    for i in range(0, len(text), 4):
        out.append(guard.feed(text[i : i + 4]))
        if out[-1] and first is None:
            first = i + 4
        worst = max(worst, guard.held_back)
    out.append(guard.close())
    assert first is not None
    assert first <= 16
    assert worst > 4096  # not scanned on the character schedule
    assert worst <= MAX_WAIT + REDACT.max_finding + 2 * REDACT.context + 4
    assert "".join(out) == REDACT.check(text).text


def test_text_at_reading_pace_is_scanned_on_the_character_schedule(
    clock: Clock,
) -> None:
    """When at least ``interval`` passes between chunks, every feed returns
    exactly what the character schedule alone returns."""
    text = f"Hello there. {PROMPT} and {GHP} and more words. " * 6
    paced = StreamGuard(REDACT)
    plain = StreamGuard(REDACT, interval=0)
    for i in range(0, len(text), 3):
        chunk = text[i : i + 3]
        clock.now += INTERVAL
        assert paced.feed(chunk) == plain.feed(chunk)
    assert paced.close() == plain.close()


def test_a_fixed_batch_ignores_the_clock(clock: Clock) -> None:
    text = f"a {GHP} b " * 30
    timed = StreamGuard(REDACT, batch=7, interval=60)
    plain = StreamGuard(REDACT, batch=7, interval=0)
    for ch in text:
        assert timed.feed(ch) == plain.feed(ch)
    assert timed.close() == plain.close()


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


texts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    text=texts,
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
    steps=st.lists(st.sampled_from([0.0, 0.001, INTERVAL, 1.0]), min_size=1),
    interval=st.sampled_from([INTERVAL, 0.0, 0.01, 10.0]),
)
def test_any_clock_any_chunking_same_as_one_shot(
    clock: Clock, text: str, cuts: list[int], steps: list[float], interval: float
) -> None:
    for pipeline in (REDACT, BLOCK):
        expected = pipeline.check(text)
        guard = StreamGuard(pipeline, interval=interval)
        out: list[str] = []
        blocked = False
        try:
            for chunk, step in zip(chunked(text, cuts), itertools.cycle(steps)):
                clock.now += step
                out.append(guard.feed(chunk))
            out.append(guard.close())
        except OutputBlocked:
            blocked = True
        assert blocked == expected.blocked
        if blocked:
            assert expected.text.startswith("".join(out))
        else:
            assert "".join(out) == expected.text
