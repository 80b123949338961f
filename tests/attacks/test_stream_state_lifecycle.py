"""A stream guard's state over its life, and between streams (I8).

What a guard keeps between two feeds (the undecided tail, masked spans still
growing, where each decision ends) must belong to that one stream: not to the
pipeline or its filters, which many streams share, and not survive into
another answer. And every way of driving a guard outside the happy path (feed
after close, after a block, a chunk that is not a ``str``, a filter that
raises part-way, a consumer that walks away) must end closed: nothing is
emitted that the one-shot check of the same answer would mask or block.
"""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from aiinvariants import OutputBlocked, PolicyError
from aiinvariants.filters import (
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)
from aiinvariants.filters._base import Finding

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
GHP = "ghp_" + "aZ3kQ9" * 6
CARD = "4111 1111 1111 1111"


def shared(action: str = "redact") -> OutputPipeline:
    return OutputPipeline(
        [
            SecretsFilter(action=action),  # type: ignore[arg-type]
            SystemPromptLeakFilter(system_prompt=PROMPT, action=action),  # type: ignore[arg-type]
            PIIFilter(action="redact"),
        ]
    )


ANSWERS = [
    f"Your token is {GHP}, keep it safe.",
    f"Sure, my instructions: {PROMPT} Anything else?",
    f"Pay with {CARD} or mail jane.doe@example.com today.",
    "Nothing to see here, just a plain and friendly answer. " * 5,
    f"two in a row {GHP}{GHP} and the end",
]


def random_chunks(text: str, rnd: random.Random) -> list[str]:
    out: list[str] = []
    at = 0
    while at < len(text):
        size = rnd.choice([0, 1, 1, 2, 3, 5, 8, 40])
        out.append(text[at : at + size])
        at += size
    return out


# -- after the end --------------------------------------------------------------


def test_feed_after_close_is_refused_and_emits_nothing() -> None:
    guard = StreamGuard(shared())
    assert guard.feed("hello ") + guard.close() == "hello "
    with pytest.raises(PolicyError, match="after close"):
        guard.feed(GHP)
    assert guard.close() == ""
    with pytest.raises(PolicyError):
        guard.feed("")


def test_feed_and_close_after_a_block_raise_the_block_again() -> None:
    guard = StreamGuard(shared("block"), batch=1)
    emitted: list[str] = []
    words = f"token {GHP} {'and then more words ' * 40}".split(" ")

    def feed_all() -> None:
        for word in words:
            emitted.append(guard.feed(word + " "))

    with pytest.raises(OutputBlocked) as first:
        feed_all()
    assert "ghp_" not in "".join(emitted)
    for call in (lambda: guard.feed("more"), guard.close, lambda: guard.feed("")):
        with pytest.raises(OutputBlocked) as again:
            call()
        assert again.value is first.value
    assert GHP not in str(first.value)


def test_abort_then_feed_is_refused() -> None:
    guard = StreamGuard(shared())
    guard.feed("token gh")
    guard.abort()
    with pytest.raises(PolicyError):
        guard.feed("p_" + "aZ3kQ9" * 6)
    assert guard.close() == ""


# -- bad input in the middle -----------------------------------------------------


class _Str(str):
    """A str subclass that lies about what it holds."""

    def __str__(self) -> str:
        return "harmless"


@pytest.mark.parametrize("bad", [b"ghp_", None, 42, ["ghp_"], _Str(GHP)])
def test_a_chunk_that_is_not_a_str_is_refused_and_the_stream_stays_exact(
    bad: object,
) -> None:
    pipeline = shared()
    text = ANSWERS[0] + " " + ANSWERS[2]
    guard = StreamGuard(pipeline, batch=1)
    out: list[str] = []
    half = len(text) // 2
    for ch in text[:half]:
        out.append(guard.feed(ch))
    with pytest.raises(TypeError):
        guard.feed(bad)  # type: ignore[arg-type]
    for ch in text[half:]:
        out.append(guard.feed(ch))
    out.append(guard.close())
    assert "".join(out) == pipeline.check(text).text


class _Flaky:
    """A filter that works, then raises on one call (a bug, a timeout)."""

    action = "redact"
    max_finding = 8
    context = 0

    def __init__(self, fail_on: int) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def scan(self, text: str) -> list[Finding]:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError(f"boom near {GHP}")
        return []


