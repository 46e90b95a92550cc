"""Benchmarks for the plugin server: ``python -m bench`` (see docs/benchmarks.md).

Every figure is taken next to its baseline in the same run and reported as a ratio,
because this kind of shared 2-core VM drifts by ±20 % between runs.
"""
