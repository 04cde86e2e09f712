"""Published architectures, by name: ``get_architecture("DrNAS_cifar10")``.

Each entry carries the figures its paper reports, so tests and users can check a rebuilt network against
them. Register more with :func:`register_architecture` (names are unique).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drnas.registry import Registry
from drnas.spaces import ArchitectureError, DartsGenotype, NB201Arch

_CONCAT = (2, 3, 4, 5)


@dataclass(frozen=True)
class NamedArchitecture:
    name: str
    arch: Any  # DartsGenotype | NB201Arch
    source: str
    #: figures from the source, e.g. {"params_m": 4.1, "cells": 20, "channels": 36, "dataset": "cifar10"}
    reported: dict[str, Any] = field(default_factory=dict)


ARCHITECTURES: Registry[NamedArchitecture] = Registry("architecture name", ArchitectureError)


def register_architecture(entry: NamedArchitecture) -> NamedArchitecture:
    return ARCHITECTURES.register(entry.name, entry, doc=entry.source)  # type: ignore[return-value]


def get_architecture(name: str) -> NamedArchitecture:
    return ARCHITECTURES.get(name)


def architecture_names() -> tuple[str, ...]:
    return tuple(sorted(ARCHITECTURES.names()))


def _darts(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> DartsGenotype:
    return DartsGenotype(tuple(normal), _CONCAT, tuple(reduce), _CONCAT)


register_architecture(NamedArchitecture(
    "DrNAS_cifar10",
    _darts([("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2), ("dil_conv_5x5", 3)],
           [("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("dil_conv_5x5", 2), ("sep_conv_5x5", 1),
            ("sep_conv_5x5", 1), ("dil_conv_5x5", 3), ("skip_connect", 4), ("sep_conv_5x5", 1)]),
    "DrNAS (Chen et al., ICLR 2021), searched directly on CIFAR-10 with progressive learning; cells published by the authors",
    {"dataset": "cifar10", "cells": 20, "channels": 36, "params_m": 4.1, "test_error": 2.46}))

register_architecture(NamedArchitecture(
    "DrNAS_imagenet",
    _darts([("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("dil_conv_3x3", 3), ("skip_connect", 0), ("sep_conv_3x3", 1)],
           [("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 2), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1)]),
    "DrNAS (Chen et al., ICLR 2021), searched directly on ImageNet with progressive learning; cells published by the authors",
    {"dataset": "imagenet", "cells": 14, "channels": 48, "params_m": 5.7, "top1_error": 23.7, "top5_error": 7.1}))

register_architecture(NamedArchitecture(
    "DARTS_V2",
    _darts([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
           [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]),
    "DARTS second order (Liu et al., ICLR 2019)",
    {"dataset": "cifar10", "cells": 20, "channels": 36, "params_m": 3.3, "test_error": 2.76}))

register_architecture(NamedArchitecture(
    "DrNAS_nb201",
    NB201Arch.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"),
    "DrNAS (Chen et al., ICLR 2021) Table 4: the cell found on all three NAS-Bench-201 datasets",
    {"cifar10_valid_acc": 91.55, "cifar10_test_acc": 94.36, "cifar100_valid_acc": 73.49, "cifar100_test_acc": 73.51,
     "imagenet16_valid_acc": 46.37, "imagenet16_test_acc": 46.34}))
