"""DSNAS (Hu et al., CVPR 2020): one op per edge, sampled from softmax(α) (Gumbel-max), which alone runs
forward with weight 1. The architecture gradient is DSNAS' search gradient: for the sampled op s of an edge,
dL/dα_k = dL/dZ_s · (1[k = s] - p_k) = dL/dZ_s · d log p_s / dα_k (DSNAS eq. 10-12), where Z_s = 1 is the
weight of the op that ran; θ carries exactly that gradient (its value is the one-hot, its derivative is that
of log p_s)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from drnas.config.search import SearchConfig
from drnas.method.strategies.base import Mixing, SinglePathStrategy, gumbel_noise, masked_logits, register_method
from drnas.method.strategies.darts import DARTS_ARCH


@register_method("dsnas", doc="DSNAS: one sampled op per edge, score-function-style search gradient (Hu et al., CVPR 2020)")
class DSNAS(SinglePathStrategy):
    """Discrete sampling, single path, DSNAS' search gradient."""

    name = "dsnas"
    paper = "Hu et al., DSNAS: Direct Neural Architecture Search without Parameter Retraining, CVPR 2020"

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return dict(DARTS_ARCH)

    def sample(self) -> Mixing:
        logits = masked_logits(self.eta, self.mask)
        index = (logits.detach() + gumbel_noise(logits.shape, logits.device)).argmax(-1)
        log_p_s = F.log_softmax(logits, dim=-1).gather(-1, index.unsqueeze(-1))
        hard = torch.zeros_like(logits).scatter_(-1, index.unsqueeze(-1), 1.0)
        theta = hard * (1.0 + log_p_s - log_p_s.detach())  # value: the one-hot; derivative: d log p_s
        return Mixing(theta, None, [[i] for i in index.tolist()])
