"""Bedrock stream filtering is chunking-invariant (hypothesis).

The event walker that filters ConverseStream and InvokeModel streams must
give the caller, for any way the provider splits a field into deltas, the
same text as one check of the whole field; a blocking secret raises before
any of its characters is yielded. Tool-use input (JSON) is released whole.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import Guard, OutputBlocked
from aiinvariants.filters import StreamGuard
from aiinvariants.integrations._bedrock_output import EventWalker, InvokeStreamFilter
from aiinvariants.testing import strategies as ais

PIPELINE = Guard().output_pipeline()
SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
TEXTS = (
    "Write to ops@example.com or call us on weekdays between nine and five.",
    "no finding here, just a plain and fairly short answer to the question",
)


def walker() -> EventWalker:
    return EventWalker(PIPELINE.enforce, lambda: StreamGuard(PIPELINE))


def converse_events(pieces: list[str], kind: str) -> list[dict[str, Any]]:
    def delta(piece: str) -> dict[str, Any]:
        inner: dict[str, Any] = (
            {"text": piece}
            if kind == "text"
            else {"reasoningContent": {"text": piece}}
            if kind == "reasoning"
            else {"toolUse": {"input": piece}}
        )
        return {"contentBlockDelta": {"contentBlockIndex": 0, "delta": inner}}

    return [
        {"messageStart": {"role": "assistant"}},
        *(delta(p) for p in pieces),
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
    ]


def field(events: list[dict[str, Any]], kind: str) -> str:
    out = []
    for event in events:
        delta = event.get("contentBlockDelta", {}).get("delta", {})
        value = (
            delta.get("text")
            if kind == "text"
            else delta.get("reasoningContent", {}).get("text")
            if kind == "reasoning"
            else delta.get("toolUse", {}).get("input")
        )
        out.append(value or "")
    return "".join(out)


def run(events: list[Any], filt: Any) -> list[Any]:
    out: list[Any] = []
    for event in events:
        out.extend(filt.process(event))
    out.extend(filt.finish())
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(TEXTS).flatmap(ais.chunkings),
    st.sampled_from(["text", "reasoning"]),
)
def test_text_fields_match_one_whole_check(pieces: list[str], kind: str) -> None:
    text = "".join(pieces)
    out = run(converse_events(pieces, kind), walker())
    assert field(out, kind) == PIPELINE.check(text).text
    # The event that ends the block comes after every released delta.
    stops = [i for i, e in enumerate(out) if "contentBlockStop" in e]
    deltas = [i for i, e in enumerate(out) if "contentBlockDelta" in e]
    assert stops
    assert max(deltas) < stops[0]


def escaped_doc(text: str) -> str:
    """Tool input JSON whose string is written in ``\\uXXXX`` escapes only."""
    return '{"query": "' + "".join(f"\\u{ord(c):04x}" for c in text) + '"}'


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TEXTS).map(escaped_doc).flatmap(ais.chunkings))
def test_tool_input_is_released_whole_and_decoded(chunks: list[str]) -> None:
    text = json.loads("".join(chunks))["query"]
    out = run(converse_events(chunks, "tool"), walker())
    released = [e for e in out if field([e], "tool")]
    assert len(released) == 1
    assert json.loads(field(out, "tool")) == {"query": PIPELINE.check(text).text}


@settings(max_examples=150, deadline=None)
@given(ais.chunkings(f"The key is {SECRET} as requested by the admin team today."))
def test_a_secret_never_leaves_before_the_block(pieces: list[str]) -> None:
    filt = InvokeStreamFilter(walker())
    events = [
        {
            "chunk": {
                "bytes": json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": p},
                    }
                ).encode()
            }
        }
        for p in pieces
    ]
    seen: list[str] = []
    try:
        for event in events:
            for out in filt.process(event):
                seen.append(json.loads(out["chunk"]["bytes"])["delta"]["text"])
        filt.finish()
    except OutputBlocked:
        pass
    else:
        raise AssertionError("the secret was not blocked")
    assert SECRET[:8] not in "".join(seen)


def test_the_seed_that_crashed_the_interpreter_runs_clean() -> None:
    # ContextVar.set in the secrets scan's budget block crashed CPython 3.11
    # (a segmentation fault) on this property with this seed; the scan keeps
    # that state per thread now. Run it in a child: a crash is an exit code.
    import subprocess
    import sys
    from pathlib import Path

    test = f"{Path(__file__)}::test_a_secret_never_leaves_before_the_block"
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--hypothesis-seed=1", test],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stdout[-2000:] + child.stderr[-2000:]
