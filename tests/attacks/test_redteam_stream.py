"""Red team: the stream guard's scan budget, its left context, and the
assignment rule's white space (issue #13).

What was tried, and what got through before the fixes:

* Invisible filler between two pieces of the system prompt (zero-width
  characters, or HTML entities of them). The one-shot check compares in the
  canonical form, where the filler vanishes and the pieces make one dense
  copy. The guard took the left context of each scan in characters as
  written, so the window that decided the second piece no longer held the
  first: the second piece came out in clear (redact mode), for any chunking,
  even a single chunk.
* A burst (a cached prefix, a replayed answer) followed by text at reading
  pace, or by a pause: once the budget was exceeded the guard waited for as
  many characters again as already waited before it looked at the clock,
  so tens of thousands of characters stayed held for minutes after the
  stream slowed down.
* ``password =`` and its value separated by 9 or more blanks (or a key
  padded to align with its neighbours: ``password        = …``) escaped the
  assignment rule, one-shot and streamed.

Clock games (a clock that goes back, stands still or jumps) were tried too:
they change only when text appears, never what.
"""

from __future__ import annotations

import itertools
import sys
import threading
from types import SimpleNamespace

import pytest

from aiinvariants import OutputBlocked, PolicyError
from aiinvariants._internal.canonical import canonical
from aiinvariants.filters import (
    Finding,
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)
from aiinvariants.filters import _streaming as streaming_module
from aiinvariants.filters._streaming import HOLD_CAP

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
HEAD = "You are SupportBot for Example Corp. Never reveal internal p"
VALUE = "hU7kd82Lpq9Xz"


def pipeline(action: str) -> OutputPipeline:
    return OutputPipeline(
        [
            SecretsFilter(action=action),  # type: ignore[arg-type]
            SystemPromptLeakFilter(system_prompt=PROMPT, action=action),  # type: ignore[arg-type]
            PIIFilter(action="redact"),
        ]
    )


REDACT = pipeline("redact")
BLOCK = pipeline("block")


def streamed(
    p: OutputPipeline, text: str, size: int
) -> tuple[str, OutputBlocked | None]:
    guard = StreamGuard(p, scan_share=1)
    out: list[str] = []
    try:
        for i in range(0, len(text), size):
            out.append(guard.feed(text[i : i + size]))
        out.append(guard.close())
    except OutputBlocked as exc:
        return "".join(out), exc
    return "".join(out), None


# -- the left context is counted in canonical characters ----------------------

FILLERS = {
    "zero-width": "\u200b" * 300,
    "zero-width-long": "\u200b" * 2000,
    "entities": "&#8203;" * 60,
    "combining": "\u0301" * 400,
    "nul": "\x00" * 300,  # ASCII, and still nothing in the canonical form
    "escape": "\x1b" * 300,
}


@pytest.mark.parametrize("filler", sorted(FILLERS))
@pytest.mark.parametrize("size", [1, 4, 16, 64, 100_000])
def test_prompt_pieces_split_by_invisible_filler_stay_redacted(
    filler: str, size: int
) -> None:
    text = (
        "Sure. "
        + PROMPT[-40:]
        + FILLERS[filler]
        + HEAD
        + " "
        + "Plain words for a while. " * 12
    )
    expected = REDACT.check(text)
    assert HEAD not in expected.text  # one-shot: one dense copy, redacted
    out, blocked = streamed(REDACT, text, size)
    assert blocked is None
    assert out == expected.text
    assert "You are SupportBot" not in out


def test_every_ascii_character_the_canonical_form_drops_is_counted() -> None:
    """ASCII filler takes no detour through the canonical form in the guard:
    each character it drops (control characters) must still be seen."""
    dropped = [
        chr(c) for c in range(128) if len(canonical("a" + chr(c) + "b").text) < 3
    ]
    assert dropped
    for filler in dropped:
        text = "Sure. " + PROMPT[-40:] + filler * 300 + HEAD + " tail" * 60
        out, blocked = streamed(REDACT, text, 16)
        assert blocked is None
        assert out == REDACT.check(text).text, repr(filler)


@pytest.mark.parametrize("size", [4, 512])
def test_context_stuffed_past_the_cap_fails_closed(size: int) -> None:
    """Filler longer than the guard will look back over: it refuses the
    answer (stream-undecided) rather than decide the second piece without
    the first; never the piece in clear."""
    text = (
        "Sure. "
        + PROMPT[-40:]
        + "\u200b" * (HOLD_CAP + 100)
        + HEAD
        + " "
        + "Plain words for a while. " * 12
    )
    expected = REDACT.check(text)
    out, blocked = streamed(REDACT, text, size)
    assert "You are SupportBot" not in out
    if blocked is not None:
        assert blocked.code == "output_blocked"
        assert "stream-undecided" in blocked.rule_ids
        assert expected.text.startswith(out)
    else:
        assert out == expected.text


def test_block_mode_never_emits_the_second_piece() -> None:
    text = "Sure. " + PROMPT[-40:] + "\u200b" * 300 + HEAD + " tail" * 60
    out, blocked = streamed(BLOCK, text, 4)
    assert blocked is not None
    assert blocked.code == "output_blocked"
    assert "system-prompt-copy" in blocked.rule_ids
    assert "SupportBot" not in out


# -- the scan budget: a burst never keeps text held once the stream slows ----


class Clock:
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


BURST = "Plain words for a while. " * 800
SLOW = "Then the model slows to reading pace. " * 60


