"""DARTS with independent sigmoid weights (Chu et al., "Fair DARTS", ECCV 2020, §4): θ_{e,o} = σ(α_{e,o}), so
ops do not compete through a softmax and an edge's weights need not sum to 1. Validation mixes with σ(α) too;
the derivation, the plots and ``drnas show`` read each edge's weights divided by their sum (the strongest op is
the same). With the zero-one loss (part ``zero-one``) it is the ``fair-darts`` recipe. DARTS' architecture
optimizer (Adam, lr 3e-4, betas (0.5, 0.999), weight decay 1e-3), as the paper keeps it. The paper derives by a
threshold of 0.85 on σ(α); drnas derives by the space's own rule (the strongest op), like every method."""
from __future__ import annotations

from typing import Any

import torch

from drnas.config.search import SearchConfig
from drnas.method.strategies.base import Mixing, Strategy, register_method
from drnas.method.strategies.darts import DARTS_ARCH


@register_method("darts-sigmoid", doc="DARTS with independent sigmoid mixing weights (FairDARTS' relaxation, "
                                      "Chu et al., ECCV 2020)")
class DARTSSigmoid(Strategy):
    """θ = σ(α) over the kept ops, first-order architecture step."""

    name = "darts-sigmoid"
    paper = "Chu et al., Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search, ECCV 2020"

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return dict(DARTS_ARCH)

    def activations(self) -> torch.Tensor:
        """σ(α), pruned ops at 0."""
        return torch.sigmoid(self.eta.float()).masked_fill(~self.mask, 0.0)

    def sample(self) -> Mixing:
        return Mixing(self.activations())

    def eval_mixing(self) -> Mixing:
        return Mixing(self.activations())

    def scores(self) -> torch.Tensor:
        return self.activations()

    def expected_weights(self) -> torch.Tensor:
        weights = self.activations()
        return weights / weights.sum(-1, keepdim=True)

    def hessian_logits(self) -> torch.Tensor:
        return self.eta.detach().float()  # the curvature in alpha, through the sigmoids

    def hessian_mixing(self, logits: torch.Tensor) -> Mixing:
        return Mixing(torch.sigmoid(logits).masked_fill(~self.mask, 0.0))
