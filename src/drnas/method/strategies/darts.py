"""DARTS (Liu et al., ICLR 2019): θ = softmax(α) over the kept ops of each edge, Adam on α (lr 3e-4,
betas (0.5, 0.999), weight decay 1e-3: DARTS §A.1, also NAS-Bench-201's appendix), derivation by the
strongest op (NB201) or DARTS' own rule (the DARTS space). ``darts-2nd`` takes the unrolled step (eq. 7-8)."""
from __future__ import annotations

from typing import Any

from drnas.config.search import SearchConfig
from drnas.method.strategies.base import Mixing, SoftmaxStrategy, register_method

#: DARTS' architecture optimizer (§A.1): Adam, lr 3e-4, betas (0.5, 0.999), weight decay 1e-3
DARTS_ARCH = {"arch_lr": 3e-4, "arch_betas": (0.5, 0.999), "reg_scale": 1e-3}


@register_method("darts", doc="DARTS, first order: softmax mixing weights (Liu et al., ICLR 2019)")
class DARTS(SoftmaxStrategy):
    """Softmax relaxation, first-order architecture step."""

    name = "darts"
    paper = "Liu et al., DARTS: Differentiable Architecture Search, ICLR 2019"

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return dict(DARTS_ARCH)

    def sample(self) -> Mixing:
        return Mixing(self.probabilities())


@register_method("darts-2nd", doc="DARTS, second order: the unrolled architecture step (Liu et al., ICLR 2019)")
class DARTSSecondOrder(DARTS):
    """Softmax relaxation, unrolled architecture step with the finite-difference Hessian-vector product."""

    name = "darts-2nd"
    second_order = True
