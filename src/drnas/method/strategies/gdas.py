"""GDAS (Dong & Yang, CVPR 2019): one op per edge, drawn by the Gumbel-max trick from softmax(α); the forward
pass runs only that op, and the gradient reaches α straight through the Gumbel-softmax: θ = h - s.detach() + s
with h the one-hot draw and s = softmax((α + G) / τ) (GDAS eq. 4-5). τ falls linearly from 10 to 0.1 over
the search (GDAS §4.1; settings of the method). Ops that did not run get no gradient (their outputs are never
computed); the GDAS code additionally adds their zero-valued weights to the node as scalars, which we do not."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from drnas.config.options import setting
from drnas.method.strategies.base import Mixing, SinglePathStrategy, gumbel_noise, masked_logits, register_method
from drnas.method.strategies.snas import SCHEDULES, AnnealedTemperature


@dataclass
class GDASSettings:
    """GDAS' temperature schedule (§4.1)."""

    tau_max: float = setting(10.0, "Gumbel temperature at the first epoch", gt=0)
    tau_min: float = setting(0.1, "temperature at the last epoch", gt=0)
    schedule: str = setting("linear", "how tau moves from tau_max to tau_min over the epochs", choices=SCHEDULES)


@register_method("gdas", doc="GDAS: one sampled op per edge, straight-through Gumbel, tau 10 -> 0.1 (Dong & Yang, CVPR 2019)")
class GDAS(AnnealedTemperature, SinglePathStrategy):
    """Hard Gumbel-softmax with a straight-through gradient; single path."""

    name = "gdas"
    paper = "Dong & Yang, Searching for a Robust Neural Architecture in Four GPU Hours, CVPR 2019"
    Settings = GDASSettings

    def sample(self) -> Mixing:
        logits = masked_logits(self.eta, self.mask)
        soft = F.softmax((logits + gumbel_noise(logits.shape, logits.device)) / self.tau, dim=-1)
        index = soft.detach().argmax(-1)
        hard = torch.zeros_like(soft).scatter_(-1, index.unsqueeze(-1), 1.0)
        theta = hard - soft.detach() + soft
        return Mixing(theta, None, [[i] for i in index.tolist()])
