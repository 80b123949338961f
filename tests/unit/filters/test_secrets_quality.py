"""SecretsFilter quality: fresh generated cases, corpus floors, value judgement."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from aiinvariants.filters import SecretsFilter
from aiinvariants.filters._secret_values import is_placeholder, strong_value

FIXTURES = Path(__file__).parents[2] / "fixtures"
ROOT = Path(__file__).parents[3]
# ../shared/corpora next to the checkout (or next to its worktree folder)
CORPORA = next(
    (
        base / "shared" / "corpora"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "corpora").is_dir()
    ),
    ROOT.parent / "shared" / "corpora",
)
FILTER = SecretsFilter()


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_secrets_corpus", FIXTURES / "make_secrets_corpus.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rates(rows: list[dict[str, str]], positive: str = "TP") -> tuple[float, float]:
    tp = fp = fn = 0
    for row in rows:
        hit = bool(FILTER.scan(row["text"]))
        if row["label"] == positive:
            tp += hit
            fn += not hit
        else:
            fp += hit
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


@pytest.mark.parametrize("seed", [7, 2026])
def test_fresh_cases_recall_and_false_positives(seed: int) -> None:
    """Credentials never seen before, drawn from the documented formats."""
    rows = _generator().fresh_cases(seed, per_rule=6)
    positives = [r for r in rows if r["label"] == "TP"]
    negatives = [r for r in rows if r["label"] == "FP"]
    missed = [
        r["rule_id"]
        for r in positives
        if r["rule_id"] not in {f.rule_id for f in FILTER.scan(r["text"])}
    ]
    flagged = [r["text"][:80] for r in negatives if FILTER.scan(r["text"])]
    assert len(missed) <= len(positives) // 100, missed
    assert len(flagged) <= len(negatives) // 100, flagged


def _corpus(name: str) -> list[dict[str, str]]:
    folder = CORPORA / name
    if not folder.exists():
        pytest.skip(f"corpus {name} absent")
    path = next(folder.glob("cases.jsonl*"))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return [json.loads(line) for line in fh if line.strip()]


def test_gitleaks_corpus_floor() -> None:
    """Pinned below today's figures so a regression fails (goal 98% / 90%)."""
    precision, recall = _rates(_corpus("secrets-gitleaks"))
    assert precision >= 0.98
    assert recall >= 0.93


def test_detect_secrets_corpus_floor() -> None:
    """Pinned below today's figures, rows as bare lines. Precision counts
    every row; 54 keyword rows are labelled by file type
    (docs/output-filters.md)."""
    precision, recall = _rates(_corpus("secrets-detect-secrets"))
    assert precision >= 0.85
    assert recall >= 0.83


def test_detect_secrets_corpus_fenced_floor() -> None:
    """The goal (90% precision, 80% recall), rows as an answer carries them:
    a row with a file type in a fence naming its language (the benchmark's
    adapter); every row counts."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.bench_filters import fenced_row

    rows = [fenced_row(r) for r in _corpus("secrets-detect-secrets")]
    assert sum("```" in str(r["text"]) for r in rows) == 323
    precision, recall = _rates(rows)  # type: ignore[arg-type]
    # 9 of the FP rows are a 40-character value in single quotes in a C,
    # C# or Objective-C file, which detect-secrets' plugin skips (it wants
    # double quotes there): no character literal, so reported (91.5%).
    assert precision >= 0.91
    assert recall >= 0.80


@pytest.mark.parametrize(
    "value",
    ["Latest-Summer2024!", "Contest88Winner", "Example-Tiger77!", "TestPilot#2291"],
)
def test_real_passwords_with_placeholder_words_are_reported(value: str) -> None:
    for line in (f'password = "{value}"', f"DB_PASSWORD={value}", f"secret: {value}"):
        assert FILTER.scan(line), line


@pytest.mark.parametrize(
    "value",
    [
        "<YOUR_KEY>",
        "sk-...",
        "xxxx",
        "YOUR_API_KEY",
        "your-api-key-here",
        "${API_KEY}",
        "{{ secrets.TOKEN }}",
        "changeme",
        "********",
        "my-secret-token-123",
        "REPLACE_ME",
        "%(password)s",
        "AKIAIOSFODNN7EXAMPLE",
    ],
)
def test_whole_value_placeholders_are_not_reported(value: str) -> None:
    assert is_placeholder(value)
    assert FILTER.scan(f'api_key = "{value}"') == []


def test_strength_needs_more_than_one_kind_of_character() -> None:
    assert not strong_value("abcdefghij")
    assert not strong_value("1234567890123456")
    assert not strong_value("real_secret")
    assert strong_value("n3ud5jk4fobykj0w5fbwgzmik")
    assert strong_value("correct horse battery staple")


def test_generator_is_deterministic_and_documented() -> None:
    module = _generator()
    assert module.fresh_cases(3, per_rule=1) == module.fresh_cases(3, per_rule=1)
    rule_ids = {r.id for r in FILTER.rules}
    assert set(module.SAMPLES) == rule_ids
    assert all(re.fullmatch(r"[a-z0-9-]+", rid) for rid in rule_ids)