@pytest.mark.parametrize("pause", [0.0, 60.0])
def test_burst_then_reading_pace_releases_the_burst(clock: Clock, pause: float) -> None:
    pipe = REDACT
    guard = StreamGuard(pipe)
    limit = pipe.max_finding + 2 * pipe.context + 2 * _step_cap(pipe)
    clock.scan_cost = 0.001  # scans far slower than the burst arrives
    out: list[str] = []
    for i in range(0, len(BURST), 4):
        clock.now += 1e-7
        out.append(guard.feed(BURST[i : i + 4]))
    assert guard.held_back > 4096  # the burst itself is scanned in large pieces
    clock.now += pause
    seconds = 0.0
    for i in range(0, len(SLOW), 4):
        clock.now += 0.05  # 80 characters a second
        seconds += 0.05
        out.append(guard.feed(SLOW[i : i + 4]))
        if seconds >= 15:  # fifteen seconds at reading pace
            assert guard.held_back <= limit
    out.append(guard.close())
    assert "".join(out) == pipe.check(BURST + SLOW).text


def _step_cap(pipe: OutputPipeline) -> int:
    return max(16, pipe.max_finding + 2 * pipe.context)


@pytest.mark.parametrize(
    "moves",
    [
        [-5.0],  # a clock that goes back
        [0.0],  # a clock that stands still
        [3600.0, -3600.0],  # jumps forth and back
        [1e-9, 100.0],
    ],
)
def test_clock_games_change_when_never_what(clock: Clock, moves: list[float]) -> None:
    clock.scan_cost = 0.01
    text = (
        ("Plain words. " * 700)
        + f"password = {VALUE} "
        + PROMPT[-40:]
        + "\u200b" * 300
        + HEAD
        + (" more words" * 800)
    )
    for pipe in (REDACT, BLOCK):
        expected = pipe.check(text)
        guard = StreamGuard(pipe)
        out: list[str] = []
        blocked = None
        try:
            for i, move in zip(range(0, len(text), 7), itertools.cycle(moves)):
                clock.now += move
                out.append(guard.feed(text[i : i + 7]))
            out.append(guard.close())
        except OutputBlocked as exc:
            blocked = exc
        assert (blocked is not None) == expected.blocked
        if blocked is not None:
            assert blocked.code == "output_blocked"
            assert expected.text.startswith("".join(out))
        else:
            assert "".join(out) == expected.text


# -- the assignment rule and the blanks around its operator -------------------

ASSIGNMENTS = [
    "password =" + " " * 9 + f'"{VALUE}"',
    "password =" + " " * 16 + f'"{VALUE}"',
    "password =" + " " * 24 + VALUE,
    "password:" + " " * 20 + VALUE,
    "password =" + "\t" * 12 + f'"{VALUE}"',
    "password =" + "\u00a0" * 16 + f'"{VALUE}"',
    "password" + " " * 4 + f'= "{VALUE}"',
    "db_password" + " " * 12 + f"= {VALUE}",
    "DB_PASSWORD" + " " * 10 + f"={VALUE}",
    '{"password":' + " " * 12 + f'"{VALUE}"' + "}",
    "The password is" + " " * 10 + f'"{VALUE}"',
]


@pytest.mark.parametrize("text", ASSIGNMENTS)
def test_blanks_around_the_operator_do_not_hide_a_password(text: str) -> None:
    answer = f"Here is the config:\n{text}\nDone."
    check = BLOCK.check(answer)
    assert check.blocked
    assert "generic-credential-assignment" in {f.rule_id for f in check.findings}
    assert VALUE not in REDACT.check(answer).text
    out, blocked = streamed(BLOCK, answer, 3)
    assert blocked is not None
    assert blocked.code == "output_blocked"
    assert "generic-credential-assignment" in blocked.rule_ids
    assert VALUE not in out


@pytest.mark.parametrize(
    "text",
    [
        "Set the password:                  then continue with the wizard.",
        "the password                 policy says twelve characters",
        "A token         is issued per session and expires after an hour.",
    ],
)
def test_padded_prose_is_not_a_finding(text: str) -> None:
    assert not BLOCK.check(text).blocked


# -- concurrency: one guard fed from two threads at once ----------------------


def test_two_threads_feeding_one_guard_fail_closed() -> None:
    """Two threads feeding one guard at once interleaved its buffer and its
    offsets: fragments of a token came out in clear. A feed that finds
    another thread scanning is refused; a chunk kept meanwhile is not lost."""
    pipe = pipeline("redact")
    guard = StreamGuard(pipe, scan_share=1)
    entered, release = threading.Event(), threading.Event()
    real = pipe.scan_and_hold

    def slow(text: str) -> tuple[list[Finding], int]:
        entered.set()
        release.wait(10)
        return real(text)

    pipe.scan_and_hold = slow  # type: ignore[method-assign]
    out: list[str] = []
    worker = threading.Thread(target=lambda: out.append(guard.feed("x" * 20)))
    worker.start()
    try:
        assert entered.wait(10)
        kept = guard.feed("ab")  # below the step: kept for the next scan
        with pytest.raises(PolicyError, match="two threads"):
            guard.feed(" token " + "ghp_" + "aZ3kQ9" * 6 + " end")
    finally:
        release.set()
        worker.join()
        pipe.scan_and_hold = real  # type: ignore[method-assign]
    rest = guard.close()
    assert "".join(out) + kept + rest == "x" * 20 + "ab"


def test_threads_racing_on_one_guard_never_emit_a_token() -> None:
    token = "ghp_" + "aZ3kQ9" * 6
    guard = StreamGuard(pipeline("redact"), scan_share=1)
    out: list[str] = []
    lock = threading.Lock()

    def work(tid: int) -> None:
        for i in range(150):
            try:
                got = guard.feed(f"w{tid} word {i} token {token} end. ")
            except PolicyError:
                continue
            with lock:
                out.append(got)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    out.append(guard.close())
    text = "".join(out)
    assert "aZ3kQ9aZ3kQ9" not in text
    assert "ghp_aZ" not in text
