"""SDARTS (Chen & Hsieh, "Stabilizing Differentiable Architecture Search via Perturbation-based Regularization",
ICML 2020): the weight step trains the supernet under perturbed mixing weights θ' (§3), so that the loss stays
flat around θ and the derived cell keeps its accuracy when θ is made discrete.

* ``sdarts-rs``, random smoothing: θ' = P(θ + δ), δ ~ U[-ε, ε] per entry;
* ``sdarts-adv``, adversarial: θ' maximises the weight batch's loss within ‖θ' - θ‖∞ ≤ ε by projected gradient
  ascent (a random start, then ``steps`` signed steps of 2ε/steps, each clipped to the ε-ball).

P is SDARTS' projection back to weights: clip every entry to [0, 1], then divide each edge by its sum (an edge
clipped to all zeros keeps its strongest op). Pruned ops stay at 0. ε = 0.03 and 7 steps are the paper's
(its released code perturbs the softmax output α the same way). One difference: the attack's passes run in
training mode, as every pass of drnas' weight step does, where the released code attacks in eval mode.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from drnas.config.options import setting
from drnas.method.parts.base import Part, register_part


def project(theta: torch.Tensor, start: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SDARTS' projection: every entry clipped to [0, 1] (pruned ops to 0), each edge divided by its sum; an
    edge left with nothing keeps the strongest op of ``start``, the unperturbed weights."""
    clipped = theta.clamp(0.0, 1.0) * mask
    empty = clipped.sum(-1, keepdim=True) == 0
    strongest = torch.zeros_like(start).scatter_(1, start.argmax(-1, keepdim=True), 1.0)
    clipped = torch.where(empty, strongest, clipped)
    return clipped / clipped.sum(-1, keepdim=True)


def uniform_like(theta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """δ ~ U[-ε, ε] of θ's shape, from the run's random stream (seeded and checkpointed)."""
    return (torch.rand(theta.shape, device=theta.device, dtype=theta.dtype) * 2.0 - 1.0) * epsilon


@dataclass
class RandomSmoothingSettings:
    """SDARTS-RS' noise."""

    epsilon: float = setting(0.03, "half-width of the uniform noise added to every mixing weight (the paper's "
                                   "0.03)", gt=0, le=1)


@register_part("sdarts-rs", doc="SDARTS-RS: the weight step under uniformly perturbed mixing weights "
                                "(Chen & Hsieh, ICML 2020)")
class RandomSmoothing(Part):
    paper = "Chen & Hsieh, Stabilizing Differentiable Architecture Search via Perturbation-based Regularization, ICML 2020"
    Settings = RandomSmoothingSettings
    slot = "perturb the weight step"
    multi_path_only = True

    def mix(self, mixing: Any, phase: str, strategy: Any, engine: Any = None, batch: Any = None) -> Any:
        if phase != "weight":
            return mixing
        theta = mixing.theta
        noisy = project(theta + uniform_like(theta, self.settings.epsilon), theta, strategy.mask)
        return dataclasses.replace(mixing, theta=noisy)


@dataclass
class AdversarialSettings:
    """SDARTS-ADV's attack."""

    epsilon: float = setting(0.03, "radius of the L-infinity ball around the mixing weights (the paper's 0.03)",
                             gt=0, le=1)
    steps: int = setting(7, "projected gradient-ascent steps per weight step (the paper's 7), each of "
                            "2 * epsilon / steps", ge=1, le=100)
    random_start: bool = setting(True, "start the attack from a uniformly perturbed point (the paper does)")


@register_part("sdarts-adv", doc="SDARTS-ADV: the weight step under adversarially perturbed mixing weights "
                                 "(PGD, Chen & Hsieh, ICML 2020)")
class AdversarialSmoothing(Part):
    paper = RandomSmoothing.paper
    Settings = AdversarialSettings
    slot = RandomSmoothing.slot
    multi_path_only = True

    def mix(self, mixing: Any, phase: str, strategy: Any, engine: Any = None, batch: Any = None) -> Any:
        if phase != "weight":
            return mixing
        return dataclasses.replace(mixing, theta=self.attack(mixing, strategy.mask, engine, batch))

    def attack(self, mixing: Any, mask: torch.Tensor, engine: Any, batch: Any) -> torch.Tensor:
        """θ' within ε of θ (and projected) that ascends the loss of ``batch``: ``steps`` signed gradient steps."""
        eps, steps = self.settings.epsilon, self.settings.steps
        start = mixing.theta.detach()
        theta = project(start + uniform_like(start, eps), start, mask) if self.settings.random_start else start
        for _ in range(steps):
            grads = engine.gradients(dataclasses.replace(mixing, theta=theta), *batch)[2]
            theta = theta + (2.0 * eps / steps) * grads[0].sign()
            theta = project(start + (theta - start).clamp(-eps, eps), start, mask)
        return theta
