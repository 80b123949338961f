"""StreamGuard equals one-shot check for any chunking; redaction is complete."""

from __future__ import annotations

import base64
import itertools

import pytest
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
)
from aiinvariants.filters._base import Finding
from aiinvariants.filters._streaming import BODY_STEP, EXACT_HEAD

PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)
REGISTERED = "Zq9-vLm2#Rt8Kp4X"
FRAGMENTS = [
    "Hello, how can I help? ",
    "token ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9 ",
    "AKIAQZ7RT2MX4K5W6Y3J",
    "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9",
    "mail jane.doe@example.com ",
    "call +41 44 668 18 00. ",
    "card 4111 1111 1111 1111 ",
    "password = 'hU7kd82Lpq9' ",
    "postgres://app:Pa55w0rdX@db/app ",
    PROMPT,
    " ".join(REGISTERED),
    base64.b64encode(REGISTERED.encode()).decode(),
    "Globex is a scam. ",
    "The quick brown fox jumps over the lazy dog. ",
    "def f(x):\n    return x * 2\n",
    "12345 67890 ",
    "\u200b",
    " ",
    "-",
    # Obfuscated spellings, and the pieces they can be cut into.
    "\u200b".join("ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9"),
    "card \uff14\uff11\uff11\uff11 \u0661\u0661\u0661\u0661 1111 1111 ",
    "".join(f"&#{ord(c)};" for c in REGISTERED),
    "".join(f"\\u{ord(c):04x}" for c in REGISTERED),
    "\n".join(
        base64.b64encode(REGISTERED.encode()).decode()[i : i + 5]
        for i in (0, 5, 10, 15, 20)
    ),
    "hex " + ":".join(f"{b:02x}" for b in REGISTERED.encode()),
    PROMPT.replace(" ", "\u00a0").upper(),
    "&#x4",
    "\\u00",
    "&amp;",
    "\uff21\u0430\u0301",
    "%4",
    "%41%e2%82",
    "".join(f"%{b:02x}" for b in REGISTERED.encode()),
    "".join(chr(0xE0000 + ord(c)) for c in REGISTERED),
    "\U0001f600" + "".join(chr(0xE0100 + b - 16) for b in REGISTERED.encode()),
    "\ufe0f\ufe01",
    # Base64 blocks stand apart: a key glued to a blob is a separate
    # question (the secrets filter's blob rule), not the subject here.
    " " + base64.b64encode(PROMPT.encode()).decode() + " ",
    " "
    + "\n".join(
        base64.b64encode(PROMPT.encode()).decode()[i : i + 60] for i in (0, 60, 120)
    )
    + " ",
    " " + base64.b64encode(b"plain text that is no copy of anything").decode() + " ",
]


def pipeline(action: str) -> OutputPipeline:
    return OutputPipeline(
        [
            SecretsFilter(action=action, registered=[REGISTERED]),  # type: ignore[arg-type]
            SystemPromptLeakFilter(system_prompt=PROMPT, action=action),  # type: ignore[arg-type]
            CompetitorFilter(names=["Globex"], action=action),  # type: ignore[arg-type]
            PIIFilter(action="redact"),
        ]
    )


REDACT = pipeline("redact")
# Disparagement depends on the sentence around a name, which masking a
# neighbouring secret changes; "nothing left behind" is a property of the
# leak filters (I8).
LEAKS = OutputPipeline(REDACT.filters[:2] + REDACT.filters[3:])
BLOCK = pipeline("block")

texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=14
).map("".join)


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def stream(p: OutputPipeline, chunks: list[str], batch: int | None) -> tuple[str, bool]:
    guard = StreamGuard(p, batch=batch)
    out: list[str] = []
    try:
        for chunk in chunks:
            out.append(guard.feed(chunk))
        out.append(guard.close())
    except OutputBlocked:
        return "".join(out), True
    return "".join(out), False


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(text=texts, cuts=st.lists(st.integers(0, 10_000), max_size=40),
       batch=st.sampled_from([1, 7, 64, None]))  # fmt: skip
