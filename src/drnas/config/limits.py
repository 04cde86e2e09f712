"""The bounds of every size and count a user can give, in one table.

Each bound is chosen so that the largest accepted value still runs on a real machine (a GPU server with 80 GB),
and each is checked where the value enters (a config's ``validate``, a command's flag), before anything is
allocated: past it is one ``drnas: error:`` line naming the bound and why it is there.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drnas.errors import ConfigError, shown


@dataclass(frozen=True)
class Limit:
    """The accepted range ``[low, high]`` of one size or count, and why ``high`` is where it is."""

    low: int
    high: int
    why: str


LIMITS: dict[str, Limit] = {
    "channels": Limit(1, 512, "a 20-cell DARTS network of 512 channels has about 700M parameters; the papers use "
                              "16 to 48"),
    "cells": Limit(1, 100, "the DARTS space's networks have 8 to 20 cells"),
    "cells_per_stage": Limit(1, 32, "NB201's networks have 5 cells per stage"),
    "epochs": Limit(1, 10_000, "the papers' longest schedule is 600 epochs"),
    "stages": Limit(1, 100, "progressive learning uses 2 to 3 stages"),
    "batch_size": Limit(1, 65_536, "the papers' largest batch is 1024"),
    "image_size": Limit(8, 4096, "ImageNet networks take 224 pixels"),
    "cutout": Limit(0, 4096, "cutout cuts 16 pixels on CIFAR"),
    "crop_padding": Limit(0, 256, "CIFAR's crops pad 4 pixels"),
    "workers": Limit(0, 256, "one data-loading process per core of a large machine"),
    "threads": Limit(1, 1024, "one thread per core of a large machine"),
    "jobs": Limit(1, 1024, "one run per core of a large machine"),
    "seed": Limit(0, 2**63 - 1, "torch's generators take a 64-bit seed"),
    "train_images": Limit(1, 100_000_000, "ImageNet-21k has 14M images"),
    "test_images": Limit(1, 100_000_000, "ImageNet-21k has 14M images"),
    "candidates": Limit(1, 100_000, "each candidate is one supernet evaluation; NB201's baselines use 100"),
    "queries": Limit(1, 1_000_000, "NB201's table holds 15,625 architectures"),
    "draws": Limit(1, 1_000_000, "a million architectures are drawn and counted in seconds"),
    "sweep_runs": Limit(1, 10_000, "each run is a process and a run directory, and the plan holds every config "
                                   "(about 2 KB each)"),
    # bytes of what drnas reads whole into memory
    "file_bytes": Limit(0, 64 << 20, "the largest file of this kind drnas writes, the plan of a 10,000-run sweep, is "
                                     "about 20 MB"),
    "metrics_bytes": Limit(0, 512 << 20, "a 10,000-epoch DARTS search writes about 95 MB of history (9.5 KB an "
                                         "epoch)"),
    "table_bytes": Limit(0, 256 << 20, "NAS-Bench-201's table is 5 MB"),
    "array_bytes": Limit(0, 32 << 30, "ImageNet at 64x64 pixels is 16 GB of uint8 images"),
}


def check_limit(name: str, value: Any, what: str | None = None) -> None:
    """Refuse ``value`` outside ``LIMITS[name]`` (None passes: unset) with one line naming the bound; ``what`` is
    how the user gave it (``--channels``), by default the name."""
    if value is None:
        return
    limit = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what or name} must be a whole number in [{limit.low}, {limit.high:,}], got {shown(value)}")
    if not limit.low <= value <= limit.high:
        raise ConfigError(f"{what or name} must be in [{limit.low}, {limit.high:,}] ({limit.why}), got {shown(value)}")


def check_limits(config: Any, names: tuple[str, ...] | None = None) -> None:
    """Every bounded field ``config`` has (or those of ``names``); a list field (``stages``) is bounded by its
    length where it is checked."""
    for name in names or tuple(LIMITS):
        if hasattr(config, name) and not isinstance(getattr(config, name), (list, tuple)):
            check_limit(name, getattr(config, name))


def read_bounded(path: str | os.PathLike[str], limit: str = "file_bytes", what: str = "a drnas file") -> str:
    """The UTF-8 text of ``path``, read only if it is a regular file (a FIFO would block, a directory fail) of at
    most ``LIMITS[limit]`` bytes; otherwise one :class:`ConfigError` line naming the file. A file that does not
    exist or cannot be opened raises the usual :class:`OSError`, for the caller to say what it means."""
    path = Path(path)
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{shown(str(path))} is not a regular file (a directory, FIFO or device): give {what}")
    high = LIMITS[limit].high
    if info.st_size > high:
        raise ConfigError(f"{shown(str(path))} is {info.st_size:,} bytes, over the {high:,} that {what} may take "
                          f"({LIMITS[limit].why})")
    with open(path, "rb") as handle:
        data = handle.read(high + 1)  # the file may have grown since the stat
    if len(data) > high:
        raise ConfigError(f"{shown(str(path))} is over the {high:,} bytes that {what} may take")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{shown(str(path))} is not UTF-8 text (byte {err.start}): give {what}") from None


__all__ = ["LIMITS", "Limit", "check_limit", "check_limits", "read_bounded"]
