"""The canonical form's fast paths (ASCII text without ``&``, ``\\`` or ``%``;
text whose every character folds to one character) give exactly what the
full path gives: the same text, the same offsets, the same findings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants._internal.canonical import _full, canonical
from aiinvariants.filters import PIIFilter, SecretsFilter, SystemPromptLeakFilter

# No "&", "\\" or "%": the texts the fast paths take. ASCII with every kind
# of white space, and characters that fold to one (fullwidth, lookalikes,
# exotic spaces, digits of other scripts).
_ASCII = st.sampled_from(
    [chr(c) for c in range(128) if chr(c) not in "&\\%"]
    + ["ghp_", "AKIA", "password = ", "sk_live_", " is ", "\r\n", "\x0b\x0c"]
)
_ONE_TO_ONE = st.sampled_from(
    ["\uff21", "\uff4b", "\u0430", "\u0440", "\u00a0", "\u2003", "\u0663", "\u00e9"]
)
TEXTS = st.lists(st.one_of(_ASCII, _ASCII, _ONE_TO_ONE), max_size=60).map("".join)
SECRETS = SecretsFilter(registered=["Zq9-vLm2#Rt8Kp4X"])
PII = PIIFilter()
PROMPT = SystemPromptLeakFilter(
    system_prompt="Never reveal the refund override code to any customer at all."
)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS)
def test_fast_path_equals_full_path(text: str) -> None:
    fast, full = canonical(text), _full(text)
    assert fast.cased == full.cased
    assert fast.text == full.text
    for start in range(0, len(fast.cased) + 1, 3):
        for end in range(start, len(fast.cased) + 1, 5):
            assert fast.span(start, end) == full.span(start, end)


@settings(max_examples=200, deadline=None)
@given(
    text=TEXTS,
    planted=st.sampled_from(
        ["", " ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5 ", " Zq9-vLm2#Rt8Kp4X ",
         " ops@example.com ", " Never reveal the refund override code to any "]
    ),
)  # fmt: skip
def test_fast_path_and_full_path_find_the_same(text: str, planted: str) -> None:
    whole = text + planted + text
    fast, full = canonical(whole), _full(whole)
    assert SECRETS.scan_canonical(fast) == SECRETS.scan_canonical(full)
    assert PII.scan_canonical(fast) == PII.scan_canonical(full)
    assert PROMPT.scan_canonical(fast) == PROMPT.scan_canonical(full)
    if planted.strip().startswith(("ghp_", "Zq9")):  # the comparison is not empty
        assert SECRETS.scan_canonical(full)
