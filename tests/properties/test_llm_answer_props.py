"""Properties of the answer filters of the LLM guard (I8).

* Wherever a secret sits in a JSON answer (any key that is not structural,
  any depth, inside JSON-valued ``arguments`` with any escaping), the walk
  blocks it.
* A server-sent-event stream gives the same events however the bytes are
  cut into chunks, and the text the caller receives is the text of the
  whole answer with the pipeline applied.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import Guard, OutputBlocked
from aiinvariants.llm import CallGuard, Placement
from aiinvariants.llm._walk import STRUCTURAL, walk
from aiinvariants.llm._wire import WireCheck

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
CHECKS = CallGuard(Guard(), provider="openai", placement=Placement(None), resource="p")

keys = st.text(
    alphabet=st.characters(codec="ascii", categories=["L"]), min_size=1, max_size=8
).filter(lambda k: k not in STRUCTURAL)
fillers = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["ok", "fine", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3)
    ),
    max_leaves=8,
)


def _plant(doc: Any, path: list[str], value: Any) -> Any:
    node = {path[-1]: value}
    for key in reversed(path[:-1]):
        node = {key: node}
    return {**doc, **node} if isinstance(doc, dict) else node


@settings(max_examples=60, deadline=None)
@given(
    doc=st.dictionaries(keys, fillers, max_size=4),
    path=st.lists(keys, min_size=1, max_size=4),
    escaped=st.booleans(),
    in_arguments=st.booleans(),
)
def test_a_secret_anywhere_in_an_answer_is_blocked(
    doc: dict[str, Any], path: list[str], escaped: bool, in_arguments: bool
) -> None:
    value: Any = SECRET
    if in_arguments:
        text = json.dumps({"q": SECRET}, ensure_ascii=True)
        if escaped:
            text = text.replace("ghp_", "".join(f"\\u{ord(c):04x}" for c in "ghp_"))
        path = [*path, "arguments"]
        value = text
    with pytest.raises(OutputBlocked):
        walk(_plant(doc, path, value), CHECKS.text)


def _chunk(text: str, finish: str | None = None) -> bytes:
    doc = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(doc)}\r\n\r\n".encode()


def _content(raw: bytes) -> str:
    out = []
    for line in raw.decode().split("\n"):
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["hello ", "ops@example.com ", "é ", "ok\n"]), max_size=12
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=30),
)
def test_stream_framing_does_not_depend_on_chunking(
    words: list[str], cuts: list[int]
) -> None:
    text = "".join(words)
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    raw = (
        b"".join(_chunk(p) for p in pieces)
        + _chunk("", "stop")
        + b"data: [DONE]\r\n\r\n"
    )
    whole = WireCheck(CHECKS, "openai").sse("chat")
    expected = whole.feed(raw) + whole.end()
    cut = WireCheck(CHECKS, "openai").sse("chat")
    got, at = b"", 0
    for size in cuts:
        got += cut.feed(raw[at : at + size])
        at += size
    got += cut.feed(raw[at:]) + cut.end()
    assert got == expected
    assert _content(got) == CHECKS.text(text)


def _framed(payload: str, style: int) -> bytes:
    """One event carrying ``payload``, in one of three equivalent framings."""
    line = ("data: ", "data:", ": keep-alive\ndata: ")[style] + payload
    return f"{line}\n\n".encode()


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["hello ", "ops@example.com ", SECRET[:20], SECRET[20:]]),
        max_size=10,
    ),
    styles=st.lists(st.integers(min_value=0, max_value=2), min_size=12, max_size=12),
    plain=st.booleans(),
)
def test_a_single_data_line_reads_like_any_other_framing(
    words: list[str], styles: list[int], plain: bool
) -> None:
    # a lone "data: " line takes a shorter parse: the checked output must be
    # the one the general parse gives (a secret split over events included)
    payloads = [
        w if plain else json.dumps(json.loads(_chunk(w)[6:].decode())) for w in words
    ]
    payloads.append("[DONE]")

    def run(framing: list[int]) -> bytes | str:
        sse = WireCheck(CHECKS, "openai").sse("chat")
        try:
            raw = b"".join(
                _framed(p, s) for p, s in zip(payloads, framing, strict=False)
            )
            return sse.feed(raw) + sse.end()
        except OutputBlocked as err:
            return err.code

    assert run(styles) == run([1] * len(styles))
