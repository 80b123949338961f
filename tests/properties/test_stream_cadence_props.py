"""When the stream guard scans: never changes what comes out, only when.

The guard scans on a character schedule (16 characters first, then a step
that grows with the answer) as long as its scans took at most
``scan_share`` of the stream's wall time; past that it waits for
:data:`MAX_WAIT` characters: text that arrives faster than it can be scanned
is scanned in large pieces. The clock is replaced here by one the test moves
(between chunks, and during each scan), so every schedule is exercised
deterministically.
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
from aiinvariants.filters import _streaming as streaming_module
from aiinvariants.filters._streaming import EXACT_HEAD, MAX_WAIT, SCAN_SHARE

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
    """A monotonic clock the test moves by hand; each scan costs ``scan_cost``
    seconds of it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.scan_cost = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(
        streaming_module, "time", SimpleNamespace(monotonic=fake.monotonic)
    )
    scan = StreamGuard._scan

    def costly_scan(self: StreamGuard, *, final: bool) -> None:
        fake.now += fake.scan_cost
        scan(self, final=final)

    monkeypatch.setattr(StreamGuard, "_scan", costly_scan)
    return fake


@pytest.mark.parametrize("bad", [0, -1, 1.5, math.nan, math.inf, "0.1", True, None])
def test_scan_share_must_be_a_number_in_zero_one(bad: object) -> None:
    with pytest.raises(PolicyError, match="scan_share"):
        StreamGuard(REDACT, scan_share=bad)  # type: ignore[arg-type]


def test_fast_text_is_scanned_in_large_pieces(clock: Clock) -> None:
    """Scans cost far more time than the text takes to arrive: the first
    text still appears after 16 characters, then nothing is scanned until
    MAX_WAIT characters wait, and the output is exact."""
    clock.scan_cost = 0.001
    text = ("Plain words for a while. " * 1500) + f"then {GHP} end"
    guard = StreamGuard(REDACT)
    out: list[str] = []
    first = None
    worst = 0
    for i in range(0, len(text), 4):
        clock.now += 1e-7
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
    """Text arrives slowly next to what a scan costs (a model at reading
    pace): every feed returns exactly what the character schedule alone
    (``scan_share=1``) returns."""
    clock.scan_cost = 0.0001
    text = f"Hello there. {PROMPT} and {GHP} and more words. " * 6
    paced = StreamGuard(REDACT)
    plain = StreamGuard(REDACT, scan_share=1)
    for i in range(0, len(text), 3):
        chunk = text[i : i + 3]
        clock.now += 0.03
        assert paced.feed(chunk) == plain.feed(chunk)
    assert paced.close() == plain.close()


def test_a_fixed_batch_ignores_the_clock(clock: Clock) -> None:
    text = f"a {GHP} b " * 30
    clock.scan_cost = 1.0
    timed = StreamGuard(REDACT, batch=7, scan_share=0.01)
    plain = StreamGuard(REDACT, batch=7, scan_share=1)
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
    steps=st.lists(st.sampled_from([0.0, 1e-6, 0.001, 1.0]), min_size=1),
    cost=st.sampled_from([0.0, 1e-5, 0.01]),
    share=st.sampled_from([SCAN_SHARE, 1.0, 0.01, 0.5]),
)
def test_any_clock_any_chunking_same_as_one_shot(
    clock: Clock,
    text: str,
    cuts: list[int],
    steps: list[float],
    cost: float,
    share: float,
) -> None:
    clock.scan_cost = cost
    for pipeline in (REDACT, BLOCK):
        expected = pipeline.check(text)
        guard = StreamGuard(pipeline, scan_share=share)
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


@pytest.mark.parametrize(
    ("head", "filler"),
    [("ok ", "\u200b"), ("password = ", "\u0301"), ("You are SupportBot", "\u2060")],
)
def test_budgeted_scans_keep_stuffed_holds_bounded(
    clock: Clock, head: str, filler: str
) -> None:
    """Invisible characters stuffed after held text, fed faster than it can
    be scanned: the guard either refuses the answer (``stream-undecided``)
    or ends with the one-shot check's text, and never holds more than
    MAX_WAIT characters on top of the hold cap."""
    from aiinvariants.filters._streaming import HOLD_CAP

    clock.scan_cost = 0.001
    pipeline = REDACT
    text = head + filler * (HOLD_CAP + MAX_WAIT + 4096) + '"hU7kd82Lpq9Xz" end'
    guard = StreamGuard(pipeline)
    out: list[str] = []
    worst = 0
    blocked = None
    try:
        for i in range(0, len(text), 512):
            clock.now += 1e-6
            out.append(guard.feed(text[i : i + 512]))
            worst = max(worst, guard.held_back)
        out.append(guard.close())
    except OutputBlocked as exc:
        blocked = exc
    if blocked is not None:
        assert "stream-undecided" in blocked.rule_ids
        assert pipeline.check(text).text.startswith("".join(out))
    else:
        assert "".join(out) == pipeline.check(text).text
    assert "hU7kd82Lpq9Xz" not in "".join(out)
    limit = HOLD_CAP + MAX_WAIT + pipeline.max_finding + 2 * pipeline.context
    assert worst <= limit + 512


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=texts, cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_a_short_answer_comes_out_in_the_same_pieces_whatever_the_clock(
    clock: Clock, text: str, cuts: list[int]
) -> None:
    """The first EXACT_HEAD characters are scanned on the character schedule
    however slow the scans: a short answer's framing (which feed returns
    which text) never depends on timing."""
    text = text[:EXACT_HEAD]
    clock.scan_cost = 1.0  # scans far slower than the text arrives
    timed = StreamGuard(REDACT)
    plain = StreamGuard(REDACT, scan_share=1)
    for chunk in chunked(text, cuts):
        clock.now += 1e-9
        assert timed.feed(chunk) == plain.feed(chunk)
    assert timed.close() == plain.close()
