"""P-DARTS' limit on skip connections (Chen et al., "Progressive Differentiable Architecture Search: Bridging the
Depth Gap between Search and Evaluation", ICCV 2019, §3.3): the derived normal cell keeps at most M = 2
``skip_connect`` edges. While it has more, the chosen skip connection with the smallest weight loses its skip
(that weight set to 0) and the cell is derived again, so the edge takes its next op or the node another input.

The rule acts on the first cell of the space's architecture (NB201's one cell, a DARTS genotype's normal cell) and
on every derivation of the search: each epoch's record, the final architecture and ``drnas show``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from drnas.config.options import setting
from drnas.errors import ConfigError
from drnas.method.parts.base import Part, register_part

SKIP = "skip_connect"


@dataclass
class SkipLimitSettings:
    """How many skip connections the derived cell may keep."""

    max_skips: int = setting(2, "skip_connect edges the derived cell keeps at most (P-DARTS: M = 2)", ge=0, le=1_000)


def first_cell(space: Any, weights: torch.Tensor) -> Any:
    """The first cell (a :class:`~drnas.spaces.base.CellGraph`) derived from ``weights`` (None: they derive no
    architecture, a node being left without two usable inputs)."""
    try:
        return space.graph(space.derive(weights))[0]
    except ValueError:  # ArchitectureError is a ValueError
        return None


def limit_skips(space: Any, weights: torch.Tensor, max_skips: int) -> torch.Tensor:
    """``weights`` with chosen skip connections removed, the weakest first, until the first cell derived from them
    has at most ``max_skips``. A chosen skip connection is one whose weight, set to 0, changes the first cell (its
    edge takes its next op, or its node another input, which may be a skip connection chosen next round)."""
    skip = list(space.ops).index(SKIP)
    weights = weights.clone()
    while True:
        cell = first_cell(space, weights)
        if cell is None or cell.ops().count(SKIP) <= max_skips:
            return weights
        chosen = []
        for edge in (weights[:, skip] > 0).nonzero().flatten().tolist():
            trial = weights.clone()
            trial[edge, skip] = 0.0
            if first_cell(space, trial) not in (cell, None):
                chosen.append(edge)
        if not chosen:  # no skip connection can go without breaking the cell: keep what there is
            return weights
        weights[min(chosen, key=lambda e: float(weights[e, skip])), skip] = 0.0


@register_part("skip-limit", doc="P-DARTS: the derived normal cell keeps at most 2 skip connections, the weakest "
                                 "ones giving way (Chen et al., ICCV 2019)")
class SkipLimit(Part):
    paper = ("Chen et al., Progressive Differentiable Architecture Search: Bridging the Depth Gap between Search "
             "and Evaluation, ICCV 2019")
    Settings = SkipLimitSettings
    slot = "limit the derived skip connections"
    multi_path_only = True

    @classmethod
    def check(cls, method: Any, config: Any, space: Any) -> None:
        super().check(method, config, space)
        if SKIP not in space.ops:
            raise ConfigError(f"part {cls.name} limits the {SKIP} edges of the derived cell, but the search's ops "
                              f"have none: drop --with {cls.name}")

    def derive_weights(self, weights: torch.Tensor, space: Any) -> torch.Tensor:
        return limit_skips(space, weights, self.settings.max_skips)
