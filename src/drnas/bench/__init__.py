"""Benchmark tables for looking architectures up instead of training them."""
from drnas.bench.nb201 import BenchmarkError, NB201Table

__all__ = ["BenchmarkError", "NB201Table"]
