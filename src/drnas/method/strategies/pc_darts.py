"""PC-DARTS (Xu et al., ICLR 2020): DARTS' softmax relaxation on partial channels (1/K of each edge's channels
go through the ops, K = 4) plus edge normalisation: each edge's output, bypassed channels included, is scaled by
softmax(β) over the edges entering the same node, and the op ranking that picks a DARTS cell's two inputs uses
softmax(α)·softmax(β). Defaults from PC-DARTS §4.2: K = 4, Adam lr 6e-4 and weight decay 1e-3 on α and β,
architecture updates frozen for the first 15 of 50 epochs (30% of each single-stage search). K and the warm-up
are settings of the method; they shape a single-stage search (a progressive preset keeps its own K per stage)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from drnas.config.options import setting
from drnas.config.search import SearchConfig, Stage
from drnas.method.strategies.base import Mixing, SoftmaxStrategy, register_method


@dataclass
class PCDARTSSettings:
    """PC-DARTS' partial channels and architecture warm-up (§4.2), applied to a single-stage search."""

    partial_k: int = setting(4, "K: 1/K of each edge's channels go through its ops (a single-stage search's "
                                "partial_k; must divide channels)", ge=1)
    warmup_fraction: float = setting(0.3, "share of a single-stage search's epochs with the architecture frozen "
                                          "(its arch_warmup)", ge=0, le=1)


@register_method("pc-darts", doc="PC-DARTS: partial channels (K=4) and edge normalisation (Xu et al., ICLR 2020)")
class PCDARTS(SoftmaxStrategy):
    """Softmax op weights on 1/K of the channels, softmax edge weights per node."""

    name = "pc-darts"
    paper = "Xu et al., PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search, ICLR 2020"
    Settings = PCDARTSSettings

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"arch_lr": 6e-4, "arch_betas": (0.5, 0.999), "reg_scale": 1e-3}
        if len(config.stages) == 1:  # a progressive schedule keeps its own K per stage
            settings, epochs = cls.settings_of(config), config.stages[0].epochs
            out["stages"] = [Stage(epochs=epochs, partial_k=settings.partial_k,
                                   arch_warmup=round(settings.warmup_fraction * epochs))]
        return out

    def __init__(self, space: Any, config: SearchConfig) -> None:
        super().__init__(space, config)
        self.groups = [list(g) for g in space.edge_groups()]
        self.edge_eta = torch.nn.Parameter(config.eta_init_std * torch.randn(space.num_edges))

    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return [self.eta, self.edge_eta]

    def simplex_parameters(self) -> list[tuple[torch.nn.Parameter, Any]]:
        return [(self.eta, self.probabilities), (self.edge_eta, self.edge_weights)]

    def edge_weights(self) -> torch.Tensor:
        """softmax(β) over the edges entering each node, ``[edges]``."""
        out = torch.zeros_like(self.edge_eta)
        for group in self.groups:
            index = torch.tensor(group, device=self.edge_eta.device)
            out = out.index_put((index,), F.softmax(self.edge_eta[index], dim=0))
        return out

    def sample(self) -> Mixing:
        return Mixing(self.probabilities(), self.edge_weights())

    def eval_mixing(self) -> Mixing:
        return self.sample()

    def derive(self, space: Any, engine: Any, epoch: int) -> Any:
        with torch.no_grad():
            return space.derive(self.derive_weights((self.probabilities() * self.edge_weights().unsqueeze(-1)).cpu(),
                                                    space))
