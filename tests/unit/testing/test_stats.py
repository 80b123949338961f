from __future__ import annotations

import asyncio
import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinvariants import PolicyError
from aiinvariants.testing import (
    aassert_holds_with_probability,
    assert_holds_with_probability,
    clopper_pearson_upper,
    required_trials,
)
from aiinvariants.testing._stats import _binom_cdf


@pytest.mark.parametrize(
    ("violations", "trials", "confidence", "expected"),
    [
        (0, 299, 0.95, 0.009969),  # the classic: 299 clean trials < 1% at 95%
        (0, 298, 0.95, 0.010002),  # one fewer is not enough
        (0, 10, 0.95, 0.258866),  # 1 - 0.05 ** (1/10)
        (1, 100, 0.95, 0.046560),
        (5, 100, 0.95, 0.102253),
        (10, 1000, 0.99, 0.020043),
        (50, 50, 0.95, 1.0),
    ],
)
def test_exact_upper_bound_matches_known_binomial_cases(
    violations: int, trials: int, confidence: float, expected: float
) -> None:
    got = clopper_pearson_upper(violations, trials, confidence)
    assert got == pytest.approx(expected, abs=2e-6)


@given(
    st.integers(1, 400).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_upper_bound_is_where_the_tail_probability_is_alpha(
    case: tuple[int, int], confidence: float
) -> None:
    trials, violations = case
    upper = clopper_pearson_upper(violations, trials, confidence)
    assert violations / trials <= upper <= 1
    assert _binom_cdf(violations, trials, upper) == pytest.approx(
        1 - confidence, rel=1e-6, abs=1e-12
    )
    # More violations never give a tighter bound.
    if violations + 1 < trials:
        assert clopper_pearson_upper(violations + 1, trials, confidence) > upper


@pytest.mark.parametrize(
    ("rate", "confidence", "n"),
    [(0.01, 0.95, 299), (0.05, 0.95, 59), (0.001, 0.99, 4603), (0.1, 0.9, 22)],
)
def test_required_trials_is_the_smallest_that_can_pass(
    rate: float, confidence: float, n: int
) -> None:
    assert required_trials(rate, confidence) == n
    assert clopper_pearson_upper(0, n, confidence) <= rate
    assert clopper_pearson_upper(0, n - 1, confidence) > rate
    assert n == math.ceil(math.log(1 - confidence) / math.log(1 - rate))


def test_passes_with_the_chosen_number_of_clean_trials() -> None:
    calls = 0

    def trial() -> bool:
        nonlocal calls
        calls += 1
        return True

    report = assert_holds_with_probability(
        trial, max_violation_rate=0.01, confidence=0.95
    )
    assert calls == 299
    assert report.passed
    assert report.violations == 0
    assert report.upper_bound < 0.01


def test_one_violation_in_the_minimum_run_fails_with_a_readable_report() -> None:
    outcomes = iter([True] * 150 + [False] + [True] * 148)

    with pytest.raises(AssertionError) as info:
        assert_holds_with_probability(
            lambda: next(outcomes), max_violation_rate=0.01, confidence=0.95
        )
    text = str(info.value)
    assert "NOT shown to hold" in text
    assert "trials 299, violations 1" in text
    assert "failed trial #150: returned False" in text
    assert "upper bound 1.5" in text


def test_exceptions_and_non_bools_count_as_violations() -> None:
    def trial() -> bool:
        raise TimeoutError("model took too long; prompt was SECRET-XYZ")

    with pytest.raises(AssertionError) as info:
        assert_holds_with_probability(
            trial, max_violation_rate=0.5, confidence=0.9, n=5
        )
    assert "raised TimeoutError" in str(info.value)
    assert "SECRET-XYZ" not in str(info.value)  # messages may carry data

    with pytest.raises(AssertionError, match="not a bool"):
        assert_holds_with_probability(
            lambda: 1,  # type: ignore[arg-type, return-value]
            max_violation_rate=0.5,
            confidence=0.9,
            n=5,
        )


def test_a_small_rate_of_violations_passes_with_enough_trials() -> None:
    counter = iter(range(10_000))

    def trial() -> bool:
        return next(counter) % 200 != 0  # 0.5% violations

    report = assert_holds_with_probability(
        trial, max_violation_rate=0.02, confidence=0.95, n=1000
    )
    assert report.violations == 5
    assert report.observed_rate == 0.005
    assert report.upper_bound < 0.02


def test_async_trials_run_concurrently_within_the_limit() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    async def trial() -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        await asyncio.sleep(0.001)
        with lock:
            running -= 1
        return True

    report = assert_holds_with_probability(
        trial, max_violation_rate=0.05, confidence=0.95, concurrency=4
    )
    assert report.trials == 59
    assert peak == 4


def test_async_variant_inside_a_running_loop() -> None:
    async def trial() -> bool:
        return True

    async def main() -> int:
        with pytest.raises(PolicyError, match="aassert_holds_with_probability"):
            assert_holds_with_probability(trial, max_violation_rate=0.1, confidence=0.9)
        report = await aassert_holds_with_probability(
            trial, max_violation_rate=0.1, confidence=0.9
        )
        return report.trials

    assert asyncio.run(main()) == 22


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_violation_rate": 0.0, "confidence": 0.95},
        {"max_violation_rate": 1.0, "confidence": 0.95},
        {"max_violation_rate": 0.01, "confidence": 1.0},
        {"max_violation_rate": 0.01, "confidence": 0.95, "n": 0},
        {"max_violation_rate": 0.01, "confidence": 0.95, "n": True},
        {"max_violation_rate": 1e-9, "confidence": 0.99},
    ],
)
def test_bad_targets_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(PolicyError):
        assert_holds_with_probability(lambda: True, **kwargs)  # type: ignore[arg-type]
