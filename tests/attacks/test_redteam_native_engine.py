"""Red team of the native candidate search of SecretsFilter (issue #13).

The vectorscan pre-scan (the ``hyperscan`` extra) must report the same
findings as the pure-Python path, and at a cost bounded by it: "Bounded
cost" in DESIGN.md. An engine an operator turns on for speed must not hand
an attacker a text that costs many times what the default install costs
(an answer the model is steered into writing, scanned on every request).

Attacks here:

* candidate-dense text: a token keyword (``aa``, the Telegram rule's) at
  every character of a run the pure path never looks inside (no digit nor
  capital), inside the windows the pre-scan opens (``==`` anchors nearby);
  the windowed search tried it one character at a time (10x the pure path);
* a gate flood: a gated anchor (compiled without start offsets) reports
  every end offset of a long run (``[A-Za-z0-9_-]{33,}`` after
  ``12345678:AA``), one Python call per character, and those reports did not
  count against the match cap.

The secure outcome: the same findings as the pure path (the credential at
the end is blocked, ``output_blocked``) at a cost within a small factor of
the pure path's.
"""

from __future__ import annotations

import time

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter

pytest.importorskip("hyperscan")

GHP = "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9"


def _filter(engine: str, action: str = "redact") -> SecretsFilter:
    f = SecretsFilter(action=action)  # type: ignore[arg-type]
    f._engine = engine
    return f


NATIVE = _filter("hyperscan")
PURE = _filter("pure")


def _best(f: SecretsFilter, text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        f.scan(text)
        best = min(best, time.perf_counter() - start)
    return best


DENSE = ("== " + "a" * 50 + "pass ") * 4_000 + GHP


def test_dense_keywords_in_plain_runs_cost_no_more_than_the_pure_path() -> None:
    assert NATIVE._native() is not None  # built before timing
    assert NATIVE.scan(DENSE) == PURE.scan(DENSE)
    pure, native = _best(PURE, DENSE), _best(NATIVE, DENSE)
    assert native <= 5 * pure + 0.02, (native, pure)
    with pytest.raises(OutputBlocked) as caught:
        OutputPipeline([_filter("hyperscan", "block")]).enforce(DENSE)
    assert caught.value.code == "output_blocked"
    assert "github-pat" in caught.value.rule_ids


def test_a_gate_reporting_every_character_is_capped() -> None:
    """A long run after ``12345678:AA``: the Telegram gate reports every
    character; past the cap the text takes the pure path (same findings)."""
    native = NATIVE._native()
    assert native is not None
    text = "12345678:AA" + "b" * 200_000 + " " + GHP
    assert native[0].windows(text) is None
    assert NATIVE.scan(text) == PURE.scan(text)
    assert {f.rule_id for f in NATIVE.scan(text)} >= {"github-pat"}
