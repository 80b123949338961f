"""Every candidate search of SecretsFilter reports the same findings.

The pure-Python search (the default install) is the reference; each native
engine installed here (``re2``, ``hyperscan``: vectorscan) runs on the same
texts: the in-repo corpus and fresh cases, the public corpora (when
present), generated text from :mod:`aiinvariants.testing.strategies`, and
adversarial inputs (anchors at window and buffer edges, overlapping
anchors, non-ASCII, very long runs, more matches than the engine's cap).
Streaming runs the engine too: stream and one-shot agree per engine.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked, PolicyError
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard
from aiinvariants.filters._base import Finding
from aiinvariants.filters._prescan_engines import ENGINE_ENV, engine_choice
from aiinvariants.testing.strategies import chunkings, obfuscations

FIXTURES = Path(__file__).parents[2] / "fixtures"
ROOT = Path(__file__).parents[3]
CORPORA = next(
    (
        base / "shared" / "corpora"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "corpora").is_dir()
    ),
    ROOT.parent / "shared" / "corpora",
)
NATIVE = [e for e in ("re2", "hyperscan") if importlib.util.find_spec(e)]
pytestmark = pytest.mark.skipif(not NATIVE, reason="no native engine installed")

PURE = SecretsFilter()
PURE._engine = "pure"


def _filter(engine: str) -> SecretsFilter:
    f = SecretsFilter()
    f._engine = engine
    assert f._native() is not None, f"the {engine} engine was not built"
    return f


FILTERS = {engine: _filter(engine) for engine in NATIVE}


def _agree(text: str) -> list[Finding]:
    """The findings of every engine on ``text``, asserted equal."""
    expected = PURE.scan(text)
    for engine, f in FILTERS.items():
        assert f.scan(text) == expected, engine  # never print a credential
    return expected


def _texts(path: Path, key: str = "text") -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return [str(json.loads(line)[key]) for line in fh if line.strip()]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_secrets_corpus", FIXTURES / "make_secrets_corpus.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("engine", NATIVE)
def test_each_engine_is_built_and_opens_windows(engine: str) -> None:
    """Without this every comparison would compare the pure path with itself."""
    native = FILTERS[engine]._native()
    assert native is not None
    prescan, _ = native
    assert list(prescan.windows("plain prose, no credential at all") or [1]) == []
    spans = list(prescan.windows("x = 1\nkey: ghp_" + "aZ3kQ9" * 6) or [])
    assert spans
    assert spans[0][0] <= 11


def test_in_repo_corpus_and_fresh_cases_agree() -> None:
    texts = _texts(FIXTURES / "secrets_corpus.jsonl")
    texts += [r["text"] for r in _generator().fresh_cases(1613, per_rule=3)]
    found = sum(bool(_agree(text)) for text in texts)
    assert found > len(texts) // 4


@pytest.mark.parametrize(
    ("folder", "name"),
    [("secrets-detect-secrets", "cases.jsonl"), ("secrets-gitleaks", "cases.jsonl.gz")],
)
def test_public_corpora_agree(folder: str, name: str) -> None:
    path = CORPORA / folder / name
    if not path.exists():
        pytest.skip(f"{folder} corpus absent")
    found = sum(bool(_agree(text)) for text in _texts(path))
    assert found > 100


_PIECES = [
    "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9",
    "AKIAQZ7RT2MX4K5W6Y3J",
    "password = 'hU7kd82Lpq9' ",
    "token = request.headers.get(name) ",
    "Authorization: Bearer Zq9vLm2Rt8Kp4XaB ",
    "ENV PASSWORD Tr0ub4dor&3xQz!9 ",
    "api_key_for_the_production_database_of_team_42 = 'hU7kd82Lpq9' ",
    "AUTH ",
    "key",
    "pass",
    "token",
    "é",
    "\u017f",
    "😀",
    "\n",
    "=",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]
_TEXTS = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.text(max_size=10)), max_size=16
).map("".join)


@settings(max_examples=200, deadline=None)
@given(text=_TEXTS)
def test_generated_texts_agree(text: str) -> None:
    _agree(text)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_obfuscated_credentials_agree(data: st.DataObject) -> None:
    """The library's own obfuscation strategy around a real-shaped key."""
    secret = data.draw(st.sampled_from(_PIECES[:3] + _PIECES[4:7]))
    _agree("prefix " + data.draw(obfuscations(secret)) + " suffix")


