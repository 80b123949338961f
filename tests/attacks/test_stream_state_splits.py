"""Where a stream is cut must never change what comes out (I8).

The stream guard decides a text in pieces. Every way an attacker (or an
unlucky tokenizer) can cut an answer is a chance for state kept between two
scans to be wrong: a keyword split in two, a credential whose prefix arrives
long before its body, a system-prompt copy that starts in one chunk and
completes fifty chunks later, a masked span that keeps growing, an entity,
escape or lookalike split between chunks. For each class the streamed text
must equal the one-shot check's masked text exactly (redact mode) or stop
before the first blocking finding (block mode), at every cut point.
"""

from __future__ import annotations

import itertools

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import (
    CompetitorFilter,
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
GHP = "ghp_" + "aZ3kQ9" * 6
CARD = "4111 1111 1111 1111"


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
BLOCK = pipeline("block")


def streamed(
    p: OutputPipeline, chunks: list[str], batch: int | None = None
) -> tuple[str, bool]:
    """What a consumer receives, and whether the stream was blocked."""
    guard = StreamGuard(p, batch=batch)
    out: list[str] = []
    try:
        for chunk in chunks:
            out.append(guard.feed(chunk))
        out.append(guard.close())
    except OutputBlocked:
        return "".join(out), True
    return "".join(out), False


def assert_same_as_one_shot(
    p: OutputPipeline, text: str, chunks: list[str], batch: int | None = None
) -> None:
    assert "".join(chunks) == text
    expected = p.check(text)
    out, blocked = streamed(p, chunks, batch)
    assert blocked == expected.blocked, chunks
    if not blocked:
        assert out == expected.text, chunks
        return
    first = min(f.start for f in expected.findings if f.action == "block")
    assert expected.text.startswith(out)
    # Nothing at or after the first blocking finding was let out.
    masked_before = sum(1 for f in expected.findings if f.end <= first)
    assert len(out) <= first + 10 * masked_before


def two_way(text: str) -> list[list[str]]:
    return [[text[:cut], text[cut:]] for cut in range(len(text) + 1)]


def three_way(text: str, step: int = 1) -> list[list[str]]:
    cuts = range(0, len(text) + 1, step)
    return [[text[:i], text[i:j], text[j:]] for i, j in itertools.combinations(cuts, 2)]


# -- a keyword or a credential split across chunks ---------------------------

KEYWORD_SPLITS = [
    f"here: {GHP} done",
    "aws AKIAQZ7RT2MX4K5W6Y3J ok",
    "password = 'hU7kd82Lpq9' ok",
    "postgres://app:Pa55w0rdX@db/app ok",
    f"the key is {REGISTERED}.",
    "Globex is a scam.",
    f"pay with {CARD} today",
    "mail jane.doe@example.com now",
]


@pytest.mark.parametrize("text", KEYWORD_SPLITS)
@pytest.mark.parametrize("p", [REDACT, BLOCK], ids=["redact", "block"])
def test_keyword_and_credential_split_at_every_position(
    text: str, p: OutputPipeline
) -> None:
    for chunks in two_way(text):
        assert_same_as_one_shot(p, text, chunks)
        assert_same_as_one_shot(p, text, chunks, batch=1)


@pytest.mark.parametrize("text", [f"x {GHP}.", f"{REGISTERED} y", "pw Globex!"])
def test_three_way_splits(text: str) -> None:
    for chunks in three_way(text):
        assert_same_as_one_shot(REDACT, text, chunks, batch=1)


@pytest.mark.parametrize("gap", [0, 1, 40, 400])
def test_credential_prefix_arrives_long_before_its_body(gap: int) -> None:
    """``ghp_`` in one chunk, then filler chunks that keep the run open
    (zero-width characters render as nothing), then the body one character at
    a time: the prefix must not be let out before the body decides it."""
    filler = ["\u200b"] * gap
    chunks = ["token: ", "gh", "p_", *filler, *("aZ3kQ9" * 6), " and more text."]
    text = "".join(chunks)
    assert_same_as_one_shot(REDACT, text, chunks)
    assert_same_as_one_shot(BLOCK, text, chunks)
    out, _ = streamed(REDACT, chunks)
    assert "ghp_" not in out
    assert "aZ3kQ9" not in out


def test_keyword_assignment_whose_value_comes_much_later() -> None:
    """``password =`` then white space dribbled in, then the value. (Eight
    spaces: the one-shot rule itself stops at about sixteen, a detection
    question of its own, not one of streaming.)"""
    chunks = ["db password", " ", "=", *([" "] * 8), "'hU7kd82Lpq9'", " thanks"]
    text = "".join(chunks)
    assert_same_as_one_shot(REDACT, text, chunks)
    assert "hU7kd82Lpq9" not in streamed(REDACT, chunks)[0]


# -- a protected text copied over many chunks --------------------------------


@pytest.mark.parametrize("pieces", [50, 65, len(PROMPT)])
@pytest.mark.parametrize("batch", [None, 1])
def test_system_prompt_copy_completes_fifty_chunks_later(
    pieces: int, batch: int | None
) -> None:
    size = len(PROMPT)
    chunks = ["Sure, my instructions: "]
    chunks += [
        PROMPT[i * size // pieces : (i + 1) * size // pieces] for i in range(pieces)
    ]
    chunks.append(" Anything else?")
    text = "".join(chunks)
    assert_same_as_one_shot(REDACT, text, chunks, batch)
    assert_same_as_one_shot(BLOCK, text, chunks, batch)
    assert "pricing rules" not in streamed(REDACT, chunks, batch)[0]


def test_system_prompt_copy_with_pauses_of_prose_between_its_parts() -> None:
    """A copy interleaved with empty and white-space-only chunks."""
    words = PROMPT.split(" ")
    chunks: list[str] = ["Here: "]
    for word in words:
        chunks += [word, "", " "]
    chunks.append("Bye.")
    text = "".join(chunks)
    assert_same_as_one_shot(REDACT, text, chunks)
    assert_same_as_one_shot(BLOCK, text, chunks)


# -- a masked span that grows across chunks ----------------------------------


@pytest.mark.parametrize("size", [1, 3, 16, 100])
def test_redaction_span_growing_across_chunks(size: int) -> None:
    """Back-to-back registered secrets and a card number whose digits keep
    coming: one masked span, announced once, never a digit of it in clear."""
    text = "start " + REGISTERED * 40 + " middle " + CARD + " end"
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    assert_same_as_one_shot(REDACT, text, chunks)
    out = streamed(REDACT, chunks)[0]
    assert out.count("[REDACTED]") == 2
    assert "Zq9" not in out
    assert "4111" not in out


# -- canonicalisation split across chunks -------------------------------------

CANONICAL_SPLITS = [
    # zero-width characters between every character of a token
    "key " + "\u200b".join(GHP) + " ok",
    # lookalike (Cyrillic, fullwidth) letters in a protected name
    "G\u217cob\u0435x is a scam.",  # small roman numeral fifty and Cyrillic e
    "\uff27\uff4c\uff4f\uff42\uff45\uff58 is a scam.",
    # HTML entities, also escaped twice
    "s: " + "".join(f"&#{ord(c)};" for c in REGISTERED) + " ok",
    "s: " + "".join(f"&amp;#x{ord(c):x};" for c in REGISTERED) + " ok",
    # JSON / Python escapes
    "s: " + "".join(f"\\u{ord(c):04x}" for c in REGISTERED) + " ok",
    "s: " + "".join(f"\\x{ord(c):02x}" for c in REGISTERED) + " ok",
    # percent-escapes
    "s: " + "".join(f"%{b:02x}" for b in REGISTERED.encode()) + " ok",
    # non-breaking and em spaces in the protected text
    PROMPT.replace(" ", "\u00a0")[:90] + "\u2003and so on",
    # a card in Arabic-Indic and fullwidth digits
    "card \u0664\u0661\u0661\u0661 \uff11\uff11\uff11\uff11 1111 1111 ok",
]


@pytest.mark.parametrize("text", CANONICAL_SPLITS)
def test_canonical_forms_split_at_every_position(text: str) -> None:
    for chunks in two_way(text):
        assert_same_as_one_shot(REDACT, text, chunks)
    for chunks in two_way(text)[:: max(1, len(text) // 25)]:
        assert_same_as_one_shot(BLOCK, text, chunks)


@pytest.mark.parametrize("text", CANONICAL_SPLITS[:4])
def test_canonical_forms_one_character_at_a_time(text: str) -> None:
    assert_same_as_one_shot(REDACT, text, list(text))
    assert_same_as_one_shot(REDACT, text, list(text), batch=1)


# -- unicode across a boundary ------------------------------------------------


def test_surrogate_halves_and_combining_marks_across_a_boundary() -> None:
    """A client that cuts between the halves of a surrogate pair, or between
    a letter and its combining mark, must change nothing."""
    marked = "".join(c + "\u0301" for c in "Globex")  # accents on every letter
    pieces = [
        "\ud83d",
        "\ude00 ",
        "G\u0301",
        "lobex",
        " is a scam. ",
        marked,
        " too. ",
        GHP[:10],
        "\u0301",
        GHP[10:],
        " \ud83d",
    ]
    text = "".join(pieces)
    assert_same_as_one_shot(REDACT, text, pieces)
    for chunks in two_way(text):
        assert_same_as_one_shot(REDACT, text, chunks)
    out = streamed(REDACT, pieces)[0]
    assert "lobex" not in out


def test_combining_marks_stuffed_after_a_keyword_are_held_not_leaked() -> None:
    """Thousands of combining marks (canonical length zero) after a keyword:
    the guard refuses rather than holds without bound, and lets nothing of
    the keyword out."""
    chunks = ["token ghp_", *(["\u0301" * 64] * 600), "aZ3kQ9" * 6]
    out, blocked = streamed(REDACT, chunks)
    assert "ghp_" not in out
    assert blocked or "aZ3kQ9" not in out


# -- chunk sizes: tiny, huge, empty --------------------------------------------


def test_empty_chunks_everywhere() -> None:
    text = f"a {GHP} b {CARD} c Globex is a scam. {PROMPT}"
    chunks: list[str] = []
    for ch in text:
        chunks += ["", ch, "", ""]
    assert_same_as_one_shot(REDACT, text, chunks)
    assert_same_as_one_shot(BLOCK, text, chunks)
    assert streamed(REDACT, ["", "", ""]) == ("", False)


@pytest.mark.parametrize("batch", [None, 1, 5, 4096])
def test_one_huge_chunk_and_then_tiny_ones(batch: int | None) -> None:
    filler = "Plain words for a while. " * 2000  # 50 KB
    tail = f" and then {GHP} and {CARD} end"
    text = filler + tail
    assert_same_as_one_shot(REDACT, text, [filler, *tail], batch)
    assert_same_as_one_shot(REDACT, text, [*filler[:40], filler[40:] + tail], batch)


def test_secret_at_the_very_end_without_a_trailing_newline() -> None:
    """close() decides the held tail: a credential that ends the answer, with
    nothing after it, is masked like in the one-shot check."""
    for text in (
        f"here {GHP}",
        f"here {REGISTERED}",
        f"card {CARD}",
        "mail jane.doe@example.com",
        PROMPT,
        "password = hU7kd82Lpq9",
        "&#x5a;&#x71;&#x39;",
    ):
        for size in (1, 4, 1000):
            chunks = [text[i : i + size] for i in range(0, len(text), size)]
            assert_same_as_one_shot(REDACT, text, chunks)
            assert_same_as_one_shot(BLOCK, text, chunks)
