"""GAEA (Li et al., "Geometry-Aware Gradient Algorithms for Neural Architecture Search", ICLR 2021, §3):
exponentiated-gradient (mirror-descent) architecture updates on the simplex of each edge's weights,
θ ← θ ⊙ exp(-lr · ∂L/∂θ) / Σ(...), in place of Adam on the logits; for softmax-parametrised methods.

With θ = softmax(η) the update is η ← η - lr · ∂L/∂θ (softmax absorbs the normalisation). The chain rule gives
∂L/∂η = θ ⊙ (∂L/∂θ - <θ, ∂L/∂θ>), so ∂L/∂θ equals ∂L/∂η / θ up to a constant per edge, which softmax ignores:
the step below divides the gradient autograd leaves on η (the method's objective and every penalty) by θ. Pruned
ops (θ = 0) do not move. No weight decay, as in the paper; lr 0.1 is the paper's value for the PC-DARTS space.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from drnas.config.options import setting
from drnas.errors import ConfigError
from drnas.method.parts.base import Part, register_part


class ExponentiatedGradient(torch.optim.Optimizer):
    """Mirror descent on softmax-parametrised parameters: ``pairs`` of (logits, a function returning their softmax
    weights, the same shape)."""

    def __init__(self, pairs: Sequence[tuple[torch.nn.Parameter, Callable[[], torch.Tensor]]], lr: float) -> None:
        super().__init__([p for p, _ in pairs], {"lr": lr})
        self._weights = [weights for _, weights in pairs]

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        group = self.param_groups[0]
        for param, weights in zip(group["params"], self._weights):
            if param.grad is None:
                continue
            theta = weights().detach()
            ratio = torch.where(theta > 0, param.grad / theta.clamp_min(torch.finfo(theta.dtype).tiny),
                                torch.zeros_like(theta))
            param.sub_(group["lr"] * ratio)


@dataclass
class GAEASettings:
    """GAEA's step size."""

    lr: float = setting(0.1, "the exponentiated-gradient step size (the paper's 0.1)", gt=0, le=100)


@register_part("gaea", doc="GAEA: exponentiated-gradient architecture updates for softmax methods "
                           "(Li et al., ICLR 2021)")
class GAEA(Part):
    paper = "Li et al., Geometry-Aware Gradient Algorithms for Neural Architecture Search, ICLR 2021"
    Settings = GAEASettings
    slot = "replace the architecture optimizer"

    @classmethod
    def check(cls, method: Any, config: Any, space: Any) -> None:
        super().check(method, config, space)
        if not (method.softmax_parametrised and method.arch_gradient):
            raise ConfigError(f"part {cls.name} updates softmax-parametrised architecture weights, which method "
                              f"{method.name} has not: use it with darts, pc-darts, snas or gdas")

    def arch_optimizer(self, strategy: Any) -> torch.optim.Optimizer | None:
        return ExponentiatedGradient(strategy.simplex_parameters(), self.settings.lr)
