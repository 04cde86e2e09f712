"""``l2_norm``: the summed norm of the initial weights.

Abdelfattah, Mehrotra, Dudziak & Lane, Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (a baseline of
NAS-Bench-Suite-Zero, Krishnakumar et al., NeurIPS 2022): ``sum over conv/linear layers l of ||W_l||_2``. It
reads no data.
"""
from __future__ import annotations

import torch
from torch import nn

from drnas.analysis.proxies.base import register_proxy, weight_layers


@register_proxy("l2_norm", doc="sum of the layers' weight norms ||W||", needs_data=False,
                paper="Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (baseline)")
@torch.no_grad()
def l2_norm(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``sum_l ||W_l||_2``."""
    return float(sum(m.weight.double().norm() for m in weight_layers(network)))
