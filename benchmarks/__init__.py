"""Benchmarks run by ``make bench``: ratios measured side by side in one run."""
