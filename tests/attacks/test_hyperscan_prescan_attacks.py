"""Attacks on the vectorscan pre-scan (the ``hyperscan`` extra): text shaped
so that the native candidate search misses a credential the rules catch.

Besides the byte/character and case-folding routes the RE2 pre-scan is
tried with, vectorscan has its own: the gated anchors (the assignment shape
is compiled without start offsets; its keyword is scanned only up to the
gate's last match end), the match cap (past it the text takes the pure
path), every match reported (overlapping anchors), and per-thread scratch
space (concurrent scans). The secure outcome: the answer is blocked
(``output_blocked``) by the same rules as on the pure path, and redaction
masks the same spans.
"""

from __future__ import annotations

import threading

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter

pytest.importorskip("hyperscan")

GHP = "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9"
AKIA = "AKIAQZ7RT2MX4K5W6Y3J"
VALUE = "hU7kd82Lpq9"


def _filter(engine: str, action: str = "redact") -> SecretsFilter:
    f = SecretsFilter(action=action)  # type: ignore[arg-type]
    f._engine = engine
    return f


NATIVE = _filter("hyperscan")
PURE = _filter("pure")

CASES = {
    # the routes the RE2 pre-scan is tried with
    "multibyte before": "😀" * 50 + "日本語のテキスト " + GHP,
    "long-s keyword": f"\u017fecret = '{VALUE}'; token " + GHP,
    "kelvin keyword": f"\u212aEY: '{VALUE}' " + AKIA,
    "back to back": GHP * 4,
    "overlapping prefixes": "AKIA" + AKIA,
    "after a long anchor match": "ZXlK" + "QUJD" * 300 + " " + GHP,
    "assignment after emoji": "🔑 DB_PASSWORD=Xq9.Zr8KpL2wTT",
    "question marks": "??? " + GHP + " ???",
    # the gated anchors: a keyword far before the end of its match, many
    # keyword occurrences before it, one right at the gate's end
    "long key name": "api_key" + "_x" * 10 + f" = '{VALUE}'",
    "keywords before the assignment": "token " * 500 + f"token = '{VALUE}'",
    "keyword after the last match": f"password = '{VALUE}' password token auth",
    "assignment at the buffer's end": "x" * 4000 + f"secret='{VALUE}'",
    "assignment at the buffer's start": f"pwd: '{VALUE}'" + " y" * 2000,
    "upper-case name": "ENV PASSWORD Tr0ub4dor&3xQz!9",
    "credential split by a newline key": f"credential\n  = '{VALUE}'",
    # the match cap: anchors flood the text, the credential comes last
    "flood of token prefixes": "ghp_ " * 30_000 + GHP,
    "flood of assignments": "password=ab. " * 8_000 + f"password = '{VALUE}'",
    "flood of AKIA": "AKIA" * 40_000 + " " + AKIA,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_vectorscan_finds_what_the_rules_find(name: str) -> None:
    text = CASES[name]
    native, pure = NATIVE.scan(text), PURE.scan(text)
    assert pure  # the case holds a credential the rules catch
    assert native == pure
    with pytest.raises(OutputBlocked) as caught:
        OutputPipeline([_filter("hyperscan", "block")]).enforce(text)
    assert caught.value.code == "output_blocked"
    assert {f.rule_id for f in native} <= set(caught.value.rule_ids)


@pytest.mark.parametrize("name", sorted(CASES))
def test_redaction_is_the_same_as_the_pure_path(name: str) -> None:
    text = CASES[name]
    native = OutputPipeline([NATIVE]).check(text).text
    assert native == OutputPipeline([PURE]).check(text).text
    for secret in (GHP, AKIA, VALUE, "Xq9.Zr8KpL2wTT"):
        assert secret not in native


def test_the_cap_hands_the_text_to_the_pure_path() -> None:
    """A flood of matches stops the native scan (None: the pure path runs)
    instead of growing a match list without bound."""
    native = NATIVE._native()
    assert native is not None
    assert native[0].windows("AKIA" * 40_000) is None
    assert native[0].windows("AKIA" * 10) is not None


def test_concurrent_scans_agree() -> None:
    """Each thread scans with its own scratch space: eight threads scanning
    different texts at once get the pure path's findings."""
    texts = [
        "prose " * (200 * i) + f"key_{i} = '{VALUE}{i}x' " + GHP + " done"
        for i in range(8)
    ]
    expected = [PURE.scan(t) for t in texts]
    results: dict[int, object] = {}
    barrier = threading.Barrier(len(texts))

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            found = NATIVE.scan(texts[i])
            if found != expected[i]:
                results[i] = found
                return
        results[i] = "same"

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == dict.fromkeys(range(len(texts)), "same")


def test_an_engine_error_hands_the_text_to_the_pure_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """vectorscan failing mid-scan (out of memory, a scratch in use) must
    not lose a credential nor raise: the pure path decides."""
    import hyperscan

    native = NATIVE._native()
    assert native is not None
    prescan = native[0]
    assert prescan.windows("warm up this thread's scratch space") is not None

    class Failing:
        def scan(self, *_args: object, **_kwargs: object) -> None:
            raise hyperscan.error("engine failure")

    monkeypatch.setattr(prescan, "_db", Failing())
    text = f"password = '{VALUE}' and {GHP}"
    assert prescan.windows(text) is None
    assert NATIVE.scan(text) == PURE.scan(text)
    assert {f.rule_id for f in NATIVE.scan(text)} >= {"github-pat"}
