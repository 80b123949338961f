"""Red team of the one-shot fast paths of issue #13 (the s5speed round).

* The block pass for protected texts with 50 probes or more tries, around
  each candidate block, every probe length. When the protected texts give
  probes of different lengths (a long system prompt and a short hidden
  text; tool outputs shorter than the probe length), a slice cut past the
  end of the answer is shorter than the length tried and can equal a
  shorter probe: the pass reported a hit running past the text, whose
  mapping back raised, so a copy flush with the end of a long answer came
  out as ``filter-error`` (the whole answer blocked, whatever the action)
  instead of the copy it is.
* The block index and the prefixes ``hold()`` reads are built from the
  probes on first use and reused: a text protected while another thread
  builds one (a tool output registered during a check) left a stale build
  in place for good, and every later copy of that text passed the block
  pass.
"""

from __future__ import annotations

import base64
import random
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants._internal import canonical as _canonical
from aiinvariants.filters import (
    CompetitorFilter,
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
    ToolOutputLeakFilter,
    _base,
    _leaks,
    _pii,
    _secret_registered,
    _secrets,
)
from aiinvariants.filters._base import ascii_lower
from aiinvariants.filters._leaks import _BLOCKS_FROM, _BLOCKS_TEXT, _DROP, Probes

LONG_PROMPT = " ".join(
    f"Rule {i}: route tier-{i % 7} refunds above {100 + i} EUR to queue q{i * 13}."
    for i in range(40)
)
HIDDEN = "zebra quartz 77"  # 13 normalized characters: one short probe
FILLER = "The weather was mild and the team shipped the release on time. " * 160


# -- probes of different lengths: a hit flush with the end -----------------


def test_a_short_hidden_text_flush_with_the_end_of_a_long_answer_is_its_copy() -> None:
    guard = SystemPromptLeakFilter(system_prompt=LONG_PROMPT, hidden=[HIDDEN])
    assert len(guard._probes._probes) >= _BLOCKS_FROM  # the block pass runs
    answer = FILLER + "the code is " + HIDDEN
    findings = guard.scan(answer)  # raised IndexError
    assert [f.rule_id for f in findings] == ["system-prompt-copy"]
    assert answer[findings[0].start : findings[0].end] == HIDDEN


def test_a_redacting_filter_redacts_the_copy_and_does_not_block_the_answer() -> None:
    guard = SystemPromptLeakFilter(
        system_prompt=LONG_PROMPT, hidden=[HIDDEN], action="redact"
    )
    result = OutputPipeline([guard]).check(FILLER + "the code is " + HIDDEN)
    assert not result.blocked  # was blocked as filter-error
    assert [f.rule_id for f in result.findings] == ["system-prompt-copy"]
    assert "quartz" not in result.text


def test_a_short_tool_output_flush_with_the_end_is_found() -> None:
    guard = ToolOutputLeakFilter()
    for i in range(4):
        guard.register(f"Order {i}: " + LONG_PROMPT[100 * i : 100 * i + 400])
    guard.register("acct 4471-XQ-29")  # shorter than the probe length
    answer = FILLER + "your account: acct 4471-XQ-29"
    findings = guard.scan(answer)
    assert [f.rule_id for f in findings] == ["tool-output-copy"]
    assert "4471" in answer[findings[0].start : findings[0].end]


def test_a_stream_ending_in_the_short_hidden_text_is_blocked_as_its_copy() -> None:
    pipeline = OutputPipeline(
        [SystemPromptLeakFilter(system_prompt=LONG_PROMPT, hidden=[HIDDEN])]
    )
    stream = StreamGuard(pipeline)
    text = FILLER + "the code is " + HIDDEN
    out: list[str] = []

    def run() -> None:
        for i in range(0, len(text), 97):
            out.append(stream.feed(text[i : i + 97]))
        out.append(stream.close())

    with pytest.raises(OutputBlocked) as blocked:
        run()
    assert list(blocked.value.rule_ids) == ["system-prompt-copy"]  # not an error
    assert "quartz" not in "".join(out)


