"""Runs of written-back splitters are read once (issue #13, red team).

The written-back pass asks, for each decoded or folded splitter, which
characters sit just outside the run of written-back positions it is in. It
once walked the run from every member: 20,000 fullwidth at signs (U+FF20) in a row took
34 s of CPU (quadratic). ``_gaps`` finds every run's bounds in one pass; this
checks it against the walk it replaced, and that such runs still end in the
same findings as the pure reading of the text.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiinvariants._internal.canonical import canonical
from aiinvariants.filters import SecretsFilter
from aiinvariants.filters._secret_written import _gaps, decoded_splitters


def _walked(written: set[int], at: int) -> tuple[int, int]:
    left = at - 1
    while left in written:
        left -= 1
    right = at + 1
    while right in written:
        right += 1
    return left, right


@given(st.sets(st.integers(min_value=0, max_value=200), max_size=80))
def test_gaps_are_the_bounds_the_walk_finds(written: set[int]) -> None:
    gaps = _gaps(sorted(written))
    assert set(gaps) == written
    for at in written:
        assert gaps[at] == _walked(written, at)


def test_long_runs_of_decoded_or_folded_splitters_are_judged() -> None:
    # A password split by a run of encoded or folded splitters is still
    # judged as written; the runs themselves are no finding.
    for gap in ("\uff20" * 3000, "%3B" * 3000, "\uff1b%3B" * 1500):
        text = f"password = Tr0ub{gap}dor!Qx9z and more"
        canon = canonical(text)
        assert decoded_splitters(canon), gap[:6]
        assert SecretsFilter().scan(f"{gap}{gap}") == []
