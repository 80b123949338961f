"""The canonical text form: what it folds, and the offset map back."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from aiinvariants._internal.canonical import canonical, fold


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain ascii", "plain ascii"),
        ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),  # noqa: RUF001
        ("p\u0430ss\u200bw\u043erd", "password"),  # Cyrillic a, o; zero-width
        ("\u0391\u0392\u0395 \u03bf", "abe o"),  # Greek capitals, omicron
        ("non\u00a0breaking\u2003em\u2009thin", "non breaking em thin"),
        ("many \t spaces", "many   spaces"),  # one space per character
        ("lines\r\n\u2028folded", "lines\n\n\nfolded"),
        ("s\u00adoft h\u200dyphen", "soft hyphen"),
        ("&#x41;&#66;&amp;&lt;&nbsp;x", "ab&< x"),
        ("\\u0041\\x42\\U00000043", "abc"),
        ("\u0661\u0662\u0663 \u0967\u0968 \uff13", "123 12 3"),  # Arabic, Devanagari
        ("e\u0301te\u0301", "ete"),  # combining marks dropped
        ("\ufb01le", "file"),  # ligature
        ("\U0001d41a\U0001d41b", "ab"),  # mathematical bold
        ("\u2460 \u2461", "1 2"),  # circled digits
        ("\u0130stanbul", "istanbul"),
        ("A\u202eB\u2066C", "abc"),  # bidi controls
        ("&notanentity; a\\q", "&notanentity; a\\q"),
        ("&#xD800;", "&#xd800;"),  # a surrogate is not decoded
    ],
)
def test_folds(text: str, expected: str) -> None:
    assert canonical(text).text == expected


def test_cased_keeps_case_and_length() -> None:
    c = canonical("\uff21\uff2b\uff29\uff21\u200bX&#x59;z")
    assert c.cased == "AKIAXYz"
    assert c.text == "akiaxyz"
    assert len(c.cased) == len(c.text)


def test_span_maps_back_to_original() -> None:
    original = "say s\u200be\u200bc\u200br\u200be\u200bt now"
    c = canonical(original)
    at = c.text.index("secret")
    start, end = c.span(at, at + len("secret"))
    assert original[start:end] == "s\u200be\u200bc\u200br\u200be\u200bt"


def test_span_of_decoded_entity_covers_the_reference() -> None:
    original = "key=&#x41;&#x42;C"
    c = canonical(original)
    assert c.text == "key=abc"
    assert c.span(4, 7) == (4, len(original))
    assert c.span(5, 6) == (10, 16)


def test_exotic_spaces_keep_offsets() -> None:
    original = "a \u00a0\u2003 b\u200bc"
    c = canonical(original)
    assert c.text == "a    bc"
    assert c.span(1, 5) == (1, 5)
    assert c.span(5, 7) == (5, 8)


def test_ascii_fast_path_is_identity() -> None:
    c = canonical("Nothing to fold here.")
    assert c.identity
    assert c.span(3, 9) == (3, 9)


def test_fold_for_identifiers() -> None:
    assert fold(" DeepSeek\u2011R1 ") == "deepseek-r1"  # non-breaking hyphen
    assert fold("d\u0435\u0435pseek") == "deepseek"  # Cyrillic e
    assert fold("gpt\u200b-4o") == "gpt-4o"


@given(st.text(max_size=60))
def test_spans_are_monotone_and_in_bounds(text: str) -> None:
    c = canonical(text)
    assert len(c.text) == len(c.cased)
    previous = (0, 0)
    for i in range(len(c.text)):
        start, end = c.span(i, i + 1)
        assert 0 <= start < end <= len(text)
        assert start >= previous[0]
        assert end >= previous[1]
        previous = (start, end)
    if c.text:
        assert c.span(0, len(c.text))[1] <= len(text)


@given(
    st.text(
        alphabet=st.characters(
            categories=["L", "N", "P", "Mn", "Cf", "Zs"], exclude_characters="&%\\"
        ),
        max_size=60,
    )
)
def test_canonical_form_is_stable(text: str) -> None:
    # Decoding is one level: a text whose canonical form holds a decoder's
    # trigger (``&``, ``%``, a backslash) may decode further, and a
    # lookalike folds to one (U+FE6A SMALL PERCENT SIGN becomes ``%``, so
    # "﹪00" is "%00", whose canonical form is empty). Stable on the rest.
    once = canonical(text).text
    assume(not any(trigger in once for trigger in "&%\\"))
    assert canonical(once).text == once


def test_a_folded_decoder_trigger_is_not_decoded_again() -> None:
    # One level: the lookalike's escape is shown as written, never decoded.
    assert canonical("\ufe6a41\uff0541").text == "%41%41"


@given(st.text(alphabet="abcXYZ019 .-", max_size=40))
def test_ascii_text_keeps_its_characters(text: str) -> None:
    c = canonical(text)
    assert c.identity
    assert c.cased == text
    assert c.text == text.lower()


def _smuggle(text: str) -> str:
    return "".join(
        chr(0xFE00 + b) if b < 16 else chr(0xE0100 + b - 16) for b in text.encode()
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a%20b%41%e2%82%ac", "a ba\u20ac"),  # percent-escapes, UTF-8
        ("100% sure, 50%OFF", "100% sure, 50%off"),  # not escapes
        ("x" + "".join(chr(0xE0000 + ord(c)) for c in "Hidden") + "y", "xhiddeny"),
        ("x" + _smuggle("key=42!") + "y", "xkey=42!y"),  # variation selectors
        ("ok \U0001f600\ufe0f done", "ok \U0001f600 done"),  # one selector: none
    ],
)
def test_hidden_and_percent_encoded_text_is_decoded(text: str, expected: str) -> None:
    c = canonical(text)
    assert c.text == expected
    assert c.span(0, len(c.text)) == (0, len(text))


@pytest.mark.parametrize("char", ["\u00a8", "\u00b4", "\u00b8", "\u00af", "\u02dc"])
def test_a_spacing_diacritic_is_a_character_not_white_space(char: str) -> None:
    # NFKD turns these into a space and a combining mark; a password that
    # holds one must not be split in two there.
    text = f"pw=A{char}b"
    assert canonical(text).text == f"pw=a{char}b"


def test_every_single_character_is_stable() -> None:
    # A capital whose small letter is a lookalike (U+0548, U+0578 -> "n") changed a
    # second time when only the small letter was folded (found by hypothesis).
    unstable = [
        hex(code)
        for code in range(0x80, 0x30000)
        if canonical(once := canonical(chr(code)).text).text != once
    ]
    assert unstable == []
