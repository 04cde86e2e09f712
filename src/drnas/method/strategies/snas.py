"""SNAS (Xie et al., ICLR 2019): θ = Gumbel-softmax((α + G) / τ) over the kept ops of each edge, a fresh
relaxed one-hot sample per pass, with the temperature annealed over the search. SNAS gives no schedule for
NAS-Bench-201; we anneal τ exponentially from ``tau_max`` = 1.0 to ``tau_min`` = 0.33 over the epochs (the
range NASLib-style reproductions use). Validation and derivation use softmax(α)."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from drnas.config.search import SearchConfig
from drnas.method.strategies.base import Mixing, SoftmaxStrategy, gumbel_noise, masked_logits, register_method
from drnas.method.strategies.darts import DARTS_ARCH


def annealed(tau_max: float, tau_min: float, fraction: float, kind: str) -> float:
    """A temperature at ``fraction`` (0..1) of the search: ``linear`` or ``exponential`` from max to min."""
    if kind == "linear":
        return tau_max - (tau_max - tau_min) * fraction
    return tau_max * (tau_min / tau_max) ** fraction


class AnnealedTemperature:
    """A Gumbel temperature ``tau`` that moves from ``tau_max`` to ``tau_min`` over the search (``tau_range``
    by default, ``schedule`` linear or exponential); config ``tau_max`` / ``tau_min`` override the ends."""

    tau_range: tuple[float, float] = (1.0, 1.0)
    schedule = "exponential"
    config: SearchConfig
    epoch_fraction: float

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return {**DARTS_ARCH, "tau_max": cls.tau_range[0], "tau_min": cls.tau_range[1]}

    @property
    def tau(self) -> float:
        cfg = self.config
        tau_max = cfg.tau_max if cfg.tau_max is not None else self.tau_range[0]
        tau_min = cfg.tau_min if cfg.tau_min is not None else self.tau_range[1]
        return annealed(tau_max, tau_min, self.epoch_fraction, self.schedule)

    def record(self) -> dict[str, Any]:
        return {"tau": round(self.tau, 6)}


@register_method("snas", doc="SNAS: Gumbel-softmax mixing weights, annealed temperature (Xie et al., ICLR 2019)")
class SNAS(AnnealedTemperature, SoftmaxStrategy):
    """Relaxed one-hot samples; every op runs, weighted by the sample."""

    name = "snas"
    paper = "Xie et al., SNAS: Stochastic Neural Architecture Search, ICLR 2019"
    tau_range = (1.0, 0.33)
    schedule = "exponential"

    def sample(self) -> Mixing:
        logits = masked_logits(self.eta, self.mask)
        noise = gumbel_noise(logits.shape, logits.device)
        return Mixing(F.softmax((logits + noise) / self.tau, dim=-1))
