"""Proving the invariants in a test suite (I14).

Deterministic controls are asserted like any other behaviour; a model's
behaviour is measured with :func:`assert_holds_with_probability`. The pytest
plugin (installed with the package) adds fixtures and markers on top; the
hypothesis strategies live in :mod:`aiinvariants.testing.strategies`.
"""

from __future__ import annotations

from aiinvariants.testing._assertions import (
    Decisions,
    assert_allowed,
    assert_denied,
    assert_never_reveals,
    capture_decisions,
)
from aiinvariants.testing._stats import (
    ProbabilityReport,
    Sample,
    aassert_holds_with_probability,
    assert_holds_with_probability,
    clopper_pearson_upper,
    required_trials,
)

__all__ = [
    "Decisions",
    "ProbabilityReport",
    "Sample",
    "aassert_holds_with_probability",
    "assert_allowed",
    "assert_denied",
    "assert_holds_with_probability",
    "assert_never_reveals",
    "capture_decisions",
    "clopper_pearson_upper",
    "required_trials",
]