_PROBE_TEXT = st.text(alphabet="abcd ", min_size=8, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    texts=st.lists(_PROBE_TEXT, min_size=1, max_size=6),
    k=st.integers(2, 24),
    stride=st.integers(1, 12),
    data=st.data(),
)
def test_the_block_pass_finds_what_one_find_per_probe_finds(
    texts: list[str], k: int, stride: int, data: Any
) -> None:
    """Differential: probes of mixed lengths, copies anywhere, the text cut
    at any length (flush with the end included)."""
    probes = Probes(k=k, stride=stride, window=0)
    for text in texts:
        probes.add(text, threshold=0.5)
    keys = list(probes._probes)
    parts = data.draw(st.lists(st.sampled_from([*keys, "dcba"]), max_size=300))
    norm = "".join(parts) or "a"
    norm = (norm * (_BLOCKS_TEXT // len(norm) + 2))[: data.draw(st.integers(0, 5000))]
    norm += data.draw(st.sampled_from(["", *keys]))  # a copy flush with the end
    slow = set()
    for probe in keys:
        at = norm.find(probe)
        while at != -1:
            slow.add((at, at + len(probe), probe))
            at = norm.find(probe, at + 1)
    fast = {(a, b, p.text) for a, b, p in probes._block_hits(norm)}
    assert fast == slow


# -- a build raced by a registration ---------------------------------------


class _Racing(dict[str, Any]):
    """The probes, whose one iteration lets another "thread" register a tool
    output right after (the interleaving a thread switch can produce)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.then: Any = None

    def __iter__(self) -> Any:
        keys = list(super().__iter__())
        yield from keys
        then, self.then = self.then, None
        if then is not None:
            then()


def test_a_tool_output_registered_during_a_check_is_found_in_the_next() -> None:
    guard = ToolOutputLeakFilter()
    for i in range(4):
        guard.register(f"Order {i}: " + LONG_PROMPT[100 * i : 100 * i + 400])
    probes = guard._probes
    racing = _Racing(probes._probes)
    probes._probes = racing
    late = "Payroll export: Jane Roe IBAN DE44500105175407324931 salary 8,412 EUR"
    racing.then = lambda: guard.register(late)
    guard.scan(FILLER + "nothing copied here")  # builds the index, raced
    assert racing.then is None  # registered while the index was built
    answer = FILLER + "here it is: " + late + " " + FILLER
    findings = guard.scan(answer)
    assert {f.rule_id for f in findings} == {"tool-output-copy"}
    assert any("DE445001" in answer[f.start : f.end] for f in findings)


def test_a_prefix_set_raced_by_a_registration_still_holds_the_new_output() -> None:
    """hold() builds the prefixes of the probes once: built while a tool
    output is registered, the new output's beginning was let out of a
    stream."""
    guard = ToolOutputLeakFilter()
    guard.register("Order 1: " + LONG_PROMPT[:400])
    probes = guard._probes
    racing = _Racing(probes._probes)
    probes._probes = racing
    late = "Payroll export: Jane Roe IBAN DE44500105175407324931"
    racing.then = lambda: guard.register(late)
    stream = StreamGuard(OutputPipeline([guard]))
    emitted = stream.feed("Some text first. ")  # builds the prefixes, raced
    emitted += stream.feed("Copied: " + late[:15])
    assert "Payroll" not in emitted  # the start of a copy is held back


class _RacingList(list[Any]):
    """The registered secrets, whose iteration by ``when`` (a function name
    on the stack) lets another "thread" register one more secret right
    after."""

    then: Any = None
    when = "_registered_prefixes"

    def __iter__(self) -> Any:
        items = list(super().__iter__())
        yield from items
        frame = sys._getframe(1)
        names = set()
        while frame is not None and len(names) < 4:
            names.add(frame.f_code.co_name)
            frame = frame.f_back  # type: ignore[assignment]
        if self.when not in names:
            return
        then, self.then = self.then, None
        if then is not None:
            then()


def test_a_secret_registered_while_the_prefixes_are_built_is_held_back() -> None:
    """SecretsFilter.hold builds the prefixes of the registered secrets'
    encodings once: built while a secret is registered, a spaced-out copy of
    the new secret was let out of a stream before it was complete."""
    guard = SecretsFilter(registered=["Wd4Hs8Jq2Nc6"])
    racing = _RacingList(guard._registered)
    guard._registered = racing
    late = "Kx7Qp2Lm9Rt4"
    racing.then = lambda: guard.add_registered(late)
    stream = StreamGuard(OutputPipeline([guard]))
    emitted = stream.feed("Some text first. ")  # builds the prefixes, raced
    assert racing.then is None  # registered while they were built
    emitted += stream.feed("Here it is, spaced out: " + " ".join(late[:8]) + " ")
    assert "x 7 Q" not in emitted  # the start of the secret is held back
    stream.feed(" ".join(late[8:]) + " and more text.")
    with pytest.raises(OutputBlocked):
        stream.close()


# -- the cost of the block pass with one short protected text --------------


class _Counting(dict[str, Any]):
    lookups = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.lookups += 1
        return super().get(key, default)


def test_one_short_tool_output_does_not_multiply_the_block_pass_cost() -> None:
    """Blocks sized for the shortest probe made every candidate block try
    ``longest`` starts times every length: with ``min_overlap_chars=400``
    (probes of 200) and one 12-character output registered, an answer that
    quotes the long output cost about 70 probe lookups per character (80x
    one find per probe; 1 MB: about 12 s). About one per character now."""
    guard = ToolOutputLeakFilter(min_overlap_chars=400)
    rnd = random.Random(0)
    output = "".join(rnd.choice("abcdefghij") for _ in range(20000))
    guard.register(output)
    guard.register("zq81-xk4-pp7")  # shorter than the probe length
    assert len(guard._probes._probes) >= _BLOCKS_FROM  # the block pass runs
    counting = _Counting(guard._probes._probes)
    guard._probes._probes = counting
    answer = (output + " ") * 5
    findings = guard.scan(answer)
    assert findings  # the copies are found
    assert counting.lookups <= 2 * len(answer)


# -- differential: the default filters with every fast path off ------------

_REG = "Zq8vLm3XwP0t"
_TOOLS = ["Order 7: " + LONG_PROMPT[300:800], "acct 4471-XQ-29"]
_PIECES = [
    "password", "PASSWORD", "API_KEY", "Secret", "TOKEN ", " = ", ": ", '"',
    _REG, base64.b64encode(_REG.encode()).decode(), _REG.encode().hex(),
    " ".join(_REG), "&amp;", "&#x41;", "\\u0041", "%41", "%2F", "é", "Ä", "ß",
    "İ", "日本語", "\u200b", "\u0301", "\ufb01", "\uff21", "\ufe0f", "\x00", "\ud800",
    "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "AKIAIOSFODNN7EXAMPLQ",
    "4111 1111 1111 1111", "+49 30 1234567", "jane.doe@example.com",
    HIDDEN, LONG_PROMPT[400:520], LONG_PROMPT[900:1000].upper(), *_TOOLS,
    "Globex", "G\u200blobex", " ", "\n", "x",
]  # fmt: skip


def _pipeline() -> OutputPipeline:
    tools = ToolOutputLeakFilter()
    for output in _TOOLS:
        tools.register(output)
    return OutputPipeline(
        [
            SecretsFilter(registered=[_REG]),
            SystemPromptLeakFilter(system_prompt=LONG_PROMPT, hidden=[HIDDEN]),
            tools,
            PIIFilter(action="redact"),
            CompetitorFilter(names=["Globex", "Initech"]),
        ]
    )


def _old_stretches(text: str, table: bytes, least: int) -> Any:
    mapped = _leaks._ascii_bytes(text).translate(table)
    pos = mapped.find(b"a" * least)
    while pos != -1:
        while pos > 0 and mapped[pos - 1] == 97:
            pos -= 1
        end = mapped.find(b" ", pos)
        end = len(mapped) if end == -1 else end
        yield pos, end
        pos = mapped.find(b"a" * least, end)


@contextmanager
def _slow_paths() -> Iterator[None]:
    """Every shortcut of the one-shot round replaced by what it replaced."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    cased = SecretsFilter._scan_cased
    for owner in (_base, _leaks, _secret_registered):
        patch(owner, "canonical", _canonical._full)
    patch(_leaks, "canonical_content", _canonical._full)
    patch(_leaks, "normalize", lambda t, lowered=False: ascii_lower(t).translate(_DROP))
    patch(_leaks, "_BLOCKS_FROM", 10**9)
    patch(_leaks, "_KEPT_BLOCK", 10**12)
    patch(_leaks, "_stretches", _old_stretches)
    patch(_pii, "_LONG_CLUSTER", _pii._CLUSTER)
    patch(_secrets, "_capitals_gate", lambda keyword: None)
    patch(_secrets, "_VARIED", lambda t, a, b: re.search("[A-Z0-9]", t[a:b]))
    patch(SecretsFilter, "_scan_cased", lambda s, t, lowered=None: cased(s, t, None))
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def _outcome(pipeline: OutputPipeline, text: str) -> tuple[Any, ...]:
    _base._last = None  # no canonical form, normalized text or runs reused
    _leaks._last_norm = None
    _leaks._last_decoded = None
    result = pipeline.check(text)
    spans = tuple((f.rule_id, f.start, f.end) for f in result.findings)
    return result.text, spans, result.blocked


_FAST = _pipeline()
with _slow_paths():
    _SLOW = _pipeline()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    parts=st.lists(st.sampled_from(_PIECES), max_size=20),
    filler=st.sampled_from([0, 0, 85, 110]),
    where=st.integers(0, 20),
    upper=st.booleans(),
)
def test_the_default_filters_find_what_the_slow_paths_find(
    parts: list[str], filler: int, where: int, upper: bool
) -> None:
    """The whole default pipeline (a registered secret, a long system prompt
    with a short hidden text, a long and a short tool output, PII,
    competitors) against itself with every fast path of the round off: same
    findings, same spans, same redacted text, also for answers long enough
    for the block pass and the per-block kept counts."""
    if upper:
        parts = [p.upper() for p in parts]
    parts.insert(min(where, len(parts)), FILLER[: filler * 64])
    text = "".join(parts)
    fast = _outcome(_FAST, text)
    with _slow_paths():
        slow = _outcome(_SLOW, text)
    assert fast == slow


def test_the_slow_paths_agree_on_a_hidden_text_flush_with_the_end() -> None:
    text = FILLER + HIDDEN
    fast = _outcome(_FAST, text)
    with _slow_paths():
        slow = _outcome(_SLOW, text)
    assert fast == slow
    assert [rule for rule, _, _ in fast[1]] == ["system-prompt-copy"]
