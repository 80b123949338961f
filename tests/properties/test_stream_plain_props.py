"""The stream's shortcut for text that is its own canonical form.

``StreamGuard`` counts a window's left context and its judging budget in
canonical characters. For plain ASCII (no character that may begin an entity
or escape, no control character the canonical form drops) it counts
characters as written instead of computing the canonical form: that shortcut
must agree with the canonical form for every text, or a copy's first half
could drop out of the window that decides its second half.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants._internal.canonical import canonical
from aiinvariants.filters._streaming import (
    _canonical_length,
    _context_start,
    _plain,
)

# Plain ASCII, the characters that end the shortcut, and pieces that shrink
# or vanish in the canonical form (entities, escapes, invisible characters).
PIECES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8),
    st.sampled_from(
        ["&amp;", "&#65;", "&lt", "%41", "\\u0041", "\\x41", "\\n", "\x00", "\x1b"]
    ),
    st.sampled_from(["\u200b", "\u0301", "\ufe0f", "\u00a0", "\uff21", "&", "%"]),
)
TEXTS = st.lists(PIECES, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_plain_text_keeps_its_length_in_the_canonical_form(text: str) -> None:
    # White space is folded (a tab reads as a space), one character for one:
    # what the stream counts is the canonical characters, not their values.
    if _plain(text):
        canon = canonical(text)
        assert len(canon.cased) == len(text)
        assert all(canon.position(i) == i for i in range(len(text)))


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.data())
def test_canonical_length_agrees_with_the_canonical_form(
    text: str, data: st.DataObject
) -> None:
    # The stream asks for a prefix of the window it just scanned.
    size = data.draw(st.integers(min_value=-2, max_value=len(text)))
    canon = canonical(text)
    expected = sum(1 for i in range(len(canon.cased)) if canon.position(i) < size)
    assert _canonical_length(text, size) == expected


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.data())
def test_context_start_holds_the_context_asked_for(
    text: str, data: st.DataObject
) -> None:
    end = data.draw(st.integers(min_value=0, max_value=len(text)))
    want = data.draw(st.integers(min_value=1, max_value=64))
    start = _context_start(text, end, want)
    assert start is not None  # far below the cap on stuffed context
    assert 0 <= start <= end
    # Either the answer's start or at least ``want`` canonical characters.
    assert start == 0 or len(canonical(text[start:end]).text) >= want


def test_one_shrinking_character_anywhere_in_a_long_window_is_seen() -> None:
    # The shortcut reads the whole window (a set test stopped at the first
    # hit too; the compiled class must not miss a late one).
    body = "plain prose " * 6000
    for char in ("&", "%", "\\", "\x00", "\x7f", "\x1b"):
        for at in (0, len(body) // 2, len(body) - 1):
            text = body[:at] + char + body[at:]
            assert not _plain(text)
    assert _plain(body)
