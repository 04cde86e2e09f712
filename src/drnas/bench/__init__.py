"""Benchmark tables for looking architectures up instead of training them, behind the registry ``BENCHMARKS``."""
from drnas.bench.base import BENCHMARKS, Benchmark, BenchmarkError, open_table
from drnas.bench.nb201 import NB201Table

__all__ = ["BENCHMARKS", "Benchmark", "BenchmarkError", "NB201Table", "open_table"]
