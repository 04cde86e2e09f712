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
from drnas.spaces.base import SearchSpace


class BenchmarkError(DrnasError, ValueError):
    """A missing or malformed benchmark table, or an architecture the table does not hold."""


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's facts: ``load`` reads its table from a file, ``columns`` are the accuracies a report shows
    (in the paper's order), ``prefixes`` maps each dataset the table has results for to the prefix of its columns
    (``cifar100`` -> ``cifar100_valid_acc``, ``cifar100_test_acc``). Which architectures it holds: those of the
    space ``space`` built from the candidate ops ``ops`` (None: of any space, or from any ops)."""

    name: str
    load: Callable[[str | os.PathLike[str]], Any]
    columns: tuple[str, ...]
    prefixes: Mapping[str, str]
    space: str | None = None
    ops: tuple[str, ...] | None = None

    def column(self, dataset: str, split: str = "test") -> str | None:
        """The accuracy column of ``dataset``'s ``split`` ("valid" or "test"); None if the table has no results
        for that dataset."""
        prefix = self.prefixes.get(dataset)
        return None if prefix is None else f"{prefix}_{split}_acc"

    def uncovered(self, space: SearchSpace, dataset: str | None = None) -> str | None:
        """Why the table cannot answer for the architectures of ``space`` (an op set it was not built from) or for
        ``dataset`` (no columns of it; None: no dataset's columns are needed); None when it can."""
        if self.space is not None and space.name != self.space:
            return f"{self.name} holds {self.space} architectures, not {space.name} ones"
        if self.ops is not None and not set(space.ops) <= set(self.ops):
            return f"ops [{', '.join(space.ops)}] are not {self.name}'s"
        if dataset is not None and self.column(dataset) is None:
            return f"{self.name} has no results for dataset {dataset!r} (it has {', '.join(self.prefixes)})"
        return None


def open_table(space: SearchSpace, path: str | os.PathLike[str] | None, log: Callable[[str], None],
               dataset: str | None = None) -> Any:
    """The results table at ``path`` for ``space``'s architectures (None without a path). When the table cannot
    answer for them (:meth:`Benchmark.uncovered`: another op set, a dataset it has no columns of), one note goes to
    ``log`` and the lookup is skipped (None), rather than an error or a wrong number. A space without a benchmark
    is an error: the file cannot index its architectures."""
    if not path:
        return None
    if space.benchmark is None or space.benchmark not in BENCHMARKS:
        raise BenchmarkError(f"--benchmark holds {', '.join(BENCHMARKS)} results, which index no {space.name} "
                             f"architecture: use it with --space {' or '.join(_spaces())}")
    benchmark = BENCHMARKS.get(space.benchmark)
    reason = benchmark.uncovered(space, dataset)
    if reason is not None:
        log(f"note: {reason}: benchmark lookup skipped")
        return None
    return benchmark.load(path)


def _spaces() -> list[str]:
    """The spaces whose architectures some registered benchmark indexes."""
    return sorted({space for name in BENCHMARKS if (space := BENCHMARKS.get(name).space) is not None})


BENCHMARKS: Registry[Benchmark] = Registry("benchmark", BenchmarkError)
