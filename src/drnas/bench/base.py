"""The benchmark registry: each results table drnas can look architectures up in, by the name a space gives as its
``benchmark`` ("NAS-Bench-201"), with its reader, the columns a report shows and each dataset's columns.

A new benchmark is one module that reads its table and one ``BENCHMARKS.register(name, Benchmark(...))``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drnas.errors import DrnasError
from drnas.registry import Registry


class BenchmarkError(DrnasError, ValueError):
    """A missing or malformed benchmark table, or an architecture the table does not hold."""


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's facts: ``load`` reads its table from a file, ``columns`` are the accuracies a report shows
    (in the paper's order), ``prefixes`` maps each dataset the table has results for to the prefix of its columns
    (``cifar100`` -> ``cifar100_valid_acc``, ``cifar100_test_acc``)."""

    name: str
    load: Callable[[str | os.PathLike[str]], Any]
    columns: tuple[str, ...]
    prefixes: Mapping[str, str]

    def column(self, dataset: str, split: str = "test") -> str | None:
        """The accuracy column of ``dataset``'s ``split`` ("valid" or "test"); None if the table has no results
        for that dataset."""
        prefix = self.prefixes.get(dataset)
        return None if prefix is None else f"{prefix}_{split}_acc"


BENCHMARKS: Registry[Benchmark] = Registry("benchmark", BenchmarkError)