def test_redact_mode_stream_equals_one_shot(
    text: str, cuts: list[int], batch: int | None
) -> None:
    expected = REDACT.check(text)
    assert not expected.blocked or any(
        f.rule_id == "private-key" for f in expected.findings
    )
    out, blocked = stream(REDACT, chunked(text, cuts), batch)
    assert blocked == expected.blocked
    if not blocked:
        assert out == expected.text


@SETTINGS
@given(text=texts, batch=st.sampled_from([1, 16, None]))
def test_one_character_at_a_time(text: str, batch: int | None) -> None:
    out, blocked = stream(REDACT, list(text), batch)
    expected = REDACT.check(text)
    assert blocked == expected.blocked
    if not blocked:
        assert out == expected.text


@SETTINGS
@given(text=texts, cuts=st.lists(st.integers(0, 10_000), max_size=40),
       batch=st.sampled_from([1, 5, None]))  # fmt: skip
def test_block_mode_emits_a_prefix_that_stops_before_the_first_block(
    text: str, cuts: list[int], batch: int | None
) -> None:
    expected = BLOCK.check(text)
    out, blocked = stream(BLOCK, chunked(text, cuts), batch)
    assert blocked == expected.blocked
    if blocked:
        first = min(f.start for f in expected.findings if f.action == "block")
        assert expected.text.startswith(out)
        masked_before = [f for f in expected.findings if f.start < first]
        assert len(out) <= first + 10 * len(masked_before)
        assert text[first : first + 8] not in out[first - 8 :] or len(text) < 8
    else:
        assert out == expected.text


PROSE = st.lists(
    st.sampled_from(
        ["The", "team", "reviewed", "the", "report", "and", "agreed", "to", "ship",
         "it", "next", "week.", "Customers", "asked", "for", "clearer", "invoices,"]
    ),
    min_size=40,
    max_size=400,
).map(" ".join)  # fmt: skip


