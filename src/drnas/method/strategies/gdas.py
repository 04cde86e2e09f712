"""GDAS (Dong & Yang, CVPR 2019): one op per edge, drawn by the Gumbel-max trick from softmax(α); the forward
pass runs only that op, and the gradient reaches α straight through the Gumbel-softmax: θ = h - s.detach() + s
with h the one-hot draw and s = softmax((α + G) / τ) (GDAS eq. 4-5). τ falls linearly from 10 to 0.1 over
the search (GDAS §4.1). Ops that did not run get no gradient (their outputs are never computed); the GDAS code
additionally adds their zero-valued weights to the node as scalars, which we do not."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from drnas.method.strategies.base import Mixing, SinglePathStrategy, gumbel_noise, masked_logits, register_method
from drnas.method.strategies.snas import AnnealedTemperature


@register_method("gdas", doc="GDAS: one sampled op per edge, straight-through Gumbel, tau 10 -> 0.1 (Dong & Yang, CVPR 2019)")
class GDAS(AnnealedTemperature, SinglePathStrategy):
    """Hard Gumbel-softmax with a straight-through gradient; single path."""

    name = "gdas"
    paper = "Dong & Yang, Searching for a Robust Neural Architecture in Four GPU Hours, CVPR 2019"
    tau_range = (10.0, 0.1)
    schedule = "linear"

    def sample(self) -> Mixing:
        logits = masked_logits(self.eta, self.mask)
        soft = F.softmax((logits + gumbel_noise(logits.shape, logits.device)) / self.tau, dim=-1)
        index = soft.detach().argmax(-1)
        hard = torch.zeros_like(soft).scatter_(-1, index.unsqueeze(-1), 1.0)
        theta = hard - soft.detach() + soft
        return Mixing(theta, None, [[i] for i in index.tolist()])
