"""The stream guard's scan schedule and its judging-budget windows.

* On the character schedule (``scan_share=1``), a scan runs at the first
  feed that brings the answer to the next scan point, and only there: 16
  characters, then all of what arrived in the head (the first
  ``EXACT_HEAD`` characters: it is scanned each time it has doubled), past
  it a quarter of what the next scan reads (at least ``BODY_STEP``), at
  most ``L + 2C`` unless a sixth of the read is more. A reference model of
  that schedule is checked against the real guard for any chunking.
* A dense stretch of candidates (a credential, then decoys the judge
  dismisses) followed by prose, cut anywhere: the credential is never
  emitted, and when the whole answer stays within its judging budget the
  stream's output is the one-shot check's text.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import (
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)
from aiinvariants.filters._streaming import BODY_STEP, EXACT_HEAD

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
GHP = "ghp_" + "Xq7Lm2Rt9Vb4Nc8Kd1Fz6Hs3Jw5Pe0Ya2UgT"
DECOY = "password=abcdefg1 "
FRAGMENTS = [
    "Plain words for a while. ",
    f"token {GHP} ",
    PROMPT,
    "mail jane.doe@example.com ",
    "\u200b",
    "&#x67;hp_",
    " ",
    "x" * 90,
]


class Counting(OutputPipeline):
    """The real pipeline, recording how long the answer was at each scan."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.at: list[int] = []
        self.known = 0

    def scan_and_hold(self, text: str) -> tuple[list, int]:  # type: ignore[type-arg]
        self.at.append(self.known)
        return super().scan_and_hold(text)


def _pipeline() -> Counting:
    return Counting(
        [
            SecretsFilter(action="redact"),
            SystemPromptLeakFilter(system_prompt=PROMPT, action="redact"),
            PIIFilter(action="redact"),
        ]
    )


def _chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def _expected_scans(sizes: list[int], most: int, contexts: list[int]) -> list[int]:
    """The reference schedule: the answer's length at each scan. Past the
    head the step is a quarter of what the next scan reads, from the left
    context the guard kept after each scan (``contexts``) to the end."""
    out: list[int] = []
    due, known = 16, 0
    for size in sizes:
        known += size
        if known >= due:
            ctx = contexts[len(out)] if len(out) < len(contexts) else known
            out.append(known)
            reads = known - ctx
            body = max(BODY_STEP, min(most, reads // 4), reads // 6)
            due = known + (min(most, max(16, known)) if known < EXACT_HEAD else body)
    return out


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    text=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=80).map("".join),
    cuts=st.lists(st.integers(0, 10_000), max_size=60),
)
@example(text="".join(FRAGMENTS * 6), cuts=list(range(0, 3000, 7)))
@example(text="Plain words for a while. " * 200, cuts=list(range(0, 6000, 3)))
def test_scans_run_exactly_at_the_documented_points(text: str, cuts: list[int]) -> None:
    pipeline = _pipeline()
    guard = StreamGuard(pipeline, scan_share=1)
    chunks = _chunked(text, cuts)
    out: list[str] = []
    blocked = False
    fed: list[int] = []
    contexts: list[int] = []  # where the left context began after each scan
    try:
        for chunk in chunks:
            pipeline.known += len(chunk)
            fed.append(len(chunk))
            scans = len(pipeline.at)
            out.append(guard.feed(chunk))
            if len(pipeline.at) > scans:
                contexts.append(guard._ctx)
        out.append(guard.close())
    except OutputBlocked:  # pragma: no cover - the filters only redact
        blocked = True
    assert not blocked
    most = pipeline.max_finding + 2 * pipeline.context
    assert pipeline.at == _expected_scans(fed, most, contexts)
    assert "".join(out) == pipeline.check(text).text


def _dense_prefix(count: int) -> str:
    return f"Here: {GHP}\n" + DECOY * count


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(500, 1500),
    prose=st.integers(0, 1500),
    near=st.integers(-400, 400),
    cuts=st.lists(st.integers(0, 100_000), max_size=3),
    share=st.sampled_from([1.0, 0.25]),
)
def test_a_dense_stretch_cut_anywhere_never_releases_the_credential(
    count: int, prose: int, near: int, cuts: list[int], share: float
) -> None:
    """One cut near the end of the dense stretch (a window of decoys only,
    past its budget when the stretch is long enough), others anywhere."""
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    dense = _dense_prefix(count)
    text = dense + "\nAll good, nothing more to say. " * prose
    expected = pipeline.check(text)
    guard = StreamGuard(pipeline, scan_share=share)
    out: list[str] = []
    blocked = None
    try:
        for chunk in _chunked(text, [*cuts, max(0, len(dense) + near)]):
            out.append(guard.feed(chunk))
        out.append(guard.close())
    except OutputBlocked as exc:
        blocked = exc
    emitted = "".join(out)
    assert GHP not in emitted
    if blocked is not None:
        assert GHP not in str(blocked)
    elif not expected.blocked:
        assert emitted == expected.text