_KEY = "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9"


@pytest.mark.parametrize(
    "text",
    [
        # anchors at the buffer's edges, back to back and overlapping
        _KEY,
        "password=hU7kd82Lpq9",
        "x" + _KEY[:-1],
        _KEY * 3,
        "password=password=hU7kd82Lpq9",
        "AKIAAKIAQZ7RT2MX4K5W6Y3J",
        "key=" + _KEY,
        # a keyword of a gated anchor far before its match, and after the
        # last match (its occurrences there open no window)
        "token " + "x" * 5000 + " token = 'hU7kd82Lpq9' token token",
        "api_key" + "_x" * 900 + " = 'hU7kd82Lpq9'",
        "Authorization" + " " * 3 + ": Bearer Zq9vLm2Rt8Kp4XaB",
        # a window's far edge: a long match, then a key right after it
        "x" * 3000 + " key: " + "A1" * 40 + " AKIAQZ7RT2MX4K5W6Y3J",
        "ZXlK" + "QUJD" * 200 + " " + _KEY,
        # non-ASCII around and inside; the characters that fold to ASCII
        "ключ: password = 'hU7kd82Lpq9' — " + _KEY,
        "😀AKIAQZ7RT2MX4K5W6Y3J😀",
        "\u017fecret = 'hU7kd82Lpq9'",
        "\u212aEY = 'hU7kd82Lpq9'",
        "PASSPASSWORD Tr0ub4dor&3xQz!9",
        "😀 ключ AUTH Tr0ub4dor&3xQz!9 — PASSWORD is Tr0ub4dor&3xQz!9",
    ],
)
def test_adversarial_edges_agree(text: str) -> None:
    _agree(text)


@pytest.mark.parametrize(
    "unit",
    ["token=", "key=a(", "password=ab.", "DB_PASSWORD ", 'secret="', "-us1", "ghp_"],
)
def test_adversarial_repetitions_agree(unit: str) -> None:
    """More matches than a native engine's cap: the text takes the pure path."""
    _agree(unit * (20_000 // len(unit)))


def test_a_very_long_run_agrees() -> None:
    _agree("A1b2" * 50_000 + " " + _KEY + " " + "z" * 100_000)


# -- streaming runs the engine too --------------------------------------------


def _pipeline(engine: str) -> OutputPipeline:
    f = SecretsFilter(action="redact")
    f._engine = engine
    return OutputPipeline([f])


STREAM = {engine: _pipeline(engine) for engine in ["pure", *NATIVE]}


def _stream(p: OutputPipeline, chunks: list[str]) -> tuple[str, bool]:
    guard = StreamGuard(p)
    out: list[str] = []
    try:
        for chunk in chunks:
            out.append(guard.feed(chunk))
        out.append(guard.close())
    except OutputBlocked:
        return "".join(out), True
    return "".join(out), False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stream_equals_one_shot_for_every_engine(data: st.DataObject) -> None:
    text = data.draw(_TEXTS)
    chunks = data.draw(chunkings(text, max_chunks=12))
    reference = STREAM["pure"].check(text)
    for engine, p in STREAM.items():
        one_shot = p.check(text)
        assert one_shot.text == reference.text, engine
        assert one_shot.blocked == reference.blocked, engine
        out, blocked = _stream(p, chunks)
        assert blocked == one_shot.blocked, engine
        if not blocked:
            assert out == one_shot.text, engine


# -- selecting the engine ------------------------------------------------------


def test_engine_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "pure")
    assert engine_choice() == "pure"
    assert SecretsFilter()._native() is None
    monkeypatch.setenv(ENGINE_ENV, NATIVE[-1])
    assert engine_choice() == NATIVE[-1]
    monkeypatch.delenv(ENGINE_ENV)
    assert engine_choice() == NATIVE[0]  # auto: re2 first, the faster here
    monkeypatch.setenv(ENGINE_ENV, "pcre2")
    with pytest.raises(PolicyError, match=ENGINE_ENV):
        engine_choice()
    monkeypatch.setattr(
        "aiinvariants.filters._prescan_engines._installed", lambda e: e == "pure"
    )
    with pytest.raises(PolicyError, match="not installed"):
        engine_choice("hyperscan")


def test_import_does_not_load_a_native_engine() -> None:
    import subprocess
    import sys

    code = (
        "import sys, aiinvariants, aiinvariants.filters; "
        "print('re2' in sys.modules, 'hyperscan' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]
