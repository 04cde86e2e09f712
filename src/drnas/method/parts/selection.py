"""DARTS-PT (Wang et al., "Rethinking Architecture Selection in Differentiable NAS", ICLR 2021, §4): the
architecture is selected after the search by perturbation rather than by the largest weight. Edge by edge, in a
random order, each op still on the edge is removed from the trained supernet (its weight set to 0) and the
supernet's validation accuracy measured; the edge keeps the op whose removal costs the most accuracy, and the
supernet's weights are fine-tuned with the edge so fixed before the next edge is decided.

This part only asks for the selection and holds its settings: the search runs it after its last epoch
(:func:`drnas.analysis.perturbation.perturbation_select`), and ``drnas derive RUN --select pt`` runs it on a
finished run. In a space whose nodes choose their inputs (DARTS'), the op of every edge is chosen first, then,
node by node in a random order, the two input edges whose removal costs the most accuracy (the paper's topology
selection, §4.2), with fine-tuning after each node as after each edge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drnas.config.options import setting
from drnas.errors import ConfigError
from drnas.method.parts.base import Part, register_part


@dataclass
class PerturbationSettings:
    """DARTS-PT's selection."""

    batches: int = setting(8, "validation batches each removal's accuracy is measured on", ge=1, le=100_000)
    tune_steps: int = setting(0, "weight steps of fine-tuning after each edge is decided (0: one pass over the "
                                 "weight half; the paper tunes for 5 epochs)", ge=0, le=1_000_000)
    seed: int = setting(0, "seeds the order the edges are decided in", ge=0, le=2 ** 31 - 1)


@register_part("darts-pt", doc="DARTS-PT: select each edge's op by how much removing it costs the supernet "
                               "(Wang et al., ICLR 2021)")
class PerturbationSelection(Part):
    paper = "Wang et al., Rethinking Architecture Selection in Differentiable NAS, ICLR 2021"
    Settings = PerturbationSettings
    slot = "select the architecture"
    selects = True

    @classmethod
    def check(cls, method: Any, config: Any, space: Any) -> None:
        super().check(method, config, space)
        if method.single_path:
            raise ConfigError(f"part {cls.name} measures the supernet with all ops of an edge but one, which method "
                              f"{method.name} (one op per edge) does not train: use a multi-path method")