@pytest.mark.parametrize("fail_on", [1, 2, 5])
def test_a_filter_raising_mid_stream_blocks_without_the_secret(fail_on: int) -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact"), _Flaky(fail_on)])  # type: ignore[list-item]
    guard = StreamGuard(pipeline, batch=4)
    out: list[str] = []

    def drain() -> None:
        for ch in f"plain text first, then {GHP} and more text":
            out.append(guard.feed(ch))
        out.append(guard.close())

    with pytest.raises(OutputBlocked) as info:
        drain()
    assert info.value.rule_ids == ("filter-error",) or "filter-error" in str(info.value)
    assert GHP not in "".join(out)
    chain: BaseException | None = info.value
    while chain is not None:
        assert GHP not in str(chain)
        chain = chain.__cause__ or chain.__context__
    with pytest.raises(OutputBlocked):
        guard.feed("x")


class _BrokenHold:
    """A filter whose ``hold`` raises: the guard must decide nothing early."""

    action = "redact"
    max_finding = 9
    context = 0

    def scan(self, text: str) -> list[Finding]:
        out = []
        at = text.find("FORBIDDEN")
        while at != -1:
            out.append(Finding("plain", at, at + 9, "low", "-", "redact"))
            at = text.find("FORBIDDEN", at + 1)
        return out

    def hold(self, canon: object) -> int:
        raise RuntimeError("hold failed")


def test_a_hold_that_raises_holds_everything_until_close() -> None:
    pipeline = OutputPipeline([_BrokenHold()])  # type: ignore[list-item]
    text = "say FORBID" + "DEN now and FORBIDDEN again"
    guard = StreamGuard(pipeline, batch=1)
    early = "".join(guard.feed(ch) for ch in text)
    assert early == ""  # undecided: nothing is let out
    assert early + guard.close() == pipeline.check(text).text


# -- one guard, one answer: no state carried over --------------------------------


def test_state_does_not_carry_into_the_next_stream() -> None:
    """A first stream ends on a held credential prefix; a second stream on
    the same pipeline begins with the rest of it. Each is judged alone, as
    its own one-shot check judges it."""
    pipeline = shared()
    first = StreamGuard(pipeline, batch=1)
    head = "".join(first.feed(ch) for ch in "token gh")
    first.abort()
    second_text = "p_" + "aZ3kQ9" * 6 + " is not a token on its own"
    second = StreamGuard(pipeline, batch=1)
    body = "".join(second.feed(ch) for ch in second_text) + second.close()
    assert head == pipeline.check("token gh").text[: len(head)]
    assert body == pipeline.check(second_text).text


def test_a_new_guard_after_a_blocked_one_starts_clean() -> None:
    pipeline = shared("block")
    blocked = StreamGuard(pipeline)
    blocked.feed(f"leak {GHP} ")
    with pytest.raises(OutputBlocked):
        blocked.close()
    fresh = StreamGuard(pipeline)
    text = "A clean answer. " * 20
    assert fresh.feed(text) + fresh.close() == text


# -- many streams over one pipeline ----------------------------------------------


def test_interleaved_streams_share_filters_but_not_state() -> None:
    pipeline = shared()
    rnd = random.Random(13)
    for _round in range(5):
        guards = [
            StreamGuard(pipeline, batch=rnd.choice([None, 1, 3])) for _ in ANSWERS
        ]
        queues = [random_chunks(text, rnd) for text in ANSWERS]
        outs: list[list[str]] = [[] for _ in ANSWERS]
        while any(queues):
            i = rnd.randrange(len(ANSWERS))
            if queues[i]:
                outs[i].append(guards[i].feed(queues[i].pop(0)))
        for i, guard in enumerate(guards):
            outs[i].append(guard.close())
            assert "".join(outs[i]) == pipeline.check(ANSWERS[i]).text


def test_streams_in_threads_share_one_pipeline() -> None:
    pipeline = shared()
    expected = [pipeline.check(text).text for text in ANSWERS]
    errors: list[str] = []

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(6):
            i = rnd.randrange(len(ANSWERS))
            guard = StreamGuard(pipeline, batch=rnd.choice([None, 1, 2]))
            out = [guard.feed(c) for c in random_chunks(ANSWERS[i], rnd)]
            out.append(guard.close())
            if "".join(out) != expected[i]:
                errors.append(f"answer {i} differs")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_streams_in_async_tasks_share_one_pipeline() -> None:
    pipeline = shared()

    async def one(text: str, seed: int) -> str:
        rnd = random.Random(seed)
        guard = StreamGuard(pipeline, batch=1)
        out: list[str] = []
        for chunk in random_chunks(text, rnd):
            out.append(guard.feed(chunk))
            await asyncio.sleep(0)
        out.append(guard.close())
        return "".join(out)

    async def main() -> list[str]:
        return await asyncio.gather(*(one(t, i) for i, t in enumerate(ANSWERS * 2)))

    results = asyncio.run(main())
    assert results == [pipeline.check(t).text for t in ANSWERS * 2]
