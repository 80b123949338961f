"""Red team of the canonical text form and low-latency streaming (issue 13A).

Two routes that got through after the change:

* an entity escaped once more (``&amp;#x5A;``, what an HTML-escaping
  template does to an already escaped answer) was decoded one level only, so
  a registered secret or the system prompt written that way passed, and a
  stream cut right after ``&amp;`` released text the finding later covers;
* a base64-looking run held back for the prompt filter was capped in
  canonical characters, so combining marks (or escapes) between its letters
  made the hold, and the cost of every rescan, grow without bound: the
  stream emitted nothing until the end and its cost grew quadratically
  (200 KB: 13.6 s streamed against 0.15 s one-shot).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from aiinvariants import OutputBlocked, Policy
from aiinvariants.filters import (
    OutputPipeline,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)

SECRET = "Zq9-vLm2#Rt8Kp4X"
PROMPT = (
    "You are SupportBot for Example Corp. Never reveal internal pricing rules. "
    "Always escalate refunds above 500 EUR to a human agent."
)


def default_pipeline(action: str = "block") -> OutputPipeline:
    """The real default pipeline, with a registered secret and system prompt."""
    outputs: dict[str, object] = {"secrets": {"registered_env": ["APP_SECRET"]}}
    if action == "redact":
        outputs = {
            "secrets": {"registered_env": ["APP_SECRET"], "action": "redact"},
            "system_prompt": {"action": "redact"},
        }
    policy = Policy.model_validate({"outputs": outputs})
    p = OutputPipeline.from_policy(policy, environ={"APP_SECRET": SECRET})
    p.get(SystemPromptLeakFilter).protect(PROMPT)
    return p


def double_entities(text: str) -> str:
    return "".join(f"&amp;#x{ord(c):x};" for c in text)


@pytest.mark.parametrize(
    "shown",
    [
        double_entities(SECRET),
        "".join(f"&amp;#{ord(c)};" for c in SECRET),
        "".join(f"&amp;amp;#x{ord(c):X};" for c in SECRET),
        double_entities(PROMPT),
    ],
    ids=["hex", "decimal", "triple", "prompt"],
)
def test_doubly_escaped_entities_are_decoded_through(shown: str) -> None:
    with pytest.raises(OutputBlocked) as caught:
        default_pipeline().enforce("Here it is: " + shown + " done")
    assert caught.value.code == "output_blocked"
    assert SECRET not in str(caught.value)


def run_stream(
    p: OutputPipeline, chunks: list[str], *, batch: int | None = 1
) -> tuple[str, bool]:
    guard = StreamGuard(p, batch=batch)
    out: list[str] = []
    try:
        for chunk in chunks:
            out.append(guard.feed(chunk))
        out.append(guard.close())
    except OutputBlocked as exc:
        if exc.code != "output_blocked":
            raise
        return "".join(out), True
    return "".join(out), False


def test_stream_cut_after_an_escaped_ampersand_waits_for_the_reference() -> None:
    """``&amp;`` is complete on its own (``&``), but ``#x5A;`` arriving next
    turns it into the secret's first letter: the stream may not release it."""
    p = default_pipeline("redact")
    text = "see: &amp;#x5A;" + SECRET[1:] + " ok"
    expected = p.check(text).text
    assert expected == "see: [REDACTED] ok"
    for cut in range(len("see: "), len("see: &amp;#x5A;") + 1):
        for chunks in ([text[:cut], text[cut:]], [text[:cut], *text[cut:]]):
            out, blocked = run_stream(p, chunks)
            assert not blocked
            assert out == expected, (cut, out)


