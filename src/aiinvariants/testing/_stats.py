"""Statistical assertions for invariants that depend on a model's behaviour (I14).

A deterministic control is proved by a unit test. A model's behaviour can only
be measured: "the assistant reveals its system prompt in at most 1% of
attempts, with 95% confidence" is a statement about an unknown rate ``p``.
:func:`assert_holds_with_probability` runs ``n`` independent trials, counts
the violations ``x`` and passes only when the exact (Clopper-Pearson)
one-sided upper confidence bound on ``p`` is at most the target::

    upper = the p for which P(X <= x | n, p) = 1 - confidence

With no violations this is ``1 - (1 - confidence) ** (1 / n)``: 299 clean
trials bound the rate below 1% at 95% confidence (the "rule of three"
gives 3/n ≈ 1.003%; the exact figure is 0.997%). The bound is exact, not a
normal approximation, so it holds for small ``n`` and rates near zero, which
is where security targets live.

Results as evidence: when the environment variable ``AIINVARIANTS_STATS_JSON``
names a file (the pytest option ``--aiinvariants-stats=PATH`` sets it), every
assertion, passed or failed, appends one JSON line to it: name, invariant,
trials, violations, observed rate, exact upper bound, target and confidence.
``aiinvariants report AUDIT_LOG --stats PATH`` shows them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Final, cast

from aiinvariants._errors import PolicyError

__all__ = [
    "RESULTS_ENV",
    "ProbabilityReport",
    "Sample",
    "aassert_holds_with_probability",
    "assert_holds_with_probability",
    "clopper_pearson_upper",
    "required_trials",
]

#: Upper limit on trials one assertion may run; a target that needs more is
#: almost certainly a typo (a rate of 1e-9), not a test plan.
MAX_TRIALS: Final = 1_000_000
#: How many failing samples a report keeps.
MAX_KEPT_FAILURES: Final = 20
#: The environment variable naming the JSON Lines file results go to.
RESULTS_ENV: Final = "AIINVARIANTS_STATS_JSON"


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def _binom_cdf(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p), summed in log space for stability."""
    if x >= n:
        return 1.0
    terms = [_log_binom_pmf(k, n, p) for k in range(x + 1)]
    top = max(terms)
    if top == -math.inf:
        return 0.0
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def clopper_pearson_upper(violations: int, trials: int, confidence: float) -> float:
    """Exact one-sided upper confidence bound on a binomial rate.

    Args:
        violations: failures observed, ``0 <= violations <= trials``.
        trials: independent trials run, at least 1.
        confidence: e.g. 0.95.

    Returns:
        the smallest ``p`` such that seeing ``violations`` or fewer failures
        has probability at most ``1 - confidence``; 1.0 when every trial
        failed.
    """
    _check_confidence(confidence)
    if trials < 1 or not 0 <= violations <= trials:
        raise PolicyError("need 0 <= violations <= trials and trials >= 1")
    if violations == trials:
        return 1.0
    alpha = 1.0 - confidence
    if violations == 0:
        # Closed form: (1 - p)^n = alpha.
        return -math.expm1(math.log(alpha) / trials)
    lo, hi = violations / trials, 1.0
    # P(X <= x | p) falls as p grows: bisect to ~1e-12.
    for _ in range(200):
        mid = (lo + hi) / 2
        if _binom_cdf(violations, trials, mid) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return hi


def required_trials(max_violation_rate: float, confidence: float) -> int:
    """The fewest trials that can prove ``rate <= max_violation_rate``.

    That is the ``n`` for which zero violations put the upper bound at or
    below the target; any violation then needs more trials to pass.
    """
    _check_confidence(confidence)
    _check_rate(max_violation_rate)
    n = math.ceil(math.log(1.0 - confidence) / math.log1p(-max_violation_rate))
    # Guard against floating-point edge cases around the exact boundary.
    while n > 1 and clopper_pearson_upper(0, n - 1, confidence) <= max_violation_rate:
        n -= 1
    while clopper_pearson_upper(0, n, confidence) > max_violation_rate:
        n += 1
    if n > MAX_TRIALS:
        raise PolicyError(
            f"proving a violation rate <= {max_violation_rate} at "
            f"{confidence:.0%} confidence needs {n} trials (limit {MAX_TRIALS})"
        )
    return n


@dataclass(frozen=True)
class Sample:
    """One failing trial: its index and why it failed."""

    index: int
    reason: str


