"""NAS-Bench-201 results: load a table once, query architectures by their cell.

The table is a CSV with one row per architecture string (column ``arch``) and numeric result columns, such
as the 200-epoch accuracies ``cifar10_valid_acc``, ``cifar10_test_acc``, ``cifar100_valid_acc``,
``cifar100_test_acc``, ``imagenet16_valid_acc`` and ``imagenet16_test_acc`` (the columns of Table 4 of the
DrNAS paper). Users bring the file; the package ships none.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from drnas.bench.base import BENCHMARKS, Benchmark, BenchmarkError
from drnas.config.limits import LIMITS
from drnas.spaces.base import ArchitectureError
from drnas.spaces.nb201 import NB201_OPS, NB201Arch

#: The six accuracies of the DrNAS paper's Table 4, in its column order.
ACCURACY_COLUMNS = ("cifar10_valid_acc", "cifar10_test_acc", "cifar100_valid_acc", "cifar100_test_acc",
                    "imagenet16_valid_acc", "imagenet16_test_acc")


#: the prefix of the table's columns of each dataset it has results for
DATASET_PREFIXES = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet16"}


def column_prefix(dataset: str) -> str | None:
    """The prefix of the table's columns for ``dataset`` (``cifar100_test_acc``); None when the table has no
    columns of that dataset (a lookup for it is skipped: :func:`drnas.bench.base.open_table`)."""
    return DATASET_PREFIXES.get(dataset)


#: the largest table file read: the NB201 table of 15,625 rows is under 10 MB
MAX_TABLE_BYTES = LIMITS["table_bytes"].high


class NB201Table:
    """An in-memory NAS-Bench-201 results table keyed by canonical architecture string."""

    def __init__(self, rows: dict[str, dict[str, float]], source: str = "") -> None:
        self.rows, self.source = rows, source

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NB201Table":
        """Read a CSV table (see the module docstring)."""
        path = Path(path)
        if not path.is_file():
            raise BenchmarkError(f"benchmark table {path} does not exist: pass --benchmark FILE with an NB201 CSV")
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise BenchmarkError(f"{path} is {path.stat().st_size:,} bytes; an NB201 table of 15,625 rows is a few MB "
                                 f"(at most {MAX_TABLE_BYTES:,} read): pass an NB201 results CSV")
        rows: dict[str, dict[str, float]] = {}
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "arch" not in reader.fieldnames:
                    raise BenchmarkError(f"{path} has no 'arch' column: an NB201 table needs one row per "
                                         "architecture string with result columns")
                for line, row in enumerate(reader, start=2):
                    if None in row:  # more values than the header names
                        raise BenchmarkError(f"{path}, line {line}: more values than the header has columns")
                    try:
                        key = str(NB201Arch.parse(row.pop("arch") or ""))
                        rows[key] = {k: float(v) for k, v in row.items() if v not in (None, "")}
                    except (ArchitectureError, ValueError) as err:
                        raise BenchmarkError(f"{path}, line {line}: {err}") from None
        except (csv.Error, UnicodeDecodeError) as err:
            raise BenchmarkError(f"{path} is not a CSV table of UTF-8 text ({type(err).__name__}: {str(err)[:100]}): "
                                 "pass an NB201 results CSV") from None
        if not rows:
            raise BenchmarkError(f"{path} holds no architectures")
        return cls(rows, str(path))

    def __len__(self) -> int:
        return len(self.rows)

    def query(self, arch: NB201Arch | str) -> dict[str, float]:
        """All results of one architecture (a copy)."""
        key = str(arch if isinstance(arch, NB201Arch) else NB201Arch.parse(arch))
        try:
            return dict(self.rows[key])
        except KeyError:
            raise BenchmarkError(f"architecture {key} is not in the table {self.source}") from None

    def accuracies(self, arch: NB201Arch | str) -> dict[str, float]:
        """The Table 4 accuracies of one architecture (those the table has)."""
        row = self.query(arch)
        return {k: row[k] for k in ACCURACY_COLUMNS if k in row}


#: the table indexes the cells of the nb201 space over NB201's five ops (a subset of them too): another op set's
#: cells are not in it, and a lookup of them is skipped with a note
BENCHMARKS.register("NAS-Bench-201", Benchmark("NAS-Bench-201", NB201Table.load, ACCURACY_COLUMNS, DATASET_PREFIXES,
                                               space="nb201", ops=NB201_OPS),
                    doc="NAS-Bench-201: the 15,625 cells of the nb201 space trained on CIFAR-10/100 and ImageNet16-120")
