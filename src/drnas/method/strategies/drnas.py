"""DrNAS (Chen et al., ICLR 2021): mixing weights θ ~ Dir(β), β = ELU(η) + 1, trained through the pathwise
gradient of eq. (5), with an anchor d(β, 1) on the concentration (eq. 4: L2 on η as Adam weight decay, as the
authors' code does, or the closed-form KL to Dir(1)). Validation and derivation use the Dirichlet mean (eq. 6).

``drnas-2nd`` takes DARTS' unrolled architecture step through the same sample; ``drnas-point`` is the
point-estimate ablation the paper argues from (§1, §2.2): the same loop and anchor, with θ = the Dirichlet mean
β / Σβ and no sampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from drnas.config.options import setting
from drnas.method.relax import concentration, dirichlet_kl_to_uniform, sample_dirichlet
from drnas.method.strategies.base import Mixing, Strategy, register_method


@dataclass
class DrNASSettings:
    """DrNAS' own settings."""

    regulariser: str = setting("l2", "the anchor d(beta, 1) of eq. 4: l2 = Adam weight decay reg_scale on eta (the "
                                     "authors' code), kl = reg_scale * KL(Dir(beta) || Dir(1)) in closed form",
                               choices=("l2", "kl"))


@register_method("drnas", doc="DrNAS: Dirichlet mixing weights, pathwise gradient, L2/KL anchor (Chen et al., ICLR 2021)")
class DrNAS(Strategy):
    """θ ~ Dir(ELU(η) + 1) over the kept ops of every edge, first-order architecture step."""

    name = "drnas"
    paper = "Chen et al., DrNAS: Dirichlet Neural Architecture Search, ICLR 2021"
    mean_label = "Dirichlet mean"  # the mean of the Dirichlet the method learns (eq. 6)
    mean_plot = "dirichlet_mean.png"
    Settings = DrNASSettings

    def beta(self) -> torch.Tensor:
        return concentration(self.eta)

    def scores(self) -> torch.Tensor:
        return self.beta()

    def expected_weights(self) -> torch.Tensor:
        beta = self.beta().masked_fill(~self.mask, 0.0)
        return beta / beta.sum(-1, keepdim=True)

    def hessian_logits(self) -> torch.Tensor:
        """Proposition 1's mu = log beta - mean log beta (over the kept ops): softmax(mu) is the Dirichlet mean, and
        the loss is differentiated there (torch's Dirichlet gradient kernel has no second derivative)."""
        with torch.no_grad():
            log_beta = self.beta().float().log().masked_fill(~self.mask, 0.0)
            mean = log_beta.sum(-1, keepdim=True) / self.mask.sum(-1, keepdim=True)
            return (log_beta - mean).masked_fill(~self.mask, 0.0)

    def sample(self) -> Mixing:
        beta = self.beta()
        if self._all_kept:
            return Mixing(sample_dirichlet(beta))
        index = self._kept_index  # the Dirichlet over the kept ops (aggregation property), pruned ops at 0
        kept = sample_dirichlet(beta.gather(1, index))
        return Mixing(kept.new_zeros(beta.shape).scatter(1, index, kept))

    @property
    def adam_weight_decay(self) -> float:
        """The L2 anchor as Adam weight decay on eta; none with the KL anchor, which is a penalty."""
        return self.config.reg_scale if self.settings.regulariser == "l2" else 0.0

    def penalty(self) -> torch.Tensor | None:
        if self.settings.regulariser != "kl":
            return None
        kept_beta = self.beta().gather(1, self._kept_index)
        return self.config.reg_scale * dirichlet_kl_to_uniform(kept_beta).sum()


@register_method("drnas-2nd", doc="DrNAS with DARTS' second-order (unrolled) architecture step")
class DrNASSecondOrder(DrNAS):
    """DrNAS whose architecture step differentiates through one virtual weight step (DARTS eq. 7-8); the
    hypergradient w.r.t. the sampled θ reaches η through eq. (5)."""

    name = "drnas-2nd"
    second_order = True


@register_method("drnas-point", doc="ablation: DrNAS' loop and anchor with θ = the Dirichlet mean (no sampling)")
class DrNASPoint(DrNAS):
    """The point-estimate ablation: θ = β / Σβ over the kept ops, differentiated directly."""

    name = "drnas-point"

    def sample(self) -> Mixing:
        return Mixing(self.expected_weights())