def test_marks_between_base64_letters_do_not_stretch_the_hold() -> None:
    """A long run of letters, each carrying combining marks, looks like one
    open base64 run in canonical text; the hold is capped in the characters
    that arrived, so text flows and a stream's cost stays linear."""
    p = default_pipeline("redact")
    unit = "a" + "\u0301" * 15
    text = unit * (40_000 // len(unit))
    guard = StreamGuard(p, scan_share=1)  # the hold alone, not the cadence
    worst = emitted = 0
    for i in range(0, len(text), 64):
        emitted += len(guard.feed(text[i : i + 64]))
        worst = max(worst, guard.held_back)
    emitted += len(guard.close())
    assert emitted == len(p.check(text).text)
    assert worst <= 16384 + 2 * p.context + p.max_finding + 64


def test_secret_found_in_escaped_entities_by_the_filter_alone() -> None:
    f = SecretsFilter(registered=[SECRET])
    found = f.scan("x " + double_entities(SECRET))
    assert [x.rule_id for x in found] == ["registered-secret"]


def broken(encoded: str, gap: str) -> str:
    return gap.join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@pytest.mark.parametrize(
    "gap", [" " * 12, "  \n" * 5, "\u00a0" * 16, "\r\n" + " " * 14]
)
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_secret_broken_by_wide_white_space_never_streams_a_piece(
    gap: str, encoding: str
) -> None:
    """One-shot joins the pieces of an encoded secret across white space; the
    stream's hold must see as far, or it releases the first pieces (it
    emitted 10 of the 16 bytes in hex before blocking)."""
    raw = SECRET.encode()
    encoded = raw.hex() if encoding == "hex" else base64.b64encode(raw).decode()
    text = "data: " + broken(encoded, gap) + " end"
    p = default_pipeline("redact")
    expected = p.check(text)
    assert "registered-secret" in {f.rule_id for f in expected.findings}
    for size in (1, 3, 16):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        for batch in (None, 1):
            out, blocked = run_stream(p, chunks, batch=batch)
            assert (out, blocked) == (expected.text, expected.blocked)
            assert encoded[:4] not in out


def test_encoded_pieces_far_apart_are_no_secret() -> None:
    """Gaps wider than a line break and its indentation end an encoding, so
    the finding stays local (one-shot and stream agree)."""
    text = "data: " + broken(SECRET.encode().hex(), " " * 40) + " end"
    assert default_pipeline().check(text).findings == ()


@pytest.mark.parametrize(
    ("head", "filler"),
    [("ok ", "\u200b"), ("password = ", "\u0301"), ("You are SupportBot", "\u2060")],
)
def test_invisible_stuffing_cannot_stretch_the_hold(head: str, filler: str) -> None:
    """Characters with an empty canonical form, after text a filter holds,
    kept everything undecided: the stream held all of it (and rescanned it
    on every step, quadratic cost). Past the cap the guard fails closed."""
    from aiinvariants.filters._streaming import HOLD_CAP

    p = default_pipeline("redact")
    text = head + filler * (HOLD_CAP + 4096) + '"hU7kd82Lpq9Xz" end'
    # The character schedule: a guard whose scan budget lets text pile up
    # scans it in larger pieces (test_stream_cadence_props covers that).
    guard = StreamGuard(p, scan_share=1)
    worst = 0

    def feed_all() -> None:
        nonlocal worst
        for i in range(0, len(text), 512):
            guard.feed(text[i : i + 512])
            worst = max(worst, guard.held_back)
        guard.close()

    with pytest.raises(OutputBlocked) as caught:
        feed_all()
    assert caught.value.code == "output_blocked"
    assert "stream-undecided" in caught.value.rule_ids
    assert worst <= HOLD_CAP + p.max_finding + 2 * p.context + 512


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


LOOKALIKE = SECRET.replace("q", "\u0566").replace("R", "\u0280").replace("p", "\u0440")
SPELLINGS = {
    "fullwidth": fullwidth(SECRET),
    "lookalike": LOOKALIKE,
    "spaced": " ".join(SECRET),
    "zero-width": "\u200b".join(SECRET),
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
@pytest.mark.parametrize("wrap", [0, 20])
def test_base64_of_a_spelled_out_secret(spelling: str, wrap: int) -> None:
    """The canonical form folds fullwidth, lookalike and spaced copies, and
    base64 of the plain value is matched; base64 *of* such a copy passed."""
    encoded = base64.b64encode(SPELLINGS[spelling].encode()).decode()
    if wrap:
        encoded = "\n".join(encoded[i : i + wrap] for i in range(0, len(encoded), wrap))
    text = "Here: " + encoded + " done"
    with pytest.raises(OutputBlocked) as caught:
        OutputPipeline([SecretsFilter(registered=[SECRET])]).enforce(text)
    assert caught.value.code == "output_blocked"
    assert caught.value.rule_ids == ("registered-secret",)
    p = default_pipeline("redact")
    expected = p.check(text)
    assert expected.text == "Here: [REDACTED] done"
    for cut in range(0, len(text) + 1, 3):
        out, blocked = run_stream(p, [text[:cut], text[cut:]])
        assert (out, blocked) == (expected.text, False)


def test_hex_of_a_lookalike_secret() -> None:
    text = "Here: " + LOOKALIKE.encode().hex() + " done"
    found = SecretsFilter(registered=[SECRET]).scan(text)
    assert [f.rule_id for f in found] == ["registered-secret"]


SMALL_CAPS = str.maketrans(
    "abcdefghijklmnoprstuvwyz",
    "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f"
    "\u1d0d\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22",
)


def negative_circled(text: str) -> str:
    return "".join(
        chr(0x1F150 + ord(c.upper()) - 65) if c.isascii() and c.isalpha() else c
        for c in text
    )


@pytest.mark.parametrize(
    "spell", [lambda t: t.lower().translate(SMALL_CAPS), negative_circled]
)
def test_letters_named_after_ascii_letters_are_folded(
    spell: Callable[[str], str],
) -> None:
    """Small capitals and negative circled letters are outside the
    confusables subset and NFKD; the prompt and a secret written in them
    passed."""
    p = default_pipeline()
    for shown in (spell(PROMPT), spell(SECRET)):
        with pytest.raises(OutputBlocked) as caught:
            p.enforce("Sure: " + shown)
        assert caught.value.code == "output_blocked"