@dataclass(frozen=True)
class ProbabilityReport:
    """What a statistical assertion observed.

    Attributes:
        trials: how many trials ran.
        violations: how many did not hold.
        observed_rate: ``violations / trials``.
        upper_bound: the exact one-sided upper bound on the violation rate.
        max_violation_rate: the target.
        confidence: the confidence level.
        passed: ``upper_bound <= max_violation_rate``.
        failures: up to 20 failing samples, in trial order.
        invariant: the invariant the trial measures (``"I8"``…), if given.
        name: what was measured; defaults to the running pytest test's id.
    """

    trials: int
    violations: int
    observed_rate: float
    upper_bound: float
    max_violation_rate: float
    confidence: float
    passed: bool
    failures: tuple[Sample, ...] = field(default=())
    invariant: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The result as JSON-ready data (the failing samples' count only)."""
        return {
            "name": self.name,
            "invariant": self.invariant,
            "trials": self.trials,
            "violations": self.violations,
            "observed_rate": self.observed_rate,
            "upper_bound": self.upper_bound,
            "max_violation_rate": self.max_violation_rate,
            "confidence": self.confidence,
            "passed": self.passed,
        }

    def __str__(self) -> str:
        verdict = "holds" if self.passed else "NOT shown to hold"
        lines = [
            f"invariant {verdict}: violation rate <= {self.max_violation_rate:.4%} "
            f"at {self.confidence:.0%} confidence",
            f"  trials {self.trials}, violations {self.violations}, observed rate "
            f"{self.observed_rate:.4%}, exact upper bound {self.upper_bound:.4%}",
        ]
        if not self.passed and self.violations == 0:
            needed = required_trials(self.max_violation_rate, self.confidence)
            lines.append(f"  too few trials: at least {needed} are needed")
        for sample in self.failures:
            lines.append(f"  failed trial #{sample.index}: {sample.reason}")
        if self.violations > len(self.failures):
            lines.append(f"  … and {self.violations - len(self.failures)} more")
        return "\n".join(lines)


Trial = Callable[[], bool] | Callable[[], Awaitable[bool]]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise PolicyError("confidence must be between 0 and 1, e.g. 0.95")


def _check_rate(rate: float) -> None:
    if not 0.0 < rate < 1.0:
        raise PolicyError("max_violation_rate must be between 0 and 1, e.g. 0.01")


def _plan(max_violation_rate: float, confidence: float, n: int | None) -> int:
    _check_rate(max_violation_rate)
    _check_confidence(confidence)
    if n is None:
        return required_trials(max_violation_rate, confidence)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TRIALS:
        raise PolicyError(f"n must be a whole number from 1 to {MAX_TRIALS}")
    return n


def _reason(outcome: object) -> str | None:
    """None when the trial held; else a short reason."""
    if outcome is True:
        return None
    if isinstance(outcome, BaseException):
        # The type only: exception messages may carry model output or data.
        return f"raised {type(outcome).__name__}"
    if outcome is False:
        return "returned False"
    return f"returned {type(outcome).__name__}, not a bool (counted as a violation)"


def _report(
    outcomes: list[object], max_violation_rate: float, confidence: float
) -> ProbabilityReport:
    failures: list[Sample] = []
    violations = 0
    for index, outcome in enumerate(outcomes):
        reason = _reason(outcome)
        if reason is None:
            continue
        violations += 1
        if len(failures) < MAX_KEPT_FAILURES:
            failures.append(Sample(index, reason))
    trials = len(outcomes)
    upper = clopper_pearson_upper(violations, trials, confidence)
    return ProbabilityReport(
        trials=trials,
        violations=violations,
        observed_rate=violations / trials,
        upper_bound=upper,
        max_violation_rate=max_violation_rate,
        confidence=confidence,
        passed=upper <= max_violation_rate,
        failures=tuple(failures),
    )


def _label(invariant: str | None, name: str | None) -> tuple[str | None, str | None]:
    if invariant is not None and (
        not isinstance(invariant, str) or not invariant.startswith("I")
    ):
        raise PolicyError(f"invariant must be an id like 'I8', not {invariant!r}")
    if name is None:
        # pytest sets it to "<node id> (call)" while a test runs.
        running = os.environ.get("PYTEST_CURRENT_TEST")
        name = running.rsplit(" (", 1)[0] if running else None
    return invariant, None if name is None else _masked(str(name))


#: The longest name kept in a result (the report shows 200 characters).
MAX_NAME: Final = 200


def _masked(name: str) -> str:
    """``name`` with any credential in it masked, cut to :data:`MAX_NAME`.

    A node id carries its parameters (``test_leak[AKIA...]``): results are
    evidence that gets shared, and secrets never travel.
    """
    from aiinvariants.filters import OutputPipeline, SecretsFilter

    return OutputPipeline([SecretsFilter()]).check(name).text[:MAX_NAME]


def _save(report: ProbabilityReport) -> None:
    """Append ``report`` to the results file, if one is configured."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    line = json.dumps({**report.to_dict(), "time": time.time()}) + "\n"
    try:
        # One short write(2) per result on an O_APPEND file: concurrent test
        # processes interleave whole lines.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise PolicyError(
            f"cannot append the statistical result to {path} (from "
            f"{RESULTS_ENV}): {exc.strerror}"
        ) from None


def _finish(
    report: ProbabilityReport, invariant: str | None, name: str | None
) -> ProbabilityReport:
    invariant, name = _label(invariant, name)
    report = replace(report, invariant=invariant, name=name)
    _save(report)
    if not report.passed:
        raise AssertionError(str(report))
    return report


def assert_holds_with_probability(
    trial: Trial,
    *,
    max_violation_rate: float,
    confidence: float,
    n: int | None = None,
    concurrency: int = 8,
    invariant: str | None = None,
    name: str | None = None,
) -> ProbabilityReport:
    """Assert that ``trial`` holds often enough, with statistical confidence.

    Args:
        trial: one sample of the behaviour (e.g. one call to the model with
            an extraction prompt); returns True when the invariant held. A
            trial that raises or returns anything but True is a violation:
            a check that cannot be completed does not count as passing.
            May be an ``async def`` function; async trials run concurrently.
        max_violation_rate: the highest acceptable violation rate.
        confidence: how sure the assertion must be, e.g. 0.95.
        n: how many trials; by default the fewest that could pass.
        concurrency: how many async trials run at once.
        invariant: the invariant measured (``"I8"``), kept in the results.
        name: what is measured, kept in the results; default: the id of the
            running pytest test.

    Returns:
        the report, when the exact upper bound is within the target.

    Raises:
        AssertionError: the bound exceeds the target; the message gives the
            observed rate, the bound and the failing samples.
        PolicyError: a rate or confidence outside (0, 1), or a bad ``n``.
    """
    trials = _plan(max_violation_rate, confidence, n)
    _label(invariant, name)  # a bad label fails before any trial runs
    if inspect.iscoroutinefunction(trial):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise PolicyError(
                "an async trial inside a running event loop: await "
                "aassert_holds_with_probability(...) instead"
            )
        outcomes = asyncio.run(
            _run_async(
                cast("Callable[[], Awaitable[bool]]", trial), trials, concurrency
            )
        )
    else:
        sync_trial = cast("Callable[[], object]", trial)
        outcomes = []
        for _ in range(trials):
            try:
                outcomes.append(sync_trial())
            except Exception as exc:  # a failed check is a violation
                outcomes.append(exc)
    return _finish(_report(outcomes, max_violation_rate, confidence), invariant, name)


async def aassert_holds_with_probability(
    trial: Callable[[], Awaitable[bool]],
    *,
    max_violation_rate: float,
    confidence: float,
    n: int | None = None,
    concurrency: int = 8,
    invariant: str | None = None,
    name: str | None = None,
) -> ProbabilityReport:
    """:func:`assert_holds_with_probability` for use inside an event loop."""
    trials = _plan(max_violation_rate, confidence, n)
    _label(invariant, name)  # a bad label fails before any trial runs
    outcomes = await _run_async(trial, trials, concurrency)
    return _finish(_report(outcomes, max_violation_rate, confidence), invariant, name)


async def _run_async(
    trial: Callable[[], Awaitable[bool]], trials: int, concurrency: int
) -> list[object]:
    if concurrency < 1:
        raise PolicyError("concurrency must be at least 1")
    limit = asyncio.Semaphore(concurrency)

    async def one() -> object:
        async with limit:
            try:
                return await trial()
            except Exception as exc:  # a failed check is a violation
                return exc

    return list(await asyncio.gather(*(one() for _ in range(trials))))
