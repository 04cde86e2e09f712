"""Regularisers of the architecture objective, added beside the method's own and the cost penalty.

* ``beta-decay`` (Ye et al., "β-DARTS: Beta-Decay Regularization for Differentiable Architecture Search", CVPR
  2022, eq. 10): λ_t · mean over edges of log Σ_o exp(η_{e,o}) over the kept ops, the smooth maximum of each
  edge's logits, whose gradient softmax(η) keeps the architecture parameters' value and spread small; λ_t =
  ``weight`` · t / E at the 0-based epoch t of E, a linear growth from 0 towards ``weight`` at the end of the search.
  ``weight`` = 50 is the authors' released NAS-Bench-201 script (``50 * epoch / 100`` over its 100 epochs).
* ``zero-one`` (Chu et al., "Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search",
  ECCV 2020, eq. 6): -w · mean over the kept entries of (θ - 0.5)² on the validation mixing weights, which pushes
  every weight towards 0 or 1 so that the discretisation loses little; w = 10 as in the paper. With the
  ``darts-sigmoid`` method (independent sigmoid weights) it makes the ``fair-darts`` recipe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from drnas.config.options import setting
from drnas.errors import ConfigError
from drnas.method.parts.base import Part, register_part


class _Penalty(Part):
    """A part whose only hook is :meth:`penalty`: it needs a method that follows the objective's gradient."""

    @classmethod
    def check(cls, method: Any, config: Any, space: Any) -> None:
        super().check(method, config, space)
        if not method.arch_gradient:
            raise ConfigError(f"part {cls.name} adds a term to the architecture objective, which method {method.name} "
                              f"does not follow by its gradient: use a differentiable method (darts, drnas, ...)")


@dataclass
class BetaDecaySettings:
    """β-DARTS' regularisation weight."""

    weight: float = setting(50.0, "lambda at the end of the search: lambda_t = weight * t / epochs (the authors' "
                                  "NB201 script: 50)", ge=0, le=1e4)


@register_part("beta-decay", doc="beta-DARTS: beta-decay regularisation, the smooth maximum of each edge's "
                                 "logits (Ye et al., CVPR 2022)")
class BetaDecay(_Penalty):
    paper = "Ye et al., beta-DARTS: Beta-Decay Regularization for Differentiable Architecture Search, CVPR 2022"
    Settings = BetaDecaySettings

    @property
    def scale(self) -> float:
        """λ_t = weight · t / E: 0 at the first epoch, weight · (E - 1) / E at the last."""
        return self.settings.weight * self.epoch / self.epochs

    def penalty(self, strategy: Any) -> torch.Tensor | None:
        if not self.scale:
            return None
        logits = strategy.eta.float().masked_fill(~strategy.mask, float("-inf"))
        return self.scale * torch.logsumexp(logits, dim=-1).mean()

    def record(self) -> dict[str, Any]:
        return {"beta_decay_weight": self.scale}


@dataclass
class ZeroOneSettings:
    """FairDARTS' zero-one loss weight."""

    weight: float = setting(10.0, "w_01 of the zero-one loss (the paper's 10)", ge=0, le=1e4)


@register_part("zero-one", doc="FairDARTS' zero-one loss: pushes every mixing weight towards 0 or 1 "
                               "(Chu et al., ECCV 2020)")
class ZeroOne(_Penalty):
    paper = "Chu et al., Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search, ECCV 2020"
    Settings = ZeroOneSettings
    multi_path_only = True

    def penalty(self, strategy: Any) -> torch.Tensor | None:
        theta = strategy.eval_mixing().theta.float()
        kept = strategy.mask
        return -self.settings.weight * ((theta - 0.5) ** 2)[kept].mean()
