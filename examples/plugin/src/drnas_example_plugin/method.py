"""A search method: DARTS' softmax relaxation with a temperature, θ = softmax(α / T) over the kept ops.

To add a method, copy this file: declare its hyperparameters as a settings dataclass (set from the command line
with ``--set method.temperature=0.5``), subclass a strategy base and register it by name. Here
:class:`~drnas.method.strategies.base.SoftmaxStrategy` already owns α (``self.eta``), the pruning mask, the
first-order architecture step and the derivation; the method only says how α becomes mixing weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from drnas.config import SearchConfig, setting
from drnas.method.strategies import Mixing, register_method
from drnas.method.strategies.base import SoftmaxStrategy, masked_logits


@dataclass
class TemperatureSettings:
    """The method's own settings: ``--set method.temperature=0.5`` (recorded in the run's config.json)."""

    temperature: float = setting(1.0, "divides alpha before the softmax (below 1 sharpens, above 1 flattens)", gt=0)


@register_method("temperature-softmax", doc="softmax over alpha / temperature (the example plugin's method)")
class TemperatureSoftmax(SoftmaxStrategy):
    """θ = softmax(α / temperature) over the kept ops of each edge; DARTS' first-order architecture step."""

    paper = "DARTS (Liu et al., ICLR 2019) with a softmax temperature; the drnas example plugin"
    Settings = TemperatureSettings

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        """The config fields this method sets over a preset: DARTS' Adam on alpha (§A.1), which it only rescales."""
        return {"arch_lr": 3e-4, "arch_betas": (0.5, 0.999), "reg_scale": 1e-3}

    def probabilities(self) -> torch.Tensor:
        """The strength of every op: what the training pass mixes by, pruning ranks by and derivation reads."""
        logits = masked_logits(self.eta, self.mask) / self.settings.temperature
        return F.softmax(logits, dim=-1)

    def hessian_logits(self) -> torch.Tensor:
        return self.eta.detach().float() / self.settings.temperature  # the mixing weights are softmax of these

    def sample(self) -> Mixing:
        return Mixing(self.probabilities())
