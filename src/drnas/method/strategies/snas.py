"""SNAS (Xie et al., ICLR 2019): θ = Gumbel-softmax((α + G) / τ) over the kept ops of each edge, a fresh
relaxed one-hot sample per pass, with the temperature annealed over the search. SNAS gives no schedule for
NAS-Bench-201; we anneal τ exponentially from ``tau_max`` = 1.0 to ``tau_min`` = 0.33 over the epochs (the
range NASLib-style reproductions use; settings of the method). Validation and derivation use softmax(α)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F

from drnas.config.options import setting
from drnas.config.search import SearchConfig
from drnas.method.strategies.base import Mixing, SoftmaxStrategy, gumbel_noise, masked_logits, register_method
from drnas.method.strategies.darts import DARTS_ARCH

SCHEDULES = ("linear", "exponential")


def annealed(tau_max: float, tau_min: float, fraction: float, kind: str) -> float:
    """A temperature at ``fraction`` (0..1) of the search: ``linear`` or ``exponential`` from max to min."""
    if kind == "linear":
        return tau_max - (tau_max - tau_min) * fraction
    return tau_max * (tau_min / tau_max) ** fraction


@dataclass
class SNASSettings:
    """SNAS' temperature schedule."""

    tau_max: float = setting(1.0, "Gumbel-softmax temperature at the first epoch", gt=0)
    tau_min: float = setting(0.33, "temperature at the last epoch", gt=0)
    schedule: str = setting("exponential", "how tau moves from tau_max to tau_min over the epochs", choices=SCHEDULES)


class AnnealedTemperature:
    """A Gumbel temperature ``tau`` that moves from the settings' ``tau_max`` to ``tau_min`` over the search,
    linearly or exponentially (their ``schedule``)."""

    settings: Any
    epoch_fraction: float

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return dict(DARTS_ARCH)

    @property
    def tau(self) -> float:
        s = self.settings
        return annealed(s.tau_max, s.tau_min, self.epoch_fraction, s.schedule)

    def record(self) -> dict[str, Any]:
        return {"tau": round(self.tau, 6)}


@register_method("snas", doc="SNAS: Gumbel-softmax mixing weights, annealed temperature (Xie et al., ICLR 2019)")
class SNAS(AnnealedTemperature, SoftmaxStrategy):
    """Relaxed one-hot samples; every op runs, weighted by the sample."""

    name = "snas"
    paper = "Xie et al., SNAS: Stochastic Neural Architecture Search, ICLR 2019"
    Settings = SNASSettings

    def sample(self) -> Mixing:
        logits = masked_logits(self.eta, self.mask)
        noise = gumbel_noise(logits.shape, logits.device)
        return Mixing(F.softmax((logits + noise) / self.tau, dim=-1))
