"""Red team of the statistical results file (AIINVARIANTS_STATS_JSON).

The file is evidence that gets attached to reports and shared; the result's
name defaults to the pytest node id, which carries the test's parameters.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from aiinvariants.testing import assert_holds_with_probability
from aiinvariants.testing._stats import RESULTS_ENV

KEY = "AKIA" + "Q3EGZ7XN2B5KD4WM"  # an AWS access key id, in the real format


def test_a_secret_in_the_test_id_is_not_written_to_the_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. @pytest.mark.parametrize("key", [os.environ["STRIPE_KEY"], ...])
    results = tmp_path / "stats.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    monkeypatch.setenv(
        "PYTEST_CURRENT_TEST", f"tests/test_leaks.py::test_never_leaks[{KEY}] (call)"
    )
    report = assert_holds_with_probability(
        lambda: True, max_violation_rate=0.5, confidence=0.9
    )
    text = results.read_text(encoding="utf-8")
    assert KEY not in text
    assert report.name is not None
    assert KEY not in report.name
    assert json.loads(text)["name"].startswith("tests/test_leaks.py::test_never_leaks[")


def test_a_secret_in_an_explicit_name_is_not_written_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "stats.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    assert_holds_with_probability(
        lambda: True, max_violation_rate=0.5, confidence=0.9, name=f"leak of {KEY}"
    )
    assert KEY not in results.read_text(encoding="utf-8")


def _writer(path: str, name: str) -> None:
    import os

    os.environ[RESULTS_ENV] = path
    for _ in range(40):
        assert_holds_with_probability(
            lambda: True, max_violation_rate=0.5, confidence=0.9, name=name
        )


def test_parallel_writers_never_tear_a_line(tmp_path: Path) -> None:
    # pytest-xdist: several processes append to one file at once.
    results = tmp_path / "stats.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_writer, args=(str(results), f"w{i}-" + "x" * 5000))
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = results.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 160
    for line in lines:
        assert json.loads(line)["passed"] is True