@SETTINGS
@given(text=PROSE, size=st.integers(1, 8))
def test_clean_prose_flows_at_once(text: str, size: int) -> None:
    """Nothing suspicious: the first text appears within 64 characters, and
    later text is held back by at most the scan step plus a few characters
    (on the character schedule alone: ``scan_share=1``, as for text arriving at
    reading pace; see test_stream_cadence_props for faster text). The head
    (up to EXACT_HEAD) is scanned each time it has doubled, so what waits
    there is at most half of what arrived; past it prose is scanned about
    every BODY_STEP characters, whatever the answer's length."""
    p = OutputPipeline(
        [*REDACT.filters[:2], PIIFilter(action="redact"), SecretsFilter()]
    )
    guard = StreamGuard(p, scan_share=1)
    first = None
    fed = 0
    for i in range(0, len(text), size):
        fed += size
        if guard.feed(text[i : i + size]) and first is None:
            first = min(fed, len(text))
        if fed < 2 * EXACT_HEAD:
            assert guard.held_back <= max(16, fed // 2) + size + 64
        else:  # past the head: a step of about BODY_STEP, and a short hold
            assert guard.held_back <= BODY_STEP + size + 64
    guard.close()
    assert first is not None
    assert first <= 64


def test_growing_masked_span_stays_bounded() -> None:
    """Back-to-back secrets make one masked span that grows with the stream:
    it is announced once, its text is dropped as it arrives, and the guard's
    hold-back stays bounded."""
    p = OutputPipeline([SecretsFilter(action="redact", registered=[REGISTERED])])
    guard = StreamGuard(p, batch=64)
    out: list[str] = [guard.feed("start ")]
    worst = 0
    for _ in range(3000):
        out.append(guard.feed(REGISTERED))
        worst = max(worst, guard.held_back)
    out.append(guard.feed(" end."))
    out.append(guard.close())
    assert "".join(out) == "start [REDACTED] end."
    assert worst <= 64 + p.max_finding + 2 * p.context


@SETTINGS
@given(text=texts)
def test_redaction_leaves_no_finding_behind(text: str) -> None:
    once = LEAKS.check(text)
    again = LEAKS.check(once.text)
    assert again.findings == ()


@settings(max_examples=200, deadline=None)
@given(
    sep=st.sampled_from(["", " ", "  ", "-", ".", "\u200b", "\u200c", "_", " - "]),
    case=st.sampled_from([str, str.lower, str.upper, str.swapcase]),
    prefix=st.text(max_size=20),
)
def test_obfuscated_registered_secret_is_caught(
    sep: str, case: object, prefix: str
) -> None:
    shown = sep.join(case(REGISTERED))  # type: ignore[operator]
    f = SecretsFilter(registered=[REGISTERED])
    assert "registered-secret" in {x.rule_id for x in f.scan(prefix + " " + shown)}


class _PlainFilter:
    """A filter written against the basic protocol: no canonical form, no hold."""

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


@SETTINGS
@given(
    text=st.lists(
        st.sampled_from(["FORBIDDEN", "FORBID", "DEN ", "mail a@b.co ", "x", " "]),
        max_size=20,
    ).map("".join),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_filter_without_hold_streams_exactly(text: str, cuts: list[int]) -> None:
    p = OutputPipeline([_PlainFilter(), PIIFilter(action="redact")])  # type: ignore[list-item]
    out, blocked = stream(p, chunked(text, cuts), None)
    assert not blocked
    assert out == p.check(text).text


GHP_BODY = "aZ3kQ9" * 6
CRAFTED = [
    # a keyword and a credential, to be split anywhere
    f"key ghp_{GHP_BODY} end",
    "aws AKIAQZ7RT2MX4K5W6Y3J then",
    "db password = 'hU7kd82Lpq9' ok",
    # a credential whose prefix arrives long before its body
    "token: gh" + "\u200b" * 40 + "p_" + GHP_BODY + " ok",
    "token: ghp_" + "\u200c" * 60 + GHP_BODY + " ok",
    # a system-prompt copy (cut into many chunks, it completes much later)
    "Sure: " + PROMPT + " bye",
    PROMPT.replace(" ", "\u00a0") + " bye",
    # a masked span that grows across chunks
    "x " + REGISTERED * 6 + " y",
    "card 4111 1111 1111 1111 4111 1111 1111 1111 ok",
    # canonical forms split across chunks
    "".join(f"&#x{ord(c):x};" for c in REGISTERED) + " ok",
    "".join(f"&amp;#{ord(c)};" for c in REGISTERED) + " ok",
    "".join(f"\\u{ord(c):04x}" for c in REGISTERED) + " ok",
    "".join(f"%{b:02x}" for b in REGISTERED.encode()) + " ok",
    "\u200b".join(REGISTERED) + " ok",
    "G\u200dl\u043ebex is a scam.",
    "\uff27\uff4c\uff4f\uff42\uff45\uff58 is a scam.",
    "".join(c + "\u0301" for c in "Globex") + " is a scam.",
    "\ud83d\ude00 ghp_" + GHP_BODY + " \ud83d",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_crafted_inputs_split_anywhere_equal_one_shot(data: st.DataObject) -> None:
    """Crafted inputs of every class the stream keeps state for, cut at any
    set of positions (up to one chunk per character)."""
    text = data.draw(st.sampled_from(CRAFTED), label="text")
    cuts = data.draw(
        st.lists(st.integers(0, len(text)), max_size=len(text)), label="cuts"
    )
    batch = data.draw(st.sampled_from([1, 3, None]), label="batch")
    share = data.draw(st.sampled_from([1.0, 0.25]), label="scan_share")
    for p in (REDACT, BLOCK):
        expected = p.check(text)
        guard = StreamGuard(p, batch=batch, scan_share=share)
        out: list[str] = []
        blocked = False
        try:
            for chunk in chunked(text, cuts):
                out.append(guard.feed(chunk))
            out.append(guard.close())
        except OutputBlocked:
            blocked = True
        assert blocked == expected.blocked
        if blocked:
            assert expected.text.startswith("".join(out))
        else:
            assert "".join(out) == expected.text


@pytest.mark.parametrize("text", CRAFTED)
def test_crafted_inputs_every_two_way_split(text: str) -> None:
    for cut in range(len(text) + 1):
        for p in (REDACT, BLOCK):
            expected = p.check(text)
            out, blocked = stream(p, [text[:cut], text[cut:]], None)
            assert blocked == expected.blocked, cut
            if blocked:
                assert expected.text.startswith(out), cut
            else:
                assert out == expected.text, cut
