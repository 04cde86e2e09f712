"""``snip``: connection sensitivity, summed over the network.

Lee, Ajanthan & Torr, SNIP: Single-shot Network Pruning based on Connection Sensitivity, ICLR 2019; summed over
all weights as a NAS proxy by Abdelfattah et al., ICLR 2021: ``sum |dL/dW * W|`` over conv/linear weights, L the
mean cross-entropy of one batch.
"""
from __future__ import annotations

import torch
from torch import nn

from drnas.analysis.proxies.base import loss_gradients, register_proxy, weight_layers


@register_proxy("snip", doc="connection sensitivity sum |dL/dW * W|",
                paper="Lee et al., SNIP: Single-shot Network Pruning based on Connection Sensitivity, ICLR 2019")
def snip(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``sum_l sum |dL/dW_l * W_l|``."""
    grads = loss_gradients(network, x, y)
    return float(sum((g * m.weight.detach()).abs().double().sum() for g, m in zip(grads, weight_layers(network))))
