"""Side-by-side timing: cases are interleaved so machine noise hits all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    per_call_ns: float
    ratio: float


def compare(
    cases: Mapping[str, Callable[[], object]],
    *,
    baseline: str,
    number: int = 20_000,
    repeat: int = 15,
) -> list[Result]:
    """Median time per call of each case, and its ratio to ``baseline``.

    Every round runs each case once for ``number`` calls, in rotating order,
    so a slow moment on a shared machine lands on all cases, not one.
    """
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for fn in cases.values():  # warm up caches and lazy imports
        for _ in range(min(number, 1000)):
            fn()
    for round_ in range(repeat):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            fn = cases[name]
            start = time.perf_counter_ns()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / number)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians[baseline]
    return [Result(name, medians[name], medians[name] / base) for name in names]


def print_table(title: str, results: list[Result]) -> None:
    print(f"\n{title}")
    width = max(len(r.name) for r in results)
    print(f"  {'case'.ljust(width)}  {'per call':>12}  {'ratio':>8}")
    for r in results:
        if r.per_call_ns >= 1e6:
            shown = f"{r.per_call_ns / 1e6:.2f} ms"
        elif r.per_call_ns >= 1e3:
            shown = f"{r.per_call_ns / 1e3:.2f} us"
        else:
            shown = f"{r.per_call_ns:.0f} ns"
        print(f"  {r.name.ljust(width)}  {shown:>12}  {r.ratio:>7.1f}x")
